"""``--precision mixed``, ``--xla``, the batch size from device memory, the CLI/YAML flags, and the
device path on a real GPU (skipped without one)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from geoseg.inference import predict_scene
from geoseg.inference.forward import DEFAULT_BATCH, device_batch_size

TILE = 32


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.tags()


@pytest.fixture(scope="module")
def random_bundle(tmp_path_factory):
    """A random 3-layer conv net (4 bands -> 4 classes): enough depth for reduced precision to show."""
    from geoseg.io.bundle import save_bundle
    from geoseg.runtime.tensorflow import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((TILE, TILE, 4))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(4, 1)(x)
    model = keras.Model(inp, keras.layers.Softmax()(x))
    norm = {"method": "minmax", "min": [0] * 4, "max": [255] * 4}
    return save_bundle(model, tmp_path_factory.mktemp("b") / "random", ["a", "b", "c", "d"], TILE,
                       normalization=norm, stride=16, bands=[1, 2, 3, 4])


@pytest.mark.parametrize("accumulate", ["host", "device"])
def test_mixed_precision_labels_agree_with_float32(random_bundle, make_raster, tmp_path, accumulate):
    scene = make_raster("m.tif", height=90, width=70, bands=4, seed=2)
    ref = predict_scene(random_bundle, scene, tmp_path / "f32", progress=False)
    mixed = predict_scene(random_bundle, scene, tmp_path / "mixed", precision="mixed", accumulate=accumulate,
                          progress=False)
    (a, _), (b, tags) = _read(ref.label), _read(mixed.label)
    (pa, _), (pb, _) = _read(ref.prob), _read(mixed.prob)
    assert len(np.unique(a)) == 4
    assert np.mean(a == b) >= 0.99
    assert not np.array_equal(pa, pb)  # really computed in reduced precision
    assert np.abs(pa.astype(int) - pb.astype(int)).max() <= 8
    assert tags["GEOSEG_PRECISION"] == "mixed" and "GEOSEG_PRECISION" not in _read(ref.label)[1]
    params = json.loads((tmp_path / "mixed" / ".geoseg_predict.json").read_text())["parameters"]
    assert params["precision"] == "mixed"


def test_mixed_copy_leaves_the_bundle_model_alone(random_bundle):
    from geoseg.inference.forward import Forward
    from geoseg.io.bundle import load_bundle

    bundle = load_bundle(random_bundle)
    fwd = Forward(bundle.model, TILE, 4, 4, precision="mixed")
    assert fwd.model is not bundle.model
    assert all(layer.dtype_policy.name == "float32" for layer in bundle.model.layers)
    assert {layer.dtype_policy.compute_dtype for layer in fwd.model.layers[1:-1]} <= {"bfloat16", "float16"}


def test_xla_gives_the_float32_labels(random_bundle, make_raster, tmp_path):
    scene = make_raster("x.tif", height=50, width=50, bands=4, seed=8)
    ref = predict_scene(random_bundle, scene, tmp_path / "ref", progress=False, prob_dtype="float32")
    xla = predict_scene(random_bundle, scene, tmp_path / "xla", progress=False, prob_dtype="float32", xla=True)
    np.testing.assert_allclose(_read(xla.prob)[0], _read(ref.prob)[0], atol=1e-5)
    params = json.loads((tmp_path / "xla" / ".geoseg_predict.json").read_text())["parameters"]
    assert params["xla"] is True


@pytest.mark.parametrize("free,per_window,extra,expected", [
    (80 * 2**30, 2**30, 0, 40),          # 80 GiB free, 1 GiB a window: half of it -> 40
    (80 * 2**30, 2**30, 20 * 2**30, 30),  # the accumulator's 20 GiB first
    (10**12, 2**20, 0, 256),              # capped
    (2**20, 2**30, 0, 1),                 # never below one window
    (2**30, 2**30, 2**31, 1),             # extra larger than free: still one
    (2**30, 0, 0, DEFAULT_BATCH),         # probe failed: the CPU default
])
def test_device_batch_size_formula(free, per_window, extra, expected):
    assert device_batch_size(free, per_window, extra) == expected


def test_gpu_memory_asks_the_gpu_this_process_sees(tmp_path, monkeypatch):
    from geoseg.inference.forward import gpu_total_memory

    fake = tmp_path / "nvidia-smi"  # physical GPU i has (i + 1) GiB; prints what --id asks
    fake.write_text('#!/bin/sh\nfor a in "$@"; do case "$a" in --id=*) i=${a#--id=};; esac; done\n'
                    'echo $(( (i + 1) * 1024 ))\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_total_memory() == 1 * 2**30
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # a dask worker given physical GPU 2 first
    assert gpu_total_memory() == 3 * 2**30
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert gpu_total_memory() is None


def test_batch_size_defaults_to_8_without_gpu(softmax_bundle):
    import tensorflow as tf

    from geoseg.inference.engine import make_forward

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: the batch comes from its memory")
    assert make_forward(softmax_bundle, [1, 2, 3, 4], False).batch_size() == 8


def test_cli_and_yaml_pass_the_new_options(softmax_bundle_dir, make_raster, tmp_path):
    from geoseg.cli.predict import main

    scene = make_raster("c.tif", height=40, width=40, bands=4)
    assert main(["--model", str(softmax_bundle_dir), str(scene), "--out", str(tmp_path / "a"), "--quiet",
                 "--accumulate", "device", "--precision", "mixed", "--batch-size", "3"]) == 0
    assert _read(tmp_path / "a" / "c_label.tif")[1]["GEOSEG_PRECISION"] == "mixed"
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"model: {softmax_bundle_dir}\nscenes: [{scene}]\nout: {tmp_path / 'b'}\nquiet: true\n"
                   "accumulate: host\nprecision: float32\nxla: false\n")
    assert main(["--config", str(cfg)]) == 0
    assert np.array_equal(_read(tmp_path / "b" / "c_label.tif")[0], _read(tmp_path / "a" / "c_label.tif")[0])
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"model: {softmax_bundle_dir}\nout: {tmp_path / 'c'}\naccumulate: gpu\n")
    assert main(["--config", str(bad), str(scene)]) == 2


@pytest.mark.gpu
@pytest.mark.parametrize("tta", [False, True])
def test_gpu_device_path_matches_the_host_path(softmax_bundle, make_raster, tmp_path, tta):
    scene = make_raster("g.tif", height=300, width=257, bands=4, seed=11)
    host = predict_scene(softmax_bundle, scene, tmp_path / "host", accumulate="host", blend="gaussian", tta=tta,
                         progress=False)
    dev = predict_scene(softmax_bundle, scene, tmp_path / "dev", accumulate="device", blend="gaussian", tta=tta,
                        progress=False)
    assert np.array_equal(_read(host.label)[0], _read(dev.label)[0])
    assert np.abs(_read(host.prob)[0].astype(int) - _read(dev.prob)[0].astype(int)).max() <= 1
