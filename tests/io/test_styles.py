"""Class names, attribute tables and styles where GDAL and QGIS read them; default class colours."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
import rasterio.shutil

from geoseg.io.classes import DEFAULT_COLORS, ClassMap, load_palette, named_color
from geoseg.io.styles import (
    GFU_BLUE,
    GFU_MINMAX,
    GFU_NAME,
    label_qml,
    pam_path,
    probability_qml,
    qml_path,
    write_label_styles,
)

CLASSES = ClassMap.from_json([{"index": 0, "name": "background"}, {"index": 1, "name": "building"},
                              {"index": 3, "name": "water", "color": [1, 2, 3]}])


@pytest.fixture
def label(make_raster):
    path = make_raster("scene_label.tif", data=np.array([[[0, 1, 3, 255]]], np.uint8), nodata=255)
    with rasterio.open(path, "r+") as ds:
        ds.write_colormap(1, CLASSES.colormap())
        ds.update_tags(KEEP="me")
    return path


def _gdal_band_xml(path, tmp_path):
    """The band as GDAL (rasterio's libgdal) sees it, serialized by GDAL's own VRT writer."""
    vrt = tmp_path / "seen_by_gdal.vrt"
    rasterio.shutil.copy(path, vrt, driver="VRT")
    return ET.parse(vrt).getroot().find("VRTRasterBand")


def test_gdal_reads_category_names_and_attribute_table(label, tmp_path):
    written = write_label_styles(label, CLASSES)
    assert written == [pam_path(label), qml_path(label)]
    assert qml_path(label).name == "scene_label.qml"
    band = _gdal_band_xml(label, tmp_path)
    assert [c.text or "" for c in band.find("CategoryNames")] == ["background", "building", "", "water"]
    rat = band.find("GDALRasterAttributeTable")
    usages = [int(f.find("Usage").text) for f in rat.findall("FieldDefn")]
    assert usages[:2] == [GFU_MINMAX, GFU_NAME] and usages[-1] == GFU_BLUE
    rows = [[f.text for f in row.findall("F")] for row in rat.findall("Row")]
    assert rows == [["0", "background", "0", "0", "0"], ["1", "building", "220", "30", "30"],
                    ["3", "water", "1", "2", "3"]]
    with rasterio.open(label) as ds:  # the GeoTIFF itself is untouched: tags, colour table
        assert ds.tags()["KEEP"] == "me" and ds.colormap(1)[3][:3] == (1, 2, 3)


def test_rewriting_keeps_other_pam_content(label, tmp_path):
    pam_path(label).write_text('<PAMDataset><Metadata><MDI key="OTHER">x</MDI></Metadata>'
                               '<PAMRasterBand band="1"><Description>class</Description></PAMRasterBand></PAMDataset>')
    write_label_styles(label, ClassMap.from_names(["a", "b"]))
    write_label_styles(label, CLASSES)
    root = ET.parse(pam_path(label)).getroot()
    assert root.find("Metadata/MDI").text == "x"
    assert len(root.findall("PAMRasterBand/CategoryNames")) == 1
    assert len(root.findall("PAMRasterBand/GDALRasterAttributeTable")) == 1
    with rasterio.open(label) as ds:
        assert ds.tags()["OTHER"] == "x"  # GDAL still parses the side-car


@pytest.mark.skipif(shutil.which("gdalinfo") is None, reason="gdalinfo not installed (apt-get install gdal-bin)")
def test_gdalinfo_lists_categories_and_rat(label):
    write_label_styles(label, CLASSES)
    doc = json.loads(subprocess.run(["gdalinfo", "-json", str(label)], check=True, capture_output=True,
                                    text=True).stdout)
    band = doc["bands"][0]
    assert band["categories"] == ["background", "building", "", "water"]
    rat = doc.get("rat") or band.get("rat")
    assert [r["f"][:2] for r in rat["row"]] == [[0, "background"], [1, "building"], [3, "water"]]


def test_qml_documents():
    root = ET.fromstring(label_qml(CLASSES).split("\n", 1)[1])
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = [(e.get("value"), e.get("color"), e.get("label")) for e in renderer.iter("paletteEntry")]
    assert entries == [("0", "#000000", "background"), ("1", "#dc1e1e", "building"), ("3", "#010203", "water")]
    prob = ET.fromstring(probability_qml(2, "building").split("\n", 1)[1]).find("pipe/rasterrenderer")
    assert prob.get("type") == "singlebandpseudocolor" and prob.get("band") == "2"
    shader = prob.find("rastershader/colorrampshader")
    values = [float(i.get("value")) for i in shader.findall("item")]
    assert values[0] == 0.0 and values[-1] == 1.0 and values == sorted(values)


def test_conventional_default_colours():
    cm = ClassMap.from_names(["Background", "buildings", "road", "water", "low_vegetation", "Trees", "bare soil",
                              "car", "thing"])
    by_name = dict(zip(cm.names, cm.colors))
    r, g, b = by_name["buildings"]
    assert r > 180 and g < 80 and b < 80  # red
    assert by_name["road"][0] == by_name["road"][1] == by_name["road"][2]  # grey
    assert by_name["water"][2] > 180 and by_name["water"][0] < 80  # blue
    for green in ("low_vegetation", "Trees"):
        r, g, b = by_name[green]
        assert g > r and g > b
    r, g, b = by_name["bare soil"]
    assert r > g > b  # brown
    assert by_name["Background"] == (0, 0, 0)
    assert by_name["thing"] in DEFAULT_COLORS  # no convention: the colour-blind-safe palette
    assert len(set(cm.colors)) == len(cm.colors)
    assert named_color("forest") != named_color("grass")  # distinct greens


def test_explicit_colours_win_and_defaults_stay_distinct(tmp_path):
    (tmp_path / "p.txt").write_text("0,ground,0,0,0\n1,building,0,255,0\n")
    assert load_palette(tmp_path / "p.txt").colors == [(0, 0, 0), (0, 255, 0)]
    cm = ClassMap.from_json([{"name": "building", "color": [220, 30, 30]}, {"name": "house"}, {"name": "x"}])
    assert cm.colors[0] == (220, 30, 30) and len(set(cm.colors)) == 3
    many = ClassMap.default(256)
    assert len(set(many.colors)) == 256 and many.colors[0] == (0, 0, 0)
