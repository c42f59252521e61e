"""The synthetic sample scene: files, georeferencing, determinism, vector/raster agreement, spectra."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.features import rasterize

from geoseg.apps.sample import SAMPLE_CLASSES, make_sample
from geoseg.cli.sample import main
from geoseg.errors import InvalidParameterError, OutputExistsError
from geoseg.io.classes import classes_from_tags, load_palette
from geoseg.io.vector import read_vector

#: sha256 of the decoded pixels of ``make_sample(size=384, seed=3)``, recorded from the one-module
#: implementation before it became the geoseg/apps/sample/ package. A change means the sample
#: scene changed (or GDAL's rasterizer did): update these only on purpose.
GOLDEN_PIXELS = {
    "scene": "48c42794bdcc1ba1f8a16ffd0aab47de9cf4eb567463154ee0ea079fb62adeeb",
    "labels": "93f3ebabc0474103cac76329d9c6d91b63a9dc7f9412798436b4c84904f5ec18",
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("sample") / "s", size=384, seed=3)


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read()


def test_files_and_georeferencing(sample):
    with rasterio.open(sample.scene) as img, rasterio.open(sample.labels) as lab:
        assert img.crs.to_epsg() == 32633
        assert img.res == (0.5, 0.5)
        assert img.transform.c == 600000.0 and img.transform.f == 5340000.0
        assert (img.width, img.height, img.count, img.dtypes[0]) == (384, 384, 4, "uint8")
        assert img.descriptions == ("red", "green", "blue", "nir")
        assert img.profile["tiled"] and img.profile["compress"] == "deflate"
        assert img.nodata == 0 and img.read().min() >= 1
        assert lab.crs == img.crs and lab.transform == img.transform and lab.shape == img.shape
        assert lab.dtypes[0] == "uint8" and lab.nodata == 255
        assert lab.colormap(1)[1][:3] == SAMPLE_CLASSES.colors[1]
        assert classes_from_tags(lab.tags()) == SAMPLE_CLASSES
    assert load_palette(sample.classes) == SAMPLE_CLASSES
    assert SAMPLE_CLASSES.names == ["background", "building", "road", "water", "vegetation"]


def test_label_raster_has_qgis_and_gdal_side_cars(sample, tmp_path):
    assert sample.labels.with_suffix(".qml").is_file()
    vrt = tmp_path / "seen_by_gdal.vrt"  # GDAL's own reading of labels.tif (+ its .aux.xml)
    rasterio.shutil.copy(sample.labels, vrt, driver="VRT")
    band = ET.parse(vrt).getroot().find("VRTRasterBand")
    assert [c.text or "" for c in band.find("CategoryNames")] == SAMPLE_CLASSES.names


def test_pixels_match_the_recorded_reference(sample):
    for name, path in (("scene", sample.scene), ("labels", sample.labels)):
        assert hashlib.sha256(_read(path).tobytes()).hexdigest() == GOLDEN_PIXELS[name], name


def test_every_class_present_and_buildings_a_few_percent(sample):
    counts = np.bincount(_read(sample.labels).ravel(), minlength=256)
    assert counts[5:].sum() == 0
    assert (counts[:5] > 0).all()
    frac = counts[:5] / counts.sum()
    assert frac[0] > 0.3 and 0.01 < frac[1] < 0.2


def test_class_spectra_are_learnable(sample):
    img = _read(sample.scene).astype(float)
    lab = _read(sample.labels)[0]
    red, nir = img[0], img[3]
    vis = img[:3].mean(axis=0)

    def mean(band, cls):
        return band[lab == cls].mean()

    ndvi = (nir - red) / (nir + red)
    assert mean(ndvi, 4) > 0.5 > mean(ndvi, 2)                        # vegetation: high NIR
    assert mean(nir, 3) < 0.3 * mean(nir, 0)                          # water: low NIR, dark
    assert mean(vis, 1) > 1.3 * mean(vis, 0)                          # roofs brighter than ground
    assert lab.size and img[:, lab == 2].std(axis=1).mean() < img[:, lab == 4].std(axis=1).mean()  # road smooth


def test_polygons_match_the_label_raster(sample):
    vec = read_vector(sample.polygons)
    ids = vec.attributes["class_id"]
    assert set(ids.tolist()) == {1, 2, 3, 4}  # background is not an object
    assert [SAMPLE_CLASSES.names[i] for i in ids] == list(vec.attributes["class_name"])
    assert all(g.geom_type == "Polygon" and g.is_valid for g in vec.geometries)
    with rasterio.open(sample.labels) as ds:
        lab, transform, shape = ds.read(1), ds.transform, ds.shape
        assert vec.crs == ds.crs
    burned = rasterize(zip(vec.geometries, ids.tolist()), out_shape=shape, transform=transform, fill=0, dtype="uint8")
    assert (burned != lab).mean() < 0.002  # only pixel centers exactly on a shared edge may differ
    # One feature per object: polygons of one class do not overlap each other or other classes.
    total = sum(g.area for g in vec.geometries) / 0.25
    assert total == pytest.approx((lab > 0).sum(), rel=0.02)


def test_deterministic_and_block_size_independent(tmp_path, sample):
    again = make_sample(tmp_path / "a", size=384, seed=3, block_size=100)  # odd blocks, halos at seams
    np.testing.assert_array_equal(_read(again.scene), _read(sample.scene))
    np.testing.assert_array_equal(_read(again.labels), _read(sample.labels))
    other = make_sample(tmp_path / "b", size=384, seed=4)
    assert (_read(other.labels) != _read(sample.labels)).mean() > 0.05


def test_band_counts_and_uint16(tmp_path, sample):
    six = make_sample(tmp_path / "six", size=384, seed=3, bands=6)
    two = make_sample(tmp_path / "two", size=384, seed=3, bands=2)
    base = _read(sample.scene)
    with rasterio.open(six.scene) as ds:
        assert ds.descriptions == ("red", "green", "blue", "nir", "red_edge", "swir1")
        data = ds.read()
    np.testing.assert_array_equal(data[:4], base)
    lab = _read(sample.labels)[0]
    assert data[5][lab == 3].mean() < data[5][lab == 0].mean()  # SWIR: water darkest
    np.testing.assert_array_equal(_read(two.scene), base[:2])
    u16 = make_sample(tmp_path / "u16", size=256, seed=1, dtype="uint16")
    data = _read(u16.scene)
    assert data.dtype == np.uint16 and data.max() > 1000


def test_refuses_to_overwrite_and_bad_options(tmp_path, capsys):
    out = tmp_path / "s"
    assert main([str(out), "--size", "128", "--quiet"]) == 0
    assert main([str(out), "--size", "128", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: output exists:") and "--overwrite" in err and err.count("\n") == 1
    assert main([str(out), "--size", "128", "--quiet", "--overwrite", "--seed", "2"]) == 0
    with rasterio.open(out / "scene.tif") as ds:
        assert json.loads(ds.tags()["GEOSEG_SAMPLE"])["seed"] == 2
    assert main([str(tmp_path / "t"), "--size", "10"]) == 1
    assert "--size must be >= 64" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "t"), "--dtype", "float64"])
    assert exc.value.code == 2
    with pytest.raises(InvalidParameterError, match="projected"):
        make_sample(tmp_path / "g", size=128, crs="EPSG:4326")
    with pytest.raises(OutputExistsError):
        make_sample(out, size=128)
