"""Joint image/label augmentation for one square patch, with stateless (seeded) randomness.

Shapes: ``image`` ``(H, W, C)`` float32 (already normalized), ``label`` ``(H, W)`` uint8/int32.
Every geometric transform is applied identically to both; labels are resampled with nearest
neighbour so no new class values appear. ``seed`` is a ``(2,)`` int tensor (``tf.random``
stateless ops), so a run with a fixed seed sees the same augmentations.
"""

from __future__ import annotations

import tensorflow as tf


def dihedral(image: tf.Tensor, label: tf.Tensor, k: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Element ``k`` (0..7) of the dihedral group D4: ``k % 4`` quarter turns, then a left-right flip if ``k >= 4``.

    The 8 transforms are the symmetries of a square: overhead imagery has no "up", so they
    multiply the data eightfold without creating implausible scenes.
    """
    k = tf.cast(k, tf.int32)
    lab = label[..., None]
    image = tf.image.rot90(image, k % 4)
    lab = tf.image.rot90(lab, k % 4)
    flip = k >= 4
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    lab = tf.cond(flip, lambda: tf.reverse(lab, [1]), lambda: lab)
    return image, lab[..., 0]


def scale_crop(image: tf.Tensor, label: tf.Tensor, seed: tf.Tensor,
               max_scale: float = 1.5) -> tuple[tf.Tensor, tf.Tensor]:
    """Zoom in by a random factor in [1, max_scale] and crop back to ``(H, W)`` at a random offset.

    The image is resampled bilinearly, the label with nearest neighbour.
    """
    s1, s2, s3 = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    scale = tf.random.stateless_uniform([], s1, 1.0, max_scale)
    nh = tf.cast(tf.math.ceil(tf.cast(h, tf.float32) * scale), tf.int32)
    nw = tf.cast(tf.math.ceil(tf.cast(w, tf.float32) * scale), tf.int32)
    big = tf.image.resize(image, [nh, nw], method="bilinear")
    big_lab = tf.image.resize(label[..., None], [nh, nw], method="nearest")[..., 0]
    top = tf.random.stateless_uniform([], s2, 0, nh - h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], s3, 0, nw - w + 1, dtype=tf.int32)
    image = big[top:top + h, left:left + w]
    label = tf.cast(big_lab[top:top + h, left:left + w], label.dtype)
    return image, label


def jitter(image: tf.Tensor, seed: tf.Tensor, brightness: float = 0.1, contrast: float = 0.1) -> tf.Tensor:
    """Per-band contrast and brightness: ``x * c_b + d_b`` with ``c_b ~ U(1 - contrast, 1 + contrast)``
    and ``d_b ~ U(-brightness, brightness)`` in normalized units (band std or min-max range).

    ``image`` is one patch ``(H, W, C)`` or a batch ``(N, H, W, C)`` (then each patch draws its own).
    """
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(image)
    draw = tf.concat([shape[:-3], tf.ones([2], tf.int32), shape[-1:]], 0)  # (C,) per patch, broadcast
    gain = tf.random.stateless_uniform(draw, s1, 1.0 - contrast, 1.0 + contrast)
    bias = tf.random.stateless_uniform(draw, s2, -brightness, brightness)
    return image * gain + bias


def geometric(image: tf.Tensor, label: tf.Tensor, seed: tf.Tensor, *, use_scale_crop: bool = False,
              max_scale: float = 1.5) -> tuple[tf.Tensor, tf.Tensor]:
    """Random dihedral transform, then (optionally) scale-crop, of one patch.

    Works on raw pixels of any dtype (cheapest before normalization: uint8 moves 4x fewer bytes
    than float32); scale-crop returns float32.
    """
    s_dih, s_crop = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    k = tf.random.stateless_uniform([], s_dih, 0, 8, dtype=tf.int32)
    image, label = dihedral(image, label, k)
    if use_scale_crop:
        image, label = scale_crop(tf.cast(image, tf.float32), label, s_crop, max_scale)
    return image, label


def augment_sample(image: tf.Tensor, label: tf.Tensor, seed: tf.Tensor, *, use_scale_crop: bool = False,
                   use_jitter: bool = True, max_scale: float = 1.5) -> tuple[tf.Tensor, tf.Tensor]:
    """:func:`geometric` then :func:`jitter` of one normalized patch."""
    s_geo, s_jit = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image, label = geometric(image, label, s_geo, use_scale_crop=use_scale_crop, max_scale=max_scale)
    if use_jitter:
        image = jitter(image, s_jit)
    return image, label
