"""Training input as ``tf.data``: index stream (shuffled or balanced) -> read -> augment -> batch.

Patches come from a :class:`~geoseg.training.data.PatchReader` or cached
:class:`~geoseg.training.data.PatchArrays` through ``tf.numpy_function`` with parallel calls,
get their dihedral / scale-crop transform in their raw dtype, are batched, then normalized and
jittered per batch (vectorized), and prefetched.

Shapes: a batch is ``x`` ``(N, H, W, C)`` float32 (normalized, nodata pixels set to 0) and ``y``
``(N, H, W)`` uint8 class indices, with ``ignore_index`` wherever the label is unknown or the
image is nodata in every band, so such pixels never reach loss or metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from geoseg.errors import DatasetError
from geoseg.training.device import cpu_count
from geoseg.training.sampling import draw_share

if TYPE_CHECKING:
    from geoseg.training.data import PatchArrays, PatchReader


#: Batches prepared ahead of the model.
PREFETCH = 2


def map_parallelism() -> int:
    """Parallel calls of each ``map`` in the pipeline: the CPUs this process may use (affinity mask).

    Fixed, not autotuned (see :func:`make_tf_dataset`); each call is one patch read + transform
    (or one batch's normalization), so one per core keeps every core busy on a GPU host.
    """
    return cpu_count()


def index_stream(n: int, seed: int = 0, rare_mask: np.ndarray | None = None, balance: float = 0.0):
    """An endless ``tf.data.Dataset`` of patch indices (int64) for training.

    Without balancing: every epoch-length run of ``n`` draws is a fresh seeded permutation of
    ``0..n-1``. With ``balance`` ``P`` and a ``rare_mask`` ``(n,)`` (see
    :func:`geoseg.training.sampling.draw_share`): each draw comes with probability ``P`` from a
    reshuffled stream of the masked (rare-class) patches and otherwise from one of the others,
    so a share ``P`` of the draws hold a rare class.
    """
    import tensorflow as tf

    share = None if rare_mask is None else draw_share(np.asarray(rare_mask, bool), balance)
    if share is None:
        return tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    mask = np.asarray(rare_mask, bool)
    streams = []
    for j, idx in enumerate((np.flatnonzero(mask), np.flatnonzero(~mask))):
        ds = tf.data.Dataset.from_tensor_slices(idx.astype(np.int64))
        streams.append(ds.shuffle(len(idx), seed=seed + j, reshuffle_each_iteration=True).repeat())
    return tf.data.Dataset.sample_from_datasets(streams, weights=[share, 1.0 - share], seed=seed,
                                                stop_on_empty_dataset=False)


def make_tf_dataset(source: PatchReader | PatchArrays, normalization: dict | None, nodata: float | None,
                    batch_size: int, *, training: bool, augment: bool = True, scale_crop: bool = False,
                    seed: int = 0, image_dtype: str | np.dtype | None = None,
                    rare_mask: np.ndarray | None = None, balance: float = 0.0, start: int = 0):
    """A ``tf.data.Dataset`` of ``(x (B, H, W, C) float32, y (B, H, W) uint8)``.

    Training datasets draw from :func:`index_stream` (seeded shuffling, or balanced with
    ``rare_mask`` and ``balance``), repeat forever (use ``steps_per_epoch``) and augment;
    validation datasets are one ordered pass. ``start`` (training, a multiple of ``batch_size``)
    begins the stream at that draw, with the augmentation seeds it has there: the dataset then
    equals an unshifted one after ``start`` draws (``--resume`` continues the data exactly).
    """
    import tensorflow as tf

    from geoseg.training.augment import geometric, jitter

    n = len(source)
    parallel = map_parallelism()
    img0, _ = source.read(0)
    h, w, c = img0.shape
    dtype = np.dtype(image_dtype or img0.dtype)
    tf_dtype = tf.as_dtype(dtype)
    norm_fn = _tf_normalizer(normalization, nodata, c)

    def load(i):
        img, lab = tf.numpy_function(source.read, [i], [tf_dtype, tf.uint8], stateful=False)
        img.set_shape((h, w, c))
        lab.set_shape((h, w))
        return img, lab

    # Per patch: read and move pixels (raw dtype: cheap). Per batch: normalize and jitter,
    # vectorized over the batch, which costs far less than per-patch float work.
    augmenting = training and augment
    ds = index_stream(n, seed, rare_mask, balance).skip(start) if training else tf.data.Dataset.range(n)
    if augmenting:
        # Stateless seeds (seed, element counter) make the augmentation stream reproducible.
        seeds = tf.data.Dataset.counter(start).map(lambda k: tf.stack([tf.cast(seed, tf.int64), k]))

        def load_geo(i, s):
            img, lab = load(i)
            img, lab = geometric(img, lab, s, use_scale_crop=scale_crop)
            return tf.cast(img, tf.float32) if scale_crop else img, lab

        ds = tf.data.Dataset.zip((ds, seeds)).map(load_geo, num_parallel_calls=parallel)
    else:
        ds = ds.map(load, num_parallel_calls=parallel)
    ds = ds.batch(batch_size)
    if augmenting:
        batch_seeds = tf.data.Dataset.counter(start // batch_size).map(
            lambda k: tf.stack([tf.cast(seed, tf.int64) + 7919, k]))
        ds = tf.data.Dataset.zip((ds, batch_seeds)).map(lambda xy, s: (jitter(norm_fn(xy[0]), s), xy[1]),
                                                        num_parallel_calls=parallel)
    else:
        ds = ds.map(lambda x, y: (norm_fn(x), y), num_parallel_calls=parallel)
    ds = ds.prefetch(PREFETCH)
    opts = tf.data.Options()
    opts.deterministic = True
    # No autotuning: its background thread sleeps up to a minute between optimization rounds and
    # the iterator's destructor waits for it, so the end of ``model.fit`` stalled for 0-55 s
    # (measured: 629 s runs under a 600 s budget). Fixed parallelism is plenty: on CPU the model
    # is hundreds of times slower than this pipeline (benchmarks/README.md, "Training").
    opts.autotune.enabled = False
    return ds.with_options(opts)


def _tf_normalizer(norm: dict | None, nodata: float | None, bands: int):
    """In-graph version of :func:`geoseg.io.normalization.normalize` that zeroes nodata pixels.

    Works on one patch ``(H, W, C)`` or a batch ``(N, H, W, C)``.
    """
    import tensorflow as tf

    def fn(img):
        x = tf.cast(img, tf.float32)
        invalid = tf.reduce_all(tf.math.is_nan(x), axis=-1)
        if nodata is not None and not np.isnan(nodata):
            invalid = tf.logical_or(invalid, tf.reduce_all(tf.equal(x, float(nodata)), axis=-1))
        x = tf.where(tf.math.is_nan(x), 0.0, x)
        if norm is not None:
            if norm.get("method", "meanstd") == "meanstd":
                a = np.asarray(norm["mean"], np.float32)
                s = np.maximum(np.asarray(norm["std"], np.float32), 1e-6)
                x = (x - a) / s
            else:
                a = np.asarray(norm["min"], np.float32)
                s = np.maximum(np.asarray(norm["max"], np.float32) - a, 1e-6)
                x = tf.clip_by_value((x - a) / s, 0.0, 1.0)
            if a.shape[0] != bands:
                raise DatasetError(f"dataset.json statistics have {a.shape[0]} band(s) but the patches have {bands}")
        return tf.where(invalid[..., None], 0.0, x)

    return fn
