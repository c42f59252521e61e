"""Output rasters: tags and class metadata, color table, uint8 scale, compression, COG layout."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import rasterio
from affine import Affine

from geoseg.inference import predict_scene


def _scene(make_raster, **kw):
    return make_raster("scene.tif", height=kw.pop("height", 300), width=kw.pop("width", 280), bands=4, **kw)


def test_metadata_tags_colormap_and_scales(softmax_bundle, make_raster, tmp_path):
    scene = _scene(make_raster, height=90, width=70)
    res = predict_scene(softmax_bundle, scene, tmp_path / "out", blend="spline", stride=8, tta=True, progress=False)
    with rasterio.open(res.label) as lab, rasterio.open(res.prob) as prob:
        for ds in (lab, prob):
            tags = ds.tags()
            assert json.loads(tags["GEOSEG_CLASSES"]) == [
                {"index": 0, "name": "water", "color": [0, 0, 255]},
                {"index": 1, "name": "forest", "color": [0, 128, 0]},
                {"index": 2, "name": "urban", "color": [200, 0, 0]},
            ]
            assert tags["GEOSEG_MODEL"] == "tiny_softmax"
            assert (tags["GEOSEG_TILE"], tags["GEOSEG_STRIDE"], tags["GEOSEG_BLEND"], tags["GEOSEG_TTA"]) == \
                ("32", "8", "spline", "yes")
            assert tags["GEOSEG_VERSION"] and tags["GEOSEG_MODE"] == "stride"
            assert ds.block_shapes[0] == (128, 128) and ds.profile["tiled"]
            assert ds.compression.value == "DEFLATE"
        cmap = lab.colormap(1)
        assert cmap[0][:3] == (0, 0, 255) and cmap[2][:3] == (200, 0, 0) and cmap[255] == (0, 0, 0, 0)
        assert prob.descriptions == ("water", "forest", "urban")
        assert prob.dtypes[0] == "uint8" and prob.nodata == 255
        assert prob.scales == pytest.approx((1 / 255,) * 3) and prob.offsets == (0.0,) * 3
        stored = prob.read().astype(float)
        assert stored.max() <= 254
        # scale metadata gives probabilities that sum to one within the quantization step
        np.testing.assert_allclose((stored * prob.scales[0]).sum(axis=0), 1.0, atol=2 / 255)


@pytest.mark.parametrize("compress,gdal_name", [("zstd", "ZSTD"), ("lzw", "LZW"), ("none", None)])
def test_compression_options(softmax_bundle, make_raster, tmp_path, compress, gdal_name):
    scene = _scene(make_raster, height=40, width=40)
    res = predict_scene(softmax_bundle, scene, tmp_path / "out", compress=compress, write_prob=False, progress=False)
    assert res.prob is None and not (tmp_path / "out" / "scene_prob.tif").exists()
    with rasterio.open(res.label) as ds:
        assert (ds.compression.value if ds.compression else None) == gdal_name


def _cog_header_ok(path) -> bool:
    """GDAL's COG layout: the ghost header right after the TIFF header, IFDs before the data."""
    head = open(path, "rb").read(1024)
    return b"GDAL_STRUCTURAL_METADATA_SIZE" in head and b"LAYOUT=IFDS_BEFORE_DATA" in head \
        and b"BLOCK_ORDER=ROW_MAJOR" in head


def test_cog_outputs_have_overviews_and_the_cog_layout(softmax_bundle, make_raster, tmp_path):
    scene = _scene(make_raster)
    plain = predict_scene(softmax_bundle, scene, tmp_path / "plain", progress=False)
    res = predict_scene(softmax_bundle, scene, tmp_path / "cog", cog=True, progress=False)
    for path in (res.label, res.prob):
        assert _cog_header_ok(path)
        with rasterio.open(path) as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert ds.overviews(1), "no overviews"
            assert ds.block_shapes[0][0] == ds.block_shapes[0][1] < ds.width
            assert json.loads(ds.tags()["GEOSEG_CLASSES"])[1]["name"] == "forest"
    for a, b in ((plain.label, res.label), (plain.prob, res.prob)):
        with rasterio.open(a) as x, rasterio.open(b) as y:
            assert np.array_equal(x.read(), y.read()) and x.transform == y.transform and x.nodata == y.nodata
    with rasterio.open(res.label) as ds:
        assert ds.colormap(1)[1][:3] == (0, 128, 0)
    with rasterio.open(res.prob) as ds:
        assert ds.scales == pytest.approx((1 / 255,) * 3)
    assert not _cog_header_ok(plain.label)
    assert sorted(p.name for p in (tmp_path / "cog").iterdir() if p.suffix == ".tif") == [
        "scene_label.tif", "scene_prob.tif"]  # (.geoseg_predict.json: the run parameters, for --resume)


def test_scene_without_crs_is_predicted_with_a_warning(identity_bundle, make_raster, tmp_path, caplog):
    scene = make_raster("nocrs.tif", height=40, width=40, bands=3, crs=None, transform=Affine.identity())
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        res = predict_scene(identity_bundle, scene, tmp_path / "out", prob_dtype="float32", progress=False)
    assert "no CRS" in caplog.text
    with rasterio.open(res.prob) as ds:
        assert ds.crs is None and (ds.width, ds.height) == (40, 40)
        with rasterio.open(scene) as src:
            assert np.array_equal(ds.read(), src.read().astype(np.float32))


def test_writers_of_several_scenes_may_finish_in_any_order(make_raster, tmp_path):
    """Regression: with dask several scenes' writers are open at once; closing them out of
    order once broke rasterio's thread-local Env stack ("No GDAL environment exists")."""
    from geoseg.inference.writers import PredictionWriter, output_paths
    from geoseg.io.classes import ClassMap
    from geoseg.io.raster import open_scene

    infos = [open_scene(make_raster(f"s{i}.tif", height=20, width=30, bands=1)) for i in range(2)]
    writers = [PredictionWriter(output_paths(i.path, tmp_path / "out"), i, ClassMap.default(2), 2).__enter__()
               for i in infos]
    for w in writers:
        w.write(0, np.zeros((20, 30), np.uint8), np.zeros((2, 20, 30), np.uint8))
    writers[0].__exit__(None, None, None)  # first opened, first closed: not LIFO
    writers[1].__exit__(None, None, None)
    for i in infos:
        with rasterio.open(tmp_path / "out" / f"{i.path.stem}_label.tif") as ds:
            assert ds.read(1).shape == (20, 30)
