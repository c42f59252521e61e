"""Every zoo model exports to ONNX and onnxruntime reproduces Keras (raw values in, normalization inside)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tf2onnx")
ort = pytest.importorskip("onnxruntime")

from export_factories import STATS, TINY, keras_reference, zoo_bundle  # noqa: E402

import geoseg.models as gm  # noqa: E402
from geoseg.export.graph import dynamic_twin  # noqa: E402
from geoseg.export.onnx import export_onnx  # noqa: E402
from geoseg.io.bundle import load_bundle  # noqa: E402

#: models whose export takes more than a few seconds on 2 cores (MobileNetV2 encoders, SegNet)
SLOW = {"mobile_unet", "deeplabv3", "deeplabv3plus", "pspnet", "refinenet", "denseaspp", "segnet"}
#: models traced with dynamic height and width (the others resize to a size read as a Python value)
DYNAMIC = {"unet", "fcn32s", "fcn16s", "fcn8s", "segnet", "dilatednet"}


def test_every_zoo_model_has_a_small_config():
    assert set(gm.list_models()) <= set(TINY)


def _raw(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(STATS["min"][0], STATS["max"][0], shape).astype(np.float32)


def _run(path, raw_nhwc):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = session.run(None, {"image": np.ascontiguousarray(raw_nhwc.transpose(0, 3, 1, 2))})[0]
    return y.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in TINY])
def test_zoo_model_onnx_matches_keras(name, tmp_path):
    bundle = load_bundle(zoo_bundle(tmp_path, name))
    result = export_onnx(bundle, tmp_path / f"{name}.onnx")
    assert result["dynamic_spatial"] == (name in DYNAMIC)
    raw = _raw((2, 64, 64, 4), 1)
    raw[0, :5, :7, 2] = np.nan  # NaN band values become 0 after normalization, as geoseg's reader does
    want = keras_reference(bundle, raw)
    assert float(want.std()) > 1e-3, "random weights must give varied probabilities, or the check is empty"
    got = _run(tmp_path / f"{name}.onnx", raw)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] not in (1, 2)  # dynamic batch
    if name in DYNAMIC:
        raw2 = _raw((1, 64, 96, 4), 2)
        np.testing.assert_allclose(_run(tmp_path / f"{name}.onnx", raw2),
                                   keras_reference(bundle, raw2, dynamic_twin(bundle.model)), rtol=0, atol=1e-4)
    else:
        assert session.get_inputs()[0].shape[1:] == [4, 64, 64]


def test_metadata_for_geoseg_and_deepness(unet_bundle_dir, unet_onnx):
    meta = ort.InferenceSession(str(unet_onnx), providers=["CPUExecutionProvider"]).get_modelmeta()
    props = meta.custom_metadata_map
    assert json.loads(props["model_type"]) == "Segmentor"
    assert json.loads(props["class_names"]) == {"0": "background", "1": "building", "2": "tree"}
    assert json.loads(props["tile_size"]) == json.loads(props["tiles_size"]) == 32
    assert json.loads(props["tiles_overlap"]) == 50  # stride 16 of 32
    # Deepness feeds x / 255 then standardizes: mean 0, std 1/255 gives the graph its raw values back
    assert json.loads(props["standardization_mean"]) == [0.0] * 4
    np.testing.assert_allclose(json.loads(props["standardization_std"]), [1 / 255] * 4)
    assert "resolution" not in props  # the bundle's dataset is unknown
    record = json.loads(props["geoseg"])
    original = json.loads((unet_bundle_dir / "geoseg.json").read_text())
    assert {k: record[k] for k in original} == original
    assert record["onnx"]["layout"] == "NCHW" and record["onnx"]["dynamic_spatial"] is True
    assert meta.producer_name == "geoseg"


def test_binary_minmax_model(tmp_path):
    classes = [{"index": 0, "name": "background", "color": [0, 0, 0]}, {"index": 1, "name": "road", "color": [9, 9, 9]}]
    from export_factories import MINMAX

    bundle = load_bundle(zoo_bundle(tmp_path, "unet", tile=32, classes=classes, norm=MINMAX, activation="sigmoid"))
    assert bundle.binary
    export_onnx(bundle, tmp_path / "b.onnx", resolution_cm=50)
    raw = _raw((3, 32, 32, 4), 3)  # values below min and above max: the clip inside the graph matters
    got = _run(tmp_path / "b.onnx", raw)
    assert got.shape == (3, 32, 32, 1)
    np.testing.assert_allclose(got, keras_reference(bundle, raw), rtol=0, atol=1e-4)
    props = ort.InferenceSession(str(tmp_path / "b.onnx"), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert json.loads(props.custom_metadata_map["resolution"]) == 50.0
