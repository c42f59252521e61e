"""Named palettes (``--classes voc`` / ``--palette cityscapes`` / ``potsdam``): tables, colour <-> index, tiling."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio

from geoseg.cli.labels import main as labels_main
from geoseg.cli.tile import main as tile_main
from geoseg.errors import InputNotFoundError
from geoseg.io.classes import IGNORE_INDEX, color_to_index, index_to_color, load_palette, named_palette
from geoseg.io.palettes import PALETTES
from geoseg.tiling.config import parse_classes

from factories import write_raster


def voc_color(i: int) -> tuple[int, int, int]:
    """VOClabelcolormap.m: bits 0, 1, 2 of i go to bit 7 of r, g, b, bits 3, 4, 5 to bit 6, ..."""
    r = g = b = 0
    for j in range(8):
        r |= ((i >> 0) & 1) << (7 - j)
        g |= ((i >> 1) & 1) << (7 - j)
        b |= ((i >> 2) & 1) << (7 - j)
        i >>= 3
    return (r, g, b)


#: cityscapesScripts helpers/labels.py: (name, trainId, colour) of every label
CITYSCAPES_LABELS = [
    ("unlabeled", 255, (0, 0, 0)), ("ego vehicle", 255, (0, 0, 0)), ("rectification border", 255, (0, 0, 0)),
    ("out of roi", 255, (0, 0, 0)), ("static", 255, (0, 0, 0)), ("dynamic", 255, (111, 74, 0)),
    ("ground", 255, (81, 0, 81)), ("road", 0, (128, 64, 128)), ("sidewalk", 1, (244, 35, 232)),
    ("parking", 255, (250, 170, 160)), ("rail track", 255, (230, 150, 140)), ("building", 2, (70, 70, 70)),
    ("wall", 3, (102, 102, 156)), ("fence", 4, (190, 153, 153)), ("guard rail", 255, (180, 165, 180)),
    ("bridge", 255, (150, 100, 100)), ("tunnel", 255, (150, 120, 90)), ("pole", 5, (153, 153, 153)),
    ("polegroup", 255, (153, 153, 153)), ("traffic light", 6, (250, 170, 30)), ("traffic sign", 7, (220, 220, 0)),
    ("vegetation", 8, (107, 142, 35)), ("terrain", 9, (152, 251, 152)), ("sky", 10, (70, 130, 180)),
    ("person", 11, (220, 20, 60)), ("rider", 12, (255, 0, 0)), ("car", 13, (0, 0, 142)), ("truck", 14, (0, 0, 70)),
    ("bus", 15, (0, 60, 100)), ("caravan", 255, (0, 0, 90)), ("trailer", 255, (0, 0, 110)),
    ("train", 16, (0, 80, 100)), ("motorcycle", 17, (0, 0, 230)), ("bicycle", 18, (119, 11, 32)),
    ("license plate", -1, (0, 0, 142)),
]


def test_voc_table_is_the_bit_pattern_colormap():
    voc = named_palette("VOC")
    assert voc.num_classes == 21 and voc.names[0] == "background" and voc.names[20] == "tvmonitor"
    assert voc.colors == [voc_color(i) for i in range(21)]
    assert voc.ignore_colors == (voc_color(255),) == ((224, 224, 192),)


def test_cityscapes_table_follows_the_official_labels():
    cs = named_palette("cityscapes")
    train = sorted((t, n, c) for n, t, c in CITYSCAPES_LABELS if 0 <= t < 255)
    assert [(c.index, c.name, c.color) for c in cs.classes] == train
    ignored = {c for _, t, c in CITYSCAPES_LABELS if t in (255, -1)} - {c for _, _, c in train}
    assert set(cs.ignore_colors) == ignored and len(cs.ignore_colors) == len(ignored)


def test_isprs_colours_and_names():
    for name in ("potsdam", "vaihingen"):
        isprs = load_palette(name)
        assert dict(zip(isprs.names, isprs.colors)) == {
            "impervious surfaces": (255, 255, 255), "building": (0, 0, 255), "low vegetation": (0, 255, 255),
            "tree": (0, 255, 0), "car": (255, 255, 0), "clutter": (255, 0, 0)}
        assert isprs.ignore_colors == ((0, 0, 0),)
    assert set(PALETTES) == {"voc", "cityscapes", "potsdam", "vaihingen"}


def test_cityscapes_round_trip_and_unused_labels_read_as_ignore():
    cs = named_palette("cityscapes")
    idx = np.random.default_rng(0).integers(0, 19, (20, 30)).astype(np.uint8)
    idx[:3, :4] = IGNORE_INDEX
    rgb = index_to_color(idx, cs)
    np.testing.assert_array_equal(color_to_index(rgb, cs), idx)
    colored = np.array([[(250, 170, 160), (153, 153, 153), (0, 0, 142), (0, 0, 0)]], np.uint8)  # parking, polegroup
    np.testing.assert_array_equal(color_to_index(np.moveaxis(colored, -1, 0), cs), [[255, 5, 13, 255]])


def test_names_and_files(tmp_path, monkeypatch):
    assert parse_classes("voc").names == named_palette("voc").names
    assert parse_classes(" Potsdam ").num_classes == 6
    assert parse_classes("background,voc").names == ["background", "voc"]  # names, not a palette
    monkeypatch.chdir(tmp_path)
    (tmp_path / "voc").write_text("0,a,1,2,3\n1,b,4,5,6\n")  # a file of that name wins
    assert load_palette("voc").names == ["a", "b"]
    with pytest.raises(InputNotFoundError, match="named palettes: voc, cityscapes, potsdam, vaihingen"):
        load_palette("pascal")


def test_voc_colour_raster_to_indices_and_back(make_raster, tmp_path):
    voc = named_palette("voc")
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 21, (40, 50)).astype(np.uint8)
    idx[:, 20:22] = IGNORE_INDEX  # a border line between objects
    rgb = np.moveaxis(np.array([voc_color(int(i)) for i in idx.ravel()], np.uint8).reshape(40, 50, 3), -1, 0)
    assert (rgb[:, 0, 20] == (224, 224, 192)).all()
    src = make_raster("voc.tif", data=rgb)
    out, back = tmp_path / "idx.tif", tmp_path / "back.tif"
    assert labels_main(["color2index", str(src), "--palette", "voc", "--out", str(out), "--quiet"]) == 0
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), idx)
        assert ds.colormap(1)[15][:3] == (192, 128, 128) and json.loads(ds.tags()["GEOSEG_CLASSES"])[15]["name"] \
            == "person"
    assert labels_main(["index2color", str(out), "--out", str(back), "--quiet"]) == 0
    with rasterio.open(back) as ds:
        data = ds.read()
    keep = idx != IGNORE_INDEX
    np.testing.assert_array_equal(data[:3][:, keep], rgb[:, keep])
    assert (data[3][~keep] == 0).all() and (data[3][keep] == 255).all()
    np.testing.assert_array_equal(index_to_color(idx, voc), rgb)  # 255 drawn with the border colour


def test_tiling_with_named_isprs_palette(make_raster, tmp_path):
    isprs = named_palette("potsdam")
    h, w = 48, 64
    idx = np.random.default_rng(2).integers(0, 6, (h, w)).astype(np.uint8)
    idx[10:14, :] = IGNORE_INDEX  # eroded boundary, black in the reference labels
    rgb = index_to_color(idx, isprs)
    assert (rgb[:, 10, 0] == 0).all()
    scene = make_raster("top_potsdam.tif", height=h, width=w, bands=3)
    lab = write_raster(tmp_path / "label.tif", rgb)
    ds = tmp_path / "ds"
    args = [str(scene), "--labels", str(lab), "--classes", "potsdam", "--palette", "potsdam", "--out", str(ds),
            "--size", "32", "--stride", "16", "--val-fraction", "0", "--quiet"]
    assert tile_main(args) == 0
    meta = json.loads((ds / "dataset.json").read_text())
    assert [(c["name"], tuple(c["color"])) for c in meta["classes"]] == list(zip(isprs.names, isprs.colors))
    assert meta["num_classes"] == 6
    mosaic = np.full((h, w), 254, np.uint8)
    with open(ds / "index.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            ro, co, ph, pw = (int(r[k]) for k in ("row_off", "col_off", "height", "width"))
            with rasterio.open(ds / r["label"]) as p:
                mosaic[ro:ro + ph, co:co + pw] = p.read(1)
    np.testing.assert_array_equal(mosaic, idx)
