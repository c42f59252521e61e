"""Inputs where GIS users keep them: GDAL names and URLs, STAC items, folders of photos."""

from __future__ import annotations

import json
import logging
import zipfile

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from http_range_server import serve_folder
from rasterio.crs import CRS

from geoseg.cli.tile import main as tile_main
from geoseg.errors import InputNotFoundError, InvalidParameterError, UnreadableRasterError
from geoseg.io.classes import ClassMap
from geoseg.io.photos import is_photo, photo_notice, read_image, write_label_png
from geoseg.io.raster import expand_inputs, open_scene
from geoseg.io.remote import GdalPath, as_path, gdal_name, is_gdal_name
from geoseg.io.stac import resolve_stac_items, stac_scene

T = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5200000.0)
UTM = CRS.from_epsg(32632)


def test_gdal_names_and_urls():
    assert gdal_name("https://h.example/a/b.tif") == "/vsicurl/https://h.example/a/b.tif"
    assert gdal_name("s3://bucket/dir/x.tif") == "/vsis3/bucket/dir/x.tif"
    assert gdal_name("/vsizip/data.zip/x.tif") == "/vsizip/data.zip/x.tif"
    p = as_path("https://h.example/a/scene.v2.tif?token=abc")
    assert isinstance(p, GdalPath) and str(p) == "/vsicurl/https://h.example/a/scene.v2.tif?token=abc"
    assert (p.name, p.stem, p.suffix) == ("scene.v2.tif", "scene.v2", ".tif")
    assert p.resolve() is p and not p.is_dir()
    assert not is_gdal_name("relative/dir/x.tif") and is_gdal_name("/vsis3/b/k.tif")
    assert as_path("scene.tif").__class__.__name__ in ("PosixPath", "WindowsPath")


def _cog(path, data, transform=T, nodata=None):
    tmp = path.with_suffix(".plain.tif")
    with rasterio.open(tmp, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=UTM, transform=transform, nodata=nodata) as ds:
        ds.write(data)
    rasterio.shutil.copy(tmp, path, driver="COG", blocksize=64)
    tmp.unlink()
    return path


def test_remote_scene_is_opened_not_stat_ed(tmp_path):
    data = np.random.default_rng(1).integers(1, 255, (3, 90, 130), dtype=np.uint8)
    _cog(tmp_path / "scene.tif", data)
    with serve_folder(tmp_path) as (url, log):
        found = expand_inputs([f"{url}/scene.tif"])
        assert found == [f"/vsicurl/{url}/scene.tif"] and isinstance(found[0], GdalPath)
        info = open_scene(found[0])
        assert (info.width, info.height, info.count, info.crs) == (130, 90, 3, UTM)
        assert info.path.name == "scene.tif"
        with pytest.raises(InputNotFoundError, match=r"missing\.tif with GDAL \(HTTP response code: 404"):
            expand_inputs([f"{url}/missing.tif"])
        with pytest.raises(InputNotFoundError, match="404"):
            open_scene(f"{url}/missing.tif")
        assert any("bytes=" in line for line in log.read_text().splitlines())  # range requests


def test_vsizip_scene(tmp_path):
    data = np.random.default_rng(2).integers(1, 255, (1, 20, 30), dtype=np.uint8)
    _cog(tmp_path / "inner.tif", data)
    with zipfile.ZipFile(tmp_path / "pack.zip", "w") as z:
        z.write(tmp_path / "inner.tif", "folder/inner.tif")
    name = f"/vsizip/{tmp_path}/pack.zip/folder/inner.tif"
    (found,) = expand_inputs([name])
    assert found.stem == "inner"
    with rasterio.open(found) as ds:
        np.testing.assert_array_equal(ds.read(), data)


def _dataset_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.tif"))}


def test_tiling_a_remote_scene_equals_tiling_the_local_file(tmp_path):
    data = np.random.default_rng(3).integers(1, 255, (4, 150, 170), dtype=np.uint8)
    served = tmp_path / "served"
    served.mkdir()
    _cog(served / "scene.tif", data)
    labels = tmp_path / "labels.tif"
    with rasterio.open(labels, "w", driver="GTiff", width=170, height=150, count=1, dtype="uint8", crs=UTM,
                       transform=T) as ds:
        ds.write((data[:1] // 100).astype(np.uint8))
    args = ["--labels", str(labels), "--size", "64", "--stride", "48", "--quiet"]
    assert tile_main([str(served / "scene.tif"), "--out", str(tmp_path / "local"), *args]) == 0
    with serve_folder(served) as (url, _):
        assert tile_main([f"{url}/scene.tif", "--out", str(tmp_path / "remote"), *args]) == 0
    local, remote = _dataset_files(tmp_path / "local"), _dataset_files(tmp_path / "remote")
    assert len(local) > 10 and local == remote
    doc = json.loads((tmp_path / "remote" / "dataset.json").read_text())
    assert doc["scenes"][0]["path"].startswith("/vsicurl/http://127.0.0.1:")


def test_remote_vector_labels_tile_like_local_ones(tmp_path):
    import shapely

    from geoseg.io.vector import write_vector

    data = np.random.default_rng(4).integers(1, 255, (3, 120, 140), dtype=np.uint8)
    scene = tmp_path / "scene.tif"
    _cog(scene, data)
    served = tmp_path / "served"
    served.mkdir()
    x0, y0 = T.c, T.f
    polys = [shapely.box(x0 + 100, y0 - 600, x0 + 500, y0 - 200), shapely.box(x0 + 700, y0 - 1100, x0 + 1200, y0 - 700)]
    write_vector(served / "labels.gpkg", polys, {"class_id": np.array([1, 2])}, crs=UTM)
    args = ["--label-field", "class_id", "--size", "64", "--stride", "48", "--quiet"]
    local_labels = str(served / "labels.gpkg")
    assert tile_main([str(scene), "--labels", local_labels, "--out", str(tmp_path / "local"), *args]) == 0
    with serve_folder(served) as (url, _):
        assert tile_main([str(scene), "--labels", f"{url}/labels.gpkg", "--out", str(tmp_path / "remote"), *args]) == 0
    local, remote = _dataset_files(tmp_path / "local"), _dataset_files(tmp_path / "remote")
    assert len(local) > 10 and local == remote


# -- STAC ---------------------------------------------------------------------------------------

def _stac_item(folder, href_base=None):
    """Sentinel-2-like item: B02/B03/B04 at 10 m, B08 at 20 m with nodata, a 3-band 'visual' asset."""
    rng = np.random.default_rng(4)
    bands = {k: rng.integers(1, 4000, (1, 60, 80), dtype=np.uint16) for k in ("B02", "B03", "B04")}
    nir = rng.integers(1, 4000, (1, 30, 40), dtype=np.uint16)
    nir[0, :2, :2] = 0
    for k, a in bands.items():
        _cog(folder / f"{k}.tif", a)
    _cog(folder / "B08.tif", nir, transform=Affine(20.0, 0, T.c, 0, -20.0, T.f), nodata=0)
    visual = rng.integers(0, 255, (3, 60, 80), dtype=np.uint8)
    _cog(folder / "TCI.tif", visual)
    names = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}

    def href(k):
        return f"{href_base}/{k}.tif" if href_base else f"./{k}.tif"

    assets = {k: {"href": href(k), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                  "eo:bands": [{"name": k, "common_name": c}]} for k, c in names.items()}
    assets["visual"] = {"href": href("TCI"), "eo:bands": [{"name": "B04", "common_name": "red"},
                                                          {"name": "B03", "common_name": "green"},
                                                          {"name": "B02", "common_name": "blue"}]}
    assets["thumbnail"] = {"href": "./thumb.png", "type": "image/png"}
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "S2X_TEST_ITEM", "geometry": None,
            "properties": {}, "assets": assets, "links": []}
    path = folder / "item.json"
    path.write_text(json.dumps(item))
    expected = np.concatenate([bands["B04"], bands["B03"], bands["B02"],
                               np.kron(nir, np.ones((1, 2, 2), np.uint16))])
    return path, expected, visual


def test_stac_item_assets_stacked_by_common_name(tmp_path):
    item, expected, visual = _stac_item(tmp_path)
    vrt = stac_scene(item, ["red", "green", "blue", "nir"])
    assert vrt.name == "S2X_TEST_ITEM.vrt"
    with rasterio.open(vrt) as ds:
        assert ds.descriptions == ("red", "green", "blue", "nir")
        assert (ds.crs, ds.transform, ds.shape, ds.dtypes[0]) == (UTM, T, (60, 80), "uint16")
        np.testing.assert_array_equal(ds.read(), expected)
        from rasterio.windows import Window

        np.testing.assert_array_equal(ds.read(window=Window(17, 9, 21, 13)), expected[:, 9:22, 17:38])
        assert ds.nodatavals[3] == 0
    with rasterio.open(stac_scene(item, ["visual"])) as ds:  # an asset key: all its bands
        np.testing.assert_array_equal(ds.read(), visual)
        assert ds.descriptions == ("red", "green", "blue")
    with pytest.raises(InvalidParameterError, match=r"'swir' is neither an asset nor a band.*band names: .*nir"):
        stac_scene(item, ["red", "swir"])
    with pytest.raises(InvalidParameterError, match=r"is a STAC item: choose its assets with --assets \(B02, "):
        resolve_stac_items([str(item)], None)
    with pytest.raises(UnreadableRasterError, match="STAC item: choose its assets with --assets"):
        open_scene(item)


def test_stac_item_with_remote_assets_tiles_like_a_stacked_geotiff(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    with serve_folder(served) as (url, log):
        item, expected, _ = _stac_item(served, href_base=url)
        stacked = tmp_path / "S2X_TEST_ITEM.tif"
        with rasterio.open(stacked, "w", driver="GTiff", width=80, height=60, count=4, dtype="uint16", crs=UTM,
                           transform=T) as ds:
            ds.write(expected)
        args = ["--size", "32", "--stride", "16", "--quiet"]
        assert tile_main([str(item), "--assets", "red,green,blue,nir", "--out", str(tmp_path / "stac"), *args]) == 0
        assert any("/B08.tif" in line and "bytes=" in line for line in log.read_text().splitlines())
    assert tile_main([str(stacked), "--out", str(tmp_path / "tif"), *args]) == 0
    a, b = tmp_path / "stac" / "images", tmp_path / "tif" / "images"
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) > 5
    for name in names:
        with rasterio.open(a / name) as x, rasterio.open(b / name) as y:
            np.testing.assert_array_equal(x.read(), y.read())
            assert x.transform == y.transform
    assert json.loads((tmp_path / "stac" / "dataset.json").read_text())["band_names"] == ["red", "green", "blue", "nir"]
    assert tile_main([str(stacked), "--assets", "red", "--out", str(tmp_path / "x")]) == 1


# -- photos -------------------------------------------------------------------------------------

def _photo(path, data, driver):
    with rasterio.open(path, "w", driver=driver, width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype="uint8") as ds:
        ds.write(data)
    return path


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_folder_of_photos(tmp_path, caplog):
    rng = np.random.default_rng(5)
    folder = tmp_path / "photos"
    folder.mkdir()
    png = rng.integers(0, 255, (3, 24, 40), dtype=np.uint8)
    _photo(folder / "b.png", png, "PNG")
    _photo(folder / "a.JPG", rng.integers(0, 255, (3, 16, 16), dtype=np.uint8), "JPEG")
    (folder / "notes.txt").write_text("not an image")
    found = expand_inputs([folder])
    assert [p.name for p in found] == ["a.JPG", "b.png"]
    infos = [open_scene(p) for p in found]
    assert [i.driver for i in infos] == ["JPEG", "PNG"] and all(is_photo(i) for i in infos)
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        assert photo_notice(infos) == 2
    assert len(caplog.records) == 1 and "carry no georeferencing" in caplog.records[0].getMessage()
    np.testing.assert_array_equal(read_image(folder / "b.png"), png)
    label = np.array([[0, 1, 2, 255]] * 3, np.uint8)
    classes = ClassMap.from_names(["background", "building", "water"])
    out = write_label_png(tmp_path / "b_label.png", label, classes)
    with rasterio.open(out) as ds:
        assert ds.driver == "PNG" and ds.count == 1
        np.testing.assert_array_equal(ds.read(1), label)
        assert ds.colormap(1)[1][:3] == classes.colors[1] and ds.colormap(1)[255][3] == 0
