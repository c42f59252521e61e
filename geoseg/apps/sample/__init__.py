"""Synthetic sample scene: a plausible aerial image, its class raster and its polygons.

``python -m geoseg.sample OUT_DIR`` writes, deterministically from ``--seed``:

- ``scene.tif``: bands red, green, blue, nir (+ red-edge/SWIR-like extras with ``--bands > 4``),
  uint8 or uint16, tiled and deflate-compressed, UTM 33N (EPSG:32633) at 0.5 m, nodata 0.
- ``labels.tif``: uint8 class raster on the same grid, color table, class map in the
  ``GEOSEG_CLASSES`` tag, nodata 255; ``labels.tif.aux.xml`` (category names, attribute table)
  and ``labels.qml`` (QGIS style) beside it.
- ``labels.gpkg``: one polygon per object (``class_id``, ``class_name``), in the scene CRS.
- ``classes.json``: the class map (:data:`SAMPLE_CLASSES`).

How it is built: the layout (roads, water, buildings, trees) is made of shapely geometries in
pixel coordinates. Each class is clipped by the classes above it in the priority order
building > road > water > vegetation > background, so the polygons do not overlap, and
``labels.tif`` is exactly those polygons rasterized. Pixels are then rendered block by block
from the labels and from noise fields defined on the global pixel grid (a hash of the pixel
position and the seed), so the result does not depend on the block size and memory stays
bounded for any scene size.

Modules: :mod:`~geoseg.apps.sample.classes` (classes, spectra, pixel types),
:mod:`~geoseg.apps.sample.layout` (the geometries), :mod:`~geoseg.apps.sample.render`
(noise fields and block rendering), :mod:`~geoseg.apps.sample.writer` (:func:`make_sample`).
"""

from geoseg.apps.sample.classes import (
    BACKGROUND,
    BAND_NAMES,
    BUILDING,
    DEFAULT_ORIGIN,
    ROAD,
    SAMPLE_CLASSES,
    SAMPLE_DTYPES,
    VEGETATION,
    WATER,
)
from geoseg.apps.sample.writer import SampleFiles, check_sample_options, make_sample

__all__ = [
    "BACKGROUND", "BAND_NAMES", "BUILDING", "DEFAULT_ORIGIN", "ROAD", "SAMPLE_CLASSES", "SAMPLE_DTYPES",
    "SampleFiles", "VEGETATION", "WATER", "check_sample_options", "make_sample",
]
