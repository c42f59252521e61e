"""predict_scene contracts on real tiny rasters: identity exactness, alignment, nodata, argmax,
independence of batch size and strip height, padding of scenes smaller than a tile, TTA."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from geoseg.inference import predict_scene
from geoseg.inference.engine import iter_scene_blocks, make_forward
from geoseg.inference.options import PredictOptions
from geoseg.inference.reader import ScenePlan

TILE = 32


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read()


def _scene(make_raster, name="scene.tif", height=101, width=77, bands=3, nodata=None, seed=0, dtype="uint8"):
    return make_raster(name, height=height, width=width, bands=bands, nodata=nodata, seed=seed, dtype=dtype)


@pytest.mark.parametrize("blend", ["mean", "spline", "gaussian"])
@pytest.mark.parametrize("stride,batch", [(16, 8), (13, 3), (32, 1), (7, 5)])
def test_identity_model_reproduces_the_scene_exactly(identity_bundle, make_raster, tmp_path, blend, stride, batch):
    scene = _scene(make_raster)  # 101 x 77: not a multiple of any stride
    res = predict_scene(identity_bundle, scene, tmp_path / "out", blend=blend, stride=stride, batch_size=batch,
                        prob_dtype="float32", progress=False)
    assert np.array_equal(_read(res.prob), _read(scene).astype(np.float32))


@pytest.mark.parametrize("blend", ["mean", "spline", "gaussian"])
@pytest.mark.parametrize("stride,batch,tta", [(16, 8, False), (13, 3, True), (7, 5, False)])
def test_binary_identity_model_reproduces_its_one_band_exactly(binary_identity_bundle, make_raster, tmp_path,
                                                                blend, stride, batch, tta):
    """One output channel (binary model): blended as one band, written as ONE probability band."""
    scene = _scene(make_raster, bands=1, dtype="float32")  # values in [0, 1)
    res = predict_scene(binary_identity_bundle, scene, tmp_path / "out", blend=blend, stride=stride,
                        batch_size=batch, tta=tta, prob_dtype="float32", threshold=0.4, progress=False)
    prob, label, data = _read(res.prob), _read(res.label)[0], _read(scene)[0]
    assert prob.shape == (1, 101, 77) and np.array_equal(prob[0], data)
    assert np.array_equal(label, (data >= np.float32(0.4)).astype(np.uint8))
    with rasterio.open(res.prob) as ds:
        assert ds.descriptions == ("building",) and ds.tags()["GEOSEG_THRESHOLD"] == "0.4"


@pytest.mark.parametrize("shape", [(20, 50), (50, 9), (5, 5), (32, 31)])
@pytest.mark.parametrize("blend", ["mean", "gaussian"])
def test_scene_smaller_than_a_tile_is_padded_and_cropped_back(identity_bundle, make_raster, tmp_path, shape, blend):
    scene = _scene(make_raster, height=shape[0], width=shape[1])
    res = predict_scene(identity_bundle, scene, tmp_path / "out", blend=blend, prob_dtype="float32", progress=False)
    prob = _read(res.prob)
    assert prob.shape == (3, *shape)
    assert np.array_equal(prob, _read(scene).astype(np.float32))


def test_identity_with_tta_is_exact(identity_bundle, make_raster, tmp_path):
    scene = _scene(make_raster, height=70, width=45)
    res = predict_scene(identity_bundle, scene, tmp_path / "out", tta=True, blend="spline", prob_dtype="float32",
                        progress=False)
    assert np.array_equal(_read(res.prob), _read(scene).astype(np.float32))


def test_outputs_align_with_the_scene_grid(softmax_bundle, make_raster, tmp_path):
    scene = _scene(make_raster, height=90, width=70, bands=4)
    res = predict_scene(softmax_bundle, scene, tmp_path / "out", progress=False)
    with rasterio.open(scene) as src, rasterio.open(res.label) as lab, rasterio.open(res.prob) as prob:
        for ds in (lab, prob):
            assert (ds.width, ds.height) == (src.width, src.height)
            assert ds.transform == src.transform and ds.crs == src.crs
        assert lab.count == 1 and lab.dtypes[0] == "uint8" and lab.nodata == 255
        assert prob.count == 3


def test_label_is_argmax_of_probabilities(softmax_bundle, make_raster, tmp_path):
    scene = _scene(make_raster, height=90, width=70, bands=4)
    f32 = predict_scene(softmax_bundle, scene, tmp_path / "f32", prob_dtype="float32", blend="gaussian", progress=False)
    label, prob = _read(f32.label)[0], _read(f32.prob)
    assert np.array_equal(label, np.argmax(prob, axis=0))
    assert len(np.unique(label)) > 1  # the test model really separates classes
    u8 = predict_scene(softmax_bundle, scene, tmp_path / "u8", blend="gaussian", progress=False)
    label8, prob8 = _read(u8.label)[0], _read(u8.prob)
    assert np.array_equal(label8, label)
    # uint8 quantization is monotone: the label's band holds the largest stored value
    assert np.array_equal(np.take_along_axis(prob8, label8[None], 0)[0], prob8.max(axis=0))
    np.testing.assert_allclose(prob8 / 255.0, prob, atol=0.5 / 255 + 1e-6)


def test_nodata_is_preserved_and_empty_windows_are_skipped(identity_bundle, make_raster, tmp_path):
    data = (np.random.default_rng(3).integers(1, 255, (3, 96, 80))).astype(np.uint8)
    data[:, :40, :] = 0             # top 40 rows nodata: the first window row is entirely empty
    data[:, 60:62, 10:12] = 0       # a few nodata pixels inside valid windows
    data[0, 70, 70] = 0             # nodata in one band only: still valid
    scene = make_raster("nd.tif", data=data, nodata=0)
    res = predict_scene(identity_bundle, scene, tmp_path / "out", prob_dtype="float32", progress=False)
    prob, label = _read(res.prob), _read(res.label)[0]
    invalid = (data == 0).all(axis=0)
    assert np.isnan(prob[:, invalid]).all() and (label[invalid] == 255).all()
    assert np.array_equal(prob[:, ~invalid], data[:, ~invalid].astype(np.float32))
    assert (label[~invalid] != 255).all()
    plan = ScenePlan.create(96, 80, TILE, 16)
    assert res.nodata_windows == len(plan.cols)  # the window row at 0 (rows 0-31) is entirely empty
    with rasterio.open(res.prob) as ds:
        assert np.isnan(ds.nodata)
    u8 = predict_scene(identity_bundle, scene, tmp_path / "u8", write_prob=True, progress=False)
    assert (_read(u8.prob)[:, invalid] == 255).all()


def test_result_does_not_depend_on_batch_size_or_strip_height(softmax_bundle, make_raster, tmp_path):
    scene = _scene(make_raster, height=150, width=61, bands=4, seed=5)
    ref = None
    for i, (batch, strip) in enumerate([(8, None), (1, None), (5, 17), (3, 64), (16, 33)]):
        res = predict_scene(softmax_bundle, scene, tmp_path / f"o{i}", batch_size=batch, strip_rows=strip,
                            blend="spline", prob_dtype="float32", progress=False)
        got = _read(res.prob)
        if ref is None:
            ref = got
        else:
            assert np.array_equal(got, ref), (batch, strip)


def test_windows_really_disagree_so_blending_matters(softmax_bundle, make_raster, tmp_path):
    scene = _scene(make_raster, height=64, width=64, bands=4, seed=2)
    a = _read(predict_scene(softmax_bundle, scene, tmp_path / "a", blend="mean", prob_dtype="float32",
                            progress=False).prob)
    b = _read(predict_scene(softmax_bundle, scene, tmp_path / "b", blend="gaussian", prob_dtype="float32",
                            progress=False).prob)
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(a.sum(axis=0), 1.0, atol=1e-5)


def test_strip_memory_is_bounded_by_one_tile(softmax_bundle, make_raster, monkeypatch):
    from geoseg.inference import engine

    seen = []
    real = engine.StripAccumulator

    class Spy(real):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            seen.append(self.allocated_rows)

    monkeypatch.setattr(engine, "StripAccumulator", Spy)
    for height in (40, 400):
        scene = make_raster(f"tall{height}.tif", height=height, width=40, bands=4)
        plan = ScenePlan.create(height, 40, TILE, 16)
        fwd = make_forward(softmax_bundle, [1, 2, 3, 4], False)
        opts = PredictOptions(stride=16)
        from geoseg.io.raster import open_scene

        blocks = list(iter_scene_blocks(fwd, softmax_bundle, open_scene(scene), [1, 2, 3, 4], plan, opts))
        assert sum(b.height for b in blocks) == height
        assert max(b.height for b in blocks) <= TILE
    assert seen == [TILE, TILE]


def test_per_image_mode_resizes_and_keeps_the_grid(identity_bundle, make_raster, tmp_path):
    # A smooth scene: bilinear down/up-sampling of an identity model gives it back closely.
    yy, xx = np.mgrid[0:96, 0:64]
    data = np.stack([yy * 2, xx * 3, yy + xx]).astype(np.uint8)
    data[:, 0:3, 0:3] = 0
    scene = make_raster("smooth.tif", data=data, nodata=0)
    res = predict_scene(identity_bundle, scene, tmp_path / "out", mode="per_image", prob_dtype="float32",
                        progress=False)
    prob, label = _read(res.prob), _read(res.label)[0]
    assert prob.shape == data.shape
    valid = ~(data == 0).all(axis=0)
    assert np.isnan(prob[:, ~valid]).all() and (label[~valid] == 255).all()
    err = np.abs(prob[:, valid] - data[:, valid])
    assert np.median(err) < 3.0
    with rasterio.open(res.label) as ds:
        assert ds.tags()["GEOSEG_MODE"] == "per_image"
