"""Binary models (one sigmoid output): predicted as (1 - p, p), one probability band, label p >= threshold.

The reference is an equivalent 2-class softmax model (``softmax([0, logit]) == sigmoid(logit)``)
predicted by the multi-class path on the same scenes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from geoseg.errors import BundleError, InvalidParameterError
from geoseg.inference import predict_scene
from geoseg.io.bundle import load_bundle, save_bundle

TILE = 32


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.tags(), ds.descriptions


def _assert_labels_match(label, label_ref, p):
    """Labels equal, except where p is within float rounding of 0.5 (sigmoid vs softmax kernels)."""
    differ = label != label_ref
    assert np.all(np.abs(p[differ] - 0.5) < 1e-5), np.abs(p[differ] - 0.5).max()
    assert differ.mean() < 1e-3


@pytest.mark.parametrize("mode,shape", [("stride", (90, 70)), ("per_image", (TILE, TILE)), ("per_image", (75, 50))])
@pytest.mark.parametrize("tta", [False, True])
def test_sigmoid_model_predicts_like_the_equivalent_softmax_model(binary_bundle_dirs, make_raster, tmp_path,
                                                                  mode, shape, tta):
    sig_dir, soft_dir = binary_bundle_dirs
    assert load_bundle(sig_dir).binary and not load_bundle(soft_dir).binary
    scene = make_raster("scene.tif", height=shape[0], width=shape[1], bands=4, seed=11)
    opts = dict(mode=mode, tta=tta, blend="gaussian", prob_dtype="float32", progress=False)
    sig = predict_scene(sig_dir, scene, tmp_path / "sig", **opts)
    soft = predict_scene(soft_dir, scene, tmp_path / "soft", **opts)
    (prob, tags, names), (label, _, _) = _read(sig.prob), _read(sig.label)
    (prob2, _, _), (label2, _, _) = _read(soft.prob), _read(soft.label)
    assert prob.shape == (1, *shape) and prob2.shape == (2, *shape)  # binary: ONE band, p of class 1
    assert names == ("building",) and tags["GEOSEG_THRESHOLD"] == "0.5"
    p = prob[0]
    np.testing.assert_allclose(p, prob2[1], atol=2e-6)
    assert 0.05 < (label[0] == 1).mean() < 0.95  # the model really separates the classes
    _assert_labels_match(label[0], label2[0], p)
    if mode == "stride" or shape == (TILE, TILE):  # per_image at model resolution: label = p >= 0.5 exactly
        assert np.array_equal(label[0], (p >= 0.5).astype(np.uint8))


def test_threshold_sets_the_label_and_is_recorded(binary_bundle_dirs, make_raster, tmp_path):
    sig_dir, _ = binary_bundle_dirs
    scene = make_raster("scene.tif", height=64, width=48, bands=4, nodata=0, seed=3)
    res = predict_scene(sig_dir, scene, tmp_path / "out", threshold=0.45, blend="spline", prob_dtype="float32",
                        progress=False)
    (prob, _, _), (label, tags, _) = _read(res.prob), _read(res.label)
    assert tags["GEOSEG_THRESHOLD"] == "0.45"
    assert np.array_equal(label[0], (prob[0] >= np.float32(0.45)).astype(np.uint8))
    assert 0 < (prob[0] < 0.5).sum() and ((prob[0] >= 0.45) & (prob[0] < 0.5)).any()  # really moved pixels
    u8 = predict_scene(sig_dir, scene, tmp_path / "u8", threshold=0.45, blend="spline", progress=False)
    (prob8, tags8, _), (label8, _, _) = _read(u8.prob), _read(u8.label)
    assert prob8.shape == (1, 64, 48) and prob8.dtype == np.uint8 and prob8.max() <= 254
    assert np.array_equal(label8, label) and "p of class 1 (building)" in tags8["GEOSEG_PROB_ENCODING"]


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_out_of_range_is_refused(binary_bundle_dirs, make_raster, tmp_path, threshold):
    scene = make_raster("scene.tif", height=40, width=40, bands=4)
    with pytest.raises(InvalidParameterError, match="--threshold must be within 0..1"):
        predict_scene(binary_bundle_dirs[0], scene, tmp_path / "out", threshold=threshold, progress=False)


def test_threshold_is_refused_for_a_multiclass_model(softmax_bundle_dir, make_raster, tmp_path):
    scene = make_raster("scene.tif", height=40, width=40, bands=4)
    with pytest.raises(InvalidParameterError, match="--threshold applies to binary models"):
        predict_scene(softmax_bundle_dir, scene, tmp_path / "out", threshold=0.5, progress=False)
    assert not (tmp_path / "out").exists()


def test_binary_prediction_can_be_evaluated(binary_bundle_dirs, make_raster, tmp_path):
    from geoseg.evaluation import evaluate

    scene = make_raster("scene.tif", height=70, width=60, bands=4, seed=5)
    res = predict_scene(binary_bundle_dirs[0], scene, tmp_path / "out", progress=False)
    truth = (np.random.default_rng(1).random((70, 60)) < 0.4).astype(np.uint8)
    truth_path = make_raster("truth.tif", data=truth[None])
    result = evaluate(res.label, truth_path, num_classes=2)
    pred = _read(res.label)[0][0]
    expected = np.bincount(truth.ravel() * 2 + pred.ravel(), minlength=4).reshape(2, 2)
    assert np.array_equal(np.asarray(result.confusion), expected)


def test_cli_threshold_flag(binary_bundle_dirs, make_raster, tmp_path):
    from geoseg.cli.predict import main

    scene = make_raster("c.tif", height=40, width=40, bands=4, seed=2)
    out = tmp_path / "out"
    assert main(["--model", str(binary_bundle_dirs[0]), str(scene), "--out", str(out), "--threshold", "0.3",
                 "--prob-dtype", "float32", "--quiet"]) == 0
    (prob, _, _), (label, tags, _) = _read(out / "c_prob.tif"), _read(out / "c_label.tif")
    assert tags["GEOSEG_THRESHOLD"] == "0.3" and np.array_equal(label[0], (prob[0] >= np.float32(0.3)).astype(np.uint8))


# -- the bundle side ------------------------------------------------------------------------------

def test_bundle_records_output_channels(binary_bundle_dirs):
    sig, soft = (json.loads((d / "geoseg.json").read_text()) for d in binary_bundle_dirs)
    assert (sig["output_channels"], sig["num_classes"]) == (1, 2)
    assert (soft["output_channels"], soft["num_classes"]) == (2, 2)


def test_bundle_without_output_channels_reads_the_model_record(binary_bundle_dirs, tmp_path):
    """Bundles written before ``output_channels`` existed: binary when the model record says 1 class."""
    import shutil

    d = shutil.copytree(binary_bundle_dirs[0], tmp_path / "old")
    meta = json.loads((d / "geoseg.json").read_text())
    del meta["output_channels"]
    (d / "geoseg.json").write_text(json.dumps(meta))
    assert load_bundle(d, load_model=False).output_channels == 2  # nothing says binary
    meta["model"] = {"name": "unet", "arguments": {"num_classes": 1, "activation": "sigmoid"}}
    (d / "geoseg.json").write_text(json.dumps(meta))
    assert load_bundle(d, load_model=False).binary


def test_one_channel_model_needs_two_classes(tmp_path):
    import keras

    inp = keras.Input((TILE, TILE, 3))
    model = keras.Model(inp, keras.layers.Conv2D(1, 1, activation="sigmoid")(inp))
    with pytest.raises(BundleError, match="a binary model needs exactly 2 classes"):
        save_bundle(model, tmp_path / "b", ["a", "b", "c"], TILE)
    with pytest.raises(BundleError, match="outputs 1 channel"):
        save_bundle(model, tmp_path / "b", ["a"], TILE)
    model3 = keras.Model(inp, keras.layers.Conv2D(3, 1)(inp))
    with pytest.raises(BundleError, match="outputs 3 channels but 2 classes"):
        save_bundle(model3, tmp_path / "b", ["a", "b"], TILE)
    assert not (tmp_path / "b" / "geoseg.json").exists()
