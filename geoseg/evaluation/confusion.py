"""Streaming confusion matrix: pure numpy, one ``np.bincount`` per block of pixels.

Convention (the one of scikit-learn): ``matrix[t, p]`` counts pixels whose truth is class ``t``
and whose prediction is class ``p``; rows = truth, columns = prediction.

Pixels that never enter the matrix:

- ``truth == ignore_index`` (unlabeled) or ``pred == ignore_index`` (prediction nodata);
- pixels where the caller's ``valid`` mask is False (raster nodata, outside the label extent);
- with ``ignore_background=True``, pixels whose truth is class 0 (the seed project's
  ``ignore_0``). Predictions of class 0 elsewhere still count, as false positives of class 0.

Because the matrix is a plain sum of counts, feeding a scene block by block gives exactly the
matrix of the whole scene at once, and matrices of several scenes add up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geoseg.errors import InvalidParameterError, LabelValueError
from geoseg.io.classes import IGNORE_INDEX


class ClassValueError(LabelValueError):
    """Values outside ``0..num_classes-1`` in a block; says which values, which side and where.

    Attributes:
        side: ``"truth"`` or ``"prediction"``.
        values: the offending values found in the block (sorted, at most 10).
        position: ``(row, col)`` of the first offending pixel, in the caller's pixel frame.
    """

    def __init__(self, message: str, side: str, values: list[int], position: tuple[int, int]):
        super().__init__(message)
        self.side = side
        self.values = values
        self.position = position


@dataclass
class ConfusionMatrix:
    """A ``(num_classes, num_classes)`` int64 confusion matrix filled block by block.

    Args:
        num_classes: number of classes ``C``; valid class values are ``0..C-1``.
        ignore_index: label value meaning "no label" (and prediction nodata); None disables it.
        ignore_background: also drop pixels whose truth is class 0.

    Attributes:
        matrix: ``(C, C)`` counts, rows = truth, columns = prediction (pass one to start from
            it; the default starts from zeros).
        excluded: pixels seen by :meth:`update` that did not enter the matrix (ignored,
            nodata, outside the label, or background when ``ignore_background``).
    """

    num_classes: int
    ignore_index: int | None = IGNORE_INDEX
    ignore_background: bool = False
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64), repr=False)
    excluded: int = 0

    def __post_init__(self) -> None:
        if int(self.num_classes) < 1:
            raise InvalidParameterError(f"--num-classes must be >= 1, got {self.num_classes}")
        self.num_classes = int(self.num_classes)
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            raise InvalidParameterError(
                f"--ignore-index {self.ignore_index} is a class value (0..{self.num_classes - 1}); "
                "choose a value outside the classes, e.g. 255"
            )
        if np.shape(self.matrix) == (0, 0):  # the default: start from zeros
            self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        else:
            self.matrix = np.asarray(self.matrix, dtype=np.int64)
            if self.matrix.shape != (self.num_classes, self.num_classes):
                raise InvalidParameterError(
                    f"confusion matrix of shape {self.matrix.shape} for {self.num_classes} classes"
                )

    @property
    def total(self) -> int:
        """Pixels counted in the matrix."""
        return int(self.matrix.sum())

    def update(self, truth: np.ndarray, pred: np.ndarray, valid: np.ndarray | None = None,
               origin: tuple[int, int] = (0, 0)) -> ConfusionMatrix:
        """Add one block of pixels.

        Args:
            truth: ``(H, W)`` (or any shape) integer class values; float NaN counts as nodata.
            pred: predicted class values, same shape as ``truth``.
            valid: optional bool mask of the same shape; False pixels are skipped.
            origin: ``(row, col)`` of the block's first pixel, used only to say where an
                out-of-range value is.

        Returns:
            self, so that calls chain.

        Raises:
            ClassValueError: a counted pixel holds a value outside ``0..C-1``.
        """
        truth = np.asarray(truth)
        pred = np.asarray(pred)
        if truth.shape != pred.shape:
            raise InvalidParameterError(f"truth {truth.shape} and prediction {pred.shape} shapes differ")
        if truth.dtype == np.uint8 and pred.dtype == np.uint8 and self.num_classes <= 256:
            return self._update_uint8(truth, pred, valid, origin)
        keep = np.ones(truth.shape, dtype=bool) if valid is None else np.array(valid, dtype=bool, copy=True)
        for arr in (truth, pred):
            if arr.dtype.kind == "f":
                keep &= ~np.isnan(arr)
            if self.ignore_index is not None:
                keep &= arr != self.ignore_index
        if self.ignore_background:
            keep &= truth != 0
        t = truth[keep]
        p = pred[keep]
        self._check_range(t, truth, keep, "truth", origin)
        self._check_range(p, pred, keep, "prediction", origin)
        c = self.num_classes
        idx = t.astype(np.intp) * c + p.astype(np.intp)
        self.matrix += np.bincount(idx, minlength=c * c).reshape(c, c)
        self.excluded += int(keep.size - t.size)
        return self

    def _update_uint8(self, truth: np.ndarray, pred: np.ndarray, valid: np.ndarray | None,
                      origin: tuple[int, int]) -> ConfusionMatrix:
        """Fast path for uint8 rasters (the label format): one joint 256 x 256 histogram of
        ``(truth, pred)`` values, then the ignore rows/columns and the class block are sliced
        out of it. No boolean compaction of the pixels, ~1.5x faster than the general path."""
        code = truth.astype(np.intp)
        code <<= 8
        code |= pred
        if valid is not None:
            code[~np.asarray(valid, dtype=bool)] = 1 << 16  # an extra bin, dropped below
        joint = np.bincount(code.ravel(), minlength=(1 << 16) + 1)[: 1 << 16].reshape(256, 256)
        keep_rows = np.ones(256, dtype=bool)
        keep_cols = np.ones(256, dtype=bool)
        if self.ignore_index is not None and 0 <= self.ignore_index <= 255:
            keep_rows[self.ignore_index] = keep_cols[self.ignore_index] = False
        if self.ignore_background:
            keep_rows[0] = False
        counted = joint[np.ix_(keep_rows, keep_cols)]
        c = self.num_classes
        if counted.sum() != joint[:c, :c][np.ix_(keep_rows[:c], keep_cols[:c])].sum():
            # Some counted pixel lies outside 0..C-1: the general path finds which values and where.
            keep = np.ones(truth.shape, dtype=bool) if valid is None else np.array(valid, dtype=bool, copy=True)
            keep &= keep_rows[truth] & keep_cols[pred]
            self._check_range(truth[keep], truth, keep, "truth", origin)
            self._check_range(pred[keep], pred, keep, "prediction", origin)
        block = joint[:c, :c] * np.outer(keep_rows[:c], keep_cols[:c])
        self.matrix += block
        self.excluded += int(truth.size - block.sum())
        return self

    def _check_range(self, flat: np.ndarray, full: np.ndarray, keep: np.ndarray, side: str,
                     origin: tuple[int, int]) -> None:
        if flat.size == 0:
            return
        lo, hi = flat.min(), flat.max()
        if lo >= 0 and hi < self.num_classes and (flat.dtype.kind != "f" or np.all(flat == np.floor(flat))):
            return
        bad_mask = keep & ((full < 0) | (full >= self.num_classes) | (full != np.floor(full)))
        values = np.unique(full[bad_mask])
        rows, cols = np.nonzero(bad_mask.reshape(full.shape[0], -1) if full.ndim >= 2 else bad_mask[None])
        position = (int(rows[0]) + origin[0], int(cols[0]) + origin[1])
        shown = [v.item() for v in values[:10]]
        more = f" and {len(values) - 10} more" if len(values) > 10 else ""
        ignore = f", or {self.ignore_index} = ignore" if self.ignore_index is not None else ""
        raise ClassValueError(
            f"{side} holds value(s) {', '.join(map(str, shown))}{more} outside 0..{self.num_classes - 1}{ignore} "
            f"(first at row {position[0]}, col {position[1]})",
            side, shown, position,
        )

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix (same number of classes) into this one; returns self."""
        if other.num_classes != self.num_classes:
            raise InvalidParameterError(
                f"cannot merge confusion matrices of {self.num_classes} and {other.num_classes} classes"
            )
        self.matrix += other.matrix
        self.excluded += other.excluded
        return self

    def copy(self) -> ConfusionMatrix:
        return ConfusionMatrix(self.num_classes, self.ignore_index, self.ignore_background,
                               self.matrix.copy(), self.excluded)


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore_index: int | None = IGNORE_INDEX, ignore_background: bool = False,
                     valid: np.ndarray | None = None) -> np.ndarray:
    """One-shot ``(C, C)`` confusion matrix of two in-memory arrays (rows = truth).

    Equals ``sklearn.metrics.confusion_matrix(truth, pred, labels=range(C))`` on the pixels
    that are not ignored.
    """
    cm = ConfusionMatrix(num_classes, ignore_index, ignore_background)
    return cm.update(truth, pred, valid).matrix
