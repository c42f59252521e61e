"""Labels that cover only part of a scene: the uncovered pixels are unlabeled (255, never background)
and the covered share is reported when it is under half the scene, by tile and evaluate alike."""

from __future__ import annotations

import logging

import numpy as np
import rasterio

from geoseg.cli.evaluate import main as evaluate
from geoseg.cli.tile import main as tile

from factories import DEFAULT_TRANSFORM, write_raster


def _quarter_labels(tmp_path):
    """A 64 x 64 scene and a label raster on its grid covering its top-left 32 x 32 px (one quarter)."""
    rng = np.random.default_rng(3)
    scene = write_raster(tmp_path / "scene.tif", rng.integers(1, 255, (3, 64, 64)).astype(np.uint8), nodata=0)
    classes = (np.arange(32 * 32).reshape(32, 32) % 3).astype(np.uint8)
    labels = write_raster(tmp_path / "quarter.tif", classes, nodata=255)  # same origin and pixel size
    return scene, labels, classes


def test_tile_marks_uncovered_pixels_unlabeled_and_warns_with_the_share(tmp_path, caplog):
    scene, labels, classes = _quarter_labels(tmp_path)
    out = tmp_path / "ds"
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        assert tile([str(scene), "--labels", str(labels), "--size", "32", "--val-fraction", "0",
                     "--out", str(out), "--quiet"]) == 0
    assert "quarter.tif covers 25.0 % of" in caplog.text and "ignored, 255" in caplog.text
    with rasterio.open(out / "labels" / "scene_r0_c0.tif") as ds:
        assert np.array_equal(ds.read(1), classes)  # the covered quarter, as drawn
    for name in ("scene_r0_c32.tif", "scene_r32_c0.tif", "scene_r32_c32.tif"):
        with rasterio.open(out / "labels" / name) as ds:
            assert (ds.read(1) == 255).all(), name  # no label: ignored, not background


def test_evaluate_scores_only_the_covered_pixels_and_warns(tmp_path, caplog, capsys):
    _, labels, classes = _quarter_labels(tmp_path)
    pred = np.zeros((64, 64), np.uint8)
    pred[:32, :32] = classes
    pred_path = write_raster(tmp_path / "scene_label.tif", pred, nodata=255)
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        assert evaluate([str(pred_path), "--labels", str(labels), "--num-classes", "3"]) == 0
    assert "covers 25.0 % of" in caplog.text
    out = capsys.readouterr().out
    assert "pixels evaluated 1,024   excluded 3,072" in out and "kappa 1.0000" in out  # the covered quarter only


def test_labels_covering_most_of_the_scene_raise_no_warning(tmp_path, caplog):
    rng = np.random.default_rng(4)
    scene = write_raster(tmp_path / "scene.tif", rng.integers(1, 255, (3, 64, 64)).astype(np.uint8), nodata=0)
    shifted = DEFAULT_TRANSFORM * DEFAULT_TRANSFORM.translation(8, 0)  # 8 px to the right: 87.5 % covered
    labels = write_raster(tmp_path / "labels.tif", np.ones((64, 64), np.uint8), transform=shifted)
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        assert tile([str(scene), "--labels", str(labels), "--size", "32", "--out", str(tmp_path / "ds"),
                     "--quiet"]) == 0
    assert "covers" not in caplog.text
