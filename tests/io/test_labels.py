"""The one label reader: sources brought onto a grid window by window, the same truth for tiling
and evaluation, CRS rules for vector files, repaired/skipped features, ignore values."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from geoseg.errors import CRSMismatchError, InvalidParameterError, NoOverlapError
from geoseg.evaluation.pairing import Pair
from geoseg.evaluation.reader import PairReader
from geoseg.io.label_source import Grid
from geoseg.io.label_values import LabelRules
from geoseg.io.labels import open_labels, resolve_labels
from geoseg.io.raster import open_scene
from geoseg.io.vector import write_vector

from factories import DEFAULT_CRS, DEFAULT_TRANSFORM, write_raster

H, W = 50, 70


def _grid_raster(tmp_path, name="grid.tif"):
    return write_raster(tmp_path / name, np.zeros((H, W), np.uint8), tiled=True, blockxsize=16, blockysize=16)


def _read_windows(src, size=(13, 17)):
    """Assemble the (H, W) truth from windows of ``size`` (several, odd sizes, last ones cropped)."""
    out = np.full((H, W), 77, np.uint8)
    wins = [Window(c, r, min(size[1], W - c), min(size[0], H - r)) for r in range(0, H, size[0])
            for c in range(0, W, size[1])]
    with open_labels(src) as reader:
        reader.prepare(wins)
        for w in wins:
            out[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] = reader.read(w)
    return out


def _eval_truth(pred, label, rules):
    """The truth evaluation sees (255 where not valid), assembled from its blocks."""
    out = np.full((H, W), 77, np.uint8)
    with PairReader(Pair(pred, label, "grid"), rules,
                    max_pixels=300) as reader:
        for b in reader:
            w = b.window
            out[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] = np.where(b.valid, b.truth, 255)
    return out


def _polygons():
    x0, y0 = DEFAULT_TRANSFORM.c, DEFAULT_TRANSFORM.f
    return [shapely.box(x0 + 2.2, y0 - 12.1, x0 + 17.7, y0 - 1.3),
            shapely.Polygon([(x0 + 20, y0 - 2), (x0 + 33, y0 - 9), (x0 + 25, y0 - 24)]),
            shapely.Point(x0 + 12, y0 - 17).buffer(5.1)]


def test_tiling_and_evaluation_read_the_same_truth(tmp_path):
    pred = _grid_raster(tmp_path)
    grid = Grid.of(open_scene(pred))
    # A label raster in another CRS on a finer grid: the same array whichever caller reads it.
    truth = (np.add.outer(np.arange(H) // 7, np.arange(W) // 9) % 4).astype(np.uint8)
    dst_crs = CRS.from_epsg(32632)
    from rasterio.warp import calculate_default_transform

    tr, w, h = calculate_default_transform(DEFAULT_CRS, dst_crs, W, H, *grid.bounds, resolution=0.25)
    warped = np.full((h, w), 255, np.uint8)
    reproject(truth, warped, src_transform=DEFAULT_TRANSFORM, src_crs=DEFAULT_CRS, dst_transform=tr, dst_crs=dst_crs,
              resampling=Resampling.nearest, dst_nodata=255)
    lab = write_raster(tmp_path / "lab.tif", warped, crs=dst_crs, transform=tr, nodata=255)
    src = resolve_labels(lab, grid)
    assert src.alignment == "warped (nearest)"
    tiled = _read_windows(src)
    np.testing.assert_array_equal(tiled, _eval_truth(pred, lab, LabelRules()))
    # Independent reference: GDAL's whole-raster warp back onto the grid.
    back = np.full((H, W), 255, np.uint8)
    reproject(warped, back, src_transform=tr, src_crs=dst_crs, dst_transform=DEFAULT_TRANSFORM, dst_crs=DEFAULT_CRS,
              resampling=Resampling.nearest, src_nodata=255, dst_nodata=255)
    np.testing.assert_array_equal(tiled, back)
    # A vector source: the same array from both callers, equal to one whole-grid rasterize.
    geoms = _polygons()
    gpkg = write_vector(tmp_path / "v.gpkg", geoms, {"class_id": np.array([1, 2, 3])}, crs=DEFAULT_CRS)
    want = rasterize(zip(geoms, [1, 2, 3]), out_shape=(H, W), transform=DEFAULT_TRANSFORM, fill=0, dtype=np.uint8)
    vsrc = resolve_labels(gpkg, grid)
    np.testing.assert_array_equal(_read_windows(vsrc), want)
    np.testing.assert_array_equal(_eval_truth(pred, gpkg, LabelRules()), want)


def test_ignore_value_in_raster_and_vector_labels(tmp_path):
    grid = Grid.of(open_scene(_grid_raster(tmp_path)))
    arr = (np.arange(H * W).reshape(H, W) % 5).astype(np.uint8)  # values 0..4; 4 = "unknown" in this product
    lab = write_raster(tmp_path / "lab.tif", arr, nodata=3)
    got = _read_windows(resolve_labels(lab, grid, LabelRules(ignore_value=4)))
    np.testing.assert_array_equal(got, np.where(np.isin(arr, (3, 4)), 255, arr))
    geoms = _polygons()
    gpkg = write_vector(tmp_path / "v.gpkg", geoms, {"class_id": np.array([1, 9, 2])}, crs=DEFAULT_CRS)
    want = rasterize(zip(geoms, [1, 255, 2]), out_shape=(H, W), transform=DEFAULT_TRANSFORM, fill=0, dtype=np.uint8)
    np.testing.assert_array_equal(_read_windows(resolve_labels(gpkg, grid, LabelRules(ignore_value=9))), want)


def test_null_classes_skipped_and_invalid_polygons_repaired_with_one_warning(tmp_path, caplog):
    grid = Grid.of(open_scene(_grid_raster(tmp_path)))
    x0, y0 = DEFAULT_TRANSFORM.c, DEFAULT_TRANSFORM.f
    bowtie = shapely.Polygon([(x0 + 2, y0 - 2), (x0 + 20, y0 - 20), (x0 + 20, y0 - 2), (x0 + 2, y0 - 20)])
    assert not bowtie.is_valid
    good = shapely.box(x0 + 24, y0 - 20, x0 + 30, y0 - 4)
    geoms = [bowtie, good, shapely.box(x0 + 1, y0 - 24, x0 + 9, y0 - 21), bowtie]
    gpkg = write_vector(tmp_path / "labels.gpkg", geoms, {"class": np.array([2.0, 1.0, np.nan, np.nan])},
                        crs=DEFAULT_CRS)
    caplog.set_level(logging.WARNING, logger="geoseg.labels")
    warned: set = set()
    src = resolve_labels(gpkg, grid, warned=warned)
    resolve_labels(gpkg, grid, warned=warned)  # a second scene of the same file: no second warning
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == ["labels.gpkg: 2 feature(s) with a null 'class' skipped, 1 invalid polygon(s) repaired"], msgs
    fixed = shapely.make_valid(bowtie)
    want = rasterize([(fixed, 2), (good, 1)], out_shape=(H, W), transform=DEFAULT_TRANSFORM, fill=0, dtype=np.uint8)
    np.testing.assert_array_equal(_read_windows(src), want)
    assert (want == 2).sum() > 50  # both triangles of the bow-tie burn


def test_labels_crs_override_and_projected_coordinates_read_as_lonlat(tmp_path):
    grid = Grid.of(open_scene(_grid_raster(tmp_path)))
    geoms = _polygons()
    # GeoJSON without a 'crs' member, coordinates in UTM metres: GDAL reads it as lon/lat (EPSG:4326).
    gj = tmp_path / "utm.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"class_id": i + 1}, "geometry": shapely.geometry.mapping(g)}
        for i, g in enumerate(geoms)]}))
    with pytest.raises(CRSMismatchError, match=r"far outside lon/lat .*without a 'crs' member .*--labels-crs"):
        resolve_labels(gj, grid)
    src = resolve_labels(gj, grid, LabelRules(labels_crs="EPSG:32633"))
    want = rasterize(zip(geoms, [1, 2, 3]), out_shape=(H, W), transform=DEFAULT_TRANSFORM, fill=0, dtype=np.uint8)
    np.testing.assert_array_equal(_read_windows(src), want)
    # The override also reprojects: the same polygons in zone 32 coordinates, declared as such.
    from geoseg.io.vector import reproject_geometries

    z32 = reproject_geometries(np.array(geoms, dtype=object), DEFAULT_CRS, CRS.from_epsg(32632))
    with pytest.warns(UserWarning, match="crs"):  # pyogrio: writing without CRS, as intended
        bare = write_vector(tmp_path / "z32.gpkg", z32, {"class_id": np.array([1, 2, 3])}, crs=None)
    with pytest.raises(NoOverlapError, match="no feature overlapping .*--labels-crs"):
        resolve_labels(bare, grid)  # no CRS: taken as the grid's, which puts them far away
    got = _read_windows(resolve_labels(bare, grid, LabelRules(labels_crs="EPSG:32632")))
    assert (got != want).mean() < 0.02  # only edge pixels may move through the reprojection
    with pytest.raises(InvalidParameterError, match="--labels-crs 'EPSG:nope' is not a CRS"):
        resolve_labels(bare, grid, LabelRules(labels_crs="EPSG:nope"))


def test_label_raster_cut_past_the_edge_of_a_padded_grid(tmp_path):
    scene = _grid_raster(tmp_path)
    arr = np.random.default_rng(0).integers(0, 4, (H, W)).astype(np.uint8)
    lab = write_raster(tmp_path / "lab.tif", arr)
    src = resolve_labels(lab, Grid.of(open_scene(scene), (64, 80)))
    assert src.alignment == "same grid"
    with open_labels(src) as reader:
        got = reader.read(Window(48, 40, 32, 24))
    want = np.full((24, 32), 255, np.uint8)
    want[:10, :22] = arr[40:, 48:]
    np.testing.assert_array_equal(got, want)
    shifted = write_raster(tmp_path / "shift.tif", arr, transform=DEFAULT_TRANSFORM * Affine.translation(3, 2))
    src = resolve_labels(shifted, Grid.of(open_scene(scene)))
    assert src.alignment == "warped (nearest)"
    with open_labels(src) as reader:
        got = reader.read(Window(0, 0, W, H))
    assert (got[:2] == 255).all() and (got[:, :3] == 255).all()
    np.testing.assert_array_equal(got[2:, 3:], arr[:-2, :-3])
