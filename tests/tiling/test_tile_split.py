"""Train/validation splits: shares, leakage, too-small scenes, --val-scenes, split.gpkg, --balance."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely

from geoseg.cli.tile import main
from geoseg.errors import SceneTooSmallError
from geoseg.io.vector import read_vector
from geoseg.io.windows import random_windows, stride_windows
from geoseg.tiling.split import random_split, spatial_split
from geoseg.tiling.tiler import TileConfig, run_tiling

SIZE = 16


def _rows(ds: Path) -> list[dict]:
    with open(ds / "index.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _boxes(windows) -> np.ndarray:
    """``(n, 4)`` row0, col0, row1, col1 in pixels."""
    return np.array([(int(w.row_off), int(w.col_off), int(w.row_off + w.height), int(w.col_off + w.width))
                     for w in windows], np.int64).reshape(-1, 4)


def _intersects(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` True where box i of ``a`` shares a pixel with box j of ``b`` (every pair)."""
    a, b = a[:, None, :], b[None, :, :]
    return (a[..., 0] < b[..., 2]) & (b[..., 0] < a[..., 2]) & (a[..., 1] < b[..., 3]) & (b[..., 1] < a[..., 3])


def _check_split(windows, splits, fraction):
    boxes = _boxes(windows)
    s = np.array([x or "drop" for x in splits])
    n_val, n_train = int((s == "val").sum()), int((s == "train").sum())
    assert n_val > 0 and n_train > 0
    assert abs(n_val / (n_val + n_train) - fraction) <= 0.1 + 1e-9, (n_val, n_train)
    hits = _intersects(boxes, boxes[s == "val"])
    assert not hits[s == "train"].any(), "a training window shares pixels with a validation window"
    # Only windows that touch validation are dropped (none needlessly).
    assert hits[s == "drop"].any(axis=1).all()
    return n_val, n_train


# Scenes in pixels (window 16 px): small square, narrow both ways, large, sizes off the stride grid.
SHAPES = {"square_3x3": (48, 48), "narrow_3x12": (48, 192), "narrow_12x3": (192, 48), "large_30x40": (480, 640),
          "odd_3.3x12.3": (53, 197)}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stride", [SIZE, SIZE // 2])
def test_spatial_share_within_tolerance_and_no_leak(shape, stride):
    h, w = SHAPES[shape]
    windows = stride_windows(h, w, SIZE, stride)
    for fraction in (0.1, 0.2, 0.3, 0.5):
        corners = set()
        for seed in range(4):
            splits = spatial_split(windows, h, w, fraction, seed)
            _check_split(windows, splits, fraction)
            corners.add(tuple(splits))
        assert len(corners) > 1, "the seed should move the validation block"


@pytest.mark.parametrize("length,stride,fractions", [
    (3 * SIZE, SIZE // 2, (0.2, 0.3, 0.5)),  # a 1 x 3 tile strip, the README's half-tile stride
    (5 * SIZE, SIZE, (0.1, 0.2, 0.3, 0.5)),
    (12 * SIZE + 5, SIZE // 2, (0.1, 0.2, 0.3, 0.5)),
])
def test_one_dimensional_strips(length, stride, fractions):
    for h, w in ((SIZE, length), (length, SIZE)):
        windows = stride_windows(h, w, SIZE, stride)
        for fraction in fractions:
            for seed in range(3):
                _check_split(windows, spatial_split(windows, h, w, fraction, seed), fraction)


def test_large_scene_loses_one_boundary_at_most():
    windows = stride_windows(2000, 3000, 64, 32)
    splits = spatial_split(windows, 2000, 3000, 0.2, 0)
    n_val, n_train = _check_split(windows, splits, 0.2)
    assert abs(n_val / (n_val + n_train) - 0.2) < 0.01
    # A strip or corner block loses at most the windows along two of its edges (one window row each).
    assert splits.count(None) <= (2000 // 32) + (3000 // 32)


def test_spatial_split_of_random_windows():
    windows = random_windows(320, 320, SIZE, 400, np.random.default_rng(0))
    for fraction in (0.2, 0.3):
        _check_split(windows, spatial_split(windows, 320, 320, fraction, 1), fraction)


def test_too_small_is_refused_with_alternatives():
    windows = stride_windows(SIZE, 3 * SIZE, SIZE, SIZE // 2)  # 5 windows in one row
    with pytest.raises(SceneTooSmallError, match=r"cannot hold out 10 % ± 10 %.*--split random.*--val-scenes"):
        spatial_split(windows, SIZE, 3 * SIZE, 0.1, 0, scene="s.tif")
    with pytest.raises(SceneTooSmallError, match="no grid keeps windows in both splits"):
        spatial_split(stride_windows(24, 24, SIZE, 8), 24, 24, 0.2, 0)


def test_random_split_never_empty():
    for n in (2, 3, 5):
        for fraction in (0.05, 0.2, 0.95 if n < 5 else 0.9):
            s = random_split(n, fraction, 0)
            assert 1 <= s.count("val") <= n - 1
    assert random_split(10, 0.2, 3).count("val") == 2 and random_split(4, 0.0, 0) == ["train"] * 4


def test_cli_too_small_scene_exits_1_and_writes_nothing(make_raster, tmp_path, capsys):
    scene = make_raster("small.tif", height=40, width=40, bands=1)
    out = tmp_path / "ds"
    rc = main([str(scene), "--out", str(out), "--size", "32", "--stride", "8", "--split", "spatial"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("error: --split spatial cannot hold out 20 %")
    assert str(scene) in err[0] and "--split random" in err[0] and not out.exists()


def test_run_reports_drops_pixels_and_writes_split_areas(make_raster, tmp_path, capsys):
    scene = make_raster("scene.tif", height=96, width=160, bands=2)
    out = tmp_path / "ds"
    assert main([str(scene), "--out", str(out), "--size", "16", "--stride", "8", "--split", "spatial",
                 "--val-fraction", "0.25", "--seed", "3"]) == 0
    summary = capsys.readouterr().out
    rows = _rows(out)
    boxes = np.array([(int(r["row_off"]), int(r["col_off"]), int(r["row_off"]) + 16, int(r["col_off"]) + 16)
                      for r in rows])
    split = np.array([r["split"] for r in rows])
    assert not _intersects(boxes[split == "train"], boxes[split == "val"]).any()
    n_all = len(stride_windows(96, 160, 16, 8))
    dropped = n_all - len(rows)
    assert dropped > 0 and f"{dropped} training windows dropped for overlapping validation" in summary
    assert abs((split == "val").mean() - 0.25) <= 0.1
    assert f"Wrote {len(rows)} patches (train {(split == 'train').sum()}, val {(split == 'val').sum()})" in summary
    # split.gpkg: per split one feature per scene = the union of the index footprints of that split.
    fp = {}
    for s in ("train", "val"):
        sel = [r for r in rows if r["split"] == s]
        fp[s] = shapely.union_all([shapely.box(float(r["minx"]), float(r["miny"]), float(r["maxx"]),
                                               float(r["maxy"])) for r in sel])
        layer = read_vector(out / "split.gpkg", layer=s)
        assert len(layer.geometries) == 1 and layer.crs.to_epsg() == 32633
        assert list(layer.attributes["scene"]) == [str(scene)] and list(layer.attributes["split"]) == [s]
        g = layer.geometries[0]
        assert g.symmetric_difference(fp[s]).area <= 1e-9 * fp[s].area
    assert not fp["train"].intersection(fp["val"]).area
    # Pixel shares in the summary: area of each split's union over both (0.5 m pixels: 0.25 m^2).
    px = {s: fp[s].area / 0.25 for s in fp}
    want = ", ".join(f"{s} {100 * px[s] / sum(px.values()):.1f} %" for s in ("train", "val"))
    assert f"pixels covered: {want}" in summary


def test_val_scenes_holds_out_whole_scenes(make_raster, tmp_path, capsys):
    for name in ("a", "b", "c"):
        make_raster(f"{name}.tif", height=32, width=32, bands=1, seed=ord(name))
    scenes = [str(tmp_path / f"{n}.tif") for n in "abc"]
    res = run_tiling(TileConfig(scenes=tuple(scenes), out=str(tmp_path / "ds"), size=16, val_scenes="b*",
                                quiet=True))
    by_scene = {Path(r["scene"]).stem: {x["split"] for x in _rows(tmp_path / "ds") if x["scene"] == r["scene"]}
                for r in _rows(tmp_path / "ds")}
    assert by_scene == {"a": {"train"}, "b": {"val"}, "c": {"train"}} and res.patches == {"train": 8, "val": 4}
    assert "split" not in res.dropped
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["parameters"]["val_scenes"] == "b*"
    run_tiling(TileConfig(scenes=tuple(scenes), out=str(tmp_path / "ds2"), size=16, val_scenes="a.tif, c",
                          quiet=True))
    assert {r["split"] for r in _rows(tmp_path / "ds2") if Path(r["scene"]).stem == "b"} == {"train"}
    assert {r["split"] for r in _rows(tmp_path / "ds2") if Path(r["scene"]).stem != "b"} == {"val"}
    for pattern, expect in (("z*", "matches none of the scenes"), ("*", "matches every scene")):
        assert main([*scenes, "--out", str(tmp_path / "bad"), "--size", "16", "--val-scenes", pattern]) == 1
        err = capsys.readouterr().err
        assert expect in err and "a.tif, b.tif, c.tif" in err and not (tmp_path / "bad").exists()
    assert main([*scenes, "--out", str(tmp_path / "bad"), "--val-scenes", "a*", "--split", "spatial"]) == 1
    assert "not both" in capsys.readouterr().err


def test_failed_run_leaves_nothing_and_rerun_succeeds(make_raster, tmp_path, capsys):
    scene = make_raster("scene.tif", height=32, width=64, bands=1, nodata=0, seed=1)
    blank = make_raster("blank.tif", data=np.zeros((1, 32, 32), np.uint8), nodata=0)
    out = tmp_path / "ds"
    argv = [str(scene), str(blank), "--out", str(out), "--size", "16", "--val-scenes", "blank*"]
    # Every window of the validation scene is nodata: the validation split would be empty.
    assert main([*argv, "--max-nodata", "0.5"]) == 1
    assert "no validation patch is left" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--quiet"]) == 0 and not (out / ".journal.jsonl").exists()
    # Into an existing (empty) folder: the folder stays, what the run wrote goes.
    (tmp_path / "empty").mkdir()
    assert main([str(blank), "--out", str(tmp_path / "empty"), "--size", "16", "--max-nodata", "0.5"]) == 1
    assert "no patch passed the filters" in capsys.readouterr().err
    assert list((tmp_path / "empty").iterdir()) == []


def _sparse_labels(h: int, w: int) -> np.ndarray:
    lab = np.zeros((h, w), np.uint8)
    lab[10:14, 20:24] = 1
    lab[90:93, 100:104] = 2
    return lab


@pytest.mark.parametrize("share", [0.5, 0.8])
def test_balance_keeps_the_requested_foreground_share(make_raster, tmp_path, share):
    scene = make_raster("scene.tif", height=128, width=128, bands=1)
    lab = make_raster("lab.tif", data=_sparse_labels(128, 128))
    common = dict(labels=(str(lab),), mode="random", size=16, count=40, val_fraction=0.0, quiet=True, seed=5)

    def fg_windows(ds: Path) -> int:
        n = 0
        for r in _rows(ds):
            with rasterio.open(ds / r["label"]) as p:
                a = p.read(1)
            n += bool(((a > 0) & (a < 255)).any())
        return n

    run_tiling(TileConfig(scenes=(str(scene),), out=str(tmp_path / "plain"), **common))
    run_tiling(TileConfig(scenes=(str(scene),), out=str(tmp_path / "bal"), balance=share, **common))
    assert len(_rows(tmp_path / "bal")) == 40 and fg_windows(tmp_path / "bal") == round(share * 40)
    assert fg_windows(tmp_path / "plain") < 10  # two tiny objects: rare without --balance
    meta = json.loads((tmp_path / "bal" / "dataset.json").read_text())
    assert meta["parameters"]["balance"] == share
    assert "balance" not in json.loads((tmp_path / "plain" / "dataset.json").read_text())["parameters"]


def test_balance_options_are_checked(make_raster, tmp_path, capsys):
    scene = make_raster("scene.tif", height=64, width=64, bands=1)
    lab = make_raster("lab.tif", data=_sparse_labels(64, 64))
    base = [str(scene), "--out", str(tmp_path / "ds"), "--size", "16"]
    for extra, expect in ((["--balance", "0.5"], "needs --mode random"),
                          (["--mode", "random", "--balance", "0.5"], "needs --labels"),
                          (["--mode", "random", "--labels", str(lab), "--balance", "1.5"], "in [0, 1]")):
        assert main([*base, *extra]) == 1
        assert expect in capsys.readouterr().err


@pytest.mark.slow
def test_balance_does_not_depend_on_workers(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=128, width=128, bands=2)
    lab = make_raster("lab.tif", data=_sparse_labels(128, 128))
    common = dict(labels=(str(lab),), mode="random", size=16, count=30, balance=0.5, seed=2, quiet=True,
                  split="spatial", val_fraction=0.2)
    run_tiling(TileConfig(scenes=(str(scene),), out=str(tmp_path / "a"), **common))
    run_tiling(TileConfig(scenes=(str(scene),), out=str(tmp_path / "b"), workers=2, **common))
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    assert (tmp_path / "a" / "dataset.json").read_text() == (tmp_path / "b" / "dataset.json").read_text()


def test_relative_paths_with_a_scheduler(make_raster, tmp_path, monkeypatch):
    from dask.distributed import LocalCluster

    from geoseg.tiling import tiler

    make_raster("scene.tif", height=48, width=64, bands=1)
    make_raster("lab.tif", data=_sparse_labels(48, 64))
    monkeypatch.chdir(tmp_path)
    common = dict(scenes=("scene.tif",), labels=("lab.tif",), size=16, quiet=True)
    run_tiling(TileConfig(out="local", **common))
    log = str(tmp_path / "tasks.txt")  # the spy runs on a copy of itself: it reports through a file
    real = tiler.tile_batch

    def spy(task):
        with open(log, "a") as fh:
            fh.write(f"{task.scene}\t{task.labels.path}\t{task.out}\n")
        return real(task)

    monkeypatch.setattr(tiler, "tile_batch", spy)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        run_tiling(TileConfig(out="remote", scheduler=cluster.scheduler_address, **common))
    seen = [tuple(Path(p) for p in line.split("\t")) for line in Path(log).read_text().splitlines()]
    assert seen and all(p.is_absolute() for paths in seen for p in paths)
    assert seen[0] == (tmp_path / "scene.tif", tmp_path / "lab.tif", tmp_path / "remote")
    assert _rows(tmp_path / "remote") == _rows(tmp_path / "local")
