"""Accumulation, normalization and encoding on the model's device (``--accumulate device``).

The same contract as :class:`geoseg.inference.accumulator.StripAccumulator` (windows added in
row-major order, rows finished when the next window row starts, a strip's halo dropped), but
the sums live in TensorFlow tensors on the device that ran the model, and finished rows leave
the device already encoded like :func:`geoseg.inference.writers.encode`: uint8 labels and uint8
(or float32) probabilities, so the host never touches the float64 sums.

Layout: one ``tf.Variable`` of shape ``(W, tile, K + 2)`` float64 per strip (grid columns first,
so that a window is ``tile`` whole column slices): channels ``[0, K)`` hold ``sum(w p)``,
channel ``K`` holds ``sum(w)`` and channel ``K + 1`` counts the valid windows of the pixel. A
window row's windows of one batch are added by ONE ``scatter_nd_add`` (indices: the batch's
columns), rows are finished by a slice, normalized and encoded by one ``tf.function`` call.

Exactness: sums in float64, like the host path, because float32 sums (even compensated ones)
do not round ``sum(w p) / sum(w)`` back to the float32 input when the windows agree, and the
identity-model test requires exactly that. The products, sums, ``1 / sum(w)``, the cast to
float32, ``p * 255`` in float32, round half to even (``tf.round`` = ``np.rint``) and the first
maximum of the argmax are the host path's operations in the host path's order: on TensorFlow's
CPU device, whose ``scatter_nd_add`` applies the updates of one call one after the other, the
outputs are byte-identical to the host path (tested). On a GPU the scatter adds overlapping
windows with atomics in any order; float64 order differences (~1e-16 relative) change a float32
value only when it lies that close to a rounding boundary, so labels and uint8 values agree in
practice and float32 values within one float32 ulp.

Costs: ``tile x W x (K + 2) x 8`` bytes of device memory per strip (e.g. 470 MB for a 16384 px
wide scene, tile 512, 5 classes) and, per window row, one shift of that buffer on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from geoseg.inference.accumulator import RowWindow
from geoseg.inference.options import ACCUMULATE
from geoseg.inference.writers import LABEL_NODATA, PROB_UINT8_MAX, PROB_UINT8_NODATA
from geoseg.runtime.tensorflow import import_tensorflow, visible_gpus

__all__ = ["ACCUMULATE", "DeviceAccumulator", "EncodedRows", "Encoding", "resolve_accumulate"]


def resolve_accumulate(choice: str, onnx: bool = False) -> str:
    """``host`` or ``device`` for ``--accumulate``: ``auto`` is ``device`` where a GPU is visible.

    On CPU the host path is faster (numpy in place, no float64 scatter copies; see
    benchmarks/README.md), so ``auto`` keeps it there. ONNX models always run on the host path.
    """
    if choice == "auto":
        return "host" if onnx or not visible_gpus() else "device"
    return choice


@dataclass(frozen=True)
class Encoding:
    """How finished rows are encoded (the arguments of :func:`geoseg.inference.writers.encode`)."""

    prob_dtype: str = "uint8"
    with_prob: bool = True
    threshold: float | None = None


@dataclass(frozen=True)
class EncodedRows:
    """Finished rows, encoded: ``label (n, W)`` uint8 and ``prob (K, n, W)`` uint8/float32 or None."""

    row: int
    label: np.ndarray
    prob: np.ndarray | None

    @property
    def height(self) -> int:
        return int(self.label.shape[0])


_FUNCTIONS: dict[str, Any] = {}


def _functions() -> dict[str, Any]:
    """The traced device kernels, built once per process (shapes relaxed, no retracing per strip)."""
    if _FUNCTIONS:
        return _FUNCTIONS
    tf = import_tensorflow()

    @tf.function(reduce_retracing=True)
    def add(buf, pred, valid, cols, weights):
        # pred (N, T, T, K) float32, valid (N, T, T) bool, cols (N,) int32, weights (T, T) float64
        p = tf.cast(pred, tf.float64)
        n, t = tf.shape(p)[0], tf.shape(p)[1]
        w = tf.broadcast_to(weights[None, :, :, None], [n, t, t, 1])
        upd = tf.concat([p * w, w, tf.cast(valid, tf.float64)[..., None]], axis=-1)
        upd = tf.reshape(tf.transpose(upd, [0, 2, 1, 3]), [n * t, t, -1])  # column slices, window order
        idx = tf.reshape(cols[:, None] + tf.range(t)[None, :], [-1, 1])
        buf.scatter_nd_add(idx, upd)

    @tf.function(reduce_retracing=True)
    def encode(block, threshold, k: int, prob_dtype: str, with_prob: bool):
        # block (W, n, K + 2) float64 -> label (n, W) uint8, prob (K, n, W)
        blk = tf.transpose(block, [2, 1, 0])
        wsum = blk[k]
        covered = wsum > 0
        valid = (blk[k + 1] > 0) & covered
        inv = tf.math.divide_no_nan(tf.ones_like(wsum), wsum)
        prob = tf.cast(blk[:k] * inv[None], tf.float32)
        if k == 1:
            label = tf.cast(prob[0] >= threshold, tf.uint8)
        else:  # first maximum wins, as writers.argmax_bands (tf.argmax leaves ties unspecified)
            best, label = prob[0], tf.zeros(tf.shape(wsum), tf.uint8)
            for i in range(1, k):
                label = tf.where(prob[i] > best, tf.constant(i, tf.uint8), label)
                best = tf.maximum(best, prob[i])
        label = tf.where(valid, label, tf.constant(LABEL_NODATA, tf.uint8))
        if not with_prob:
            return label, tf.zeros([0], tf.uint8)
        if prob_dtype == "float32":
            return label, tf.where(valid[None], prob, tf.constant(np.nan, tf.float32))
        q = tf.clip_by_value(tf.round(prob * tf.constant(255.0, tf.float32)), 0.0, float(PROB_UINT8_MAX))
        return label, tf.where(valid[None], tf.cast(q, tf.uint8), tf.constant(PROB_UINT8_NODATA, tf.uint8))

    _FUNCTIONS.update(add=add, encode=encode)
    return _FUNCTIONS


class DeviceAccumulator(RowWindow[EncodedRows]):
    """Weighted sums on the device for the rows still covered by pending windows.

    Args:
        width: grid width in pixels.
        num_classes: K, the model's output channels.
        tile: window size in pixels (rows held).
        weights: ``(tile, tile)`` weight window, or None for ``mean``.
        start: grid row of the first window that will be added.
        emit: ``(first, stop)`` scene rows to hand out.
        out_width: columns to hand out (the scene width).
        encoding: how finished rows are encoded.
    """

    def __init__(self, width: int, num_classes: int, tile: int, weights: np.ndarray | None, start: int,
                 emit: tuple[int, int], out_width: int | None = None, encoding: Encoding | None = None):
        super().__init__(tile, start, emit)
        tf = import_tensorflow()
        self._tf = tf
        self.width = int(width)
        self.out_width = int(out_width if out_width is not None else width)
        self.num_classes = int(num_classes)
        self.encoding = encoding or Encoding()
        w = np.ones((self.tile, self.tile)) if weights is None else np.asarray(weights, dtype=np.float64)
        self.weights = tf.constant(w, tf.float64)
        self._shape = (self.width, self.tile, self.num_classes + 2)
        self.buf = tf.Variable(tf.zeros(self._shape, tf.float64), trainable=False)
        self._threshold = tf.constant(0.5 if self.encoding.threshold is None else self.encoding.threshold,
                                      tf.float32)
        self._fn = _functions()

    @property
    def allocated_rows(self) -> int:
        """Rows held on the device: one window height."""
        return int(self._shape[1])

    def _add_row(self, row: int, cols: np.ndarray, pred: Any, valid: Any) -> None:
        """One window row's windows of a batch (``pred`` a device tensor): ONE ``scatter_nd_add``."""
        self._fn["add"](self.buf, pred, valid, self._tf.constant(np.asarray(cols), self._tf.int32), self.weights)

    def _finished(self, row: int, a: int, b: int) -> EncodedRows:
        enc = self.encoding
        label, prob = self._fn["encode"](self.buf[: self.out_width, a:b], self._threshold, self.num_classes,
                                         enc.prob_dtype, enc.with_prob)
        return EncodedRows(row, label.numpy(), prob.numpy() if enc.with_prob else None)

    def _shift(self, n: int) -> None:
        tf = self._tf
        keep = self.tile - n
        if keep <= 0:
            self.buf.assign(tf.zeros(self._shape, tf.float64))
        else:
            zeros = tf.zeros((self.width, n, self._shape[2]), tf.float64)
            self.buf.assign(tf.concat([self.buf[:, n:], zeros], axis=1))
