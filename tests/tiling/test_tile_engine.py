"""run_tiling on tiny rasters: windows, pixels, transforms, formats, splits, statistics, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.windows import Window

from geoseg.errors import DatasetError, SceneTooSmallError
from geoseg.io.vector import read_vector
from geoseg.tiling import writer
from geoseg.tiling.tiler import TileConfig, run_tiling


def _rows(ds: Path) -> list[dict]:
    with open(ds / "index.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _labels(h: int, w: int, seed: int = 1) -> np.ndarray:
    """Blocky class raster (classes 0..3) with a few ignore pixels."""
    rng = np.random.default_rng(seed)
    lab = np.kron(rng.integers(0, 4, size=(h // 8 + 1, w // 8 + 1)), np.ones((8, 8), int))[:h, :w]
    return lab.astype(np.uint8)


def _cfg(scene, out, **kw) -> TileConfig:
    kw.setdefault("quiet", True)
    kw.setdefault("val_fraction", 0.0)
    return TileConfig(scenes=(str(scene),), out=str(out), **kw)


def test_stride_windows_pixels_and_transforms(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=70, width=90, bands=3, nodata=0)
    lab = make_raster("lab.tif", data=_labels(70, 90), nodata=255)
    res = run_tiling(_cfg(scene, tmp_path / "ds", labels=(str(lab),), size=32, stride=24))
    rows = _rows(tmp_path / "ds")
    # Rows: 0, 24, snapped 38; cols: 0, 24, 48, snapped 58 -> 3 x 4 windows, row-major.
    assert [(int(r["row_off"]), int(r["col_off"])) for r in rows] == [
        (r, c) for r in (0, 24, 38) for c in (0, 24, 48, 58)]
    assert res.patches == {"train": 12, "val": 0}
    with rasterio.open(scene) as src, rasterio.open(lab) as lsrc:
        for r in rows:
            win = Window(int(r["col_off"]), int(r["row_off"]), 32, 32)
            with rasterio.open(tmp_path / "ds" / r["image"]) as p:
                assert p.crs == src.crs and p.nodata == 0 and p.shape == (32, 32)
                assert p.transform == src.window_transform(win)
                np.testing.assert_array_equal(p.read(), src.read(window=win))
                assert (float(r["minx"]), float(r["maxy"])) == (p.bounds.left, p.bounds.top)
            with rasterio.open(tmp_path / "ds" / r["label"]) as p:
                assert p.dtypes[0] == "uint8" and p.nodata == 255 and p.transform == src.window_transform(win)
                want = lsrc.read(1, window=win)
                np.testing.assert_array_equal(p.read(1), want)
                counts = [int(r[f"count_{k}"]) for k in range(4)]
                assert counts == np.bincount(want.ravel(), minlength=4)[:4].tolist()
    fp = read_vector(tmp_path / "ds" / "footprints.gpkg")
    assert fp.crs == src.crs and list(fp.attributes["id"]) == [r["id"] for r in rows]
    assert fp.attributes["count_3"].tolist() == [int(r["count_3"]) for r in rows]
    assert fp.geometries[5].bounds == tuple(float(rows[5][k]) for k in ("minx", "miny", "maxx", "maxy"))
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["num_classes"] == 4 and [c["name"] for c in meta["classes"]] == [f"class_{k}" for k in range(4)]
    assert meta["parameters"]["stride"] == 24 and meta["tile_size"] == 32 and meta["bands"] == [1, 2, 3]
    assert sum(meta["class_counts"]["train"]) == 12 * 32 * 32


def test_statistics_cover_valid_training_pixels(make_raster, tmp_path):
    data = np.random.default_rng(3).integers(1, 200, size=(2, 64, 64)).astype(np.uint16)
    data[:, :10, :] = 0  # nodata rows
    scene = make_raster("scene.tif", data=data, nodata=0)
    run_tiling(_cfg(scene, tmp_path / "ds", size=32, stride=32, bands=(2,)))
    stats = json.loads((tmp_path / "ds" / "dataset.json").read_text())["statistics"]
    valid = data[1][10:]
    assert stats["pixels"] == valid.size
    assert stats["mean"][0] == pytest.approx(valid.mean(), abs=1e-6)
    assert stats["std"][0] == pytest.approx(valid.std(), abs=1e-5)
    assert (stats["min"][0], stats["max"][0]) == (valid.min(), valid.max())
    assert abs(stats["p98"][0] - np.percentile(valid, 98)) <= 1


def test_float_statistics_and_npy_format(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=48, width=48, bands=2, dtype="float32")
    res = run_tiling(_cfg(scene, tmp_path / "ds", size=16, format="npy"))
    rows = _rows(tmp_path / "ds")
    assert res.patches["train"] == 9 and rows[0]["image"].endswith(".npy") and rows[0]["label"] == ""
    with rasterio.open(scene) as src:
        full = src.read()
        for r in rows:
            arr = np.load(tmp_path / "ds" / r["image"])
            ro, co = int(r["row_off"]), int(r["col_off"])
            np.testing.assert_array_equal(arr, full[:, ro:ro + 16, co:co + 16])
    stats = json.loads((tmp_path / "ds" / "dataset.json").read_text())["statistics"]
    np.testing.assert_allclose(stats["mean"], full.reshape(2, -1).mean(1), rtol=1e-5)
    np.testing.assert_allclose(stats["p2"], np.percentile(full.reshape(2, -1), 2, axis=1), rtol=1e-5)


def test_max_nodata_min_labeled_and_pad(make_raster, tmp_path):
    data = np.full((1, 40, 40), 7, np.uint8)
    data[:, :, :20] = 0
    scene = make_raster("scene.tif", data=data, nodata=0)
    lab = np.zeros((40, 40), np.uint8)
    lab[20:, 20:] = 2
    labp = make_raster("lab.tif", data=lab)
    res = run_tiling(_cfg(scene, tmp_path / "a", labels=(str(labp),), size=20, max_nodata=0.5, min_labeled=0.5))
    assert [(r["row_off"], r["col_off"]) for r in _rows(tmp_path / "a")] == [("20", "20")]
    assert res.dropped == {"nodata": 2, "labeled": 1}
    small = make_raster("small.tif", height=12, width=20, bands=1, nodata=0, seed=4)
    with pytest.raises(SceneTooSmallError, match="--pad"):
        run_tiling(_cfg(small, tmp_path / "b", size=16))
    run_tiling(_cfg(small, tmp_path / "b", size=16, stride=8, pad=True))
    rows = _rows(tmp_path / "b")
    assert [(int(r["row_off"]), int(r["col_off"])) for r in rows] == [(0, 0), (0, 4)]
    with rasterio.open(tmp_path / "b" / rows[0]["image"]) as p, rasterio.open(small) as src:
        arr = p.read()
        np.testing.assert_array_equal(arr[:, :12, :16], src.read(window=Window(0, 0, 16, 12)))
        assert (arr[:, 12:] == 0).all()
    assert float(rows[0]["nodata_fraction"]) == pytest.approx(4 * 16 / 256)


def test_random_mode_reproducible_across_workers(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=80, width=96, bands=2)
    lab = make_raster("lab.tif", data=_labels(80, 96))
    common = dict(labels=(str(lab),), mode="random", size=16, count=30, seed=7, val_fraction=0.3)
    run_tiling(_cfg(scene, tmp_path / "a", **common))
    run_tiling(_cfg(scene, tmp_path / "b", workers=2, **common))
    run_tiling(_cfg(scene, tmp_path / "c", **{**common, "seed": 8}))
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
        run_tiling(_cfg(scene, tmp_path / "d", scheduler=cluster.scheduler_address, **common))
    a, b, c, d = (_rows(tmp_path / n) for n in "abcd")
    assert len(a) == 30 and a == b == d and a != c
    assert sum(r["split"] == "val" for r in a) == 9
    ja = json.loads((tmp_path / "a" / "dataset.json").read_text())
    jb = json.loads((tmp_path / "b" / "dataset.json").read_text())
    assert ja == jb
    for r in a:
        assert (tmp_path / "a" / r["image"]).read_bytes() == (tmp_path / "b" / r["image"]).read_bytes()
    ids = [r["id"] for r in a]
    assert len(set(ids)) == len(ids)


def test_spatial_split_never_leaks(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=128, width=128, bands=1)
    res = run_tiling(_cfg(scene, tmp_path / "ds", size=16, stride=8, val_fraction=0.25, split="spatial",
                          block_size=32))
    rows = _rows(tmp_path / "ds")
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    assert train and len(val) >= 0.25 * 225 and res.dropped["split"] > 0

    def box(r):
        return int(r["row_off"]), int(r["col_off"])

    for t in train:
        tr, tc = box(t)
        for v in val:
            vr, vc = box(v)
            assert tr + 16 <= vr or vr + 16 <= tr or tc + 16 <= vc or vc + 16 <= tc, (t["id"], v["id"])
    # Whole blocks: the 32 px blocks a validation window touches hold no training pixel.
    train_px = np.zeros((128, 128), bool)
    for t in train:
        tr, tc = box(t)
        train_px[tr:tr + 16, tc:tc + 16] = True
    for v in val:
        vr, vc = box(v)
        b0, b1 = (vr // 32) * 32, ((vr + 15) // 32 + 1) * 32
        c0, c1 = (vc // 32) * 32, ((vc + 15) // 32 + 1) * 32
        assert not train_px[b0:b1, c0:c1].any(), v["id"]


class _Boom(RuntimeError):
    pass


def test_resume_after_interruption_gives_same_dataset(make_raster, tmp_path, monkeypatch):
    scene = make_raster("scene.tif", height=96, width=96, bands=2, nodata=0)
    lab = make_raster("lab.tif", data=_labels(96, 96))
    common = dict(labels=(str(lab),), size=16, stride=16, val_fraction=0.25, batch_size=5)
    run_tiling(_cfg(scene, tmp_path / "full", **common))

    real = writer.write_patch
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] > 23:
            raise _Boom("killed")
        return real(*a, **k)

    monkeypatch.setattr(writer, "write_patch", flaky)
    with pytest.raises(_Boom):
        run_tiling(_cfg(scene, tmp_path / "part", **common))
    monkeypatch.setattr(writer, "write_patch", real)
    part = tmp_path / "part"
    assert not (part / "index.csv").exists() and (part / ".journal.jsonl").exists()
    written_before = {p.name: p.stat().st_mtime_ns for p in (part / "images").iterdir()}
    res = run_tiling(_cfg(scene, part, resume=True, **common))
    assert res.resumed == 10  # two finished batches of 5 windows were listed
    assert _rows(part) == _rows(tmp_path / "full")
    assert (part / "dataset.json").read_text() == (tmp_path / "full" / "dataset.json").read_text()
    assert not (part / ".journal.jsonl").exists()
    for r in _rows(part):
        for key in ("image", "label"):
            assert (part / r[key]).read_bytes() == (tmp_path / "full" / r[key]).read_bytes()
    kept = [n for n, t in written_before.items() if (part / "images" / n).stat().st_mtime_ns == t]
    assert len(kept) >= 10
    # split.gpkg from kept and new rows: the uninterrupted run's geometries, vertex for vertex
    for s in ("train", "val"):
        got, want = read_vector(part / "split.gpkg", layer=s), read_vector(tmp_path / "full" / "split.gpkg", layer=s)
        assert list(shapely.to_wkb(got.geometries)) == list(shapely.to_wkb(want.geometries))
    # A finished dataset resumed again is unchanged.
    run_tiling(_cfg(scene, part, resume=True, **common))
    assert _rows(part) == _rows(tmp_path / "full")


@pytest.mark.parametrize("bands", [1, 3, 4])
def test_uint8_statistics_counted_two_bands_at_a_time_are_exact(bands):
    from geoseg.tiling.stats import BandStats

    rng = np.random.default_rng(bands)
    patches = [rng.integers(0, 256, size=(bands, 40, 50), dtype=np.uint8) for _ in range(3)]
    masks = [np.ones((40, 50), bool), rng.random((40, 50)) > 0.3, np.zeros((40, 50), bool)]
    st = BandStats("uint8", bands)
    for d, m in zip(patches, masks):
        st.update(d, m)
    res = st.result()
    for b in range(bands):
        v = np.concatenate([d[b][m] for d, m in zip(patches, masks)])
        want = np.bincount(v, minlength=256)
        np.testing.assert_array_equal(st.hist[b], want)
        assert res["mean"][b] == pytest.approx(v.mean()) and res["std"][b] == pytest.approx(v.std())
        assert (res["min"][b], res["max"][b]) == (v.min(), v.max())
    assert res["pixels"] == sum(int(m.sum()) for m in masks)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".geoseg.lock"}


def test_overwrite_replaces_the_previous_dataset_entirely(make_raster, tmp_path, monkeypatch):
    # --overwrite moves the previous patch folders aside and deletes them while the new run tiles:
    # the result must be what a run into an empty folder gives, with nothing of the old run left.
    monkeypatch.setenv("OGR_CURRENT_DATE", "2000-01-01T00:00:00Z")  # GeoPackages record their write time
    scene = make_raster("scene.tif", height=64, width=64, bands=3, nodata=0)
    lab = make_raster("lab.tif", data=_labels(64, 64))
    background = make_raster("background.tif", data=np.zeros((64, 64), np.uint8))
    new = dict(labels=(str(lab),), size=32, val_fraction=0.25)
    run_tiling(_cfg(scene, tmp_path / "fresh", **new))
    out = tmp_path / "ds"
    run_tiling(_cfg(scene, out, labels=(str(lab),), size=16, stride=8))  # 49 patches, other ids
    leftover = out / ".geoseg-old-images-0123abcd"  # what a run killed during the deletion leaves
    leftover.mkdir()
    (leftover / "s_r0_c0.tif").write_bytes(b"old")
    assert len(list((out / "images").iterdir())) == 49
    run_tiling(_cfg(scene, out, overwrite=True, **new))
    assert _files(out) == _files(tmp_path / "fresh")
    assert len(_files(out)) == 2 * 4 + 6  # 4 images, 4 labels, index.csv, lists, GeoPackages, dataset.json
    # A failed --overwrite run (no patch passes the filters) leaves neither the old nor a partial dataset.
    with pytest.raises(DatasetError, match="no patch passed"):
        run_tiling(_cfg(scene, out, overwrite=True, min_labeled=0.5, **{**new, "labels": (str(background),)}))
    assert sorted(p.name for p in out.iterdir()) in ([], [".geoseg.lock"])


def test_tasks_per_scene_shrink_with_the_number_of_scenes():
    from geoseg.tiling.tiler import TASKS_PER_RUN, TASKS_PER_SCENE, tasks_per_scene

    assert (TASKS_PER_RUN, TASKS_PER_SCENE) == (16, 16)
    assert [tasks_per_scene(n) for n in (1, 2, 3, 8, 15, 16, 40)] == [16, 8, 6, 2, 2, 1, 1]


def test_whole_scene_tasks_give_the_same_dataset(make_raster, tmp_path, monkeypatch):
    # Many small scenes: one task per scene. The dataset must not depend on the task partition.
    monkeypatch.setenv("OGR_CURRENT_DATE", "2000-01-01T00:00:00Z")
    scenes = tuple(str(make_raster(f"s{i}.tif", height=48, width=64, bands=3, nodata=0, seed=i)) for i in range(3))
    labels = tuple(str(make_raster(f"l{i}.tif", data=_labels(48, 64, seed=i))) for i in range(3))
    common = dict(labels=labels, size=16, val_fraction=0.25, quiet=True)
    run_tiling(TileConfig(scenes=scenes, out=str(tmp_path / "rows"), batch_size=4, **common))  # a window row each
    from geoseg.tiling import tiler

    monkeypatch.setattr(tiler, "TASKS_PER_RUN", 1)
    calls = []
    real = tiler.tile_batch
    monkeypatch.setattr(tiler, "tile_batch", lambda task: calls.append(len(task.items)) or real(task))
    run_tiling(TileConfig(scenes=scenes, out=str(tmp_path / "whole"), **common))
    assert len(calls) == 3 and sum(calls) == sum(1 for r in _rows(tmp_path / "whole"))
    assert _files(tmp_path / "whole") == _files(tmp_path / "rows")


def test_split_areas_per_scene_whatever_the_completion_order(make_raster, tmp_path):
    """split.gpkg holds, per scene and split, the union of that scene's index footprints, in scene order;
    each scene's union is made when its last task is in, so two threads finishing tasks in any order
    give the one-worker file."""
    scenes = [make_raster(f"s{i}.tif", height=64, width=80, bands=2, nodata=0) for i in range(3)]
    common = dict(size=16, stride=12, split="spatial", val_fraction=0.25, batch_size=4, quiet=True)
    one = run_tiling(TileConfig(scenes=tuple(map(str, scenes)), out=str(tmp_path / "one"), **common))
    two = run_tiling(TileConfig(scenes=tuple(map(str, scenes)), out=str(tmp_path / "two"), workers=2, **common))
    assert one.pixels == two.pixels
    rows = _rows(tmp_path / "one")
    for s in ("train", "val"):
        a, b = (read_vector(tmp_path / d / "split.gpkg", layer=s) for d in ("one", "two"))
        assert list(shapely.to_wkb(a.geometries)) == list(shapely.to_wkb(b.geometries))
        assert list(a.attributes["scene"]) == [str(p) for p in scenes]
        for name, g in zip(a.attributes["scene"], a.geometries):
            sel = [r for r in rows if r["scene"] == name and r["split"] == s]
            ref = shapely.union_all([shapely.box(*(float(r[k]) for k in ("minx", "miny", "maxx", "maxy")))
                                     for r in sel])
            assert sel and g.symmetric_difference(ref).area <= 1e-9 * ref.area
