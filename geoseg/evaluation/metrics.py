"""Segmentation metrics from a confusion matrix (rows = truth, columns = prediction).

For class ``k`` with ``TP = M[k, k]``, ``FP = sum(M[:, k]) - TP``, ``FN = sum(M[k, :]) - TP``:

- precision ``TP / (TP + FP)``, recall ``TP / (TP + FN)``,
- F1 ``2 TP / (2 TP + FP + FN)``, IoU ``TP / (TP + FP + FN)``,
- support ``TP + FN`` (truth pixels), predicted ``TP + FP`` (predicted pixels).

Conventions for empty denominators:

- a class **absent from both truth and prediction** (``TP + FP + FN == 0``) has nothing to
  measure: all four ratios are NaN and the class is left out of the means;
- a class present on one side only gets 0 for the undefined ratio (precision of a class
  never predicted, recall of a class never in the truth), like scikit-learn's
  ``zero_division=0``; it stays in the means, where it rightly pulls them down.

Summary metrics, with ``N`` the pixels counted:

- mean IoU and mean F1: unweighted means over the classes present (NaN-excluded), minus any
  ``exclude`` classes (class 0 when the background is ignored);
- overall accuracy ``trace(M) / N``;
- Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` with ``p_o = trace(M) / N`` and
  ``p_e = sum_k rows_k * cols_k / N^2`` (NaN when ``p_e == 1``, as scikit-learn);
- frequency-weighted IoU ``sum_k (support_k / N) * IoU_k``.

Every scalar is NaN when ``N == 0``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

SCALARS = ("overall_accuracy", "mean_iou", "mean_f1", "mean_precision", "mean_recall", "kappa", "fw_iou")
PER_CLASS = ("precision", "recall", "f1", "iou")


@dataclass(frozen=True)
class Metrics:
    """Metrics of one confusion matrix (or the average of several, see :func:`average_metrics`).

    Per-class arrays have shape ``(C,)`` and hold NaN for classes absent from truth and
    prediction. ``support`` and ``predicted`` are pixel counts.
    """

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    iou: np.ndarray
    support: np.ndarray
    predicted: np.ndarray
    overall_accuracy: float
    mean_iou: float
    mean_f1: float
    mean_precision: float
    mean_recall: float
    kappa: float
    fw_iou: float
    pixels: int

    @property
    def num_classes(self) -> int:
        return int(self.iou.shape[0])

    def scalars(self) -> dict[str, float]:
        """The summary metrics by name (``SCALARS``) plus ``pixels``."""
        out = {name: float(getattr(self, name)) for name in SCALARS}
        out["pixels"] = int(self.pixels)
        return out


def _ratio(num: np.ndarray, den: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``num / den``, 0 where ``den == 0`` but the class is present, NaN where it is absent."""
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    out[~present] = np.nan
    return out


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():  # all-NaN means "nothing to average": NaN, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values)) if values.size else float("nan")


def compute_metrics(matrix: np.ndarray, exclude: Iterable[int] = ()) -> Metrics:
    """All metrics of a ``(C, C)`` confusion matrix (rows = truth, columns = prediction).

    Args:
        matrix: pixel counts.
        exclude: classes left out of the means (still reported per class), e.g. ``(0,)`` when
            the background is ignored.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected a square confusion matrix, found shape {m.shape}")
    tp = np.diag(m)
    rows = m.sum(axis=1)  # truth pixels per class
    cols = m.sum(axis=0)  # predicted pixels per class
    fp = cols - tp
    fn = rows - tp
    present = (tp + fp + fn) > 0
    precision = _ratio(tp, tp + fp, present)
    recall = _ratio(tp, tp + fn, present)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, present)
    iou = _ratio(tp, tp + fp + fn, present)

    in_mean = np.ones(len(tp), dtype=bool)
    for k in exclude:
        if 0 <= k < len(tp):
            in_mean[k] = False
    n = m.sum()
    if n > 0:
        oa = float(tp.sum() / n)
        pe = float((rows * cols).sum() / (n * n))
        kappa = (oa - pe) / (1.0 - pe) if pe < 1.0 else float("nan")
        fw_iou = float(np.nansum(rows / n * np.nan_to_num(iou)))
    else:
        oa = kappa = fw_iou = float("nan")
    return Metrics(
        precision=precision, recall=recall, f1=f1, iou=iou,
        support=rows.astype(np.int64), predicted=cols.astype(np.int64),
        overall_accuracy=oa,
        mean_iou=_nanmean(iou[in_mean]), mean_f1=_nanmean(f1[in_mean]),
        mean_precision=_nanmean(precision[in_mean]), mean_recall=_nanmean(recall[in_mean]),
        kappa=float(kappa), fw_iou=fw_iou, pixels=int(n),
    )


def average_metrics(items: Sequence[Metrics]) -> Metrics:
    """Average of per-image metrics (``--mode per_image``).

    Every ratio, per class and summary, is the NaN-ignoring mean over the images where it is
    defined (a class absent from an image does not count for that image); pixel counts are summed.
    """
    if not items:
        raise ValueError("no metrics to average")
    values: dict[str, Any] = {}
    for f in fields(Metrics):
        stack = np.array([getattr(m, f.name) for m in items], dtype=np.float64)
        if f.name in ("support", "predicted", "pixels"):
            total = stack.sum(axis=0)
            values[f.name] = total.astype(np.int64) if stack.ndim > 1 else int(total)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(stack, axis=0)
            values[f.name] = mean if stack.ndim > 1 else float(mean)
    return Metrics(**values)
