"""Evaluation restricted to an area (``--aoi`` polygons, ``--dataset DIR --split``) equals a plain
evaluation of labels hand-masked with numpy (255 outside the area)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import shapely
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window
from rasterio.windows import bounds as rio_window_bounds

from geoseg.cli.evaluate import main
from geoseg.evaluation import evaluate
from geoseg.evaluation.holdout import split_areas
from geoseg.io.vector import write_vector

from factories import DEFAULT_CRS, DEFAULT_TRANSFORM, write_raster

H, W, K = 40, 56, 3


@pytest.fixture
def scene(tmp_path):
    """Prediction + label (nodata 255 on a corner) on a UTM grid with 0.5 m pixels, striped so
    that a small ``max_pixels`` reads it in several windows."""
    rng = np.random.default_rng(5)
    truth = rng.integers(0, K, (H, W)).astype(np.uint8)
    truth[:3, :4] = 255
    pred = np.where(rng.random((H, W)) < 0.7, truth, rng.integers(0, K, (H, W))).astype(np.uint8)
    pred[truth == 255] = 0
    (tmp_path / "pred").mkdir()
    prd = write_raster(tmp_path / "pred" / "site_label.tif", pred)
    lab = write_raster(tmp_path / "site.tif", truth, nodata=255)
    return prd, lab, truth, pred


def _pixel_polygon_to_4326(rows_cols):
    """A polygon given in (row, col) pixel coordinates of the scene grid -> lon/lat (EPSG:4326)."""
    xs, ys = zip(*(DEFAULT_TRANSFORM * (c, r) for r, c in rows_cols))
    lon, lat = warp_transform(DEFAULT_CRS, "EPSG:4326", xs, ys)
    return list(zip(lon, lat))


def _centres_inside(polygon_4326) -> np.ndarray:
    """Reference mask: pixel centres (UTM) inside the polygon brought back to UTM vertex by vertex."""
    ring = np.asarray(polygon_4326.exterior.coords)
    xs, ys = warp_transform("EPSG:4326", DEFAULT_CRS, ring[:, 0], ring[:, 1])
    holes = []
    for hole in polygon_4326.interiors:
        h = np.asarray(hole.coords)
        hx, hy = warp_transform("EPSG:4326", DEFAULT_CRS, h[:, 0], h[:, 1])
        holes.append(list(zip(hx, hy)))
    utm = shapely.Polygon(list(zip(xs, ys)), holes)
    cols, rows = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    cx, cy = DEFAULT_TRANSFORM * (cols, rows)
    return shapely.contains_xy(utm, cx, cy)


def _plain(tmp_path, prd, truth, inside, name="masked.tif", **kwargs):
    """Hand-masked reference: labels outside the area set to 255, evaluated without any area."""
    masked = np.where(inside, truth, 255).astype(np.uint8)
    lab = write_raster(tmp_path / name, masked, nodata=255)
    return evaluate(prd, lab, K, **kwargs)


@pytest.mark.parametrize("mode", ["global", "per_image"])
def test_aoi_in_another_crs_equals_hand_masked(scene, tmp_path, mode):
    prd, lab, truth, _ = scene
    outer = _pixel_polygon_to_4326([(1.3, 2.7), (3.1, 50.2), (36.7, 41.9), (30.2, 6.4)])
    hole = _pixel_polygon_to_4326([(12.2, 15.1), (14.9, 30.3), (22.6, 21.7)])
    poly = shapely.Polygon(outer, [hole])
    far = shapely.Polygon(_pixel_polygon_to_4326([(-90, -90), (-90, -80), (-80, -80)]))  # off the scene
    aoi = write_vector(tmp_path / "aoi.gpkg", [poly, far], crs="EPSG:4326", layer="zone")
    inside = _centres_inside(poly)
    assert 0.3 < inside.mean() < 0.8  # a real restriction, with a hole

    got = evaluate(prd, lab, K, mode=mode, aoi=f"{aoi}:zone", max_pixels=300)
    ref = _plain(tmp_path, prd, truth, inside, mode=mode)
    np.testing.assert_array_equal(got.confusion, ref.confusion)
    assert got.excluded == ref.excluded == H * W - int((inside & (truth != 255)).sum())
    assert got.metrics.mean_iou == pytest.approx(ref.metrics.mean_iou)
    assert got.options["aoi"] == f"{aoi}:zone"


def _index(tmp_path, windows_by_split, scene_name="site.tif"):
    """A dataset index.csv written by hand: window bounds from rasterio, scene CRS as EPSG text."""
    folder = tmp_path / "dataset"
    folder.mkdir()
    with (folder / "index.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "scene", "split", "row_off", "col_off", "width", "height",
                      "minx", "miny", "maxx", "maxy", "crs"])
        for split, wins in windows_by_split.items():
            for i, w in enumerate(wins):
                out.writerow([f"{split}{i}", f"/data/{scene_name}", split, w.row_off, w.col_off, w.width, w.height,
                              *rio_window_bounds(w, DEFAULT_TRANSFORM), "EPSG:32633"])
    return folder


def test_dataset_split_equals_hand_masked(scene, tmp_path, capsys):
    prd, lab, truth, _ = scene
    val = [Window(8, 0, 16, 16), Window(16, 8, 16, 16), Window(40, 24, 16, 16)]  # overlapping windows
    train = [Window(0, 24, 16, 16)]
    ds = _index(tmp_path, {"val": val, "train": train})
    inside = np.zeros((H, W), bool)
    for w in val:
        inside[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] = True

    got = evaluate(prd, lab, K, dataset=ds, split="val", max_pixels=300)
    ref = _plain(tmp_path, prd, truth, inside)
    np.testing.assert_array_equal(got.confusion, ref.confusion)
    assert got.excluded == ref.excluded

    # the same through the CLI, and through the polygons of the split written as a GeoPackage layer
    areas = split_areas(ds, "val")
    gpkg = write_vector(ds / "split.gpkg", list(areas["site"].geometries), crs="EPSG:32633", layer="val")
    for extra in (["--dataset", str(ds), "--split", "val"], ["--aoi", f"{gpkg}:val"]):
        out = tmp_path / f"report{len(extra)}"
        assert main([str(prd), "--labels", str(lab), "--num-classes", str(K), "--report", str(out), "--quiet",
                     *extra]) == 0
        doc = json.loads((out / "report.json").read_text())
        assert doc["confusion_matrix"] == ref.confusion.tolist()
        assert "outside the area" in capsys.readouterr().out

    # train split: the other area
    inside_train = np.zeros((H, W), bool)
    inside_train[24:40, 0:16] = True
    got = evaluate(prd, lab, K, dataset=ds, split="train")
    np.testing.assert_array_equal(got.confusion, _plain(tmp_path, prd, truth, inside_train, "t.tif").confusion)


def test_dataset_scene_matched_by_folder_pairing(scene, tmp_path):
    """Predictions in a folder pair by name (site_label.tif <-> site.tif) and find scene 'site'."""
    prd, lab, truth, _ = scene
    (tmp_path / "labels").mkdir()
    lab2 = tmp_path / "labels" / "site.tif"
    lab2.write_bytes(lab.read_bytes())
    ds = _index(tmp_path, {"val": [Window(0, 0, 20, 40)]})
    got = evaluate(prd.parent, tmp_path / "labels", K, dataset=ds)
    inside = np.zeros((H, W), bool)
    inside[:, :20] = True
    np.testing.assert_array_equal(got.confusion, _plain(tmp_path, prd, truth, inside).confusion)


@pytest.mark.parametrize("case,message", [
    ("both", "--aoi and --dataset exclude each other"),
    ("no_index", "no dataset index"),
    ("no_split", "has no patch of split 'test'; splits found: train, val"),
    ("other_scene", "matches no scene of dataset"),
    ("no_layer", "has no layer 'nope'; layers are: zone"),
    ("no_polygon", "no polygon"),
    ("outside", "overlaps no prediction"),
])
def test_bad_area_exit_1(scene, tmp_path, capsys, case, message):
    prd, lab, *_ = scene
    args = [str(prd), "--labels", str(lab), "--num-classes", str(K)]
    poly = shapely.Polygon(_pixel_polygon_to_4326([(0, 0), (0, 10), (10, 10)]))
    aoi = write_vector(tmp_path / "aoi.gpkg", [poly], crs="EPSG:4326", layer="zone")
    ds = _index(tmp_path, {"val": [Window(0, 0, 8, 8)], "train": [Window(8, 8, 8, 8)]},
                scene_name="other.tif" if case == "other_scene" else "site.tif")
    if case == "both":
        args += ["--aoi", str(aoi), "--dataset", str(ds)]
    elif case == "no_index":
        args += ["--dataset", str(tmp_path)]
    elif case == "no_split":
        args += ["--dataset", str(ds), "--split", "test"]
    elif case == "other_scene":
        args += ["--dataset", str(ds)]
    elif case == "no_layer":
        args += ["--aoi", f"{aoi}:nope"]
    elif case == "no_polygon":
        pts = write_vector(tmp_path / "pts.geojson", [shapely.Point(500001, 4649770)], crs="EPSG:32633")
        args += ["--aoi", str(pts)]
    elif case == "outside":
        far = shapely.Polygon(_pixel_polygon_to_4326([(-90, -90), (-90, -80), (-80, -80)]))
        args += ["--aoi", str(write_vector(tmp_path / "far.geojson", [far], crs="EPSG:4326"))]
    assert main(args) == (2 if case == "both" else 1)  # options that exclude each other: bad usage
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
