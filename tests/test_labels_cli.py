"""``python -m geoseg.labels``: color2index / index2color through the CLI entry point."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
import rasterio.shutil

import geoseg.convert.colors as labels_mod
from geoseg.cli.labels import main
from geoseg.io.classes import ClassMap, classes_from_tags

PALETTE = ClassMap.from_names(["background", "building", "road", "water"])


@pytest.fixture
def palette(tmp_path):
    path = tmp_path / "palette.json"
    PALETTE.save(path)
    return path


@pytest.fixture
def index_raster(make_raster):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, (70, 90)).astype(np.uint8)
    a[:5, :7] = 255
    return make_raster("idx.tif", data=a[None], nodata=255), a


def test_round_trip_keeps_classes_and_georeferencing(index_raster, palette, tmp_path, monkeypatch):
    monkeypatch.setattr(labels_mod, "BLOCK", 32)  # several blocks, partial ones at the edges
    path, a = index_raster
    rgb, back = tmp_path / "rgb.tif", tmp_path / "back.tif"
    assert main(["index2color", str(path), "--palette", str(palette), "--out", str(rgb), "--quiet"]) == 0
    with rasterio.open(rgb) as ds, rasterio.open(path) as src:
        assert ds.count == 4 and ds.crs == src.crs and ds.transform == src.transform
        data = ds.read()
    np.testing.assert_array_equal(data[:3, 10, 10], PALETTE.colors[a[10, 10]])
    assert (data[3][a == 255] == 0).all() and (data[3][a != 255] == 255).all()
    assert main(["color2index", str(rgb), "--palette", str(palette), "--out", str(back), "--quiet"]) == 0
    with rasterio.open(back) as ds:
        np.testing.assert_array_equal(ds.read(1), a)
        assert ds.nodata == 255 and ds.transform == src.transform and ds.crs.to_epsg() == 32633
        assert ds.colormap(1)[2][:3] == PALETTE.colors[2]
        assert classes_from_tags(ds.tags()) == PALETTE
    # QGIS/GDAL side-cars: GDAL itself (its VRT writer) reads the category names from back.tif.aux.xml.
    assert (tmp_path / "back.qml").is_file()
    vrt = tmp_path / "seen_by_gdal.vrt"
    rasterio.shutil.copy(back, vrt, driver="VRT")
    names = [c.text or "" for c in ET.parse(vrt).getroot().find("VRTRasterBand").find("CategoryNames")]
    assert names[:len(PALETTE.names)] == list(PALETTE.names)


def test_missing_colors_listed_with_counts_over_all_blocks(make_raster, palette, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(labels_mod, "BLOCK", 16)
    rgb = np.zeros((3, 40, 40), np.uint8)
    rgb[:, 0:2, 0:3] = np.array([7, 8, 9])[:, None, None]      # 6 px, first block
    rgb[:, 30:35, 30:40] = np.array([7, 8, 9])[:, None, None]   # 50 px, last block
    rgb[:, 20, 5] = (1, 2, 3)
    path = make_raster("rgb.tif", data=rgb)
    out = tmp_path / "idx.tif"
    assert main(["color2index", str(path), "--palette", str(palette), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "2 color(s) not in the palette: (7,8,9): 56 px, (1,2,3): 1 px" in err
    assert not out.exists() and list(tmp_path.glob("idx*")) == []


def test_rgb_nodata_becomes_255_and_tag_colors_used(make_raster, tmp_path):
    rgb = np.zeros((3, 20, 20), np.uint8)
    rgb[:, :, 10:] = np.array(PALETTE.colors[3])[:, None, None]
    rgb[:, :2, :] = 1  # nodata
    path = make_raster("rgbn.tif", data=rgb, nodata=1)
    pal = tmp_path / "pal.txt"
    lake = ",".join(map(str, PALETTE.colors[3]))  # the colour of the pixels written above
    pal.write_text(f"# index,name,r,g,b\n0,ground,0,0,0\n3,lake,{lake}\n")
    out = tmp_path / "idx.tif"
    assert main(["color2index", str(path), "--palette", str(pal), "--out", str(out), "--quiet"]) == 0
    with rasterio.open(out) as ds:
        idx = ds.read(1)
    assert (idx[:2] == 255).all() and (idx[2:, :10] == 0).all() and (idx[2:, 10:] == 3).all()
    # index2color without --palette takes the classes from the tag color2index wrote.
    view = tmp_path / "view.tif"
    assert main(["index2color", str(out), "--out", str(view), "--quiet"]) == 0
    with rasterio.open(view) as ds:
        assert tuple(ds.read()[:3, 5, 15]) == PALETTE.colors[3]


def test_color_table_used_without_tag(make_raster, tmp_path):
    a = np.array([[0, 1], [2, 1]], np.uint8)
    path = make_raster("ct.tif", data=a[None])
    with rasterio.open(path, "r+") as ds:
        ds.write_colormap(1, {0: (1, 2, 3, 255), 1: (10, 20, 30, 255), 2: (40, 50, 60, 255)})
    out = tmp_path / "v.tif"
    assert main(["index2color", str(path), "--out", str(out), "--quiet"]) == 0
    with rasterio.open(out) as ds:
        assert tuple(ds.read()[:3, 1, 0]) == (40, 50, 60)


def test_errors(make_raster, index_raster, palette, tmp_path, capsys):
    path, _ = index_raster
    assert main(["color2index", str(path), "--palette", str(palette), "--out", str(tmp_path / "o.tif")]) == 1
    assert "needs 3 bands (RGB), found 1" in capsys.readouterr().err
    rgb = make_raster("rgb3.tif", bands=3)
    assert main(["color2index", str(rgb), "--palette", str(tmp_path / "nope.json"), "--out", "o.tif"]) == 1
    assert "no such palette file" in capsys.readouterr().err
    assert main(["index2color", str(rgb), "--out", str(tmp_path / "o.tif")]) == 1
    assert "single-band" in capsys.readouterr().err
    out = tmp_path / "exists.tif"
    out.write_bytes(b"x")
    assert main(["index2color", str(path), "--out", str(out)]) == 1
    assert "output exists" in capsys.readouterr().err
    assert main(["index2color", str(path), "--out", str(out), "--overwrite", "--quiet"]) == 0
    with pytest.raises(SystemExit) as exc:
        main(["color2index", str(rgb), "--out", str(out)])  # --palette is required
    assert exc.value.code == 2
