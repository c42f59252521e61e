"""End to end: sample scene -> tile (spatial val split) -> train a small U-Net on CPU -> it learned.

Threshold (documented in geoseg/training/README.md): validation mIoU >= 0.50, at least 0.25 above
the majority-class baseline (predict background everywhere, about 0.13 here), and the sparse
``building`` class (7% of training pixels) at IoU >= 0.30. With seed 0 the run reaches
mIoU 0.73 / building IoU 0.84 (baseline mIoU 0.137) in about 16 s of training on 2 CPU cores.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from geoseg.apps.sample import make_sample
from geoseg.cli.tile import main as tile_main
from geoseg.evaluation.confusion import confusion_matrix
from geoseg.evaluation.metrics import compute_metrics
from geoseg.io.bundle import load_bundle
from geoseg.training import TrainConfig, fit
from geoseg.training.data import PatchReader, load_dataset, split_rows
from geoseg.training.pipeline import make_tf_dataset

MIN_MIOU = 0.50
MIN_GAIN_OVER_MAJORITY = 0.25
MIN_BUILDING_IOU = 0.30


@pytest.mark.slow
def test_unet_learns_sample_scene(tmp_path):
    # Sample seed 3: at 512 px every class falls on both sides of the spatial split.
    sample = make_sample(tmp_path / "sample", size=512, seed=3)
    ds = tmp_path / "dataset"
    assert tile_main([str(sample.scene), "--labels", str(sample.labels), "--classes", str(sample.classes),
                      "--size", "64", "--stride", "64", "--split", "spatial", "--block-size", "128",
                      "--val-fraction", "0.25", "--out", str(ds), "--quiet"]) == 0

    # Defaults (ce+dice, auto class weights, cosine with warm-up, dihedral augmentation) except a
    # CPU-sized U-Net and a higher peak LR for a 10-epoch budget.
    res = fit(TrainConfig(dataset=str(ds), out=str(tmp_path / "bundle"), model="unet", epochs=10, lr=5e-3,
                          model_args={"encoder_depth": 3, "encoder_filters": 16, "dropout": 0.0},
                          tensorboard=False, quiet=True))

    # Majority-class baseline on the same validation pixels.
    info = load_dataset(ds)
    _, val_rows = split_rows(info)
    reader = PatchReader(info, val_rows)
    labels = np.stack([reader.read(i)[1] for i in range(len(reader))])
    majority = int(np.argmax(info.meta["class_counts"]["train"]))
    base = compute_metrics(confusion_matrix(labels, np.full_like(labels, majority), info.num_classes)).mean_iou

    m = res.metrics
    assert m["miou"] >= MIN_MIOU, m
    assert m["miou"] >= base + MIN_GAIN_OVER_MAJORITY, (m, base)
    assert m["iou"]["building"] >= MIN_BUILDING_IOU, m

    # The bundle reloads and predicts exactly what the trained model predicts.
    bundle = load_bundle(res.bundle)
    meta = json.loads((res.bundle / "geoseg.json").read_text())
    x, y = next(iter(make_tf_dataset(reader, meta["normalization"], info.nodata, 8, training=False)))
    np.testing.assert_array_equal(bundle.model.predict(x, verbose=0), res.model.predict(x, verbose=0))
    assert meta["model"]["name"] == "unet" and meta["tile_size"] == 64 and meta["stride"] == 32
