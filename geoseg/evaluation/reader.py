"""Stream aligned windows of a prediction raster and its label, on the prediction's pixel grid.

The prediction grid is the reference; the truth is brought onto it by
:mod:`geoseg.io.labels` (the one label reader, shared with tiling): direct windowed reads on
the same grid, a nearest-neighbour ``WarpedVRT`` on another grid or CRS, per-window
rasterization of vector files. What is evaluation-specific lives here: windows aligned to the
prediction's internal blocks and at most ``max_pixels`` pixels (memory is bounded whatever
the scene size; the vector geometries of the area are the only thing held whole), and the
pairing of prediction and truth per window as an :class:`AlignedBlock`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geoseg.errors import BandCountError
from geoseg.evaluation.pairing import Pair
from geoseg.io.classes import IGNORE_INDEX
from geoseg.io.label_source import Grid, LabelSource
from geoseg.io.label_values import LabelRules
from geoseg.io.labels import LabelReader, open_labels, quiet_georeference, resolve_labels
from geoseg.io.raster import SceneInfo, open_scene, read_window

log = logging.getLogger("geoseg.evaluation")

#: Pixels per read window (2 Mpx: a few tens of MB of temporaries per window).
DEFAULT_MAX_PIXELS = 1 << 21

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


def open_prediction(path: str | Path) -> SceneInfo:
    """Header of a prediction class raster; refuses multi-band rasters (probabilities).

    Raises:
        InputNotFoundError, UnreadableRasterError: see :func:`geoseg.io.raster.open_scene`.
        BandCountError: more than one band.
    """
    with quiet_georeference():
        info = open_scene(path)
    if info.count != 1:
        raise BandCountError(
            f"prediction {info.path} has {info.count} bands; expected 1 band of class indices "
            "(the *_label.tif of geoseg.predict, not the *_prob.tif)"
        )
    return info


class PairReader:
    """Reads a :class:`Pair` as :class:`AlignedBlock` windows on the prediction grid.

    The truth comes through :mod:`geoseg.io.labels`, the same reader tiling uses, onto the
    prediction's grid. Use as a context manager; iterate to get the blocks::

        with PairReader(pair) as reader:
            for block in reader:
                ...

    Args:
        pair: prediction raster and label (raster or vector).
        rules: how label values become classes (field, burn value, class names, ignore value,
            labels CRS, vector fill); see :class:`geoseg.io.label_values.LabelRules` (None: defaults).
        max_pixels: pixels per read window.
        warned: vector files already reported for skipped/repaired features (shared across pairs).

    Attributes (after entering):
        prediction: header of the prediction raster.
        labels: the resolved label source.
        alignment: ``"same grid"``, ``"warped (nearest)"`` or ``"rasterized"``.
        windows: the read windows, in prediction pixels.
    """

    def __init__(self, pair: Pair, rules: LabelRules | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 warned: set[Path] | None = None):
        self.pair = pair
        self.rules = rules or LabelRules()
        self.max_pixels = int(max_pixels)
        self.prediction: SceneInfo | None = None
        self.labels: LabelSource | None = None
        self.alignment = ""
        self.windows: list[Window] = []
        self._warned = warned if warned is not None else set()
        self._stack = contextlib.ExitStack()
        self._pred_ds = None
        self._truth: LabelReader | None = None

    @property
    def label_field(self) -> str | None:
        """The vector attribute read (None for rasters or a burn value)."""
        return self.labels.field if self.labels is not None else None

    def __enter__(self) -> PairReader:
        try:
            with quiet_georeference():
                info = open_prediction(self.pair.prediction)
                self.prediction = info
                self.windows = block_windows(info.height, info.width, info.block_shape, self.max_pixels)
                self.labels = resolve_labels(self.pair.label, Grid.of(info), self.rules, warned=self._warned)
                self.alignment = self.labels.alignment
                self._truth = self._stack.enter_context(open_labels(self.labels))
                self._truth.prepare()
                self._pred_ds = self._stack.enter_context(rasterio.open(info.path))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        self._pred_ds = self._truth = None

    def __iter__(self) -> Iterator[AlignedBlock]:
        for window in self.windows:
            yield self.read(window)

    def read(self, window: Window) -> AlignedBlock:
        """Prediction and truth of one window (prediction pixels); truth 255 = no label."""
        pred = read_window(self._pred_ds, 1, window)
        truth = self._truth.read(window)
        valid = truth != IGNORE_INDEX
        if self.prediction.nodata is not None:
            valid &= ~_equal(pred, self.prediction.nodata)
        return AlignedBlock(window, window_transform(window, self.prediction.transform), pred, truth, valid)


def _equal(arr: np.ndarray, value: float) -> np.ndarray:
    if isinstance(value, float) and math.isnan(value):
        return np.isnan(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, dtype=bool)
    return arr == value
