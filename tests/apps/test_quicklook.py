"""``geoseg quicklook``: PNG size, legend colours, band choice and stretch, any scene size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from PIL import Image

from geoseg.__main__ import main as geoseg_main
from geoseg.apps.quicklook import LEGEND_PX, PANEL_PX, read_scene
from geoseg.cli.quicklook import main
from geoseg.io.classes import CLASSES_TAG, ClassMap, classes_to_tag

CLASSES = ClassMap.from_json([{"index": 0, "name": "background", "color": [10, 10, 10]},
                              {"index": 1, "name": "building", "color": [250, 20, 30]},
                              {"index": 2, "name": "water", "color": [20, 40, 240]}])


@pytest.fixture
def rasters(make_raster):
    scene = make_raster("scene.tif", height=90, width=120, bands=4, seed=1, nodata=0)
    truth = np.zeros((90, 120), np.uint8)
    truth[10:40, 10:60] = 1
    truth[50:80, 70:110] = 2
    pred = truth.copy()
    pred[:5] = 255
    paths = []
    for name, a in (("truth.tif", truth), ("pred.tif", pred)):
        p = make_raster(name, data=a[None], nodata=255)
        with rasterio.open(p, "r+") as ds:
            ds.update_tags(**{CLASSES_TAG: classes_to_tag(CLASSES)})
        paths.append(p)
    return scene, *paths


def _pixels(png):
    return np.asarray(Image.open(png).convert("RGB"))


def test_png_size_and_legend_colours(rasters, tmp_path, capsys):
    scene, truth, pred = rasters
    out = tmp_path / "q.png"
    assert main([str(scene), "--labels", str(truth), "--pred", str(pred), "--out", str(out)]) == 0
    assert "quick-look ->" in capsys.readouterr().out
    img = _pixels(out)
    assert img.shape == (PANEL_PX + LEGEND_PX, 3 * PANEL_PX, 3)
    legend = img[PANEL_PX - 10:]  # the strip under the panels
    for c in CLASSES.classes:
        assert (legend == c.color).all(axis=-1).sum() > 20, c.name  # a legend patch in the class colour
        assert (img[:PANEL_PX, PANEL_PX:] == c.color).all(axis=-1).sum() > 100, c.name  # and in the label panels
    assert main([str(scene), "--out", str(out)]) == 1  # exists
    assert "output exists" in capsys.readouterr().err
    assert geoseg_main(["quicklook", "--pred", str(pred), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert _pixels(out).shape == (PANEL_PX + LEGEND_PX, PANEL_PX, 3)


def test_scene_only_band_choice_and_stretch(make_raster, tmp_path, capsys):
    data = np.zeros((3, 40, 60), np.uint16)
    data[0] = np.arange(60)[None, :] * 10 + 100  # red: a ramp
    data[1] = 500
    data[2, :, 30:] = 1000
    scene = make_raster("s.tif", data=data)
    rgb = read_scene(scene, bands=[1, 2, 3], stretch=(0, 100))
    assert rgb.shape == (40, 60, 3)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and (np.diff(rgb[0, :, 0].astype(int)) >= 0).all()
    assert (rgb[:, :30, 2] == 0).all() and (rgb[:, 30:, 2] == 255).all()
    grey = read_scene(scene, bands=[1], stretch=(0, 100))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    out = tmp_path / "s.png"
    assert main([str(scene), "--bands", "3,2,1", "--stretch", "5,95", "--out", str(out), "--quiet"]) == 0
    assert _pixels(out).shape == (PANEL_PX, PANEL_PX, 3)
    assert main([str(scene), "--bands", "1,2", "--out", str(tmp_path / "x.png")]) == 1
    assert "1 or 3 bands" in capsys.readouterr().err
    assert main([str(scene), "--stretch", "90,10", "--out", str(tmp_path / "y.png")]) == 1
    assert "0 <= LOW < HIGH <= 100" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "z.png")]) == 2  # bad usage: nothing to draw
    assert "give a SCENE, --labels or --pred" in capsys.readouterr().err


def test_large_scene_is_read_decimated(make_raster, tmp_path):
    scene = make_raster("big.tif", height=2400, width=3000, bands=3, seed=2, tiled=True, blockxsize=256,
                        blockysize=256)
    with rasterio.open(scene, "r+") as ds:
        ds.build_overviews([4, 16])
    rgb = read_scene(scene, max_side=300)
    assert rgb.shape == (240, 300, 3)
    bundle = tmp_path / "geoseg.json"
    bundle.write_text(json.dumps({"classes": CLASSES.to_json()}))
    lab = make_raster("biglab.tif", height=2400, width=3000, bands=1, data=np.full((1, 2400, 3000), 2, np.uint8))
    out = tmp_path / "big.png"
    assert main([str(scene), "--pred", str(lab), "--classes", str(bundle), "--max-side", "300", "--out", str(out),
                 "--quiet"]) == 0
    assert (_pixels(out)[PANEL_PX - 10:] == CLASSES.colors[2]).all(axis=-1).sum() > 20
