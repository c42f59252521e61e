"""Prediction outputs that GDAL and QGIS describe fully; remote scenes; photos."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from http_range_server import serve_folder

from geoseg.cli.predict import main

NAMES = ["water", "forest", "urban"]
COLORS = [(0, 0, 255), (0, 128, 0), (200, 0, 0)]  # the softmax bundle's palette


def _gdal_band(path, tmp_path):
    """Band 1 as GDAL reads it (colour table, PAM side-car), serialized by GDAL's VRT driver."""
    vrt = tmp_path / f"{path.stem}_seen.vrt"
    rasterio.shutil.copy(path, vrt, driver="VRT")
    return ET.parse(vrt).getroot().find("VRTRasterBand")


@pytest.mark.parametrize("cog", [False, True])
def test_label_has_categories_rat_and_styles(softmax_bundle_dir, make_raster, tmp_path, cog):
    scene = make_raster("scene.tif", height=40, width=50, bands=4, seed=3, nodata=0)
    out = tmp_path / "out"
    assert main(["--model", str(softmax_bundle_dir), str(scene), "--out", str(out), "--quiet",
                 *(["--cog"] if cog else [])]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "scene_label.qml", "scene_label.tif", "scene_label.tif.aux.xml", "scene_prob.qml", "scene_prob.tif"]
    band = _gdal_band(out / "scene_label.tif", tmp_path)
    assert [c.text for c in band.find("CategoryNames")] == NAMES
    rows = [[f.text for f in r.findall("F")] for r in band.find("GDALRasterAttributeTable").findall("Row")]
    assert rows == [[str(i), n, *map(str, c)] for i, (n, c) in enumerate(zip(NAMES, COLORS))]
    with rasterio.open(out / "scene_label.tif") as ds:
        assert ds.colormap(1)[2][:3] == COLORS[2]
        assert json.loads(ds.tags()["GEOSEG_CLASSES"])[1]["name"] == "forest"  # still there
    qml = ET.fromstring((out / "scene_label.qml").read_text().split("\n", 1)[1])
    entries = [(e.get("value"), e.get("label"), e.get("color")) for e in qml.iter("paletteEntry")]
    assert entries == [("0", "water", "#0000ff"), ("1", "forest", "#008000"), ("2", "urban", "#c80000")]
    prob = ET.fromstring((out / "scene_prob.qml").read_text().split("\n", 1)[1]).find("pipe/rasterrenderer")
    assert (prob.get("type"), prob.get("band")) == ("singlebandpseudocolor", "2")
    with rasterio.open(out / "scene_prob.tif") as ds:
        assert ds.descriptions == tuple(NAMES) and ds.scales[1] == pytest.approx(1 / 255)  # QGIS shows 0..1


@pytest.mark.skipif(shutil.which("gdalinfo") is None, reason="gdalinfo not installed (apt-get install gdal-bin)")
def test_gdalinfo_sees_class_names(softmax_bundle_dir, make_raster, tmp_path):
    scene = make_raster("scene.tif", height=20, width=30, bands=4, seed=4)
    assert main(["--model", str(softmax_bundle_dir), str(scene), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    doc = json.loads(subprocess.run(["gdalinfo", "-json", str(tmp_path / "o" / "scene_label.tif")], check=True,
                                    capture_output=True, text=True).stdout)
    assert doc["bands"][0]["categories"] == NAMES


def test_remote_scene_predicts_like_the_local_file(softmax_bundle_dir, make_raster, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    plain = make_raster("plain.tif", height=70, width=90, bands=4, seed=5, nodata=0)
    rasterio.shutil.copy(plain, served / "scene.tif", driver="COG", blocksize=64)
    assert main(["--model", str(softmax_bundle_dir), str(served / "scene.tif"), "--out", str(tmp_path / "local"),
                 "--quiet"]) == 0
    with serve_folder(served) as (url, _):
        assert main(["--model", str(softmax_bundle_dir), f"{url}/scene.tif", "--out", str(tmp_path / "remote"),
                     "--quiet"]) == 0
    for name in ("scene_label.tif", "scene_prob.tif", "scene_label.tif.aux.xml", "scene_label.qml"):
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_photos_get_png_labels(softmax_bundle_dir, make_raster, tmp_path, caplog):
    rng = np.random.default_rng(6)
    data = rng.integers(1, 255, (4, 40, 48), dtype=np.uint8)
    folder = tmp_path / "photos"
    folder.mkdir()
    with rasterio.open(folder / "pic.png", "w", driver="PNG", width=48, height=40, count=4, dtype="uint8") as ds:
        ds.write(data)
    geo = make_raster("pic.tif", data=data)  # the same pixels, georeferenced
    with caplog.at_level("WARNING", logger="geoseg"):
        assert main(["--model", str(softmax_bundle_dir), str(folder), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    assert [r.getMessage() for r in caplog.records if "georeferencing" in r.getMessage()][0].startswith("1 photo(s)")
    assert main(["--model", str(softmax_bundle_dir), str(geo), "--out", str(tmp_path / "g"), "--quiet"]) == 0
    with rasterio.open(tmp_path / "p" / "pic_label.png") as png, rasterio.open(tmp_path / "g" / "pic_label.tif") as tif:
        assert png.driver == "PNG" and png.crs is None
        np.testing.assert_array_equal(png.read(1), tif.read(1))
        assert png.colormap(1)[1][:3] == COLORS[1]
    assert (tmp_path / "p" / "pic_label.qml").is_file() and (tmp_path / "p" / "pic_prob.tif").is_file()
