"""Bring any label source onto a window of the image grid.

Four kinds of source, all ending as a ``(H, W)`` uint8 class-index array on the window's
grid (255 = no label / ignore, :data:`geoseg.io.classes.IGNORE_INDEX`):

- ``raster``: a one-band class raster on the scene grid; a windowed read.
- ``warp``: a one-band class raster on another grid or CRS; nearest-neighbour warp
  (a ``WarpedVRT`` onto the scene grid), pixels it does not cover become 255.
- ``color``: a 3-band color-coded raster (on the scene grid or warped) mapped to indices
  with a palette (:func:`geoseg.io.classes.color_to_index`).
- ``vector``: polygons (GeoPackage, GeoJSON, Shapefile) reprojected to the scene CRS and
  rasterized per window (pixel-centre rule) with an attribute (``--label-field``) or a fixed
  ``--burn-value``; pixels outside every polygon are background (0).

:func:`resolve_labels` validates a source once in the main process and returns a small
picklable :class:`LabelSource`; each worker opens it with :func:`open_labels` (datasets are
never pickled).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError
from rasterio.windows import Window

from geoseg.io.classes import IGNORE_INDEX, ClassMap, color_to_index
from geoseg.errors import (
    BandCountError,
    CRSMismatchError,
    InvalidParameterError,
    NoOverlapError,
    PaletteError,
    VectorLabelError,
)
from geoseg.io.raster import SceneInfo, open_scene
from geoseg.io.windows import window_bounds, window_transform
from geoseg.io.vector import DRIVERS, read_vector

log = logging.getLogger("geoseg.tiling")

VECTOR_SUFFIXES = tuple(DRIVERS)


@dataclass(frozen=True)
class LabelSource:
    """A validated label source for one scene (picklable: paths and numbers only).

    Attributes:
        path: the label file.
        kind: ``"raster"``, ``"warp"``, ``"color"`` or ``"vector"``.
        scene_crs: CRS of the scene grid the labels are brought onto.
        scene_transform: scene affine transform.
        scene_shape: (height, width) of the (possibly padded) scene grid, in pixels.
        palette: class map for color-coded rasters.
        warp: color raster that also needs warping onto the scene grid.
        label_field: vector attribute holding class indices.
        burn_value: fixed class index burned for every polygon (when no field).
        label_nodata: nodata value of a label raster, mapped to 255.
    """

    path: Path
    kind: str
    scene_crs: CRS | None
    scene_transform: Affine
    scene_shape: tuple[int, int]
    palette: ClassMap | None = None
    warp: bool = False
    label_field: str | None = None
    burn_value: int | None = None
    label_nodata: float | None = None


def is_vector(path: str | Path) -> bool:
    """True when ``path`` has a vector file suffix (.gpkg, .geojson, .json, .shp, .fgb)."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


def resolve_labels(path: str | Path, scene: SceneInfo, scene_shape: tuple[int, int] | None = None,
                   palette: ClassMap | None = None, label_field: str | None = None,
                   burn_value: int | None = None) -> LabelSource:
    """Validate a label file against its scene and decide how to read it.

    Args:
        path: class raster, color raster or vector file.
        scene: the scene the labels belong to.
        scene_shape: (height, width) of the grid to fill, in pixels (the padded shape with
            ``--pad``); the scene's own shape when None.
        palette: class map for color-coded label rasters (``--palette``).
        label_field: vector attribute holding class indices (``--label-field``).
        burn_value: class index burned for every polygon (``--burn-value``).

    Raises:
        InputNotFoundError, UnreadableRasterError: the file is missing or not a raster.
        MissingGeoreferenceError: vector labels for a scene without CRS/geotransform.
        CRSMismatchError: a raster on another grid that cannot be warped (no CRS on one side).
        NoOverlapError: the labels do not overlap the scene.
        VectorLabelError: no such attribute, or attribute values that are not class indices.
        PaletteError: a color raster without palette, or colors missing from the palette.
        BandCountError: a label raster with 2 bands (neither class indices nor RGB).
    """
    path = Path(path)
    shape = tuple(scene_shape or scene.shape)
    if is_vector(path):
        return _resolve_vector(path, scene, shape, label_field, burn_value)
    info = open_scene(path)
    if info.count == 2 or info.count < 1:
        raise BandCountError(f"label raster {path} has {info.count} bands; expected 1 (class index) or 3 (RGB colors)")
    color = info.count >= 3
    if color and palette is None:
        raise PaletteError(f"label raster {path} has {info.count} bands (color-coded?); give its palette with --palette FILE")
    if info.count == scene.count and info.count >= 3 and _same_file(path, scene.path):
        raise InvalidParameterError(f"--labels {path} is the scene itself")
    warp = _needs_warp(info, scene, shape)
    if warp:
        _check_overlap_raster(info, scene, shape)
    src = LabelSource(path=path, kind="color" if color else ("warp" if warp else "raster"),
                      scene_crs=scene.crs, scene_transform=scene.transform, scene_shape=shape,
                      palette=palette if color else None, warp=warp, label_nodata=info.nodata)
    if color:
        check_palette(src)
    return src


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return a.resolve() == b.resolve()
    return False


def _needs_warp(info: SceneInfo, scene: SceneInfo, shape: tuple[int, int]) -> bool:
    """False when the label raster is on the scene grid (a direct windowed read works)."""
    same_size = (info.height, info.width) == scene.shape
    if not info.has_georeference or not scene.has_georeference:
        if same_size:
            if info.has_georeference != scene.has_georeference:
                log.warning("%s and %s: one has no georeference; same size, assuming the same pixel grid",
                            info.path, scene.path)
            return False
        missing = info.path if not info.has_georeference else scene.path
        raise CRSMismatchError(
            f"cannot warp labels {info.path} ({info.width}x{info.height} px) onto scene {scene.path} "
            f"({scene.width}x{scene.height} px): {missing} has no CRS/geotransform")
    tol = 1e-6 * max(abs(scene.transform.a), 1e-12)
    if info.crs == scene.crs and same_size and info.transform.almost_equals(scene.transform, precision=tol):
        return False
    return True


def _check_overlap_raster(info: SceneInfo, scene: SceneInfo, shape: tuple[int, int]) -> None:
    from rasterio.warp import transform_bounds

    try:
        lb = transform_bounds(info.crs, scene.crs, *info.bounds, densify_pts=21)
    except (CRSError, ValueError, RuntimeError) as exc:
        raise CRSMismatchError(
            f"cannot warp labels {info.path} ({_crs_name(info.crs)}) onto scene {scene.path} "
            f"({_crs_name(scene.crs)}): {str(exc).splitlines()[0]}") from None
    sb = window_bounds(Window(0, 0, shape[1], shape[0]), scene.transform)
    if not np.all(np.isfinite(lb)) or lb[0] >= sb[2] or lb[2] <= sb[0] or lb[1] >= sb[3] or lb[3] <= sb[1]:
        raise NoOverlapError(
            f"labels {info.path} do not overlap scene {scene.path}: label bounds {_fmt(lb)} vs scene bounds "
            f"{_fmt(sb)} ({_crs_name(scene.crs)})")


def _crs_name(crs: CRS | None) -> str:
    if crs is None:
        return "no CRS"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()[:60]


def _fmt(b: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in b) + ")"


# --- vector -----------------------------------------------------------------------------------

def _resolve_vector(path: Path, scene: SceneInfo, shape: tuple[int, int], label_field: str | None,
                    burn_value: int | None) -> LabelSource:
    if scene.crs is None or not scene.has_georeference:
        missing = "CRS" if scene.crs is None else "geotransform"
        from geoseg.errors import MissingGeoreferenceError

        raise MissingGeoreferenceError(f"scene {scene.path} has no {missing}; vector labels {path} cannot be placed on it")
    if label_field is None and burn_value is None:
        raise InvalidParameterError(f"vector labels {path}: give --label-field NAME (class attribute) or --burn-value N")
    if burn_value is not None and not 0 <= int(burn_value) < IGNORE_INDEX:
        raise InvalidParameterError(f"--burn-value must be a class index in 0..254, got {burn_value}")
    src = LabelSource(path=path, kind="vector", scene_crs=scene.crs, scene_transform=scene.transform,
                      scene_shape=shape, label_field=label_field,
                      burn_value=None if label_field else int(burn_value))
    bounds = window_bounds(Window(0, 0, shape[1], shape[0]), scene.transform)
    geoms, _ = read_vector_labels(src, bounds)
    if len(geoms) == 0:
        raise NoOverlapError(f"vector labels {path} have no feature overlapping scene {scene.path} "
                             f"(scene bounds {_fmt(bounds)}, {_crs_name(scene.crs)})")
    return src


def read_vector_labels(src: LabelSource, bounds: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Polygons of a vector source intersecting ``bounds`` (scene CRS units), in the scene CRS.

    Returns:
        ``(geometries, values)``: shapely array (N,) in file order and uint8 class indices (N,).

    Raises:
        VectorLabelError: missing attribute, or values that are not integers in 0..254.
    """
    from rasterio.warp import transform_bounds

    columns = [src.label_field] if src.label_field else []
    import pyogrio

    try:
        file_crs = pyogrio.read_info(src.path).get("crs")
    except Exception:  # unreadable: read_vector raises the proper error below
        file_crs = None
    vcrs = CRS.from_user_input(file_crs) if file_crs else None
    bbox = bounds
    if vcrs is not None and vcrs != src.scene_crs:
        try:
            bbox = transform_bounds(src.scene_crs, vcrs, *bounds, densify_pts=21)
        except (CRSError, ValueError, RuntimeError) as exc:
            raise CRSMismatchError(f"cannot reproject vector labels {src.path} ({_crs_name(vcrs)}) to the scene "
                                   f"CRS {_crs_name(src.scene_crs)}: {str(exc).splitlines()[0]}") from None
    data = read_vector(src.path, columns=columns, bbox=tuple(bbox))
    geoms = data.geometries
    if src.label_field:
        raw = data.attributes[src.label_field]
        values = _class_values(raw, src)
    else:
        values = np.full(len(geoms), src.burn_value, dtype=np.int64)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms)) & (values >= 0)
    geoms, values = geoms[keep], values[keep]
    if data.crs is not None and data.crs != src.scene_crs and len(geoms):
        geoms = reproject_geometries(geoms, data.crs, src.scene_crs)
    elif data.crs is None and len(geoms):
        log.warning("vector labels %s have no CRS; assuming the scene CRS %s", src.path, _crs_name(src.scene_crs))
    return geoms, values.astype(np.uint8)


def _class_values(raw: np.ndarray, src: LabelSource) -> np.ndarray:
    """Attribute values -> int64 class indices; nulls become -1 (feature skipped)."""
    field = src.label_field
    if raw.dtype.kind in "iu":
        values = raw.astype(np.int64)
    elif raw.dtype.kind == "f":
        nulls = np.isnan(raw)
        if not np.all(np.equal(np.mod(raw[~nulls], 1), 0)):
            bad = raw[~nulls][np.mod(raw[~nulls], 1) != 0][:3]
            raise VectorLabelError(f"{src.path}: attribute {field!r} must hold integer class indices, found {bad.tolist()}")
        values = np.where(nulls, -1, raw).astype(np.int64)
    else:
        try:
            values = np.array([-1 if v is None else int(v) for v in raw], dtype=np.int64)
        except (TypeError, ValueError):
            sample = [v for v in raw[:3]]
            raise VectorLabelError(f"{src.path}: attribute {field!r} must hold integer class indices, "
                                   f"found {raw.dtype} values such as {sample}") from None
    bad = values[(values >= IGNORE_INDEX)]
    if bad.size:
        raise VectorLabelError(f"{src.path}: attribute {field!r} holds {np.unique(bad)[:5].tolist()}; "
                               f"class indices must be in 0..{IGNORE_INDEX - 1}")
    return values


def reproject_geometries(geoms: np.ndarray, src_crs: CRS, dst_crs: CRS) -> np.ndarray:
    """Reproject a shapely geometry array (all vertices at once, PROJ through rasterio)."""
    from rasterio.warp import transform

    def _tx(xy: np.ndarray) -> np.ndarray:
        xs, ys = transform(src_crs, dst_crs, xy[:, 0], xy[:, 1])
        return np.column_stack([xs, ys])

    try:
        return shapely.transform(geoms, _tx)
    except (CRSError, ValueError, RuntimeError) as exc:
        raise CRSMismatchError(f"cannot reproject geometries from {_crs_name(src_crs)} to {_crs_name(dst_crs)}: "
                               f"{str(exc).splitlines()[0]}") from None


# --- palette check ----------------------------------------------------------------------------

def check_palette(src: LabelSource, max_block_px: int = 1 << 22) -> None:
    """Scan a color raster block by block; raise listing every color missing from the palette.

    Memory stays bounded (one strip of about ``max_block_px`` pixels at a time).

    Raises:
        PaletteError: with each unknown color, its pixel count and the file.
    """
    keys = {(r << 16) | (g << 8) | b for (r, g, b) in src.palette.colors}
    unknown: dict[int, int] = {}
    with rasterio.open(src.path) as ds:
        rows = max(1, max_block_px // max(ds.width, 1))
        alpha = _alpha_band(ds)
        for r0 in range(0, ds.height, rows):
            win = Window(0, r0, ds.width, min(rows, ds.height - r0))
            rgb = ds.read([1, 2, 3], window=win)
            packed = (rgb[0].astype(np.uint32) << 16) | (rgb[1].astype(np.uint32) << 8) | rgb[2].astype(np.uint32)
            covered = np.ones(packed.shape, bool) if alpha is None else ds.read(alpha, window=win) > 0
            vals, counts = np.unique(packed[covered], return_counts=True)
            for v, c in zip(vals.tolist(), counts.tolist()):
                if v not in keys:
                    unknown[v] = unknown.get(v, 0) + c
    if unknown:
        items = sorted(unknown.items(), key=lambda kv: -kv[1])
        listed = ", ".join(f"({v >> 16},{(v >> 8) & 255},{v & 255}): {c} px" for v, c in items[:10])
        more = f" and {len(items) - 10} more" if len(items) > 10 else ""
        raise PaletteError(f"{src.path}: {len(items)} color(s) not in the palette: {listed}{more}")


def _alpha_band(ds) -> int | None:
    from rasterio.enums import ColorInterp

    for i, ci in enumerate(ds.colorinterp, 1):
        if ci == ColorInterp.alpha and i > 3:
            return i
    return None


# --- per-window reading -----------------------------------------------------------------------

class LabelReader:
    """Reads labels window by window for one task; open with :func:`open_labels`."""

    def __init__(self, src: LabelSource, ds=None, alpha: int | None = None) -> None:
        self.src = src
        self._ds = ds
        self._alpha = alpha
        self._geoms: np.ndarray | None = None
        self._values: np.ndarray | None = None
        self._tree: shapely.STRtree | None = None

    def prepare(self, windows: Sequence[Window]) -> None:
        """Load what the windows need (vector: the features intersecting their union)."""
        if self.src.kind != "vector" or not windows:
            return
        b = np.array([window_bounds(w, self.src.scene_transform) for w in windows])
        bounds = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
        self._geoms, self._values = read_vector_labels(self.src, bounds)
        self._tree = shapely.STRtree(self._geoms)

    def read(self, window: Window) -> np.ndarray:
        """Labels of ``window`` (scene pixels) as ``(H, W)`` uint8, 255 where unknown."""
        h, w = int(window.height), int(window.width)
        if self.src.kind == "vector":
            return self._rasterize(window)
        ds = self._ds
        sh, sw = ds.height, ds.width
        inside = (window.row_off >= 0 and window.col_off >= 0 and window.row_off + h <= sh
                  and window.col_off + w <= sw)
        if self.src.kind == "color":
            rgb = ds.read([1, 2, 3], window=window, boundless=not inside, fill_value=0)
            covered = np.ones((h, w), bool)
            if self._alpha is not None:
                covered = ds.read(self._alpha, window=window, boundless=not inside, fill_value=0) > 0
            if not inside:
                covered &= inside_mask(window, sh, sw)
            rgb = np.where(covered[None], rgb, np.asarray(self.src.palette.colors[0], dtype=rgb.dtype)[:, None, None])
            out = color_to_index(rgb, self.src.palette, source=str(self.src.path))
            out[~covered] = IGNORE_INDEX
            return out
        raw = ds.read(1, window=window, boundless=not inside, fill_value=IGNORE_INDEX)
        return self._to_index(raw)

    def _to_index(self, raw: np.ndarray) -> np.ndarray:
        nd = self.src.label_nodata
        if raw.dtype != np.uint8:
            bad = (raw < 0) | (raw > IGNORE_INDEX)
            if nd is not None:
                bad &= raw != nd
            if bad.any():
                raise InvalidParameterError(f"label raster {self.src.path}: values {np.unique(raw[bad])[:5].tolist()} "
                                            f"are not class indices (0..{IGNORE_INDEX - 1}, {IGNORE_INDEX} = ignore)")
        out = raw.astype(np.uint8)
        if nd is not None and nd != IGNORE_INDEX:
            out[raw == nd] = IGNORE_INDEX
        return out

    def _rasterize(self, window: Window) -> np.ndarray:
        from rasterio.features import rasterize

        h, w = int(window.height), int(window.width)
        box = shapely.box(*window_bounds(window, self.src.scene_transform))
        idx = np.sort(self._tree.query(box)) if self._tree is not None else np.array([], int)
        if idx.size == 0:
            return np.zeros((h, w), dtype=np.uint8)
        # File order is kept so that overlapping polygons burn exactly as a whole-scene rasterize does.
        shapes = zip(self._geoms[idx], self._values[idx].tolist())
        return rasterize(shapes, out_shape=(h, w), transform=window_transform(window, self.src.scene_transform),
                         fill=0, dtype="uint8")


def inside_mask(window: Window, height: int, width: int) -> np.ndarray:
    h, w = int(window.height), int(window.width)
    m = np.zeros((h, w), bool)
    r0, c0 = int(window.row_off), int(window.col_off)
    m[max(0, -r0):max(0, min(h, height - r0)), max(0, -c0):max(0, min(w, width - c0))] = True
    return m


@contextlib.contextmanager
def open_labels(src: LabelSource) -> Iterator[LabelReader]:
    """Open a label source for window reads (call inside :func:`geoseg.io.raster.gdal_env`)."""
    if src.kind == "vector":
        yield LabelReader(src)
        return
    with rasterio.open(src.path) as ds:
        if not src.warp:
            yield LabelReader(src, ds, _alpha_band(ds) if src.kind == "color" else None)
            return
        from rasterio.vrt import WarpedVRT

        height, width = src.scene_shape
        if src.kind == "color":
            # An alpha band marks where the source covers the scene, since any RGB fill may be a palette color.
            opts = dict(add_alpha=True)
        else:
            opts = dict(nodata=IGNORE_INDEX, src_nodata=src.label_nodata)
        with WarpedVRT(ds, crs=src.scene_crs, transform=src.scene_transform, width=width, height=height,
                       resampling=Resampling.nearest, **opts) as vrt:
            yield LabelReader(src, vrt, vrt.count if src.kind == "color" else None)
