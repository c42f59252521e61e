"""A careful plain-Keras reference for ``bench_accuracy.py``: the baseline geoseg is compared with.

What ``../shared/notes/real-data-accuracy.md`` describes as the plain script that did best on a
held-out SpaceNet-4 scene, written without geoseg (rasterio, numpy, Keras only):

- its own small U-Net (3 poolings, 16-32-64 filters, a 128-filter bridge; two 3x3 conv + batch
  norm + ReLU per level, 2x2 transposed-conv up-sampling; about the size of geoseg's
  ``unet`` with ``encoder_depth=3, encoder_filters=16``);
- per-band mean/std normalization from the training columns;
- on the fly, for every step, ``batch`` random ``size`` px windows whose top-left corner is drawn
  uniformly so that the window lies inside the training columns, each with a random one of the
  8 dihedral transforms (D4);
- loss = cross-entropy + (1 - soft dice of the foreground class over the batch);
- Adam, constant learning rate 1e-3, batch 8; no validation set: training stops at the time
  budget and the last weights are used;
- prediction: the whole scene in ``size`` px windows every ``size // 2`` px (the last row and
  column snapped to the scene edge), softmax probabilities averaged where windows overlap, argmax.

Run it alone (prints the scores on the unseen columns), or through ``bench_accuracy.py
--reference``, which runs it beside geoseg on the same split and machine::

    python benchmarks/bench_accuracy_reference.py --budget 10m --fold left --seed 0
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np


def small_unet(bands: int, classes: int = 2, filters: int = 16, depth: int = 3):
    """A plain U-Net with batch norm: ``(None, None, bands)`` -> ``(None, None, classes)`` softmax."""
    import keras
    from keras import layers

    def block(x, f):
        for _ in range(2):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False, kernel_initializer="he_normal")(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        return x

    inp = keras.Input((None, None, bands))
    x, skips = inp, []
    for level in range(depth):
        x = block(x, filters * 2**level)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = block(x, filters * 2**depth)
    for level in range(depth - 1, -1, -1):
        x = layers.Conv2DTranspose(filters * 2**level, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([skips[level], x])
        x = block(x, filters * 2**level)
    out = layers.Conv2D(classes, 1, activation="softmax", dtype="float32")(x)
    return keras.Model(inp, out, name="reference_unet")


def ce_fg_dice(y_true, y_pred):
    """Mean cross-entropy + (1 - soft dice over the batch, averaged over the foreground classes 1..K-1).

    ``y_true`` (N, H, W) int class indices, ``y_pred`` (N, H, W, K) softmax probabilities.
    """
    import tensorflow as tf

    y = tf.cast(y_true, tf.int32)
    p = tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-7, 1.0)
    g = tf.one_hot(y, p.shape[-1])
    ce = -tf.reduce_mean(tf.reduce_sum(g * tf.math.log(p), -1))
    inter = tf.reduce_sum(p[..., 1:] * g[..., 1:], [0, 1, 2])
    dice = (2.0 * inter + 1.0) / (tf.reduce_sum(p[..., 1:], [0, 1, 2]) + tf.reduce_sum(g[..., 1:], [0, 1, 2]) + 1.0)
    return ce + 1.0 - tf.reduce_mean(dice)


def d4(img: np.ndarray, lab: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Dihedral transform ``k`` (0..7) of ``img`` (H, W, C) and ``lab`` (H, W)."""
    img, lab = np.rot90(img, k % 4), np.rot90(lab, k % 4)
    if k >= 4:
        img, lab = img[:, ::-1], lab[:, ::-1]
    return img, lab


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Window offsets every ``stride`` px, the last one snapped to end at ``length``."""
    starts = list(range(0, max(length - size, 0) + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def train_and_predict(image: np.ndarray, truth: np.ndarray, cols: tuple[int, int], budget_s: float, seed: int = 0,
                      size: int = 128, batch: int = 8, lr: float = 1e-3, classes: int = 2) -> dict:
    """Train on the columns ``cols`` = ``[c0, c1)`` of the scene for ``budget_s`` seconds and predict the scene.

    Args:
        image: the scene, ``(H, W, C)`` (any numeric dtype).
        truth: class indices ``(H, W)``, 0 = background, 1..classes-1 = foreground classes.
        cols: the training columns, in pixels.
        budget_s: wall-clock seconds of training (the model build and first step included).

    Returns:
        ``pred`` (H, W) uint8 class indices, ``train_s``, ``steps``, ``params``.
    """
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    c0, c1 = cols
    area = image[:, c0:c1].astype(np.float32)
    mean = area.reshape(-1, area.shape[-1]).mean(0)
    std = area.reshape(-1, area.shape[-1]).std(0) + 1e-6
    x_all = (image.astype(np.float32) - mean) / std
    h = image.shape[0]
    model = small_unet(image.shape[-1], classes)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=ce_fg_dice, jit_compile=False)
    steps = 0
    while time.perf_counter() - t0 < budget_s:
        xb = np.empty((batch, size, size, x_all.shape[-1]), np.float32)
        yb = np.empty((batch, size, size), np.int32)
        for i in range(batch):
            r = int(rng.integers(0, h - size + 1))
            c = int(rng.integers(c0, c1 - size + 1))
            img, lab = d4(x_all[r:r + size, c:c + size], truth[r:r + size, c:c + size], int(rng.integers(0, 8)))
            xb[i], yb[i] = img, lab
        model.train_on_batch(xb, yb)
        steps += 1
    train_s = time.perf_counter() - t0
    acc = np.zeros(truth.shape + (classes,), np.float64)
    hits = np.zeros(truth.shape, np.float64)
    tiles = [(r, c) for r in window_starts(h, size, size // 2) for c in window_starts(image.shape[1], size, size // 2)]
    for k in range(0, len(tiles), 16):
        part = tiles[k:k + 16]
        probs = model.predict(np.stack([x_all[r:r + size, c:c + size] for r, c in part]), verbose=0)
        for (r, c), p in zip(part, probs, strict=True):
            acc[r:r + size, c:c + size] += p
            hits[r:r + size, c:c + size] += 1
    pred = (acc / hits[..., None]).argmax(-1).astype(np.uint8)
    return {"pred": pred, "train_s": train_s, "steps": steps, "params": model.count_params()}


def main(argv: list[str] | None = None) -> int:
    import math

    import rasterio
    from bench_accuracy import SN4_LABELS, SN4_SCENE, scores, truth_raster

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", default="10m", help="training seconds (s/m suffix allowed)")
    p.add_argument("--fold", choices=("left", "right"), default="left",
                   help="left: train on the left --train-fraction, score the rest; right: mirrored")
    p.add_argument("--train-fraction", type=float, default=0.6)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    budget = float(a.budget[:-1]) * 60 if a.budget.endswith("m") else float(a.budget.rstrip("s"))
    with rasterio.open(SN4_SCENE) as ds:
        image = ds.read([1, 2, 3]).transpose(1, 2, 0)
    truth = truth_raster(SN4_SCENE, SN4_LABELS, 1)
    w = truth.shape[1]
    cut = int(math.ceil(a.train_fraction * w))
    train_cols, test = ((0, cut), slice(cut, None)) if a.fold == "left" else ((w - cut, w), slice(None, w - cut))
    r = train_and_predict(image, truth, train_cols, budget, a.seed)
    m = scores(truth[:, test], r["pred"][:, test], 2)
    b = scores(truth[:, test], np.zeros_like(truth[:, test]), 2)
    print(f"fold {a.fold} seed {a.seed}: fg IoU {m['iou'][1]:.3f}, OA {m['oa']:.4f} (baseline {b['oa']:.4f}), "
          f"fg pred/true {100 * m['fg_pred']:.1f}/{100 * m['fg_true']:.1f} %, {r['steps']} steps in "
          f"{r['train_s']:.0f} s, {r['params'] / 1e6:.2f} M params, load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
