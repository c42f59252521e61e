"""Tiling: cut scenes and their labels into georeferenced training patches with an index
(``tiler``), a train/validation split (``split``), statistics (``stats``) and patch files
(``writer``, ``index``). Windows come from :mod:`geoseg.io.windows`, labels from
:mod:`geoseg.io.labels`."""
