"""Segmentation losses that ignore the ignore index, and class weights from class counts.

Shapes: ``y_true`` is ``(N, H, W)`` or ``(N, H, W, 1)`` integer labels (``ignore_index`` = not
scored; nodata pixels arrive with that value); ``y_pred`` is ``(N, H, W, K)`` softmax
probabilities, or ``(N, H, W, 1)`` sigmoid probabilities for a 1-class (binary) model, which
is treated as the two columns ``(1 - p, p)``.

Every term is a mean over the valid pixels of the batch:

- ``ce``: ``sum_i w[y_i] * -log p_i[y_i] / sum_i w[y_i]`` (class-weighted cross-entropy; binary
  cross-entropy for a 1-class model).
- ``bce``: one-vs-all binary cross-entropy averaged over classes, pixel weights ``w[y_i]``.
- ``focal``: ``sum_i w[y_i] * -(1 - p_i[y_i])**gamma * log p_i[y_i] / sum_i w[y_i]`` (gamma 2).
- ``dice``: ``1 - mean_k (2 |P_k G_k| + s) / (|P_k| + |G_k| + s)`` (soft dice, smooth s = 1).
- ``jaccard``: ``1 - mean_k (|P_k G_k| + s) / (|P_k| + |G_k| - |P_k G_k| + s)``.
- ``lovasz``: Lovasz-softmax (Berman et al. 2018), mean over the classes present in the batch.

A loss expression sums weighted terms: ``"ce+dice"``, ``"0.5*ce+dice"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from geoseg.errors import InvalidParameterError
from geoseg.training.config import parse_loss_terms

_EPS = 1e-7

#: Class weights are clipped to this range (after normalization) so that a class seen in a
#: handful of pixels cannot dominate the gradient.
WEIGHT_CLIP = (0.1, 10.0)


def class_weights_from_counts(counts: Sequence[float], mode: str = "auto",
                              clip: tuple[float, float] = WEIGHT_CLIP) -> np.ndarray:
    """Per-class loss weights from pixel counts.

    Args:
        counts: pixels per class in the training split (``dataset.json`` ``class_counts.train``).
        mode: ``auto``/``sqrt``: ``w_k = 1 / sqrt(f_k)``; ``median``: ``w_k = median(f) / f_k``
            (median-frequency balancing), with ``f_k`` the class frequency; ``none``: all ones.
        clip: (min, max) applied after normalizing so that ``sum_k f_k w_k = 1``, i.e. the
            average pixel keeps weight 1 and the loss keeps its unweighted scale.

    Classes absent from ``counts`` get weight 1 (they add nothing to the loss anyway).

    Returns:
        float32 array ``(K,)``.
    """
    c = np.asarray(counts, dtype=np.float64)
    w = np.ones_like(c)
    if mode == "none" or c.sum() <= 0:
        return w.astype(np.float32)
    present = c > 0
    f = c[present] / c[present].sum()
    if mode in ("auto", "sqrt"):
        raw = 1.0 / np.sqrt(f)
    elif mode == "median":
        raw = np.median(f) / f
    else:
        raise InvalidParameterError(f"unknown class weight mode {mode!r}; choose auto, sqrt, median or none")
    raw = raw / float((f * raw).sum())
    w[present] = np.clip(raw, *clip)
    return w.astype(np.float32)


def _prepare(y_true, y_pred, ignore_index: int):
    """-> labels (N, H, W) int32 with ignored set to 0, valid (N, H, W) float32, probs (N, H, W, K)."""
    y_pred = tf.cast(y_pred, tf.float32)
    y = tf.cast(tf.round(tf.cast(y_true, tf.float32)), tf.int32)
    if y.shape.rank == 4:
        y = tf.squeeze(y, -1)
    if y_pred.shape[-1] == 1:
        y_pred = tf.concat([1.0 - y_pred, y_pred], axis=-1)
    k = y_pred.shape[-1]
    valid = tf.logical_and(tf.not_equal(y, ignore_index), tf.logical_and(y >= 0, y < k))
    y = tf.where(valid, y, 0)
    return y, tf.cast(valid, tf.float32), y_pred


def _pixel_weights(y, valid, class_weights):
    if class_weights is None:
        return valid
    return tf.gather(tf.constant(class_weights, tf.float32), y) * valid


def cross_entropy(y, valid, p, class_weights=None):
    w = _pixel_weights(y, valid, class_weights)
    py = tf.reduce_sum(p * tf.one_hot(y, p.shape[-1]), -1)
    nll = -tf.math.log(tf.clip_by_value(py, _EPS, 1.0))
    return tf.reduce_sum(w * nll) / tf.maximum(tf.reduce_sum(w), _EPS)


def binary_cross_entropy(y, valid, p, class_weights=None):
    w = _pixel_weights(y, valid, class_weights)
    g = tf.one_hot(y, p.shape[-1])
    pc = tf.clip_by_value(p, _EPS, 1.0 - _EPS)
    per = -(g * tf.math.log(pc) + (1.0 - g) * tf.math.log(1.0 - pc))
    # A 1-class model's two columns are one sigmoid: score it once, not twice.
    per = per[..., 1] if p.shape[-1] == 2 else tf.reduce_mean(per, -1)
    return tf.reduce_sum(w * per) / tf.maximum(tf.reduce_sum(w), _EPS)


def focal(y, valid, p, class_weights=None, gamma: float = 2.0):
    w = _pixel_weights(y, valid, class_weights)
    py = tf.clip_by_value(tf.reduce_sum(p * tf.one_hot(y, p.shape[-1]), -1), _EPS, 1.0)
    per = -tf.pow(1.0 - py, gamma) * tf.math.log(py)
    return tf.reduce_sum(w * per) / tf.maximum(tf.reduce_sum(w), _EPS)


def _overlaps(y, valid, p):
    g = tf.one_hot(y, p.shape[-1]) * valid[..., None]
    pm = p * valid[..., None]
    axes = [0, 1, 2]
    return tf.reduce_sum(pm * g, axes), tf.reduce_sum(pm, axes), tf.reduce_sum(g, axes)


def dice(y, valid, p, smooth: float = 1.0):
    inter, sp, sg = _overlaps(y, valid, p)
    return 1.0 - tf.reduce_mean((2.0 * inter + smooth) / (sp + sg + smooth))


def jaccard(y, valid, p, smooth: float = 1.0):
    inter, sp, sg = _overlaps(y, valid, p)
    return 1.0 - tf.reduce_mean((inter + smooth) / (sp + sg - inter + smooth))


def lovasz_softmax(y, valid, p):
    """Lovasz-softmax over the batch's valid pixels, averaged over the classes present.

    Ignored pixels get error 0 and foreground 0: they sort after every pixel with a positive
    error and so change neither the Lovasz gradient of those pixels nor the sum, which makes
    this equal to the loss over the masked pixels, without a dynamic-shape boolean mask.
    """
    k = p.shape[-1]
    yf = tf.reshape(y, [-1])
    vf = tf.reshape(valid, [-1])
    pf = tf.reshape(p, [-1, k])
    losses, present = [], []
    for c in range(k):
        fg = tf.cast(tf.equal(yf, c), tf.float32) * vf
        err = tf.abs(fg - pf[:, c]) * vf
        order = tf.argsort(err, direction="DESCENDING", stable=True)
        err_s = tf.gather(err, order)
        fg_s = tf.gather(fg, order)
        gts = tf.reduce_sum(fg_s)
        inter = gts - tf.cumsum(fg_s)
        union = gts + tf.cumsum(1.0 - fg_s)
        jac = 1.0 - inter / tf.maximum(union, _EPS)
        grad = tf.concat([jac[:1], jac[1:] - jac[:-1]], 0)
        losses.append(tf.reduce_sum(err_s * grad))
        present.append(tf.cast(gts > 0, tf.float32))
    losses, present = tf.stack(losses), tf.stack(present)
    return tf.reduce_sum(losses * present) / tf.maximum(tf.reduce_sum(present), 1.0)


@keras.saving.register_keras_serializable(package="geoseg")
class SegmentationLoss(keras.losses.Loss):
    """A weighted sum of the terms above (see module doc), ignoring ``ignore_index``.

    Args:
        loss: expression such as ``"ce+dice"`` or ``"0.5*ce+lovasz"``.
        class_weights: per-class weights ``(K,)`` for ``ce``, ``bce`` and ``focal``; None = equal.
        ignore_index: label value that is not scored.
        gamma: focal-loss focusing parameter.
        smooth: additive smoothing of dice and jaccard.
    """

    def __init__(self, loss: str = "ce+dice", class_weights: Sequence[float] | None = None,
                 ignore_index: int = 255, gamma: float = 2.0, smooth: float = 1.0,
                 name: str = "segmentation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.loss = loss
        self.terms = parse_loss_terms(loss)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.ignore_index = int(ignore_index)
        self.gamma = float(gamma)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        y, valid, p = _prepare(y_true, y_pred, self.ignore_index)
        cw = self.class_weights
        if cw is not None and len(cw) != p.shape[-1]:
            hint = " (a 1-class model scores 2: background, foreground)" if p.shape[-1] == 2 else ""
            raise InvalidParameterError(f"--class-weights has {len(cw)} value(s) "
                                        f"but the model has {p.shape[-1]} classes{hint}")
        total = 0.0
        for weight, name in self.terms:
            if name == "ce":
                term = cross_entropy(y, valid, p, cw)
            elif name == "bce":
                term = binary_cross_entropy(y, valid, p, cw)
            elif name == "focal":
                term = focal(y, valid, p, cw, self.gamma)
            elif name == "dice":
                term = dice(y, valid, p, self.smooth)
            elif name == "jaccard":
                term = jaccard(y, valid, p, self.smooth)
            else:
                term = lovasz_softmax(y, valid, p)
            total = total + weight * term
        return total

    def get_config(self):
        cfg = super().get_config()
        cfg.update(loss=self.loss, class_weights=self.class_weights, ignore_index=self.ignore_index,
                   gamma=self.gamma, smooth=self.smooth)
        return cfg
