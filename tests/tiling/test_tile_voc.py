"""PASCAL VOC folders: a tiny VOC tree (JPEG photos, paletted PNG labels with a 255 border,
ImageSets lists) written here with Pillow, tiled by ``geoseg tile VOC_ROOT``."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from PIL import Image

from geoseg.cli.tile import main
from geoseg.tiling.index import read_index

H, W, SIZE = 32, 48, 16
IDS = ("2007_000032", "2007_000039", "2007_000063", "2007_000068")  # the last one is in no list


def voc_label(seed: int) -> np.ndarray:
    """Class indices 0..20 in blocks, with VOC's 255 border around the objects."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((H, W), np.uint8)
    for _ in range(3):
        r, c = rng.integers(0, H - 10), rng.integers(0, W - 12)
        lab[r:r + 10, c:c + 12] = 255
        lab[r + 1:r + 9, c + 1:c + 11] = rng.integers(1, 21)
    return lab


def voc_colormap() -> np.ndarray:
    """VOClabelcolormap.m (VOCdevkit), the reference: bits of the index spelled into r, g, b."""
    cmap = np.zeros((256, 3), np.uint8)
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def write_voc(root, lists: bool = True, rgb_labels: bool = False) -> dict[str, np.ndarray]:
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    colours = voc_colormap()
    assert tuple(colours[255]) == (224, 224, 192)  # VOC's border colour
    labels = {}
    for k, i in enumerate(IDS):
        rng = np.random.default_rng(k)
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{i}.jpg")
        lab = labels[i] = voc_label(k)
        if rgb_labels:
            Image.fromarray(colours[lab]).save(root / "SegmentationClass" / f"{i}.png")
        else:
            im = Image.fromarray(lab, mode="L").convert("P")
            im.putpalette(colours.ravel().tolist())
            im.save(root / "SegmentationClass" / f"{i}.png")
    if lists:
        sets = root / "ImageSets" / "Segmentation"
        sets.mkdir(parents=True)
        (sets / "train.txt").write_text(f"{IDS[0]}\n{IDS[1]}\n")
        (sets / "val.txt").write_text(f"{IDS[2]}\n")
    return labels


def check_patches(out, labels):
    rows = read_index(out)
    for row in rows:
        stem = row["id"].rsplit("_r", 1)[0]
        r, c = row["row_off"], row["col_off"]
        with rasterio.open(out / row["label"]) as ds:
            got = ds.read(1)
        np.testing.assert_array_equal(got, labels[stem][r:r + SIZE, c:c + SIZE])
    return rows


def test_voc_root_lists_decide_split(tmp_path, caplog):
    labels = write_voc(tmp_path / "VOC")
    out = tmp_path / "ds"
    assert main([str(tmp_path / "VOC"), "--out", str(out), "--size", str(SIZE), "--quiet"]) == 0
    rows = check_patches(out, labels)
    per_image = (H // SIZE) * (W // SIZE)
    assert len(rows) == 3 * per_image  # the unlisted image is left out
    split_of = {row["id"].rsplit("_r", 1)[0]: row["split"] for row in rows}
    assert split_of == {IDS[0]: "train", IDS[1]: "train", IDS[2]: "val"}
    assert any(255 in labels[i] for i in IDS[:3])
    for split in ("train", "val"):
        listed = (out / f"{split}.txt").read_text().split()
        assert listed == [row["id"] for row in rows if row["split"] == split]
    import json

    meta = json.loads((out / "dataset.json").read_text())
    assert meta["num_classes"] == 21
    assert meta["classes"][15]["name"] == "person"
    assert meta["parameters"]["split"] == "lists"
    assert "no georeferencing" in caplog.text


def test_voc_rgb_labels_read_with_voc_palette(tmp_path):
    labels = write_voc(tmp_path / "VOC", rgb_labels=True)
    out = tmp_path / "ds"
    assert main([str(tmp_path / "VOC"), "--out", str(out), "--size", str(SIZE), "--quiet"]) == 0
    check_patches(out, labels)


def test_explicit_label_folder_pairs_by_stem(tmp_path):
    labels = write_voc(tmp_path / "VOC", lists=False)
    out = tmp_path / "ds"
    rc = main([str(tmp_path / "VOC" / "JPEGImages"), "--labels", str(tmp_path / "VOC" / "SegmentationClass"),
               "--classes", "voc", "--out", str(out), "--size", str(SIZE), "--val-fraction", "0.25", "--quiet"])
    assert rc == 0
    rows = check_patches(out, labels)
    assert {row["id"].rsplit("_r", 1)[0] for row in rows} == set(IDS)
    ids = (out / "train.txt").read_text().split() + (out / "val.txt").read_text().split()
    assert sorted(ids) == sorted(row["id"] for row in rows)


@pytest.mark.parametrize("lists", [False, True])
def test_split_lists_refused_without_lists(tmp_path, capsys, lists):
    write_voc(tmp_path / "VOC", lists=lists)
    target = tmp_path / "VOC" / ("SegmentationClass" if lists else "")
    rc = main([str(target), "--out", str(tmp_path / "ds"), "--size", str(SIZE), "--split", "lists", "--quiet"])
    assert rc == 1
    assert "--split lists needs a VOC root" in capsys.readouterr().err


def test_listed_id_without_photo_is_named(tmp_path, capsys):
    write_voc(tmp_path / "VOC")
    (tmp_path / "VOC" / "JPEGImages" / f"{IDS[2]}.jpg").unlink()
    rc = main([str(tmp_path / "VOC"), "--out", str(tmp_path / "ds"), "--size", str(SIZE), "--quiet"])
    assert rc == 1
    assert IDS[2] in capsys.readouterr().err
