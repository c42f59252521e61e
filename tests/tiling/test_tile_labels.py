"""Label sources brought onto the image grid: vector, shifted/reprojected rasters, color + palette."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import Resampling, calculate_default_transform, reproject

from geoseg.errors import MissingGeoreferenceError, NoOverlapError, PaletteError
from geoseg.io.classes import ClassMap, index_to_color
from geoseg.io.vector import reproject_geometries, write_vector
from geoseg.tiling.tiler import TileConfig, run_tiling

from factories import DEFAULT_CRS, DEFAULT_TRANSFORM, write_raster

H, W = 96, 112


def _cfg(scene, out, labels, **kw) -> TileConfig:
    kw.setdefault("size", 32)
    kw.setdefault("stride", 24)
    return TileConfig(scenes=(str(scene),), out=str(out), labels=(str(labels),), quiet=True, val_fraction=0.0, **kw)


def _mosaic(ds: Path, key: str = "label") -> np.ndarray:
    """Rebuild the (H, W) label raster from the patches (later patches overwrite earlier ones)."""
    out = np.full((H, W), 254, np.uint8)
    with open(ds / "index.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            ro, co, h, w = (int(r[k]) for k in ("row_off", "col_off", "height", "width"))
            with rasterio.open(ds / r[key]) as p:
                out[ro:ro + h, co:co + w] = p.read(1)
    return out


def _polygons():
    t = DEFAULT_TRANSFORM
    x0, y0 = t.c, t.f
    geoms = [
        shapely.Polygon([(x0 + 3.3, y0 - 2.1), (x0 + 30.7, y0 - 4.6), (x0 + 25.2, y0 - 33.9), (x0 + 5.1, y0 - 28.2)]),
        shapely.Point(x0 + 35.3, y0 - 30.2).buffer(12.3),
        shapely.box(x0 + 20.2, y0 - 45.7, x0 + 52.9, y0 - 20.4),  # overlaps both: later features win
        shapely.Point(x0 + 10.1, y0 - 40.3).buffer(6.2),
    ]
    return np.array(geoms, dtype=object), np.array([1, 2, 3, 4], np.int32)


def test_vector_labels_match_whole_scene_rasterize(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=H, width=W, bands=1)
    geoms, cls = _polygons()
    write_vector(tmp_path / "poly.gpkg", geoms, {"class_id": cls}, crs=DEFAULT_CRS)
    want = rasterize(zip(geoms, cls.tolist()), out_shape=(H, W), transform=DEFAULT_TRANSFORM, fill=0, dtype="uint8")
    run_tiling(_cfg(scene, tmp_path / "a", tmp_path / "poly.gpkg", label_field="class_id"))
    np.testing.assert_array_equal(_mosaic(tmp_path / "a"), want)
    run_tiling(_cfg(scene, tmp_path / "b", tmp_path / "poly.gpkg", burn_value=1))
    np.testing.assert_array_equal(_mosaic(tmp_path / "b"), (want > 0).astype(np.uint8))
    # The same polygons stored in lon/lat land on (nearly) the same pixels: only edge pixels may differ.
    ll = reproject_geometries(geoms, DEFAULT_CRS, CRS.from_epsg(4326))
    write_vector(tmp_path / "poly_ll.geojson", ll, {"class_id": cls}, crs="EPSG:4326")
    run_tiling(_cfg(scene, tmp_path / "c", tmp_path / "poly_ll.geojson", label_field="class_id"))
    got = _mosaic(tmp_path / "c")
    assert (got != want).mean() < 0.01


def test_shifted_label_raster_is_cut_exactly(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=H, width=W, bands=1)
    big = np.random.default_rng(0).integers(0, 5, size=(H + 20, W + 30)).astype(np.uint8)
    # Label grid starts 7 rows above and 5 columns left of the scene.
    shifted = DEFAULT_TRANSFORM * Affine.translation(-5, -7)
    lab = write_raster(tmp_path / "lab.tif", big, transform=shifted)
    run_tiling(_cfg(scene, tmp_path / "ds", lab))
    np.testing.assert_array_equal(_mosaic(tmp_path / "ds"), big[7:7 + H, 5:5 + W])


def test_reprojected_label_raster_lands_in_place(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=H, width=W, bands=1)
    coarse = np.random.default_rng(1).integers(0, 4, size=(H // 16, W // 16))
    truth = np.kron(coarse, np.ones((16, 16))).astype(np.uint8)
    dst_crs = CRS.from_epsg(32632)
    left, top = DEFAULT_TRANSFORM.c, DEFAULT_TRANSFORM.f
    right, bottom = left + W * 0.5, top - H * 0.5
    tr, w, h = calculate_default_transform(DEFAULT_CRS, dst_crs, W, H, left, bottom, right, top, resolution=0.25)
    warped = np.full((h, w), 255, np.uint8)
    reproject(truth, warped, src_transform=DEFAULT_TRANSFORM, src_crs=DEFAULT_CRS, dst_transform=tr,
              dst_crs=dst_crs, resampling=Resampling.nearest, dst_nodata=255)
    lab = write_raster(tmp_path / "lab_32632.tif", warped, crs=dst_crs, transform=tr, nodata=255)
    run_tiling(_cfg(scene, tmp_path / "ds", lab))
    got = _mosaic(tmp_path / "ds")
    agree = (got == truth).mean()
    assert agree > 0.97, agree
    # Away from class edges the warp is exact.
    interior = np.zeros_like(truth, bool)
    for r in range(0, H, 16):
        for c in range(0, W, 16):
            interior[r + 3:r + 13, c + 3:c + 13] = True
    np.testing.assert_array_equal(got[interior], truth[interior])


def test_color_labels_palette_round_trip(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=H, width=W, bands=1)
    classes = ClassMap.from_names(["background", "building", "road", "water"])
    classes.save(tmp_path / "palette.json")
    idx = np.random.default_rng(2).integers(0, 4, size=(H, W)).astype(np.uint8)
    rgb = index_to_color(idx, classes)
    lab = write_raster(tmp_path / "color.tif", rgb)
    res = run_tiling(_cfg(scene, tmp_path / "ds", lab, palette=str(tmp_path / "palette.json")))
    np.testing.assert_array_equal(_mosaic(tmp_path / "ds"), idx)
    assert res.num_classes == 4
    # Back to colors for viewing: the same RGB as the source.
    np.testing.assert_array_equal(index_to_color(_mosaic(tmp_path / "ds"), classes), rgb)
    rgb[:, :2, :3] = np.array([9, 8, 7], np.uint8)[:, None, None]
    rgb[:, 50, 50] = (1, 2, 3)
    bad = write_raster(tmp_path / "bad.tif", rgb)
    with pytest.raises(PaletteError, match=r"2 color\(s\) not in the palette: \(9,8,7\): 6 px, \(1,2,3\): 1 px"):
        run_tiling(_cfg(scene, tmp_path / "bad", bad, palette=str(tmp_path / "palette.json")))
    assert not (tmp_path / "bad").exists()


def test_labels_that_do_not_overlap_or_cannot_be_warped(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=H, width=W, bands=1)
    far = DEFAULT_TRANSFORM * Affine.translation(10_000, 0)
    lab = write_raster(tmp_path / "far.tif", np.zeros((H, W), np.uint8), transform=far)
    with pytest.raises(NoOverlapError, match="does not overlap"):
        run_tiling(_cfg(scene, tmp_path / "a", lab))
    write_vector(tmp_path / "far.gpkg", [shapely.box(0, 0, 10, 10)], {"class_id": np.array([1])}, crs=DEFAULT_CRS)
    with pytest.raises(NoOverlapError, match="no feature overlapping"):
        run_tiling(_cfg(scene, tmp_path / "b", tmp_path / "far.gpkg", label_field="class_id"))
    nocrs = write_raster(tmp_path / "nocrs.tif", np.zeros((H + 1, W), np.uint8), crs=None, transform=Affine.identity())
    with pytest.raises(MissingGeoreferenceError, match="no CRS"):
        run_tiling(_cfg(scene, tmp_path / "c", nocrs))
    # Same size without georeference: taken as the scene grid.
    same = write_raster(tmp_path / "same.tif", np.ones((H, W), np.uint8), crs=None, transform=Affine.identity())
    run_tiling(_cfg(scene, tmp_path / "d", same))
    assert (_mosaic(tmp_path / "d") == 1).all()


def _read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def test_text_classes_named_and_auto(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=H, width=W, bands=1)
    geoms, _ = _polygons()
    kinds = np.array(["Road", "building", "WATER", "road"], dtype=object)
    write_vector(tmp_path / "kinds.gpkg", geoms, {"kind": kinds}, crs=DEFAULT_CRS)
    # Named classes, matched case-insensitively; indices follow --classes.
    run_tiling(_cfg(scene, tmp_path / "a", tmp_path / "kinds.gpkg", label_field="kind",
                    classes="background,building,road,water"))
    want = rasterize(zip(geoms, [2, 1, 3, 2]), out_shape=(H, W), transform=DEFAULT_TRANSFORM, fill=0, dtype="uint8")
    np.testing.assert_array_equal(_mosaic(tmp_path / "a"), want)
    # auto: background + sorted distinct names (case-insensitive), written to dataset.json.
    res = run_tiling(_cfg(scene, tmp_path / "b", tmp_path / "kinds.gpkg", label_field="kind", classes="auto"))
    np.testing.assert_array_equal(_mosaic(tmp_path / "b"), want)
    meta = _read_json(tmp_path / "b" / "dataset.json")
    assert [c["name"] for c in meta["classes"]] == ["background", "building", "Road", "WATER"]
    assert res.num_classes == meta["num_classes"] == 4


def test_ignore_value_in_tiled_raster_and_vector_labels(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=H, width=W, bands=1)
    arr = np.random.default_rng(3).integers(0, 3, size=(H, W)).astype(np.uint8)
    arr[10:20, 5:40] = 99  # "unclassified" in this product
    lab = write_raster(tmp_path / "lab.tif", arr)
    res = run_tiling(_cfg(scene, tmp_path / "a", lab, ignore_value=99))
    np.testing.assert_array_equal(_mosaic(tmp_path / "a"), np.where(arr == 99, 255, arr))
    assert res.num_classes == 3  # 99 is no class
    geoms, cls = _polygons()
    write_vector(tmp_path / "v.gpkg", geoms, {"class_id": np.array([1, -1, 2, 1])}, crs=DEFAULT_CRS)
    run_tiling(_cfg(scene, tmp_path / "b", tmp_path / "v.gpkg", ignore_value=-1))
    want = rasterize(zip(geoms, [1, 255, 2, 1]), out_shape=(H, W), transform=DEFAULT_TRANSFORM, fill=0,
                     dtype="uint8")
    np.testing.assert_array_equal(_mosaic(tmp_path / "b"), want)


def test_label_values_outside_the_class_list_exit_1(make_raster, tmp_path, capsys):
    from geoseg.cli.tile import main

    scene = make_raster("scene.tif", height=H, width=W, bands=1)
    arr = np.zeros((H, W), np.uint8)
    arr[:4, :5] = 7
    arr[50:52, :3] = 4
    lab = write_raster(tmp_path / "lab.tif", arr)
    rc = main([str(scene), "--labels", str(lab), "--out", str(tmp_path / "ds"), "--size", "32", "--stride", "32",
               "--classes", "background,building,road", "--val-fraction", "0", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "class value(s) 4 (6 px), 7 (20 px) beyond the 3 classes (background, building, road)" in err
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_vector_labels_without_crs_read_as_lonlat_suggest_labels_crs(make_raster, tmp_path, capsys):
    import json

    from geoseg.cli.tile import main

    scene = make_raster("scene.tif", height=H, width=W, bands=1)
    geoms, cls = _polygons()
    gj = tmp_path / "utm.geojson"  # projected metres, no 'crs' member: GDAL reads lon/lat
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"class_id": int(c)}, "geometry": shapely.geometry.mapping(g)}
        for g, c in zip(geoms, cls)]}))
    argv = [str(scene), "--labels", str(gj), "--out", str(tmp_path / "ds"), "--size", "32", "--stride", "24",
            "--val-fraction", "0", "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "far outside lon/lat" in err and "--labels-crs" in err and err.count("\n") == 1, err
    assert main([*argv, "--labels-crs", "EPSG:32633"]) == 0
    want = rasterize(zip(geoms, cls.tolist()), out_shape=(H, W), transform=DEFAULT_TRANSFORM, fill=0, dtype="uint8")
    np.testing.assert_array_equal(_mosaic(tmp_path / "ds"), want)


def test_alpha_band_left_out_unless_named(make_raster, tmp_path, caplog):
    import logging

    rgba = np.random.default_rng(5).integers(0, 200, size=(4, H, W)).astype(np.uint8)
    rgba[3] = 255  # a constant-255 fourth band, no alpha colour interpretation
    scene = write_raster(tmp_path / "rgba.tif", rgba, photometric="MINISBLACK")
    caplog.set_level(logging.WARNING)
    cfg = TileConfig(scenes=(str(scene),), out=str(tmp_path / "a"), size=32, quiet=True, val_fraction=0.0)
    run_tiling(cfg)
    assert _read_json(tmp_path / "a" / "dataset.json")["bands"] == [1, 2, 3]
    assert "band 4 (constant 255) looks like an alpha band" in caplog.text
    run_tiling(TileConfig(scenes=(str(scene),), out=str(tmp_path / "b"), size=32, quiet=True, val_fraction=0.0,
                          bands=(1, 2, 3, 4)))
    assert _read_json(tmp_path / "b" / "dataset.json")["bands"] == [1, 2, 3, 4]
