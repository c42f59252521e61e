"""Issue 15 end to end: a binary (one sigmoid output) model trained by geoseg predicts and
evaluates through the same path as a softmax model trained on the same tiled data."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from geoseg.evaluation import evaluate
from geoseg.inference import predict_scene
from geoseg.tiling.tiler import TileConfig, run_tiling
from geoseg.training import TrainConfig, fit

from factories import write_raster


def _scene(tmp_path):
    """96 x 128 px, 3 bands: bright 'buildings' (class 1) on a darker, noisy background."""
    rng = np.random.default_rng(0)
    lab = np.zeros((96, 128), np.uint8)
    for r, c, h, w in [(8, 10, 20, 30), (50, 70, 30, 25), (60, 8, 18, 18), (10, 90, 25, 20)]:
        lab[r:r + h, c:c + w] = 1
    img = np.where(lab[None] == 1, 190, 60) + rng.normal(0, 12, (3, 96, 128))
    scene = write_raster(tmp_path / "scene.tif", np.clip(img, 1, 255).astype(np.uint8), nodata=0)
    labels = write_raster(tmp_path / "labels.tif", lab, nodata=255)
    return scene, labels, lab


@pytest.mark.slow
def test_binary_and_softmax_models_share_the_data_path(tmp_path, model_fn):
    scene, labels, truth = _scene(tmp_path)
    run_tiling(TileConfig(scenes=(str(scene),), labels=(str(labels),), out=str(tmp_path / "ds"), size=32,
                          stride=16, split="random", val_fraction=0.2, classes="background,building", quiet=True))
    results = {}
    for name, extra in (("binary", {"model_args": {"num_classes": 1}, "loss": "bce+dice"}), ("softmax", {})):
        cfg = TrainConfig(dataset=str(tmp_path / "ds"), out=str(tmp_path / f"b_{name}"), epochs=12, batch_size=8,
                          lr=0.02, warmup_epochs=0, quiet=True, seed=1, tensorboard=False, **extra)
        bundle = fit(cfg, model_fn=model_fn).bundle
        pred = predict_scene(bundle, scene, tmp_path / f"pred_{name}", blend="spline", overwrite=True, progress=False)
        with rasterio.open(pred.label) as ds:
            label = ds.read(1)
            tags = ds.tags()
        with rasterio.open(pred.prob) as ds:
            prob_bands = ds.count
        report = evaluate([pred.label], [labels], num_classes=2)
        reference = np.bincount(truth.ravel().astype(int) * 2 + label.ravel(), minlength=4).reshape(2, 2)
        np.testing.assert_array_equal(np.asarray(report.confusion), reference)
        results[name] = (label, prob_bands, tags, report.metrics)
    b_label, b_bands, b_tags, b_metrics = results["binary"]
    s_label, s_bands, s_tags, s_metrics = results["softmax"]
    assert (b_bands, s_bands) == (1, 2)  # binary: one band, p of class 1
    assert b_tags["GEOSEG_THRESHOLD"] == "0.5" and "GEOSEG_THRESHOLD" not in s_tags
    assert set(np.unique(b_label)) <= {0, 1}
    assert b_metrics.overall_accuracy > 0.95 and s_metrics.overall_accuracy > 0.95  # both learned the scene
    assert (b_label == s_label).mean() > 0.97
