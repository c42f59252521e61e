"""The area an evaluation scores: polygons in any CRS, turned into a pixel mask window by window.

An :class:`Area` is a set of polygons and their CRS: read from a vector file (``--aoi
FILE[:layer]``) or built from the windows of one split of a tiled dataset (``--dataset DIR
--split val``, see :func:`geoseg.evaluation.holdout.split_area`). :meth:`Area.on_grid`
reprojects it once onto a prediction's pixel grid; the resulting :class:`AreaMask` answers,
for one window at a time, which pixels are inside.

Rule: a pixel is inside when its **centre** is inside a polygon (GDAL's rasterize rule, the one
used for vector labels). Windows of a dataset split lie on the scene's pixel grid, so on that
grid their union is matched exactly. Memory: the polygons are held whole, the mask only one
window at a time.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geoseg.errors import MissingGeoreferenceError, VectorLabelError
from geoseg.io.windows import window_bounds

log = logging.getLogger("geoseg.evaluation")


@dataclass(frozen=True)
class Area:
    """Polygons delimiting the pixels to score.

    Attributes:
        geometries: shapely (multi)polygons, shape ``(N,)``, in ``crs`` units.
        crs: their CRS; None means "the prediction's CRS".
        source: where they come from, for messages (``--aoi file.gpkg:val``, ``dataset/index.csv``).
    """

    geometries: np.ndarray
    crs: CRS | None
    source: str

    def on_grid(self, crs: CRS | None, transform: Affine, width: int, height: int) -> AreaMask:
        """The area on a raster grid (a prediction's CRS, transform and size in pixels).

        Raises:
            MissingGeoreferenceError: the area has a CRS but the grid has none.
        """
        from geoseg.io.vector import reproject_geometries

        geoms = self.geometries
        if self.crs is not None and crs is None:
            raise MissingGeoreferenceError(
                f"the prediction has no CRS; the area {self.source} ({self.crs.to_string()[:40]}) "
                "cannot be placed on it"
            )
        if self.crs is None and len(geoms):
            log.warning("area %s has no CRS; assuming the prediction's", self.source)
        elif crs is not None and self.crs != crs and len(geoms):
            geoms = reproject_geometries(geoms, self.crs, crs)
        return AreaMask(geoms, transform, width, height, self.source)


class AreaMask:
    """An :class:`Area` on one pixel grid: ``mask(window)`` is the ``(H, W)`` bool inside-mask.

    Args:
        geometries: polygons in the grid's CRS.
        transform: the grid's affine transform (CRS units per pixel).
        width, height: grid size in pixels.
        source: where the area comes from, for messages.
    """

    def __init__(self, geometries: np.ndarray, transform: Affine, width: int, height: int, source: str) -> None:
        self.transform = transform
        self.source = source
        grid = shapely.box(*window_bounds(Window(0, 0, width, height), transform))
        geoms = np.asarray(geometries, dtype=object)
        if len(geoms):
            geoms = geoms[shapely.intersects(geoms, grid)]
        self.geometries = geoms
        self._tree = shapely.STRtree(geoms)

    @property
    def empty(self) -> bool:
        """True when no polygon overlaps the grid: no pixel is inside."""
        return len(self.geometries) == 0

    def __call__(self, window: Window) -> np.ndarray:
        """``(H, W)`` bool: True where the pixel centre lies inside a polygon (window in grid pixels)."""
        from rasterio.features import rasterize

        shape = (int(window.height), int(window.width))
        box = shapely.box(*window_bounds(window, self.transform))
        if self._tree.query(box, predicate="within").size:  # the window lies inside one polygon
            return np.ones(shape, dtype=bool)
        hits = self._tree.query(box, predicate="intersects")
        if hits.size == 0:
            return np.zeros(shape, dtype=bool)
        burnt = rasterize(((g, 1) for g in self.geometries[np.sort(hits)]), out_shape=shape,
                          transform=window_transform(window, self.transform), fill=0, dtype=np.uint8)
        return burnt.astype(bool)


def parse_area_spec(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """``"FILE[:layer]"`` -> ``(FILE, layer or None)``; a path that exists as given is never split."""
    text = str(spec)
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    path, layer = text.rsplit(":", 1)
    if not path or not layer or "/" in layer or "\\" in layer:  # "C:\\x" or a colon inside a folder name
        return Path(text), None
    return Path(path), layer


def read_area(spec: str | os.PathLike) -> Area:
    """An :class:`Area` from a vector file: ``"aoi.geojson"`` or ``"dataset/split.gpkg:val"``.

    Only polygonal geometries count (parts of geometry collections included; invalid polygons
    are repaired with ``shapely.make_valid``); the file may be in any CRS.

    Raises:
        InputNotFoundError: no such file.
        VectorLabelError: unreadable file, unknown layer (the layers are listed) or no polygon.
    """
    import pyogrio

    from geoseg.io.vector import polygonal_parts, read_vector

    path, layer = parse_area_spec(spec)
    if layer is not None and path.exists():
        try:
            layers = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
        except Exception:  # unreadable: read_vector below says so in words
            layers = []
        if layers and layer not in layers:
            raise VectorLabelError(f"--aoi {spec}: {path} has no layer {layer!r}; layers are: {', '.join(layers)}")
    data = read_vector(path, columns=[], layer=layer)
    geoms = np.asarray(data.geometries, dtype=object)
    if len(geoms):
        geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
        geoms, repaired = polygonal_parts(geoms)  # self-intersecting rings would upset the predicates
        if repaired.any():
            log.warning("--aoi %s: %d invalid polygon(s) repaired", spec, int(repaired.sum()))
        parts = shapely.get_parts(geoms)  # flattens multi-geometries and collections
        polys = parts[np.isin(shapely.get_type_id(parts), (3,))]  # 3 = Polygon
        if len(polys) < len(parts):
            log.warning("--aoi %s: %d non-polygon geometries ignored", spec, len(parts) - len(polys))
        geoms = polys
    if not len(geoms):
        raise VectorLabelError(f"--aoi {spec}: no polygon in {path}" + (f" (layer {layer!r})" if layer else ""))
    return Area(geometries=geoms, crs=data.crs, source=str(spec))
