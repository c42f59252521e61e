"""What a label source is: the reference :class:`Grid` and the validated, picklable
:class:`LabelSource` that :mod:`geoseg.io.labels` (rasters) and :mod:`geoseg.io.label_vectors`
(polygons) both read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from affine import Affine
from rasterio.crs import CRS

from geoseg.io.classes import ClassMap
from geoseg.io.label_values import LabelRules
from geoseg.io.raster import SceneInfo, grid_bounds
from geoseg.io.vector import DRIVERS

VECTOR_SUFFIXES = tuple(DRIVERS)

#: How each kind of source meets the grid (reported by evaluation).
ALIGNMENTS = {"raster": "same grid", "warp": "warped (nearest)", "vector": "rasterized"}


@dataclass(frozen=True)
class Grid:
    """The reference pixel grid labels are brought onto.

    Attributes:
        info: header of the raster defining the grid (the scene, or the prediction).
        height, width: grid size in pixels; larger than ``info``'s when a scene is padded.
    """

    info: SceneInfo
    height: int
    width: int

    @classmethod
    def of(cls, info: SceneInfo, shape: tuple[int, int] | None = None) -> Grid:
        """The grid of ``info``, optionally enlarged to ``shape`` = (height, width) pixels."""
        h, w = shape or info.shape
        return cls(info, int(h), int(w))

    @property
    def crs(self) -> CRS | None:
        return self.info.crs

    @property
    def transform(self) -> Affine:
        return self.info.transform

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of the whole grid, in CRS units."""
        return grid_bounds(self.height, self.width, self.transform)


@dataclass(frozen=True)
class LabelSource:
    """A validated label source for one grid (picklable: paths, numbers and CRSs only).

    Attributes:
        path: the label file.
        kind: ``"raster"``, ``"color"`` or ``"vector"``.
        grid: the grid the labels are brought onto.
        rules: how values become class indices.
        warp: a raster on another grid (read through a ``WarpedVRT``).
        palette: class map of a color-coded raster.
        label_nodata: nodata value of a label raster (becomes 255).
        field: vector attribute read (None: ``rules.burn_value`` for every polygon).
        vector_crs: CRS of the vector coordinates (``--labels-crs`` or the file's); None = the grid's.
    """

    path: Path
    kind: str
    grid: Grid
    rules: LabelRules = LabelRules()
    warp: bool = False
    palette: ClassMap | None = None
    label_nodata: float | None = None
    field: str | None = None
    vector_crs: CRS | None = None

    @property
    def alignment(self) -> str:
        """``"same grid"``, ``"warped (nearest)"`` or ``"rasterized"``."""
        return ALIGNMENTS["vector" if self.kind == "vector" else ("warp" if self.warp else "raster")]


def is_vector(path: str | Path) -> bool:
    """True when ``path`` has a vector file suffix (.gpkg, .geojson, .json, .shp, .fgb)."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES



def fmt_bounds(b: Sequence[float]) -> str:
    """``(minx, miny, maxx, maxy)`` with 6 significant digits, for messages."""
    return "(" + ", ".join(f"{v:.6g}" for v in b) + ")"
