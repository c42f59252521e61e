"""Tiling: where to cut (``windows``), bringing labels onto the image grid (``labels``),
and reading/writing patches with their index (``writer``, ``index``, ``tiler``)."""
