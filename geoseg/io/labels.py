"""Bring any label source onto a reference pixel grid, window by window: the one label reader.

The reference :class:`Grid` is the scene's when tiling and the prediction's when evaluating.
Three kinds of source, all ending as a ``(H, W)`` uint8 class-index array on a window of that
grid (255 = no label / ignore, :data:`geoseg.io.classes.IGNORE_INDEX`):

- ``raster``: a one-band class raster. On the grid (same CRS and transform, see
  :func:`geoseg.io.raster.same_grid`): windowed reads. On another grid or CRS: a
  nearest-neighbour ``WarpedVRT`` onto the grid. Pixels it does not cover become 255.
- ``color``: a 3-band color-coded raster (on the grid or warped) mapped to indices with a
  palette (:func:`geoseg.io.classes.color_to_index`); an alpha band marks uncovered pixels.
- ``vector``: polygons reprojected to the grid CRS and rasterized per window (pixel-centre
  rule, later features win) with an attribute or a fixed burn value (see
  :mod:`geoseg.io.label_vectors`); pixels outside every polygon get ``vector_fill`` (0).

Values become class indices by the rules of :mod:`geoseg.io.label_values`. A label without
georeference of the grid's size is taken as on the grid (with a warning).

:func:`resolve_labels` validates a source once (in the main process) and returns a small
picklable :class:`LabelSource`; each worker opens it with :func:`open_labels` (datasets are
never pickled).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import CRSError, NotGeoreferencedWarning
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from geoseg.errors import (
    BandCountError,
    CRSMismatchError,
    InvalidParameterError,
    MissingGeoreferenceError,
    NoOverlapError,
    PaletteError,
)
from geoseg.io.classes import IGNORE_INDEX, ClassMap, color_to_index
from geoseg.io.label_source import Grid, LabelSource, fmt_bounds, is_vector
from geoseg.io.label_values import LabelRules, raster_to_index
from geoseg.io.label_vectors import load_features, resolve_vector
from geoseg.io.raster import SceneInfo, crs_name, open_scene, read_window, same_grid
from geoseg.io.remote import as_path

log = logging.getLogger("geoseg.labels")

#: Below this share of the scene covered by a label raster's extent, a warning gives the share
#: (the uncovered pixels are unlabeled: 255, never background).
MIN_COVERAGE = 0.5

@contextlib.contextmanager
def quiet_georeference() -> Iterator[None]:
    """Silence rasterio's NotGeoreferencedWarning: a missing georeference is reported once, in words."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def open_label_raster(path: str | Path, palette: ClassMap | None = None) -> SceneInfo:
    """Header of a label raster: 1 band of class indices, or 3 (RGB; + alpha) with a palette.

    Raises:
        InputNotFoundError, UnreadableRasterError: see :func:`geoseg.io.raster.open_scene`.
        BandCountError: 2 bands, or 3+ bands without palette.
    """
    with quiet_georeference():
        info = open_scene(path)
    if info.count == 2 or (info.count >= 3 and palette is None):
        raise BandCountError(f"label raster {info.path} has {info.count} bands; expected 1 band of class indices "
                             "(color-coded labels: give their palette with --palette, or convert them with "
                             "'geoseg labels color2index')")
    return info


def resolve_labels(path: str | Path, grid: Grid, rules: LabelRules | None = None, palette: ClassMap | None = None,
                   warned: set[Path] | None = None) -> LabelSource:
    """Validate a label file against its grid and decide how to read it.

    Args:
        path: class raster, color raster or vector file.
        grid: the reference grid.
        rules: label value rules (field, burn value, class names, ignore value, labels CRS);
            None: the defaults of :class:`~geoseg.io.label_values.LabelRules`.
        palette: class map for color-coded label rasters (``--palette``).
        warned: vector files already reported (their skipped/repaired features are counted in
            one warning per file); updated in place.

    Raises:
        InputNotFoundError, UnreadableRasterError: the file is missing or not a raster.
        MissingGeoreferenceError: vector labels for a grid without CRS, or a raster of another
            size where one side has no georeference.
        CRSMismatchError: the CRSs cannot be transformed into each other.
        NoOverlapError: the labels do not overlap the grid.
        VectorLabelError, LabelValueError: bad attribute, or values that are not classes.
        PaletteError: colors missing from the palette.
        BandCountError: a label raster with 2 bands, or 3 without palette.
    """
    path = as_path(path)  # type: ignore[assignment]  # a GDAL name (/vsicurl/...) is not a Path
    rules = rules or LabelRules()
    if is_vector(path):

        return resolve_vector(path, grid, rules, warned if warned is not None else set())
    info = open_label_raster(path, palette)
    color = info.count >= 3
    if color and info.count == grid.info.count and _same_file(path, grid.info.path):
        raise InvalidParameterError(f"--labels {path} is the scene itself")
    warp = _needs_warp(info, grid)
    if warp:
        covered = _check_overlap(info, grid)
        if covered < MIN_COVERAGE:
            log.warning("label raster %s covers %.1f %% of %s; the other pixels have no label (ignored, %d)",
                        path, 100 * covered, grid.info.path, IGNORE_INDEX)
    src = LabelSource(path=path, kind="color" if color else "raster", grid=grid, rules=rules, warp=warp,
                      palette=palette if color else None, label_nodata=info.nodata)
    if color:
        check_palette(src)
    return src


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return a.resolve() == b.resolve()
    return False


def _needs_warp(info: SceneInfo, grid: Grid) -> bool:
    """False when the label raster is on the grid (direct windowed reads work)."""
    ref = grid.info
    if info.has_georeference and ref.has_georeference:
        return not same_grid(info, ref)
    if info.shape == ref.shape:
        if info.has_georeference != ref.has_georeference:
            bare, other = (info.path, ref.path) if not info.has_georeference else (ref.path, info.path)
            log.warning("%s has no CRS; assuming it shares the pixel grid of %s (same size, %dx%d px)",
                        bare, other, ref.width, ref.height)
        return False
    missing = info.path if not info.has_georeference else ref.path
    raise MissingGeoreferenceError(
        f"cannot warp labels {info.path} ({info.width}x{info.height} px) onto the grid of {ref.path} "
        f"({ref.width}x{ref.height} px): {missing} has no CRS/geotransform (no georeference) and the sizes differ")


def _check_overlap(info: SceneInfo, grid: Grid) -> float:
    """Refuse labels that miss the grid; return the share (0..1) of the scene their extent covers."""
    from rasterio.warp import transform_bounds

    try:
        lb = transform_bounds(info.crs, grid.crs, *info.bounds, densify_pts=21)
    except (CRSError, ValueError, RuntimeError) as exc:
        raise CRSMismatchError(f"cannot warp labels {info.path} ({crs_name(info.crs)}) onto the grid of "
                               f"{grid.info.path} ({crs_name(grid.crs)}): {str(exc).splitlines()[0]}") from None
    gb = grid.bounds
    if not np.all(np.isfinite(lb)) or lb[0] >= gb[2] or lb[2] <= gb[0] or lb[1] >= gb[3] or lb[3] <= gb[1]:
        raise NoOverlapError(f"label raster {info.path} ({crs_name(info.crs)}, bounds {fmt_bounds(info.bounds)}) "
                             f"does not overlap {grid.info.path} ({crs_name(grid.crs)}, bounds {fmt_bounds(gb)})")
    sb = grid.info.bounds  # the scene's, without --pad
    inter = shapely.box(*sb).intersection(shapely.box(*lb)).area
    area = shapely.box(*sb).area
    return float(inter / area) if area > 0 else 1.0


# --- palette check ----------------------------------------------------------------------------

def check_palette(src: LabelSource, max_block_px: int = 1 << 22) -> None:
    """Scan a color raster block by block; raise listing every color missing from the palette.

    Memory stays bounded (one strip of about ``max_block_px`` pixels at a time).

    Raises:
        PaletteError: with each unknown color, its pixel count and the file.
    """
    keys = {(r << 16) | (g << 8) | b for (r, g, b) in (*src.palette.colors, *src.palette.ignore_colors)}
    unknown: dict[int, int] = {}
    with rasterio.open(src.path) as ds:
        rows = max(1, max_block_px // max(ds.width, 1))
        alpha = _alpha_band(ds)
        for r0 in range(0, ds.height, rows):
            win = Window(0, r0, ds.width, min(rows, ds.height - r0))
            rgb = read_window(ds, [1, 2, 3], win)
            packed = (rgb[0].astype(np.uint32) << 16) | (rgb[1].astype(np.uint32) << 8) | rgb[2].astype(np.uint32)
            covered = np.ones(packed.shape, bool) if alpha is None else read_window(ds, alpha, win) > 0
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
    for i, ci in enumerate(ds.colorinterp, 1):
        if ci == ColorInterp.alpha and i > 3:
            return i
    return None


# --- per-window reading -----------------------------------------------------------------------

class LabelReader:
    """Reads labels window by window on the grid of a :class:`LabelSource`; open with :func:`open_labels`."""

    def __init__(self, src: LabelSource, ds=None, alpha: int | None = None) -> None:
        self.src = src
        self._ds = ds
        self._alpha = alpha
        self._geoms: np.ndarray | None = None
        self._values: np.ndarray | None = None
        self._tree: shapely.STRtree | None = None

    def prepare(self, windows: Sequence[Window] | None = None) -> None:
        """Load what the windows need (vector: the features intersecting their union; None: the whole grid)."""
        if self.src.kind != "vector":
            return

        grid = self.src.grid
        if windows is None:
            bounds = grid.bounds
        elif not windows:
            return
        else:
            b = np.array([window_bounds(w, grid.transform) for w in windows])
            bounds = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
        feats = load_features(self.src, bounds)
        self._geoms, self._values = feats.geometries, feats.values
        self._tree = shapely.STRtree(self._geoms)

    def read(self, window: Window) -> np.ndarray:
        """Labels of ``window`` (grid pixels; may pass the grid's edge) as ``(H, W)`` uint8, 255 where unknown."""
        if self.src.kind == "vector":
            if self._tree is None:
                self.prepare()
            return self._rasterize(window)
        h, w = int(window.height), int(window.width)
        ds = self._ds
        inside = (window.row_off >= 0 and window.col_off >= 0 and window.row_off + h <= ds.height
                  and window.col_off + w <= ds.width)
        covered = None
        # rasterio puts fill_value on nodata pixels too: fill with nodata itself so that they stay nodata.
        fill = ds.nodata if ds.nodata is not None else 0
        src = self.src.path  # named in read errors (``ds`` may be a WarpedVRT)
        if self._alpha is not None:
            covered = read_window(ds, self._alpha, window, source=src, boundless=not inside, fill_value=0) > 0
        elif not inside:
            covered = inside_mask(window, ds.height, ds.width)
        if self.src.kind == "color":
            rgb = read_window(ds, [1, 2, 3], window, source=src, boundless=not inside, fill_value=fill)
            if covered is not None:  # any fill color may be a palette color: give uncovered pixels class 0's
                rgb = np.where(covered[None], rgb, np.asarray(self.src.palette.colors[0], rgb.dtype)[:, None, None])
            out = color_to_index(rgb, self.src.palette, source=str(self.src.path))
        else:
            raw = read_window(ds, 1, window, source=src, boundless=not inside, fill_value=fill)
            if covered is not None:  # 0 passes the class-index check; these pixels become 255 below
                raw = np.where(covered, raw, np.zeros((), raw.dtype))
            out = raster_to_index(raw, self.src.path, self.src.label_nodata, self.src.rules.ignore_value)
        if covered is not None:
            out[~covered] = IGNORE_INDEX
        return out

    def _rasterize(self, window: Window) -> np.ndarray:
        from rasterio.features import rasterize

        h, w = int(window.height), int(window.width)
        fill = int(self.src.rules.vector_fill)
        transform = self.src.grid.transform
        box = shapely.box(*window_bounds(window, transform))
        idx = np.sort(self._tree.query(box, predicate="intersects"))
        if idx.size == 0:
            return np.full((h, w), fill, dtype=np.uint8)
        # File order is kept so that overlapping polygons burn exactly as a whole-grid rasterize does.
        shapes = zip(self._geoms[idx], self._values[idx].tolist())
        return rasterize(shapes, out_shape=(h, w), transform=window_transform(window, transform), fill=fill,
                         dtype="uint8")


def inside_mask(window: Window, height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool of ``window``: True on pixels inside a ``height x width`` raster."""
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
    with quiet_georeference():  # only around the open: the caller's warning filters stay as they are
        ds = rasterio.open(src.path)
    with ds:
        if not src.warp:
            yield LabelReader(src, ds, _alpha_band(ds) if src.kind == "color" else None)
            return
        from rasterio.vrt import WarpedVRT

        grid = src.grid
        # The alpha band of the warp is 0 outside the source and at its nodata: those pixels become 255,
        # whatever value the warp fills them with.
        with WarpedVRT(ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                       resampling=Resampling.nearest, add_alpha=True) as vrt:
            yield LabelReader(src, vrt, vrt.count)
