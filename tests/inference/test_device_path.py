"""``--accumulate device``: blending and encoding on the model's device (here TensorFlow's CPU device)
give byte-identical outputs to the host path, keep the identity-model exactness and the
independence of batch size, strip height and workers; the option resolves and records correctly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from geoseg.errors import InvalidParameterError
from geoseg.inference import predict_scene, predict_scenes
from geoseg.inference.device import resolve_accumulate

TILE = 32


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read()


def _both(bundle, scene, out, **opts):
    """``(host, device)`` results of the same prediction."""
    host = predict_scene(bundle, scene, out / "host", accumulate="host", progress=False, **opts)
    dev = predict_scene(bundle, scene, out / "device", accumulate="device", progress=False, **opts)
    return host, dev


def _assert_same_files(a, b):
    assert np.array_equal(_read(a.label), _read(b.label), equal_nan=False)
    if a.prob is not None:
        pa, pb = _read(a.prob), _read(b.prob)
        assert pa.dtype == pb.dtype
        assert pa.tobytes() == pb.tobytes()  # NaN nodata compared bit for bit too


@pytest.mark.parametrize("blend", ["mean", "spline", "gaussian"])
@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.parametrize("prob_dtype", ["uint8", "float32"])
def test_device_equals_host_multiclass(softmax_bundle, make_raster, tmp_path, blend, tta, prob_dtype):
    scene = make_raster("s.tif", height=75, width=61, bands=4, seed=3, nodata=0)
    host, dev = _both(softmax_bundle, scene, tmp_path, blend=blend, tta=tta, stride=13, batch_size=5,
                      prob_dtype=prob_dtype)
    _assert_same_files(host, dev)
    assert len(np.unique(_read(host.label))) >= 2  # the labels really vary: the argmax is exercised


@pytest.mark.parametrize("blend", ["mean", "gaussian"])
@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.parametrize("prob_dtype", ["uint8", "float32"])
def test_device_equals_host_binary(binary_bundle_dirs, make_raster, tmp_path, blend, tta, prob_dtype):
    from geoseg.io.bundle import load_bundle

    bundle = load_bundle(binary_bundle_dirs[0])
    scene = make_raster("b.tif", height=70, width=50, bands=4, seed=4)
    host, dev = _both(bundle, scene, tmp_path, blend=blend, tta=tta, threshold=0.45, batch_size=3,
                      prob_dtype=prob_dtype)
    _assert_same_files(host, dev)
    assert set(np.unique(_read(host.label))) == {0, 1}


def test_device_without_prob_writes_the_same_label(softmax_bundle, make_raster, tmp_path):
    scene = make_raster("n.tif", height=40, width=90, bands=4, seed=9)
    host, dev = _both(softmax_bundle, scene, tmp_path, write_prob=False, blend="spline")
    assert dev.prob is None
    _assert_same_files(host, dev)


@pytest.mark.parametrize("blend", ["mean", "spline", "gaussian"])
@pytest.mark.parametrize("stride,batch", [(16, 8), (13, 3), (7, 5)])
def test_device_identity_model_reproduces_the_scene_exactly(identity_bundle, make_raster, tmp_path, blend, stride,
                                                            batch):
    scene = make_raster("i.tif", height=101, width=77, bands=3)
    res = predict_scene(identity_bundle, scene, tmp_path / "out", blend=blend, stride=stride, batch_size=batch,
                        prob_dtype="float32", accumulate="device", progress=False)
    assert np.array_equal(_read(res.prob), _read(scene).astype(np.float32))


def test_device_identity_with_tta_and_small_scene_is_exact(identity_bundle, make_raster, tmp_path):
    for i, (h, w) in enumerate([(101, 77), (20, 50), (5, 5)]):
        scene = make_raster(f"t{i}.tif", height=h, width=w, bands=3, seed=i)
        res = predict_scene(identity_bundle, scene, tmp_path / f"o{i}", tta=True, blend="gaussian",
                            prob_dtype="float32", accumulate="device", progress=False)
        assert np.array_equal(_read(res.prob), _read(scene).astype(np.float32)), (h, w)


def test_device_binary_identity_threshold_is_exact(binary_identity_bundle, make_raster, tmp_path):
    scene = make_raster("f.tif", height=60, width=45, bands=1, dtype="float32")
    res = predict_scene(binary_identity_bundle, scene, tmp_path / "o", stride=13, batch_size=4, threshold=0.4,
                        prob_dtype="float32", accumulate="device", progress=False)
    data = _read(scene)[0]
    assert np.array_equal(_read(res.prob)[0], data)
    assert np.array_equal(_read(res.label)[0], (data >= np.float32(0.4)).astype(np.uint8))


def test_device_result_does_not_depend_on_batch_size_or_strip_height(softmax_bundle, make_raster, tmp_path):
    scene = make_raster("s.tif", height=150, width=61, bands=4, seed=5)
    ref = predict_scene(softmax_bundle, scene, tmp_path / "ref", blend="spline", prob_dtype="float32",
                        accumulate="host", progress=False)
    for i, (batch, strip) in enumerate([(8, None), (1, None), (5, 17), (3, 64), (16, 33)]):
        res = predict_scene(softmax_bundle, scene, tmp_path / f"o{i}", batch_size=batch, strip_rows=strip,
                            blend="spline", prob_dtype="float32", accumulate="device", progress=False)
        assert _read(res.prob).tobytes() == _read(ref.prob).tobytes(), (batch, strip)


def test_device_nodata_is_kept(identity_bundle, make_raster, tmp_path):
    data = np.random.default_rng(1).integers(1, 255, (3, 96, 80)).astype(np.uint8)
    data[:, :40] = 0  # the first window row is entirely nodata (skipped), the second partly
    data[:, 60:70, 10:30] = 0
    scene = make_raster("nd.tif", data=data, nodata=0)
    for dtype in ("uint8", "float32"):
        host, dev = _both(identity_bundle, scene, tmp_path / dtype, prob_dtype=dtype)
        _assert_same_files(host, dev)
        assert dev.nodata_windows == host.nodata_windows > 0
    assert (_read(dev.label)[0][data[0] == 0] == 255).all()


def test_device_on_dask_workers_equals_single_process_host(softmax_bundle_dir, make_raster, tmp_path):
    scene = make_raster("d.tif", height=130, width=70, bands=4, seed=6)
    host = predict_scene(softmax_bundle_dir, scene, tmp_path / "host", accumulate="host", blend="gaussian",
                         progress=False)
    (dev,) = predict_scenes(softmax_bundle_dir, [scene], tmp_path / "dask", workers=2, accumulate="device",
                            blend="gaussian", strip_rows=40, progress=False)
    _assert_same_files(host, dev)


def test_auto_is_host_without_gpu_and_device_is_refused_for_onnx(softmax_bundle, tmp_path):
    from geoseg.inference.options import PredictOptions

    assert resolve_accumulate("auto", onnx=True) == "host"
    assert resolve_accumulate("device") == "device" and resolve_accumulate("host") == "host"
    import tensorflow as tf

    expected = "device" if tf.config.list_physical_devices("GPU") else "host"
    assert resolve_accumulate("auto") == expected
    with pytest.raises(InvalidParameterError, match="--accumulate 'gpu'"):
        PredictOptions(accumulate="gpu").resolved(softmax_bundle)
    with pytest.raises(InvalidParameterError, match="--precision 'half'"):
        PredictOptions(precision="half").resolved(softmax_bundle)


def test_accumulate_is_not_a_run_parameter_so_resume_may_switch_it(softmax_bundle, make_raster, tmp_path):
    a = make_raster("a.tif", height=40, width=40, bands=4, seed=1)
    b = make_raster("b.tif", height=40, width=40, bands=4, seed=2)
    out = tmp_path / "out"
    predict_scenes(softmax_bundle, [a], out, accumulate="host", progress=False)
    res = predict_scenes(softmax_bundle, [a, b], out, accumulate="device", resume=True, progress=False)
    assert [r.skipped for r in res] == [True, False]
    params = json.loads((out / ".geoseg_predict.json").read_text())["parameters"]
    assert "accumulate" not in params and "precision" not in params
