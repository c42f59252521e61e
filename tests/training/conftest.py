"""A tiny dataset folder written exactly per the dataset contract (docs/design.md), and a tiny model."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLASS_COLORS = [(0, 0, 0), (230, 25, 75), (0, 130, 200)]
#: Mean pixel value per class and band: classes differ by color, so a 3x3 conv net learns them.
CLASS_MEANS = np.array([[60, 60, 60, 60], [190, 70, 60, 140], [60, 170, 90, 30]], np.float32)


def _labels(rng, size, num_classes):
    lab = np.zeros((size, size), np.uint8)
    for _ in range(4):
        c = int(rng.integers(1, num_classes))
        r0, c0 = rng.integers(0, size - 6, 2)
        h, w = rng.integers(4, size // 2, 2)
        lab[r0:r0 + h, c0:c0 + w] = c
    return lab


def write_dataset(root: Path, n_train: int = 8, n_val: int = 4, size: int = 32, bands: int = 4,
                  num_classes: int = 3, nodata: int | None = 0, fmt: str = "tif", seed: int = 0,
                  unlabeled_corner: bool = True, nodata_corner: bool = True) -> Path:
    """Write ``images/``, ``labels/``, ``index.csv`` and ``dataset.json`` exactly per the contract.

    Patches lie on one 0.5 m UTM 33N scene grid, ``size`` px apart in a row (train first, then
    val, so the val patches are a spatial block east of the training ones). Each patch holds a few
    rectangles of classes 1..K-1 on class 0; pixel values are class means plus noise. With
    ``unlabeled_corner`` the top-left 4x4 label pixels are 255; with ``nodata_corner`` the
    bottom-right 3x3 image pixels are nodata in every band (labels there stay a real class,
    so the pipeline must mask them).
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rows = []
    counts = {"train": np.zeros(num_classes, np.int64), "val": np.zeros(num_classes, np.int64)}
    pixels = []
    for n in range(n_train + n_val):
        split = "train" if n < n_train else "val"
        lab = _labels(rng, size, num_classes)
        img = CLASS_MEANS[lab][..., :bands] + rng.normal(0, 15, (size, size, bands))
        img = np.clip(np.moveaxis(img, -1, 0), 1, 255).astype(np.uint8)
        if unlabeled_corner:
            lab[:4, :4] = 255
        if nodata_corner and nodata is not None:
            img[:, -3:, -3:] = nodata
        row_off, col_off = 0, n * size
        pid = f"scene_r{row_off}_c{col_off}"
        transform = Affine(0.5, 0, 500000.0 + col_off * 0.5, 0, -0.5, 4649776.0 - row_off * 0.5)
        if fmt == "npy":
            np.save(root / "images" / f"{pid}.npy", img)
            np.save(root / "labels" / f"{pid}.npy", lab)
            ext = "npy"
        else:
            prof = dict(driver="GTiff", width=size, height=size, crs="EPSG:32633", transform=transform)
            with rasterio.open(root / "images" / f"{pid}.tif", "w", count=bands, dtype="uint8", nodata=nodata,
                               **prof) as ds:
                ds.write(img)
            with rasterio.open(root / "labels" / f"{pid}.tif", "w", count=1, dtype="uint8", nodata=255,
                               **prof) as ds:
                ds.write(lab[None])
            ext = "tif"
        valid = ~(img == nodata).all(0) if nodata is not None else np.ones((size, size), bool)
        cnt = np.bincount(lab[valid & (lab != 255)], minlength=num_classes)[:num_classes]
        counts[split] += cnt
        if split == "train":
            pixels.append(img[:, valid].T)
        minx, maxy = transform * (0, 0)
        maxx, miny = transform * (size, size)
        rows.append({"id": pid, "scene": "scene.tif", "split": split, "row_off": row_off, "col_off": col_off,
                     "width": size, "height": size, "minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy,
                     "crs": "EPSG:32633", "nodata_fraction": float(1 - valid.mean()),
                     "labeled_fraction": float((lab != 255).mean()), "image": f"images/{pid}.{ext}",
                     "label": f"labels/{pid}.{ext}", **{f"count_{k}": int(cnt[k]) for k in range(num_classes)}})
    with (root / "index.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    px = np.concatenate(pixels).astype(np.float64)
    classes = [{"index": k, "name": ["background", "building", "water"][k] if k < 3 else f"class_{k}",
                "color": list(CLASS_COLORS[k % 3])} for k in range(num_classes)]
    meta = {
        "format_version": 1, "geoseg_version": "0.1.0", "format": fmt,
        "bands": list(range(1, bands + 1)), "band_names": ["red", "green", "blue", "nir"][:bands],
        "dtype": "uint8", "nodata": nodata, "tile_size": size, "classes": classes,
        "num_classes": num_classes, "ignore_index": 255,
        "statistics": {"mean": px.mean(0).tolist(), "std": px.std(0).tolist(), "min": px.min(0).tolist(),
                       "max": px.max(0).tolist(), "p2": np.percentile(px, 2, 0).tolist(),
                       "p98": np.percentile(px, 98, 0).tolist(), "pixels": int(px.shape[0])},
        "class_counts": {k: v.tolist() for k, v in counts.items()},
        "patches": {"train": n_train, "val": n_val},
        "scenes": [{"path": "scene.tif", "width": size * (n_train + n_val), "height": size, "crs": "EPSG:32633",
                    "transform": [0.5, 0, 500000.0, 0, -0.5, 4649776.0]}],
        "parameters": {"mode": "stride", "size": size, "stride": size},
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))
    return root


@pytest.fixture
def tiny_dataset(tmp_path):
    """Factory: ``tiny_dataset(**kwargs)`` -> dataset folder (see ``write_dataset``)."""

    def _make(name="ds", **kwargs):
        return write_dataset(tmp_path / name, **kwargs)

    return _make


def tiny_model(num_classes: int, input_shape, filters: int = 8):
    """Two convolutions: enough to learn the per-pixel class colors of ``write_dataset``."""
    import keras

    inp = keras.Input(input_shape)
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(inp)
    act = "sigmoid" if num_classes == 1 else "softmax"
    out = keras.layers.Conv2D(num_classes, 1, activation=act)(x)
    return keras.Model(inp, out, name="tiny")


@pytest.fixture
def model_fn():
    return tiny_model

