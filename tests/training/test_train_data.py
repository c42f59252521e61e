"""Input pipeline: dataset reading, splits, masking, normalization, cache, shapes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio

from geoseg.errors import DatasetError, InputNotFoundError
from geoseg.training.data import (
    CACHE_DIR,
    PatchReader,
    cache_arrays,
    class_counts,
    load_dataset,
    normalization_for,
    open_split,
    spatial_holdout,
    split_rows,
)
from geoseg.training.pipeline import make_tf_dataset


def _read_pair(ds, row):
    with rasterio.open(ds / row["image"]) as s:
        img = s.read()
    with rasterio.open(ds / row["label"]) as s:
        lab = s.read(1)
    return img, lab


def test_reader_masks_nodata_and_unlabeled(tiny_dataset):
    ds = tiny_dataset()
    info = load_dataset(ds)
    train, val = split_rows(info)
    assert (len(train), len(val)) == (8, 4)
    reader = PatchReader(info, train, ignore_index=255)
    img, lab = reader.read(0)
    raw_img, raw_lab = _read_pair(ds, train[0])
    assert img.shape == (32, 32, 4) and img.dtype == np.uint8 and lab.shape == (32, 32)
    np.testing.assert_array_equal(img, np.moveaxis(raw_img, 0, -1))
    assert (lab[:4, :4] == 255).all()  # unlabeled in the label patch
    assert (lab[-3:, -3:] == 255).all() and (raw_lab[-3:, -3:] != 255).all()  # image nodata -> ignored
    keep = np.ones_like(lab, bool)
    keep[:4, :4] = keep[-3:, -3:] = False
    np.testing.assert_array_equal(lab[keep], raw_lab[keep])


def test_custom_ignore_index_remaps_unlabeled(tiny_dataset):
    info = load_dataset(tiny_dataset())
    _, lab = PatchReader(info, split_rows(info)[0], ignore_index=7).read(0)
    assert (lab[:4, :4] == 7).all() and (lab[-3:, -3:] == 7).all()


@pytest.mark.parametrize("cache", [True, False])
def test_tf_dataset_shapes_and_meanstd(tiny_dataset, cache):
    ds = tiny_dataset()
    info = load_dataset(ds)
    train, val = split_rows(info)
    norm = normalization_for(info, "meanstd")
    source = open_split(info, val, "val", ignore_index=255, cache=cache, fallback_dir=None)
    batches = list(make_tf_dataset(source, norm, info.nodata, 3, training=False))
    assert [tuple(b[0].shape) for b in batches] == [(3, 32, 32, 4), (1, 32, 32, 4)]
    x, y = batches[0]
    assert x.dtype.name == "float32" and y.dtype.name == "uint8" and tuple(y.shape) == (3, 32, 32)
    raw, _ = _read_pair(ds, val[0])
    mean, std = np.array(norm["mean"]), np.array(norm["std"])
    expect = (np.moveaxis(raw, 0, -1) - mean) / std
    expect[-3:, -3:] = 0.0  # nodata pixels are zeroed after normalization
    np.testing.assert_allclose(x[0].numpy(), expect, rtol=1e-5, atol=1e-5)


def test_percentile_normalization_clips_to_unit_range(tiny_dataset):
    info = load_dataset(tiny_dataset())
    norm = normalization_for(info, "percentile")
    assert norm["method"] == "minmax" and norm["min"] == info.meta["statistics"]["p2"]
    arrays = cache_arrays(PatchReader(info, split_rows(info)[1]), "val")
    x, _ = next(iter(make_tf_dataset(arrays, norm, info.nodata, 4, training=False)))
    x = x.numpy()
    assert x.min() >= 0.0 and x.max() <= 1.0 and 0.05 < x.mean() < 0.95


def test_training_dataset_repeats_shuffles_augments(tiny_dataset):
    info = load_dataset(tiny_dataset())
    arrays = cache_arrays(PatchReader(info, split_rows(info)[0]), "train")
    ds = make_tf_dataset(arrays, None, info.nodata, 4, training=True, augment=True, seed=3)
    batches = [b for _, b in zip(range(5), ds)]  # 5 batches > 2 per epoch: repeats forever
    assert all(tuple(x.shape) == (4, 32, 32, 4) for x, _ in batches)
    # Same seed, same stream (reproducible); another seed, another stream.
    again = [b for _, b in zip(range(5), make_tf_dataset(arrays, None, info.nodata, 4, training=True, seed=3))]
    other = [b for _, b in zip(range(5), make_tf_dataset(arrays, None, info.nodata, 4, training=True, seed=4))]
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(batches, other))
    # The first epoch is a permutation of all 8 patches, and dihedral augmentation only moves
    # pixels: the multiset of per-patch class histograms is unchanged.
    seen = sorted(tuple(np.bincount(lab.ravel(), minlength=256)) for _, y in batches[:2] for lab in y.numpy())
    orig = sorted(tuple(np.bincount(np.asarray(lab).ravel(), minlength=256)) for lab in arrays.labels)
    assert seen == orig


def test_pipelines_run_without_autotuning(tiny_dataset):
    # tf.data's autotuning thread sleeps up to a minute between rounds and an iterator's
    # destructor waits for it: the end of model.fit stalled 0-55 s (runs overshot --time-budget).
    info = load_dataset(tiny_dataset())
    arrays = cache_arrays(PatchReader(info, split_rows(info)[0]), "train")
    for training in (True, False):
        ds = make_tf_dataset(arrays, None, info.nodata, 4, training=training)
        assert ds.options().autotune.enabled is False
        assert tuple(next(iter(ds))[0].shape) == (4, 32, 32, 4)


def test_cache_is_reused_and_rebuilt_on_change(tiny_dataset):
    ds = tiny_dataset()
    info = load_dataset(ds)
    reader = PatchReader(info, split_rows(info)[1])
    a = cache_arrays(reader, "val")
    files = sorted((ds / CACHE_DIR).glob("*.npy"))
    assert len(files) == 2 and a.images.shape == (4, 32, 32, 4) and a.labels.shape == (4, 32, 32)
    for i in range(4):
        img, lab = reader.read(i)
        np.testing.assert_array_equal(a.images[i], img)
        np.testing.assert_array_equal(a.labels[i], lab)
    mtimes = [f.stat().st_mtime_ns for f in files]
    cache_arrays(reader, "val")
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # reused, not rewritten
    # Rewriting a patch changes the key: a new shard is built.
    row = reader.rows[0]
    with rasterio.open(ds / row["label"], "r+") as s:
        s.write(np.zeros((1, 32, 32), np.uint8))
    b = cache_arrays(reader, "val")
    assert len(list((ds / CACHE_DIR).glob("*.npy"))) == 4 and b.labels[0][10, 10] == 0


def test_npy_format_reads_like_tif(tiny_dataset):
    tif = load_dataset(tiny_dataset("t", fmt="tif"))
    npy = load_dataset(tiny_dataset("n", fmt="npy"))
    for i in range(2):
        a = PatchReader(tif, split_rows(tif)[0]).read(i)
        b = PatchReader(npy, split_rows(npy)[0]).read(i)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_spatial_holdout_drops_straddling_patches():
    rows = [{"scene": "s", "col_off": c, "width": 32, "row_off": 0} for c in range(0, 320, 16)]  # stride 16
    train, val = spatial_holdout(rows, 0.25)
    cut = 336 - 0.25 * 336
    assert all(int(r["col_off"]) >= cut for r in val)
    assert all(int(r["col_off"]) + 32 <= cut for r in train)
    assert max(int(r["col_off"]) + 32 for r in train) <= min(int(r["col_off"]) for r in val)
    assert len(train) + len(val) < len(rows)  # the patch straddling the cut is dropped


def test_val_from_train_and_missing_val(tiny_dataset):
    ds = tiny_dataset(n_val=0)
    info = load_dataset(ds)
    with pytest.raises(DatasetError, match="no validation patches.*--val-from train"):
        split_rows(info)
    train, val = split_rows(info, "train", 0.25)
    assert len(train) == 6 and len(val) == 2


def test_class_counts_from_index(tiny_dataset):
    info = load_dataset(tiny_dataset())
    train = split_rows(info)[0]
    np.testing.assert_array_equal(class_counts(train, 3), info.meta["class_counts"]["train"])


def test_bad_datasets(tmp_path, tiny_dataset):
    with pytest.raises(InputNotFoundError):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no dataset.json"):
        load_dataset(tmp_path / "empty")
    ds = tiny_dataset()
    with (ds / "index.csv").open() as f:
        header = f.readline()
    (ds / "index.csv").write_text(header)
    with pytest.raises(DatasetError, match="no patches"):
        load_dataset(ds)


def test_label_beyond_num_classes(tiny_dataset):
    ds = tiny_dataset()
    meta = json.loads((ds / "dataset.json").read_text())
    meta["num_classes"] = 2
    meta["classes"] = meta["classes"][:2]
    (ds / "dataset.json").write_text(json.dumps(meta))
    info = load_dataset(ds)
    with pytest.raises(DatasetError, match="holds class 2 but dataset.json defines 2 classes"):
        cache_arrays(PatchReader(info, split_rows(info)[0]), "train")
    with pytest.raises(DatasetError, match="holds class 2"):  # --no-cache checks all labels up front
        open_split(info, split_rows(info)[0], "train", ignore_index=255, cache=False, fallback_dir=None)


def test_missing_patch_file(tiny_dataset):
    ds = tiny_dataset()
    with (ds / "index.csv").open() as f:
        first = next(csv.DictReader(f))
    (ds / first["image"]).unlink()
    info = load_dataset(ds)
    with pytest.raises(DatasetError, match="missing"):
        PatchReader(info, split_rows(info)[0]).read(0)
