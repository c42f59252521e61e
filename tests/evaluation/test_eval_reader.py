"""Aligned streaming of prediction and label: same grid, other grid/CRS (warped), vector labels."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_geom

from geoseg.errors import BandCountError, NoOverlapError, VectorLabelError
from geoseg.evaluation import block_windows, confusion_matrix, evaluate
from geoseg.io.vector import write_vector

from factories import DEFAULT_CRS, DEFAULT_TRANSFORM, write_raster


def _stripes(h, w, classes=4, width=6):
    """Class stripes: big uniform areas, so nearest resampling is exact away from edges."""
    rows, cols = np.mgrid[0:h, 0:w]
    return (((rows // width) + (cols // (width + 3))) % classes).astype(np.uint8)


def _noisy(truth, classes, seed=0, keep=0.7):
    rng = np.random.default_rng(seed)
    return np.where(rng.random(truth.shape) < keep, truth, rng.integers(0, classes, truth.shape)).astype(np.uint8)


def test_block_windows_cover_every_pixel_once():
    for (h, w, block, mp) in [(100, 130, (16, 16), 1000), (100, 130, (1, 130), 1000), (7, 9, (256, 256), 10),
                              (300, 40, (32, 32), 4096)]:
        seen = np.zeros((h, w), int)
        for win in block_windows(h, w, block, mp):
            seen[win.row_off:win.row_off + win.height, win.col_off:win.col_off + win.width] += 1
            if block[0] < h and block[1] < w:
                assert win.row_off % block[0] == 0 and win.col_off % block[1] == 0
        assert (seen == 1).all()


def test_windowed_evaluation_equals_one_shot(tmp_path):
    truth = _stripes(90, 110)
    truth[:4, :] = 255
    pred = _noisy(truth, 4)
    pred[-3:, -20:] = 7  # prediction nodata (the file's own nodata value)
    lab = write_raster(tmp_path / "lab.tif", truth, nodata=255, tiled=True, blockxsize=16, blockysize=16)
    prd = write_raster(tmp_path / "pred.tif", pred, nodata=7, tiled=True, blockxsize=16, blockysize=16)
    keep = (truth != 255) & (pred != 7)
    expected = confusion_matrix(truth[keep], pred[keep], 4)
    small = evaluate(prd, lab, 4, max_pixels=300)  # many windows
    whole = evaluate(prd, lab, 4, max_pixels=10**8)  # one window
    np.testing.assert_array_equal(small.confusion, expected)
    np.testing.assert_array_equal(whole.confusion, expected)
    assert small.images[0].alignment == "same grid"
    assert small.excluded == truth.size - keep.sum()


def test_label_on_a_2x_coarser_grid_is_warped_nearest(tmp_path):
    coarse = _stripes(30, 40, width=3)
    fine = np.kron(coarse, np.ones((2, 2), np.uint8))  # (60, 80) on the prediction grid
    pred = _noisy(fine, 4, seed=1)
    t = DEFAULT_TRANSFORM
    coarse_t = Affine(t.a * 2, 0, t.c, 0, t.e * 2, t.f)
    lab = write_raster(tmp_path / "lab.tif", coarse, transform=coarse_t)
    prd = write_raster(tmp_path / "pred.tif", pred)
    res = evaluate(prd, lab, 4, max_pixels=500)
    assert res.images[0].alignment == "warped (nearest)"
    np.testing.assert_array_equal(res.confusion, confusion_matrix(fine, pred, 4))


def test_label_partly_outside_is_excluded(tmp_path):
    truth = _stripes(40, 40)
    pred = _noisy(truth, 4, seed=2)
    t = DEFAULT_TRANSFORM
    shifted = Affine(t.a, 0, t.c + 10 * t.a, 0, t.e, t.f)  # label starts 10 px to the right
    lab = write_raster(tmp_path / "lab.tif", truth[:, 10:], transform=shifted)
    prd = write_raster(tmp_path / "pred.tif", pred)
    res = evaluate(prd, lab, 4)
    np.testing.assert_array_equal(res.confusion, confusion_matrix(truth[:, 10:], pred[:, 10:], 4))
    assert res.excluded == 40 * 10


def test_label_in_another_utm_zone(tmp_path):
    # A scene near the 33/34 zone border; the label is the same truth reprojected to zone 34 at finer pixels.
    t = Affine(0.5, 0, 747000.0, 0, -0.5, 4650000.0)
    truth = _stripes(60, 60, width=10)
    pred = truth.copy()
    prd = write_raster(tmp_path / "pred.tif", pred, transform=t)
    dst_crs = CRS.from_epsg(32634)
    dt, dw, dh = calculate_default_transform(DEFAULT_CRS, dst_crs, 60, 60, *rasterio.transform.array_bounds(60, 60, t),
                                             resolution=0.25)
    warped = np.full((dh, dw), 255, np.uint8)
    reproject(truth, warped, src_transform=t, src_crs=DEFAULT_CRS, dst_transform=dt, dst_crs=dst_crs,
              resampling=Resampling.nearest, src_nodata=None, dst_nodata=255)
    lab = write_raster(tmp_path / "lab34.tif", warped, crs=dst_crs, transform=dt, nodata=255)
    res = evaluate(prd, lab, 4)
    assert res.images[0].alignment == "warped (nearest)"
    assert res.metrics.pixels >= 0.98 * truth.size  # the label covers the scene
    assert res.metrics.overall_accuracy > 0.97  # only pixels on stripe edges may move
    # ignoring the CRS (same pixels read as zone 33) would land far away: refused as no overlap
    with pytest.raises(NoOverlapError):
        evaluate(prd, write_raster(tmp_path / "lab33.tif", warped, crs=DEFAULT_CRS, transform=dt, nodata=255), 4)


def test_no_overlap_and_bad_bands(tmp_path):
    prd = write_raster(tmp_path / "pred.tif", np.zeros((20, 20), np.uint8))
    far = Affine(0.5, 0, 100000.0, 0, -0.5, 1000000.0)
    lab = write_raster(tmp_path / "far.tif", np.zeros((20, 20), np.uint8), transform=far)
    with pytest.raises(NoOverlapError, match="does not overlap"):
        evaluate(prd, lab, 2)
    rgb = write_raster(tmp_path / "rgb.tif", np.zeros((3, 20, 20), np.uint8))
    with pytest.raises(BandCountError, match="label .*rgb.tif has 3 bands"):
        evaluate(prd, rgb, 2)
    with pytest.raises(BandCountError, match="prediction .*rgb.tif has 3 bands"):
        evaluate(rgb, prd, 2)


def _polygons():
    t = DEFAULT_TRANSFORM
    x0, y0 = t.c, t.f
    return [
        shapely.box(x0 + 3.2, y0 - 20.1, x0 + 17.7, y0 - 4.3),
        shapely.Polygon([(x0 + 20, y0 - 2), (x0 + 38, y0 - 9), (x0 + 25, y0 - 28)]),
        shapely.box(x0 + 5, y0 - 27, x0 + 30, y0 - 22).difference(shapely.box(x0 + 10, y0 - 26, x0 + 12, y0 - 23)),
    ], np.array([1, 2, 3])


def test_vector_labels_rasterized_per_window_equal_whole(tmp_path):
    geoms, classes = _polygons()
    pred_arr = np.random.default_rng(4).integers(0, 4, (60, 80)).astype(np.uint8)
    prd = write_raster(tmp_path / "pred.tif", pred_arr)
    gpkg = write_vector(tmp_path / "labels.gpkg", geoms, {"klass": classes}, crs=DEFAULT_CRS)
    truth = rasterize(zip(geoms, classes.tolist()), out_shape=(60, 80), transform=DEFAULT_TRANSFORM, fill=0,
                      dtype=np.uint8)
    res = evaluate(prd, gpkg, 4, label_field="klass", max_pixels=200)
    assert res.images[0].alignment == "rasterized"
    np.testing.assert_array_equal(res.confusion, confusion_matrix(truth, pred_arr, 4))
    # burn value: every polygon is class 1; fill 255 leaves the outside unlabeled
    res = evaluate(prd, gpkg, 4, burn_value=1, vector_fill=255, max_pixels=200)
    inside = truth > 0
    np.testing.assert_array_equal(res.confusion, confusion_matrix(inside.astype(np.uint8)[inside], pred_arr[inside], 4))
    # default attribute name 'class_id' is found without --label-field
    gpkg2 = write_vector(tmp_path / "ids.gpkg", geoms, {"class_id": classes, "name": np.array(["a", "b", "c"])},
                         crs=DEFAULT_CRS)
    np.testing.assert_array_equal(evaluate(prd, gpkg2, 4).confusion, confusion_matrix(truth, pred_arr, 4))
    with pytest.raises(VectorLabelError, match="give --label-field .*attributes are: klass"):
        evaluate(prd, gpkg, 4)
    with pytest.raises(VectorLabelError, match="holds text values .*--classes"):
        evaluate(prd, gpkg2, 4, label_field="name")
    # text attributes map to the class names (case-insensitive)
    named = evaluate(prd, gpkg2, classes=["background", "A", "b", "C"], label_field="name")
    np.testing.assert_array_equal(named.confusion, confusion_matrix(truth, pred_arr, 4))


def test_vector_labels_in_another_crs(tmp_path):
    geoms, classes = _polygons()
    pred_arr = np.zeros((60, 80), np.uint8)
    prd = write_raster(tmp_path / "pred.tif", pred_arr)
    wgs = [shapely.geometry.shape(transform_geom(DEFAULT_CRS, "EPSG:4326", g.__geo_interface__, precision=-1))
           for g in geoms]
    gj = write_vector(tmp_path / "labels.geojson", wgs, {"class": classes}, crs="EPSG:4326")
    truth = rasterize(zip(geoms, classes.tolist()), out_shape=(60, 80), transform=DEFAULT_TRANSFORM, fill=0,
                      dtype=np.uint8)
    res = evaluate(prd, gj, 4, max_pixels=500)
    ref = confusion_matrix(truth, pred_arr, 4)
    # straight edges bend by far less than a pixel over 40 m: at most a few border pixels differ
    assert np.abs(res.confusion - ref).sum() <= 8
    far = write_vector(tmp_path / "far.geojson", [shapely.box(0, 0, 1, 1)], {"class": [1]}, crs="EPSG:4326")
    with pytest.raises(NoOverlapError, match="no feature overlapping"):
        evaluate(prd, far, 4)


@pytest.mark.data
def test_spacenet_buildings_geojson(shared_data, tmp_path):
    """Real vector labels (legacy GeoJSON crs member) on the real SN4 clip's grid."""
    scene = next(shared_data.glob("SN4_*_clipped.tif"))
    gj = next(shared_data.glob("SN4_*.geojson"))
    with rasterio.open(scene) as ds:
        prof, shape = ds.profile, ds.shape
    data = shapely.from_geojson(gj.read_text())
    geoms = shapely.get_parts(data) if data.geom_type == "GeometryCollection" else [data]
    truth = rasterize([(g, 1) for g in geoms], out_shape=shape, transform=prof["transform"], fill=0, dtype=np.uint8)
    prd = write_raster(tmp_path / "pred.tif", truth, crs=prof["crs"], transform=prof["transform"])
    res = evaluate(prd, gj, 2, burn_value=1)
    assert res.metrics.overall_accuracy == 1.0 and res.confusion[1, 1] == truth.sum() > 1000


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # writing the bare label
def test_label_without_crs(tmp_path, caplog):
    from affine import Affine as A

    from geoseg.errors import MissingGeoreferenceError

    truth = _stripes(30, 40)
    pred = _noisy(truth, 4, seed=3)
    prd = write_raster(tmp_path / "pred.tif", pred)
    bare = write_raster(tmp_path / "bare.tif", truth, crs=None, transform=A.identity())
    res = evaluate(prd, bare, 4)  # same size, no georeference: taken as the prediction's grid, with a warning
    np.testing.assert_array_equal(res.confusion, confusion_matrix(truth, pred, 4))
    assert "has no CRS; assuming" in caplog.text
    small = write_raster(tmp_path / "small.tif", truth[:20], crs=None, transform=A.identity())
    with pytest.raises(MissingGeoreferenceError, match="no georeference"):
        evaluate(prd, small, 4)
