"""Training metrics: ONE streaming confusion matrix per model, every score read from it.

:class:`SegmentationMetrics` is a single ``keras.metrics.Metric`` that accumulates a ``(K, K)``
confusion matrix ``cm[true, pred]`` over the batches of an epoch (one ``unsorted_segment_sum``
per batch; pixels whose label is ``ignore_index`` or outside ``0..K-1`` are skipped) and whose
``result()`` is a dict. Keras flattens dict results into the logs, so ``model.fit`` history,
``CSVLogger``, ``EarlyStopping(monitor="val_miou")`` and ``ModelCheckpoint`` see plain keys:

- ``miou``: mean of ``IoU_k = tp / (tp + fp + fn)`` over the classes present;
- ``oa``: overall accuracy ``trace(cm) / sum(cm)``;
- ``f1``: mean of ``F1_k = 2 tp / (2 tp + fp + fn)`` over the classes present;
- ``iou_<slug>``: ``IoU_k`` of each class (slug of the class name, see :func:`class_slug`).

The formulas are those of :func:`geoseg.evaluation.metrics.compute_metrics` (the numpy core,
checked against scikit-learn), on the same matrix: a class **absent from truth and prediction**
has NaN IoU/F1 and is left out of the means; a class present on one side only scores 0 and
stays in. With no counted pixel at all, every value is NaN.

``y_pred`` is ``(N, H, W, K)`` probabilities (argmax), or ``(N, H, W, 1)`` for a 1-channel
sigmoid model, scored as two classes ``(1 - p, p)``: class 1 where ``p > 0.5``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

#: Keys of the summary scores in ``result()`` (and in the training logs).
SUMMARY_KEYS = ("miou", "oa", "f1")


def class_slug(name: str) -> str:
    """Log-safe form of a class name: ``"Building 1"`` -> ``"building_1"`` (``"class"`` if empty)."""
    out = "".join(ch if ch.isalnum() else "_" for ch in str(name).lower()).strip("_")
    return out or "class"


def class_metric_names(num_classes: int, class_names: Sequence[str] | None = None) -> list[str]:
    """``iou_<slug>`` key of each class, in class order; clashing slugs get ``_<index>`` appended."""
    names = list(class_names or [])
    keys: list[str] = []
    for c in range(num_classes):
        key = f"iou_{class_slug(names[c]) if c < len(names) else c}"
        keys.append(f"{key}_{c}" if key in keys else key)
    return keys


@keras.saving.register_keras_serializable(package="geoseg")
class SegmentationMetrics(keras.metrics.Metric):
    """miou, oa, f1 and per-class IoU from one streaming confusion matrix (see module doc).

    Args:
        num_classes: number of classes K scored (2 for a 1-channel sigmoid model).
        ignore_index: label value skipped.
        class_names: names used for the ``iou_<slug>`` keys (default: class indices).
        name: metric name (not shown in the logs: the result keys are).

    Attributes:
        cm: ``(K, K)`` float64 variable, rows = truth, columns = prediction (pixel counts,
            or summed ``sample_weight`` when one is given).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, class_names: Sequence[str] | None = None,
                 name: str = "segmentation", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = max(2, int(num_classes))
        self.ignore_index = int(ignore_index)
        self.class_names = [str(n) for n in class_names] if class_names else None
        self.class_keys = class_metric_names(self.num_classes, self.class_names)
        self.cm = self.add_variable(shape=(self.num_classes, self.num_classes), initializer="zeros",
                                    dtype="float64", name="cm")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Add one batch: ``y_true`` ``(N, H, W)`` or ``(N, H, W, 1)`` labels, ``y_pred`` ``(N, H, W, C)``;
        ``sample_weight`` optional per-pixel weights ``(N, H, W)`` (e.g. a validity mask)."""
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
        if sample_weight is not None:
            w = w * tf.cast(tf.reshape(sample_weight, tf.shape(w)), tf.float64)
        codes = tf.reshape(tf.where(valid, y, 0) * k + pred, [-1])
        counts = tf.math.unsorted_segment_sum(tf.reshape(w, [-1]), codes, k * k)
        self.cm.assign_add(tf.reshape(counts, (k, k)))

    def reset_state(self) -> None:
        self.cm.assign(tf.zeros((self.num_classes, self.num_classes), tf.float64))

    def result(self) -> dict[str, Any]:
        """``{"miou", "oa", "f1", "iou_<slug>"...}`` as float32 scalars (NaN where undefined)."""
        cm = tf.convert_to_tensor(self.cm)
        nan = tf.constant(float("nan"), tf.float64)
        tp = tf.linalg.diag_part(cm)
        fp = tf.reduce_sum(cm, 0) - tp
        fn = tf.reduce_sum(cm, 1) - tp
        union = tp + fp + fn
        present = union > 0  # absent from truth and prediction: NaN, out of the means
        iou = tf.where(present, tp / tf.maximum(union, 1.0), nan)
        f1 = tf.where(present, 2 * tp / tf.maximum(2 * tp + fp + fn, 1.0), nan)
        n_present = tf.reduce_sum(tf.cast(present, tf.float64))
        total = tf.reduce_sum(cm)

        def mean_present(values: tf.Tensor) -> tf.Tensor:
            s = tf.reduce_sum(tf.where(present, values, tf.zeros_like(values)))
            return tf.where(n_present > 0, s / tf.maximum(n_present, 1.0), nan)

        out = {
            "miou": mean_present(iou),
            "oa": tf.where(total > 0, tf.reduce_sum(tp) / tf.maximum(total, 1.0), nan),
            "f1": mean_present(f1),
        }
        for c, key in enumerate(self.class_keys):
            out[key] = iou[c]
        return {k: tf.cast(v, tf.float32) for k, v in out.items()}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes, "ignore_index": self.ignore_index,
                "class_names": self.class_names}


def segmentation_metrics(num_classes: int, ignore_index: int = 255,
                         class_names: Sequence[str] | None = None) -> list[SegmentationMetrics]:
    """The metric list given to ``model.compile``: one :class:`SegmentationMetrics` (one confusion
    matrix per batch) that logs ``miou``, ``oa``, ``f1`` and ``iou_<class slug>`` per class."""
    return [SegmentationMetrics(num_classes, ignore_index, class_names)]
