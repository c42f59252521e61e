"""Stream aligned windows of a prediction raster and its label, on the prediction's pixel grid.

The prediction grid is the reference. The label is brought onto it in one of three ways:

- **same grid** (same CRS, size and transform): plain windowed reads of both files;
- **other grid or CRS**: a ``WarpedVRT`` resamples the label with nearest neighbour onto the
  prediction grid, window by window; its alpha band marks pixels outside the label or at
  label nodata. Labels that do not overlap the prediction raise :class:`NoOverlapError`;
- **vector file**: polygons (reprojected to the prediction CRS once) are rasterized per
  window with ``rasterio.features.rasterize`` (pixel-centre rule, later features win), burning
  ``--label-field`` values or a fixed ``--burn-value``; pixels outside every polygon get
  ``vector_fill`` (0 = background by default).

Windows are aligned to the prediction's internal blocks and hold at most ``max_pixels``
pixels, so memory is bounded whatever the scene size (the vector geometries of the area are
the only thing held whole).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from geoseg.errors import (
    BandCountError,
    InputNotFoundError,
    MissingGeoreferenceError,
    NoOverlapError,
    VectorLabelError,
)
from geoseg.evaluation.pairing import Pair
from geoseg.io.raster import SceneInfo, open_scene, same_grid
from geoseg.io.windows import window_bounds, window_transform

log = logging.getLogger("geoseg.evaluation")

#: Pixels per read window (2 Mpx: a few tens of MB of temporaries per window).
DEFAULT_MAX_PIXELS = 1 << 21

#: Attribute names tried, in order, when a vector label has neither --label-field nor --burn-value.
DEFAULT_LABEL_FIELDS = ("class_id", "class", "label", "class_index")


@dataclass(frozen=True)
class AlignedBlock:
    """One window of prediction and truth on the prediction grid.

    Attributes:
        window: the window, in prediction pixels.
        transform: the window's affine transform (prediction CRS units).
        pred: ``(H, W)`` predicted class values.
        truth: ``(H, W)`` label class values on the same pixels.
        valid: ``(H, W)`` bool, False at prediction nodata, label nodata and outside the label.
    """

    window: Window
    transform: Affine
    pred: np.ndarray
    truth: np.ndarray
    valid: np.ndarray


def block_windows(height: int, width: int, block_shape: tuple[int, int],
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Window]:
    """Row-major read windows covering a ``height x width`` raster, aligned to its blocks.

    Window sides are whole multiples of the block sides ``(bh, bw)`` (one block at least),
    chosen so that a window holds about ``max_pixels`` pixels; the last row and column of
    windows are cropped at the raster edge. Striped rasters (``bw >= width``) get full-width
    strips of ``max(bh, max_pixels // width)`` rows rounded down to whole blocks.
    """
    bh, bw = max(1, min(int(block_shape[0]), height)), max(1, min(int(block_shape[1]), width))
    if bw >= width:
        cols = width
    else:
        cols = min(width, max(bw, (math.isqrt(max_pixels) // bw) * bw))
    rows = min(height, max(bh, (max_pixels // cols // bh) * bh))
    return [Window(c, r, min(cols, width - c), min(rows, height - r))
            for r in range(0, height, rows) for c in range(0, width, cols)]


@contextlib.contextmanager
def _quiet_georeference() -> Iterator[None]:
    """Silence rasterio's NotGeoreferencedWarning: rasters without georeference are handled
    (and reported once, in words) by :class:`PairReader`."""
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def open_prediction(path: str | Path) -> SceneInfo:
    """Header of a prediction class raster; refuses multi-band rasters (probabilities).

    Raises:
        InputNotFoundError, UnreadableRasterError: see :func:`geoseg.io.raster.open_scene`.
        BandCountError: more than one band.
    """
    with _quiet_georeference():
        info = open_scene(path)
    if info.count != 1:
        raise BandCountError(
            f"prediction {info.path} has {info.count} bands; expected 1 band of class indices "
            "(the *_label.tif of geoseg.predict, not the *_prob.tif)"
        )
    return info


def open_label(path: str | Path) -> SceneInfo:
    """Header of a label class raster; refuses multi-band rasters (color-coded labels).

    Raises:
        InputNotFoundError, UnreadableRasterError: see :func:`geoseg.io.raster.open_scene`.
        BandCountError: more than one band.
    """
    with _quiet_georeference():
        info = open_scene(path)
    if info.count != 1:
        raise BandCountError(
            f"label {info.path} has {info.count} bands; expected 1 band of class indices "
            "(convert color-coded labels with 'geoseg labels color2index')"
        )
    return info


def _intersects(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _crs_text(crs: CRS | None) -> str:
    if crs is None:
        return "no CRS"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()[:60]


class PairReader:
    """Reads a :class:`Pair` as :class:`AlignedBlock` windows on the prediction grid.

    Use as a context manager; iterate to get the blocks::

        with PairReader(pair) as reader:
            for block in reader:
                ...

    Args:
        pair: prediction raster and label (raster or vector).
        label_field: vector attribute holding class values.
        burn_value: class value burnt for every polygon (instead of ``label_field``).
        vector_fill: class value of pixels outside every polygon (0 = background; 255 = unlabeled).
        max_pixels: pixels per read window.

    Attributes (after entering):
        prediction: header of the prediction raster.
        alignment: ``"same grid"``, ``"warped (nearest)"`` or ``"rasterized"``.
        windows: the read windows, in prediction pixels.
    """

    def __init__(self, pair: Pair, label_field: str | None = None,
                 burn_value: int | None = None, vector_fill: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.pair = pair
        self.label_field = label_field
        self.burn_value = burn_value
        self.vector_fill = int(vector_fill)
        self.max_pixels = int(max_pixels)
        self.prediction: SceneInfo | None = None
        self.alignment = ""
        self.windows: list[Window] = []
        self._pred_ds = None
        self._label_ds = None
        self._vrt = None
        self._label_nodata: float | None = None
        self._geoms: np.ndarray | None = None
        self._values: np.ndarray | None = None
        self._tree = None

    # -- opening -----------------------------------------------------------------------------

    def __enter__(self) -> PairReader:
        try:
            with _quiet_georeference():
                self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for ds in (self._vrt, self._label_ds, self._pred_ds):
            if ds is not None:
                ds.close()
        self._vrt = self._label_ds = self._pred_ds = None

    def _open(self) -> None:
        info = open_prediction(self.pair.prediction)
        self.prediction = info
        self.windows = block_windows(info.height, info.width, info.block_shape, self.max_pixels)
        if self.pair.label_is_vector:
            self._open_vector(info)
        else:
            self._open_raster_label(info)
        self._pred_ds = rasterio.open(info.path)

    def _open_raster_label(self, pred: SceneInfo) -> None:
        lab = open_label(self.pair.label)
        self._label_nodata = lab.nodata
        if same_grid(pred, lab) or self._assume_same_grid(pred, lab):
            self.alignment = "same grid"
            self._label_ds = rasterio.open(lab.path)
            return
        if lab.crs is None or not lab.has_georeference:
            raise MissingGeoreferenceError(
                f"label {lab.path} has no georeference and its grid ({lab.width}x{lab.height} px) differs from "
                f"prediction {pred.path} ({pred.width}x{pred.height} px); cannot align them"
            )
        if pred.crs is None:
            raise MissingGeoreferenceError(
                f"prediction {pred.path} has no CRS; cannot warp label {lab.path} ({_crs_text(lab.crs)}) onto it"
            )
        from rasterio.warp import transform_bounds

        lab_bounds = transform_bounds(lab.crs, pred.crs, *lab.bounds, densify_pts=21)
        if not _intersects(lab_bounds, pred.bounds):
            raise NoOverlapError(
                f"label {lab.path} ({_crs_text(lab.crs)}, bounds {_fmt_bounds(lab.bounds)}) does not overlap "
                f"prediction {pred.path} ({_crs_text(pred.crs)}, bounds {_fmt_bounds(pred.bounds)})"
            )
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        self.alignment = "warped (nearest)"
        self._label_ds = rasterio.open(lab.path)
        # The alpha band comes out of the same warp and is 0 outside the label and at its nodata.
        self._vrt = WarpedVRT(self._label_ds, crs=pred.crs, transform=pred.transform, width=pred.width,
                              height=pred.height, resampling=Resampling.nearest, add_alpha=True)
        log.debug("label %s warped onto the grid of %s", lab.path, pred.path)

    @staticmethod
    def _assume_same_grid(pred: SceneInfo, lab: SceneInfo) -> bool:
        """A label without CRS but of the prediction's size (and transform, if any) is taken as aligned."""
        if lab.crs is not None or (lab.width, lab.height) != (pred.width, pred.height):
            return False
        if lab.transform == Affine.identity() or lab.transform.almost_equals(pred.transform):
            log.warning("label %s has no CRS; assuming it shares the grid of %s (same size)", lab.path, pred.path)
            return True
        return False

    def _open_vector(self, pred: SceneInfo) -> None:
        import shapely
        from rasterio.warp import transform_bounds

        from geoseg.io.vector import read_vector

        path = self.pair.label
        have, vcrs = _vector_header(path)
        field = None if self.burn_value is not None else self.label_field
        if self.burn_value is None and field is None:
            lower = {h.lower(): h for h in have}
            field = next((lower[f] for f in DEFAULT_LABEL_FIELDS if f in lower), None)
            if field is None:
                raise VectorLabelError(
                    f"{path}: give --label-field (attributes are: {', '.join(have) or '(none)'}) or --burn-value; "
                    f"no attribute is named {' / '.join(DEFAULT_LABEL_FIELDS)}"
                )
        columns = [field] if field else []
        bbox = None
        if pred.crs is not None and pred.has_georeference:
            bbox = pred.bounds if vcrs is None or vcrs == pred.crs else \
                transform_bounds(pred.crs, vcrs, *pred.bounds, densify_pts=21)
        data = read_vector(path, columns=columns, bbox=bbox)
        geoms = np.asarray(data.geometries, dtype=object)
        if self.burn_value is not None:
            values = np.full(len(geoms), int(self.burn_value), dtype=np.int64)
        else:
            values = _class_values(data.attributes[field], field, path)
        keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms)) if len(geoms) else np.zeros(0, bool)
        geoms, values = geoms[keep], values[keep]
        if data.crs is None:
            log.warning("vector label %s has no CRS; assuming the CRS of %s", path, pred.path)
        elif pred.crs is not None and data.crs != pred.crs and len(geoms):
            geoms = _reproject(geoms, data.crs, pred.crs)
        if len(geoms):
            inside = shapely.intersects(geoms, shapely.box(*pred.bounds))
            geoms, values = geoms[inside], values[inside]
        if not len(geoms):
            raise NoOverlapError(
                f"no polygon of vector label {path} ({_crs_text(data.crs)}) overlaps prediction {pred.path} "
                f"({_crs_text(pred.crs)}, bounds {_fmt_bounds(pred.bounds)})"
            )
        self._geoms, self._values = geoms, values
        self._tree = shapely.STRtree(geoms)
        self.alignment = "rasterized"
        self.label_field = field

    # -- reading -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[AlignedBlock]:
        for window in self.windows:
            yield self.read(window)

    def read(self, window: Window) -> AlignedBlock:
        """Prediction and truth of one window (prediction pixels)."""
        pred = self._pred_ds.read(1, window=window)
        invalid = _equal(pred, self.prediction.nodata) if self.prediction.nodata is not None else None
        if self._tree is not None:
            truth = self._rasterize(window)
        elif self._vrt is not None:
            both = self._vrt.read([1, 2], window=window)
            truth = both[0]
            invalid = _union(invalid, both[1] == 0)
        else:
            truth = self._label_ds.read(1, window=window)
            if self._label_nodata is not None:
                invalid = _union(invalid, _equal(truth, self._label_nodata))
        valid = np.ones(pred.shape, dtype=bool) if invalid is None else ~invalid
        return AlignedBlock(window, window_transform(window, self.prediction.transform), pred, truth, valid)

    def _rasterize(self, window: Window) -> np.ndarray:
        import shapely
        from rasterio.features import rasterize

        shape = (int(window.height), int(window.width))
        hits = np.sort(self._tree.query(shapely.box(*window_bounds(window, self.prediction.transform)),
                                        predicate="intersects"))
        values = self._values[hits]
        fits_uint8 = values.size == 0 or (values.min() >= 0 and values.max() <= 255)
        dtype = np.uint8 if fits_uint8 and 0 <= self.vector_fill <= 255 else np.int32
        if hits.size == 0:
            return np.full(shape, self.vector_fill, dtype=dtype)
        return rasterize(zip(self._geoms[hits], values.tolist()), out_shape=shape,
                         transform=window_transform(window, self.prediction.transform),
                         fill=self.vector_fill, dtype=dtype)


def _union(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    return b if a is None else (a | b)


def _equal(arr: np.ndarray, value: float) -> np.ndarray:
    if isinstance(value, float) and math.isnan(value):
        return np.isnan(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, dtype=bool)
    return arr == value


def _fmt_bounds(b: tuple[float, float, float, float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in b) + ")"


def _vector_header(path: Path) -> tuple[list[str], CRS | None]:
    """Attribute names and CRS of a vector file's first layer, without reading its features."""
    import pyogrio
    import pyogrio.errors

    if not Path(path).exists():
        raise InputNotFoundError(f"no such vector file: {path}")
    try:
        info = pyogrio.read_info(path)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise VectorLabelError(f"not a readable vector file: {path} ({str(exc).splitlines()[0]})") from None
    crs = CRS.from_user_input(info["crs"]) if info.get("crs") else None
    return [str(f) for f in info["fields"]], crs


def _class_values(column: np.ndarray, field: str, path: Path) -> np.ndarray:
    """Integer class values of a vector attribute; refuses text and fractional values."""
    try:
        vals = np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError):
        sample = ", ".join(map(repr, list(dict.fromkeys(column.tolist()))[:5]))
        raise VectorLabelError(f"{path}: attribute {field!r} holds non-numeric values ({sample}); "
                               "expected integer class indices") from None
    bad = ~np.isfinite(vals) | (vals != np.round(vals))
    if bad.any():
        raise VectorLabelError(f"{path}: attribute {field!r} has {int(bad.sum())} empty or fractional value(s); "
                               "expected integer class indices")
    return vals.astype(np.int64)


def _reproject(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    """Geometries from ``src`` to ``dst`` CRS, all vertices in one ``rasterio.warp.transform`` call."""
    import shapely
    from rasterio.warp import transform

    def move(xy: np.ndarray) -> np.ndarray:
        xs, ys = transform(src, dst, xy[:, 0], xy[:, 1])
        return np.column_stack([xs, ys])

    return shapely.transform(geoms, move)
