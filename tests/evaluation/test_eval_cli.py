"""``python -m geoseg.evaluate`` through its entry point: reports, modes, class names, every bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio
from affine import Affine

from geoseg.cli.evaluate import main
from geoseg.evaluation import confusion_matrix, evaluate

from factories import write_raster


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(11)
    truth = rng.integers(0, 3, (48, 64)).astype(np.uint8)
    truth[:2] = 255
    pred = np.where(rng.random(truth.shape) < 0.75, truth, rng.integers(0, 3, truth.shape)).astype(np.uint8)
    pred[truth == 255] = rng.integers(0, 3, int((truth == 255).sum()))
    return (write_raster(tmp_path / "scene_pred.tif", pred), write_raster(tmp_path / "scene.tif", truth, nodata=255),
            truth, pred)


def test_report_json_csv_png(pair, tmp_path, capsys):
    prd, lab, truth, pred = pair
    out = tmp_path / "report"
    code = main([str(prd), "--labels", str(lab), "--num-classes", "3", "--classes", "water,forest,urban",
                 "--report", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "1 forest" in printed and "overall accuracy" in printed and "kappa" in printed
    doc = json.loads((out / "report.json").read_text())
    keep = truth != 255
    expected = confusion_matrix(truth[keep], pred[keep], 3)
    assert doc["confusion_matrix"] == expected.tolist()
    assert doc["confusion_matrix_axes"] == {"rows": "truth", "columns": "prediction"}
    assert [c["name"] for c in doc["per_class"]] == ["water", "forest", "urban"]
    assert doc["per_class"][1]["support"] == int(expected[1].sum())  # support = truth row
    assert doc["per_class"][1]["predicted"] == int(expected[:, 1].sum())
    assert doc["summary"]["overall_accuracy"] == pytest.approx(np.trace(expected) / expected.sum())
    assert doc["summary"]["excluded_pixels"] == int((~keep).sum())
    assert doc["inputs"][0]["alignment"] == "same grid" and "per_image" not in doc
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert [r["name"] for r in rows if r["kind"] == "class"] == ["water", "forest", "urban"]
    summary = {r["name"]: float(r["value"]) for r in rows if r["kind"] == "summary"}
    assert summary["mean_iou"] == pytest.approx(doc["summary"]["mean_iou"])
    assert summary["pixels"] == expected.sum()
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*.tmp-*"))

    # an existing report is refused before any reading, then replaced with --overwrite
    code = main([str(prd), "--labels", str(lab), "--num-classes", "3", "--report", str(out)])
    assert code == 1
    assert "report exists" in capsys.readouterr().err
    assert main([str(prd), "--labels", str(lab), "--num-classes", "3", "--report", str(out), "--overwrite"]) == 0


def test_per_image_versus_global(tmp_path, capsys):
    rng = np.random.default_rng(2)
    (tmp_path / "pred").mkdir()
    (tmp_path / "lab").mkdir()
    truths = [rng.integers(0, 2, (20, 30)).astype(np.uint8), rng.integers(0, 2, (40, 50)).astype(np.uint8)]
    preds = [truths[0].copy(), np.zeros((40, 50), np.uint8)]  # a perfect small image, a poor big one
    for name, t, p in zip(("a", "b"), truths, preds):
        write_raster(tmp_path / "lab" / f"{name}.tif", t)
        write_raster(tmp_path / "pred" / f"{name}_label.tif", p)
    glob_res = evaluate(tmp_path / "pred", tmp_path / "lab", 2)
    per_res = evaluate(tmp_path / "pred", tmp_path / "lab", 2, mode="per_image")
    total = confusion_matrix(truths[0], preds[0], 2) + confusion_matrix(truths[1], preds[1], 2)
    np.testing.assert_array_equal(glob_res.confusion, total)
    np.testing.assert_array_equal(per_res.confusion, total)
    acc_b = (truths[1] == 0).mean()
    assert per_res.metrics.overall_accuracy == pytest.approx((1.0 + acc_b) / 2)  # mean of images
    assert glob_res.metrics.overall_accuracy == pytest.approx((600 + (truths[1] == 0).sum()) / 2600)  # pixel-weighted
    out = tmp_path / "rep"
    assert main([str(tmp_path / "pred"), "--labels", str(tmp_path / "lab"), "--num-classes", "2",
                 "--mode", "per_image", "--report", str(out)]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert [i["summary"]["overall_accuracy"] for i in doc["per_image"]] == pytest.approx([1.0, acc_b])
    assert "per-class metrics averaged over 2 image(s)" in capsys.readouterr().out


def test_classes_from_prediction_tag_and_config(pair, tmp_path, capsys):
    prd, lab, *_ = pair
    with rasterio.open(prd, "r+") as ds:
        ds.update_tags(GEOSEG_CLASSES=json.dumps([{"index": 0, "name": "sea", "color": [0, 0, 255]},
                                                  {"index": 1, "name": "wood", "color": [0, 255, 0]},
                                                  {"index": 2, "name": "town", "color": [255, 0, 0]}]))
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"labels: [{lab}]\nignore-background: true\n")
    assert main([str(prd), "--config", str(cfg)]) == 0  # num-classes from the tag
    out = capsys.readouterr().out
    assert "1 wood" in out and "2 town" in out and "class 0 ignored" in out


@pytest.mark.parametrize("case,message", [
    ("missing", "no such file"),
    ("no_overlap", "does not overlap"),
    ("bands", "has 3 bands; expected 1"),
    ("too_few_classes", "holds class value(s) 2 (expected 0..1 for --num-classes 2"),
    ("unpaired", "prediction(s) without a label"),
    ("classes_vs_num", "defines 3 classes"),
])
def test_bad_inputs_exit_1_with_one_line(pair, tmp_path, capsys, case, message):
    prd, lab, *_ = pair
    args = [str(prd), "--labels", str(lab), "--num-classes", "3"]
    if case == "missing":
        args[2] = str(tmp_path / "nope.tif")
    elif case == "no_overlap":
        far = Affine(0.5, 0, 100000.0, 0, -0.5, 1000000.0)
        args[2] = str(write_raster(tmp_path / "far.tif", np.zeros((10, 10), np.uint8), transform=far))
    elif case == "bands":
        args[2] = str(write_raster(tmp_path / "rgb.tif", np.zeros((3, 48, 64), np.uint8)))
    elif case == "too_few_classes":
        args[4] = "2"
    elif case == "unpaired":
        for d, name in (("p", "other_label.tif"), ("l", "scene.tif")):
            (tmp_path / d).mkdir()
            write_raster(tmp_path / d / name, np.zeros((4, 4), np.uint8))
        args[0] = str(tmp_path / "p")
        args[2] = str(tmp_path / "l")
    elif case == "classes_vs_num":
        args = [str(prd), "--labels", str(lab), "--num-classes", "2", "--classes", "a,b,c"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_bad_usage_exit_2(pair, capsys):
    prd, lab, *_ = pair
    with pytest.raises(SystemExit) as info:
        main([str(prd), "--labels", str(lab), "--mode", "bogus"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main([str(prd), "--labels", str(lab), "--label-field", "a", "--burn-value", "1"])
    assert info.value.code == 2
    capsys.readouterr()
    assert main([str(prd), "--num-classes", "3"]) == 2  # a required option missing is bad usage too
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--labels LABEL" in err and "is required" in err and err.count("\n") == 1
