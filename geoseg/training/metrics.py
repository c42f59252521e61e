"""Streaming segmentation metrics (Keras metrics) that ignore the ignore index.

Each metric accumulates a ``K x K`` confusion matrix ``cm[true, pred]`` over all batches of an
epoch (pixels whose label is ``ignore_index`` or outside ``0..K-1`` are skipped) and reports:

- ``miou``: mean over classes with ``tp + fp + fn > 0`` of ``IoU_k = tp / (tp + fp + fn)``;
- ``iou_<name>``: ``IoU_k`` of one class (NaN while the class was neither seen nor predicted);
- ``oa``: overall accuracy ``trace(cm) / sum(cm)``;
- ``f1``: mean over classes with ``2tp + fp + fn > 0`` of ``2 tp / (2 tp + fp + fn)``.

``y_pred`` is ``(N, H, W, K)`` probabilities (argmax), or ``(N, H, W, 1)`` for a 1-class model
(threshold 0.5, scored as two classes).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def confusion_matrix_np(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int,
                        ignore_index: int = 255) -> np.ndarray:
    """Numpy reference: ``(K, K)`` int64 confusion matrix of label arrays of any equal shape."""
    t = np.asarray(y_true).ravel().astype(np.int64)
    p = np.asarray(y_pred).ravel().astype(np.int64)
    keep = (t != ignore_index) & (t >= 0) & (t < num_classes)
    return np.bincount(t[keep] * num_classes + p[keep], minlength=num_classes ** 2).reshape(num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray) -> dict[str, float | list[float]]:
    """miou, oa, f1 and per-class iou (list, NaN for absent classes) from a confusion matrix."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        f1 = np.where(union > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    total = cm.sum()
    return {"miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
            "oa": float(tp.sum() / total) if total else 0.0,
            "f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else 0.0,
            "iou": iou.tolist()}


@keras.saving.register_keras_serializable(package="geoseg")
class ConfusionMatrixMetric(keras.metrics.Metric):
    """Base: accumulates the confusion matrix; subclasses turn it into one number.

    Args:
        num_classes: number of classes K (2 for a 1-class model).
        ignore_index: label value skipped.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, name: str = "confusion", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.cm = self.add_variable(shape=(self.num_classes, self.num_classes), initializer="zeros",
                                    dtype="float64", name="cm")

    def update_state(self, y_true, y_pred, sample_weight=None):
        k = self.num_classes
        y_pred = tf.cast(y_pred, tf.float32)
        y = tf.cast(tf.round(tf.cast(y_true, tf.float32)), tf.int32)
        if y.shape.rank == 4:
            y = tf.squeeze(y, -1)
        if y_pred.shape[-1] == 1:
            pred = tf.cast(y_pred[..., 0] > 0.5, tf.int32)
        else:
            pred = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
        valid = tf.logical_and(tf.not_equal(y, self.ignore_index), tf.logical_and(y >= 0, y < k))
        w = tf.cast(valid, tf.float64)
        if sample_weight is not None:  # per-pixel weights (N, H, W), e.g. a validity mask
            w = w * tf.cast(tf.reshape(sample_weight, tf.shape(w)), tf.float64)
        codes = tf.reshape(tf.where(valid, y, 0) * k + pred, [-1])
        counts = tf.math.unsorted_segment_sum(tf.reshape(w, [-1]), codes, k * k)
        self.cm.assign_add(tf.reshape(counts, (k, k)))

    def reset_state(self):
        self.cm.assign(tf.zeros((self.num_classes, self.num_classes), tf.float64))

    def _parts(self):
        cm = tf.convert_to_tensor(self.cm)
        tp = tf.linalg.diag_part(cm)
        fp = tf.reduce_sum(cm, 0) - tp
        fn = tf.reduce_sum(cm, 1) - tp
        return cm, tp, fp, fn

    def result(self):
        cm, _, _, _ = self._parts()
        return tf.cast(tf.reduce_sum(cm), tf.float32)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "ignore_index": self.ignore_index}


def _nanless_mean(values, present):
    present = tf.cast(present, tf.float64)
    return tf.cast(tf.reduce_sum(values * present) / tf.maximum(tf.reduce_sum(present), 1.0), tf.float32)


@keras.saving.register_keras_serializable(package="geoseg")
class MeanIoU(ConfusionMatrixMetric):
    """Mean IoU over the classes seen or predicted (see module doc)."""

    def __init__(self, num_classes: int, ignore_index: int = 255, name: str = "miou", **kwargs):
        super().__init__(num_classes, ignore_index, name=name, **kwargs)

    def result(self):
        _, tp, fp, fn = self._parts()
        union = tp + fp + fn
        return _nanless_mean(tp / tf.maximum(union, 1.0), union > 0)


@keras.saving.register_keras_serializable(package="geoseg")
class ClassIoU(ConfusionMatrixMetric):
    """IoU of one class; NaN while it has been neither seen nor predicted."""

    def __init__(self, num_classes: int, class_id: int, ignore_index: int = 255, name: str | None = None, **kwargs):
        super().__init__(num_classes, ignore_index, name=name or f"iou_{class_id}", **kwargs)
        self.class_id = int(class_id)

    def result(self):
        _, tp, fp, fn = self._parts()
        c = self.class_id
        union = tp[c] + fp[c] + fn[c]
        return tf.cast(tf.where(union > 0, tp[c] / tf.maximum(union, 1.0), np.nan), tf.float32)

    def get_config(self):
        return {**super().get_config(), "class_id": self.class_id}


@keras.saving.register_keras_serializable(package="geoseg")
class OverallAccuracy(ConfusionMatrixMetric):
    """Share of valid pixels whose predicted class is right."""

    def __init__(self, num_classes: int, ignore_index: int = 255, name: str = "oa", **kwargs):
        super().__init__(num_classes, ignore_index, name=name, **kwargs)

    def result(self):
        cm, tp, _, _ = self._parts()
        return tf.cast(tf.reduce_sum(tp) / tf.maximum(tf.reduce_sum(cm), 1.0), tf.float32)


@keras.saving.register_keras_serializable(package="geoseg")
class MeanF1(ConfusionMatrixMetric):
    """Mean F1 (dice of hard predictions) over the classes seen or predicted."""

    def __init__(self, num_classes: int, ignore_index: int = 255, name: str = "f1", **kwargs):
        super().__init__(num_classes, ignore_index, name=name, **kwargs)

    def result(self):
        _, tp, fp, fn = self._parts()
        den = 2 * tp + fp + fn
        return _nanless_mean(2 * tp / tf.maximum(den, 1.0), den > 0)


def segmentation_metrics(num_classes: int, ignore_index: int = 255,
                         class_names: list[str] | None = None) -> list[ConfusionMatrixMetric]:
    """The metric set used in training: miou, oa, f1 and iou_<class name> per class."""
    k = max(2, int(num_classes))
    names = class_names or [str(i) for i in range(k)]
    per_class = [ClassIoU(k, c, ignore_index, name=f"iou_{_slug(names[c] if c < len(names) else str(c))}")
                 for c in range(k)]
    return [MeanIoU(k, ignore_index), OverallAccuracy(k, ignore_index), MeanF1(k, ignore_index), *per_class]


def _slug(name: str) -> str:
    out = "".join(ch if ch.isalnum() else "_" for ch in str(name).lower()).strip("_")
    return out or "class"
