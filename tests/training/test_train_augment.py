"""Joint augmentation keeps image and label aligned."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from geoseg.training.augment import augment_sample, dihedral, jitter, scale_crop


def _label_encoded(size: int = 16, block: int = 1):
    """A label with distinct values per (block) cell and an image whose band 0 equals it."""
    base = np.arange((size // block) ** 2, dtype=np.uint8).reshape(size // block, size // block) % 250
    lab = np.kron(base, np.ones((block, block), np.uint8))
    img = np.stack([lab.astype(np.float32), np.full(lab.shape, 7.0, np.float32)], -1)
    return tf.constant(img), tf.constant(lab)


def test_dihedral_eight_distinct_aligned_transforms():
    img, lab = _label_encoded()
    seen = set()
    for k in range(8):
        x, y = dihedral(img, lab, tf.constant(k))
        np.testing.assert_array_equal(x.numpy()[..., 0], y.numpy())
        seen.add(y.numpy().tobytes())
    assert len(seen) == 8
    x, y = dihedral(img, lab, tf.constant(5))  # one quarter turn, then a left-right flip
    np.testing.assert_array_equal(y.numpy(), np.fliplr(np.rot90(lab.numpy(), 1)))


def test_scale_crop_keeps_alignment_and_classes():
    img, lab = _label_encoded(32, block=8)
    for s in range(5):
        x, y = scale_crop(img, lab, tf.constant([s, 1], tf.int64))
        x, y = x.numpy(), y.numpy()
        assert x.shape == (32, 32, 2) and y.shape == (32, 32)
        assert set(np.unique(y)) <= set(np.unique(lab.numpy()))  # nearest: no new label values
        # Bilinear image vs nearest label: equal everywhere except near block edges.
        assert (np.abs(x[..., 0] - y) < 0.5).mean() > 0.8


def test_jitter_is_per_band_affine():
    img = tf.constant(np.random.default_rng(0).normal(size=(8, 8, 3)).astype(np.float32))
    out = jitter(img, tf.constant([1, 2], tf.int64)).numpy()
    for b in range(3):
        gain, bias = np.polyfit(img.numpy()[..., b].ravel(), out[..., b].ravel(), 1)
        assert 0.9 <= gain <= 1.1 and -0.1 <= bias <= 0.1


def test_augment_sample_aligned_and_seeded():
    img, lab = _label_encoded()
    a = augment_sample(img, lab, tf.constant([4, 2], tf.int64), use_jitter=False)
    b = augment_sample(img, lab, tf.constant([4, 2], tf.int64), use_jitter=False)
    np.testing.assert_array_equal(a[0].numpy()[..., 0], a[1].numpy())
    np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    ks = {augment_sample(img, lab, tf.constant([i, 0], tf.int64))[1].numpy().tobytes() for i in range(40)}
    assert len(ks) == 8  # every dihedral element is drawn
