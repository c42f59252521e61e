"""Writing prediction rasters: ``<stem>_label.tif`` and ``<stem>_prob.tif``.

- Label: uint8, one band, class index per pixel, nodata 255, a color table from the bundle's
  classes, class names in the ``GEOSEG_CLASSES`` tag (JSON list of ``{index, name, color}``) and
  where GDAL and QGIS read them (:mod:`geoseg.io.styles`): GDAL category names and a raster
  attribute table (value, class_name, red, green, blue) in ``<label>.aux.xml``, and a paletted
  QGIS style ``<stem>_label.qml``. Photos (JPEG/PNG without georeferencing) get a paletted
  ``<stem>_label.png`` instead of a GeoTIFF.
- Probabilities: one band per class (band description = class name); a binary model (one
  sigmoid output, 2 classes) gets ONE band, the foreground probability ``p`` of class 1
  (``p(class 0) = 1 - p``), and its label is ``p >= threshold``.
  ``uint8``: ``value = min(round(p * 255), 254)``, band scale ``1/255`` (GDAL unscaled value = p),
  nodata 255. ``float32``: ``p`` exactly, nodata NaN. A QGIS style ``<stem>_prob.qml`` shows
  the probability of class 1 (the first class after background) as a 0..1 colour ramp.
- Both: the scene's CRS, transform and size, tiled and compressed (:func:`geoseg.io.profiles.tiled_profile`),
  run metadata in ``GEOSEG_*`` tags; with ``cog`` converted to a Cloud-Optimized GeoTIFF with
  overviews by GDAL's COG driver.

Rows arrive in order and are buffered to whole block rows before being written, so no
compressed block is ever written twice (no dead space in the file, whatever the strip height).
Files are written under temporary names and renamed only when complete (:mod:`geoseg.io.atomic`).
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from geoseg.io.atomic import _remove_with_sidecars, atomic_output, temp_sibling
from geoseg.io.classes import IGNORE_INDEX, ClassMap
from geoseg.io.profiles import cog_options, tiled_profile
from geoseg.io.raster import SceneInfo, gdal_env
from geoseg.io.styles import write_label_pam, write_label_qml, write_probability_style

PROB_DTYPES = ("uint8", "float32")
LABEL_NODATA = IGNORE_INDEX
#: uint8 probabilities: p = value / 255; 255 itself is nodata, so p = 1 is stored as 254.
PROB_UINT8_NODATA = 255
PROB_UINT8_MAX = 254


@dataclass(frozen=True)
class OutputPaths:
    """Final output paths of one scene (``prob`` is None with ``--no-prob``)."""

    label: Path
    prob: Path | None

    @property
    def all(self) -> list[Path]:
        return [p for p in (self.label, self.prob) if p is not None]

    def complete(self) -> bool:
        return all(p.is_file() for p in self.all)


def output_paths(scene: str | Path, out_dir: str | Path, write_prob: bool = True,
                 label_format: str = "tif") -> OutputPaths:
    """``OUT/<stem>_label.tif`` (``.png`` with ``label_format="png"``) and ``OUT/<stem>_prob.tif`` for a scene."""
    stem = Path(scene).stem
    out = Path(out_dir)
    return OutputPaths(out / f"{stem}_label.{label_format}", out / f"{stem}_prob.tif" if write_prob else None)


def encode(prob: np.ndarray, valid: np.ndarray, prob_dtype: str = "uint8", with_prob: bool = True,
           threshold: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Turn blended rows into what the rasters store.

    Args:
        prob: ``(n, W, K)`` float32 probabilities; ``K = 1`` for a binary model (``p`` of class 1).
        valid: ``(n, W)`` bool.
        prob_dtype: ``uint8`` or ``float32``.
        with_prob: also encode the probability bands.
        threshold: binary models: the label threshold (see :func:`label_bands`).

    Returns:
        ``(label (n, W) uint8, prob (K, n, W) or None)``. ``label = argmax(prob)`` on the float
        values (``p >= threshold`` for one band); uint8 quantization is monotone, so the label's
        band also holds the largest stored value.
    """
    bands = np.ascontiguousarray(np.moveaxis(prob, -1, 0), dtype=np.float32)  # (K, n, W)
    label = label_bands(bands, threshold)
    invalid = None if valid.all() else ~valid  # masked stores are slow: skip them when nothing is masked
    if invalid is not None:
        label[invalid] = LABEL_NODATA
    if not with_prob:
        return label, None
    if prob_dtype == "float32":
        if invalid is not None:
            bands[:, invalid] = np.nan
        return label, bands
    np.multiply(bands, 255.0, out=bands)
    np.rint(bands, out=bands)
    np.clip(bands, 0, PROB_UINT8_MAX, out=bands)
    out = bands.astype(np.uint8)
    if invalid is not None:
        out[:, invalid] = PROB_UINT8_NODATA
    return label, out


def label_bands(bands: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Class labels ``(n, W)`` uint8 of probabilities ``(K, n, W)``.

    ``K > 1``: :func:`argmax_bands`. ``K = 1`` (binary model, ``p`` of class 1): ``p >= threshold``
    (0.5 when None), i.e. class 1 where ``p >= threshold``, else class 0.
    """
    if bands.shape[0] == 1:
        return (bands[0] >= (0.5 if threshold is None else threshold)).astype(np.uint8)
    return argmax_bands(bands)


def argmax_bands(bands: np.ndarray) -> np.ndarray:
    """``argmax`` over the first axis of ``(K, n, W)`` as uint8 (first maximum wins, like numpy).

    A loop over K contiguous planes: many times faster than ``np.argmax`` over a short axis.
    """
    best = bands[0].copy()
    label = np.zeros(bands.shape[1:], dtype=np.uint8)
    step = np.empty_like(label)
    for k in range(1, bands.shape[0]):
        better = (bands[k] > best).view(np.uint8)
        # label += better * (k - label) in uint8 (wraps, exact): branch-free, unlike masked stores
        np.subtract(np.uint8(k), label, out=step, dtype=np.uint8)
        np.multiply(step, better, out=step)
        np.add(label, step, out=label)
        np.maximum(best, bands[k], out=best)
    return label


def choose_block(height: int, width: int, block: int = 512) -> int:
    """Output block size in pixels: 512, halved (down to 128) for small scenes so that they are
    still tiled in several blocks and get overviews as COGs."""
    while block > 128 and max(height, width) < 4 * block:
        block //= 2
    return block


def class_tag(classes: ClassMap) -> str:
    """The ``GEOSEG_CLASSES`` tag: JSON list of ``{index, name, color}``."""
    return json.dumps(classes.to_json(), separators=(",", ":"))


class PredictionWriter:
    """Write label (and probability) rasters row block by row block, in row order.

    Use as a context manager: on success the files are closed, converted to COG if asked and
    renamed to their final names; on failure the temporary files are removed.

    Args:
        paths: final output paths.
        info: the scene (size, CRS, transform).
        classes: bundle classes (color table, names).
        prob_bands: K, the number of probability bands: the classes, or 1 for a binary model
            (the band of class 1, named after it).
        prob_dtype: ``uint8`` or ``float32``.
        compress: ``deflate``, ``zstd``, ``lzw`` or ``none``.
        cog: convert to Cloud-Optimized GeoTIFFs with overviews.
        tags: run metadata written in the default tag domain of both files.
    """

    def __init__(self, paths: OutputPaths, info: SceneInfo, classes: ClassMap, prob_bands: int,
                 prob_dtype: str = "uint8", compress: str = "deflate", cog: bool = False,
                 tags: dict | None = None):
        self.paths = paths
        self.info = info
        self.classes = classes
        self.prob_bands = int(prob_bands)
        self.prob_dtype = prob_dtype
        self.compress = compress
        self.cog = cog
        self.tags = {"GEOSEG_CLASSES": class_tag(classes), **(tags or {})}
        self.block = choose_block(info.height, info.width)
        self._stack = contextlib.ExitStack()
        self._datasets: dict[str, rasterio.io.DatasetWriter] = {}
        self._written: dict[str, Path] = {}
        self._finals: dict[str, Path] = {}
        self._next_row = 0
        self._buf_row = 0
        self._buf_n = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> PredictionWriter:
        # No gdal_env held for the writer's lifetime: rasterio's Env is a thread-local stack, and
        # with dask several scenes' writers are open at once and finish in any order. Each I/O
        # call below takes its own short (LIFO) gdal_env instead, so the block-cache cap holds.
        try:
            for kind, final in (("label", self.paths.label), ("prob", self.paths.prob)):
                if final is None:
                    continue
                tmp = self._stack.enter_context(atomic_output(final))
                self._finals[kind] = tmp
                if self.cog or final.suffix.lower() == ".png":  # a plain tiled GTiff first, copied at the end
                    self._written[kind] = temp_sibling(final)
                    self._stack.callback(_remove_with_sidecars, self._written[kind])
                else:
                    self._written[kind] = tmp
                self._datasets[kind] = self._open(kind, self._written[kind])
        except BaseException:
            self._close_datasets()
            self._stack.__exit__(*sys.exc_info())
            raise
        w = self.info.width
        self._label_buf = np.full((self.block, w), LABEL_NODATA, dtype=np.uint8)
        self._prob_buf = (np.zeros((self.prob_bands, self.block, w), dtype=self.prob_dtype)
                          if "prob" in self._datasets else None)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self._finish()
            except BaseException:
                self._close_datasets()
                self._stack.__exit__(*sys.exc_info())
                raise
            return bool(self._stack.__exit__(None, None, None))
        self._close_datasets()
        return bool(self._stack.__exit__(exc_type, exc, tb))

    def _finish(self) -> None:
        if self._next_row != self.info.height:
            raise RuntimeError(f"writer got rows up to {self._next_row} of {self.info.height}")
        self._flush()
        with gdal_env():
            self._close_datasets()
        for kind, src in self._written.items():
            if src == self._finals[kind]:
                continue
            if self._finals[kind].suffix.lower() == ".png":
                opts: dict = {"driver": "PNG"}
            else:
                resampling = "nearest" if kind == "label" else "average"
                opts = cog_options(self.compress, block=self.block, resampling=resampling)
                opts["predictor"] = "YES" if self.compress != "none" else "NO"
            with warnings.catch_warnings(), gdal_env():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                rasterio.shutil.copy(src, self._finals[kind], **opts)
        self._write_styles()

    def _write_styles(self) -> None:
        """Class names and colours where GDAL and QGIS look for them (:mod:`geoseg.io.styles`).

        The PAM side-car goes beside the temporary file and is renamed with it; the ``.qml``
        files get their final names (QGIS pairs ``<stem>.qml`` with ``<stem>.tif``).
        """
        if "label" in self._finals:
            write_label_pam(self._finals["label"], self.classes)
            write_label_qml(self.paths.label, self.classes)
        if "prob" in self._finals and self.paths.prob is not None:
            # The foreground: class 1, i.e. band 1 of a binary model's single band, else band 2.
            band = 1 if self.prob_bands == 1 else 2
            names = {c.index: c.name for c in self.classes.classes}
            write_probability_style(self.paths.prob, band, names.get(1, "class_1"))

    def _close_datasets(self) -> None:
        for ds in self._datasets.values():
            if not ds.closed:
                ds.close()

    def _open(self, kind: str, path: Path):
        info = self.info
        if kind == "label":
            dtype, count, nodata = "uint8", 1, LABEL_NODATA
        else:
            dtype, count = self.prob_dtype, self.prob_bands
            nodata = float("nan") if dtype == "float32" else PROB_UINT8_NODATA
        prof = tiled_profile(info.width, info.height, count, dtype, info.crs, info.transform, nodata,
                             compress=self.compress, block=self.block)
        with warnings.catch_warnings(), gdal_env():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path, "w", **prof)
        ds.update_tags(**self.tags)
        names = {c.index: c.name for c in self.classes.classes}
        first = 1 if count == 1 and self.classes.num_classes == 2 else 0  # binary: the band of class 1
        if kind == "label":
            ds.write_colormap(1, self.classes.colormap())
            ds.set_band_description(1, "class")
        else:
            for k in range(count):
                ds.set_band_description(k + 1, names.get(first + k, f"class_{first + k}"))
            if dtype == "uint8":
                ds.scales = [1.0 / 255.0] * count
                ds.offsets = [0.0] * count
        return ds

    # -- rows ----------------------------------------------------------------------------------
    def write(self, row: int, label: np.ndarray, prob: np.ndarray | None) -> None:
        """Write scene rows ``[row, row + n)``: ``label (n, W)`` uint8 and ``prob (K, n, W)``.

        Rows must come in order, without gaps.
        """
        if row != self._next_row:
            raise RuntimeError(f"rows must be written in order: expected row {self._next_row}, got {row}")
        n = label.shape[0]
        done = 0
        while done < n:
            k = min(n - done, self.block - self._buf_n)
            self._label_buf[self._buf_n:self._buf_n + k] = label[done:done + k]
            if self._prob_buf is not None:
                self._prob_buf[:, self._buf_n:self._buf_n + k] = prob[:, done:done + k]
            self._buf_n += k
            done += k
            if self._buf_n == self.block:
                self._flush()
        self._next_row += n

    def _flush(self) -> None:
        n = self._buf_n
        if n == 0:
            return
        win = Window(0, self._buf_row, self.info.width, n)
        with gdal_env():
            self._datasets["label"].write(self._label_buf[:n], 1, window=win)
            if "prob" in self._datasets:
                self._datasets["prob"].write(self._prob_buf[:, :n], window=win)
        self._buf_row += n
        self._buf_n = 0
