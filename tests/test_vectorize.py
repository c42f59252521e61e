"""Label raster -> polygons: block-wise result equals the whole-raster result; attributes and options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize

from geoseg.cli.vectorize import main
from geoseg.convert.polygons import iter_polygons, vectorize
from geoseg.errors import OutputExistsError
from geoseg.io.classes import ClassMap
from geoseg.io.vector import read_vector

# An awkward transform: 0.3 m pixels at a non-round origin, so CRS coordinates are not exact binary.
TRANSFORM = Affine(0.3, 0.0, 500000.1, 0.0, -0.3, 4649776.7)
TAG = json.dumps(ClassMap.from_names(["bg", "house", "street", "lake"]).to_json())


def blocky_labels(height=150, width=170, seed=0) -> np.ndarray:
    """Classes 0..3 in blobs of 1-6 px (diagonal contacts, holes, islands) with a nodata patch."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 4, (height // 3 + 1, width // 3 + 1))
    a = np.kron(coarse, np.ones((3, 3), dtype=np.int64))[:height, :width]
    fine = rng.random((height, width))
    a = np.where(fine < 0.06, rng.integers(0, 4, (height, width)), a).astype(np.uint8)
    a[100:120, 10:40] = 255
    return a


@pytest.fixture
def labels(make_raster):
    path = make_raster("labels.tif", data=blocky_labels()[None], transform=TRANSFORM, nodata=255)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(GEOSEG_CLASSES=TAG)
    return path


def canonical(path):
    vec = read_vector(path)
    return vec, sorted((int(c), shapely.normalize(g).wkb) for g, c in zip(vec.geometries, vec.attributes["class_id"]))


@pytest.mark.parametrize("block", [16, 37])
def test_blocks_equal_whole_raster(labels, tmp_path, block):
    vectorize(labels, tmp_path / "whole.gpkg", block_size=4096)
    whole, want = canonical(tmp_path / "whole.gpkg")
    vectorize(labels, tmp_path / "blocks.gpkg", block_size=block)
    _, got = canonical(tmp_path / "blocks.gpkg")
    assert len(want) > 300
    assert got == want
    # Many polygons really straddle a block seam (pixel bounds from the CRS bounds).
    b = shapely.bounds(whole.geometries)
    c0, c1 = np.rint((b[:, 0] - TRANSFORM.c) / 0.3), np.rint((b[:, 2] - TRANSFORM.c) / 0.3)
    r0, r1 = np.rint((TRANSFORM.f - b[:, 3]) / 0.3), np.rint((TRANSFORM.f - b[:, 1]) / 0.3)
    straddle = (c0 // block != (c1 - 1) // block) | (r0 // block != (r1 - 1) // block)
    assert straddle.sum() > 20


def test_background_and_nodata_included_only_when_chosen(labels, tmp_path):
    vectorize(labels, tmp_path / "a.gpkg", classes=[0, 1, 2, 3], block_size=32)
    vec = read_vector(tmp_path / "a.gpkg")
    data = blocky_labels()
    burned = rasterize(zip(vec.geometries, vec.attributes["class_id"].tolist()), out_shape=data.shape,
                       transform=TRANSFORM, fill=255, dtype="uint8")
    np.testing.assert_array_equal(burned, data)  # every pixel but nodata, each in exactly one polygon
    assert set(vec.attributes["class_name"]) == {"bg", "house", "street", "lake"}
    assert vec.crs.to_epsg() == 32633
    vectorize(labels, tmp_path / "d.gpkg")
    default = read_vector(tmp_path / "d.gpkg")
    assert set(default.attributes["class_id"].tolist()) == {1, 2, 3}


def test_holes_area_and_names(make_raster, tmp_path):
    a = np.zeros((40, 50), np.uint8)
    a[5:25, 5:30] = 1
    a[10:15, 10:15] = 2   # island inside a hole
    a[18:20, 20:22] = 0   # empty hole
    path = make_raster("ring.tif", data=a[None])
    n = vectorize(path, tmp_path / "ring.fgb", block_size=8)
    vec = read_vector(tmp_path / "ring.fgb")
    assert n == 2 and vec.crs.to_epsg() == 32633
    ring = vec.geometries[vec.attributes["class_id"] == 1][0]
    assert len(ring.interiors) == 2
    assert ring.area == pytest.approx((a == 1).sum() * 0.25)
    np.testing.assert_allclose(vec.attributes["area"], [g.area for g in vec.geometries])
    assert sorted(vec.attributes["class_name"]) == ["class_1", "class_2"]  # no tag, no palette


def test_min_area_and_simplify(labels, tmp_path):
    full = vectorize(labels, tmp_path / "full.gpkg")
    pixel = 0.3 * 0.3
    few = vectorize(labels, tmp_path / "big.gpkg", min_area=20 * pixel, block_size=40)
    vec = read_vector(tmp_path / "big.gpkg")
    assert 0 < few < full and (vec.attributes["area"] >= 20 * pixel - 1e-6).all()
    vectorize(labels, tmp_path / "simple.gpkg", min_area=20 * pixel, simplify=0.5, block_size=40)
    simple = read_vector(tmp_path / "simple.gpkg")
    assert len(simple.geometries) == few
    n_simple, n_exact = (shapely.get_num_coordinates(g).sum() for g in (simple.geometries, vec.geometries))
    assert n_simple < 0.8 * n_exact
    assert shapely.is_valid(simple.geometries).all()
    assert np.abs(shapely.area(simple.geometries) - shapely.area(vec.geometries)).max() < 0.5 * shapely.length(
        vec.geometries).max()


def test_cli_palette_driver_and_errors(labels, make_raster, tmp_path, capsys):
    pal = tmp_path / "pal.csv"
    pal.write_text("0,ground,0,0,0\n1,roof,255,0,0\n2,asphalt,9,9,9\n3,pond,0,0,255\n")
    out = tmp_path / "p.json"
    assert main([str(labels), "--out", str(out), "--driver", "GeoJSON", "--palette", str(pal), "--quiet"]) == 0
    assert set(read_vector(out).attributes["class_name"]) == {"roof", "asphalt", "pond"}
    assert main([str(labels), "--out", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err.startswith("error: output exists:")
    with pytest.raises(OutputExistsError):
        vectorize(labels, out)
    assert main([str(tmp_path / "missing.tif"), "--out", str(tmp_path / "m.gpkg")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main([str(labels), "--out", str(tmp_path / "x.shp")]) == 1
    assert "use a .gpkg, .geojson, .fgb or .parquet" in capsys.readouterr().err
    assert main([str(labels), "--out", str(tmp_path / "v.gpkg"), "--format", "gpkg", "--driver", "GeoJSON"]) == 1
    assert "disagree" in capsys.readouterr().err
    assert main([str(labels), "--out", str(tmp_path / "y.gpkg"), "--simplify", "-1"]) == 1
    assert "--simplify must be >= 0" in capsys.readouterr().err
    assert main([str(labels), "--out", str(tmp_path / "w.gpkg"), "--classes", "1,300"]) == 1
    assert "--classes: values must be 0..255, got [300]" in capsys.readouterr().err
    assert not (tmp_path / "w.gpkg").exists()
    rgb = make_raster("rgb.tif", bands=3)
    assert main([str(rgb), "--out", str(tmp_path / "z.gpkg")]) == 1
    err = capsys.readouterr().err
    assert "single-band" in err and err.count("\n") == 1
    assert main([str(labels), "--classes", "1,3", "--block-size", "20", "--quiet"]) == 0
    default_out = labels.with_suffix(".gpkg")
    assert set(read_vector(default_out).attributes["class_id"].tolist()) == {1, 3}


def test_sample_scene_round_trip(tmp_path):
    from geoseg.apps.sample import make_sample

    files = make_sample(tmp_path / "s", size=256, seed=5)
    whole = [(c, shapely.normalize(g).wkb) for gs, cs in iter_polygons(files.labels, block_size=256)
             for g, c in zip(gs, cs)]
    blocks = [(c, shapely.normalize(g).wkb) for gs, cs in iter_polygons(files.labels, block_size=50)
              for g, c in zip(gs, cs)]
    assert sorted(blocks) == sorted(whole)
    vectorize(files.labels, tmp_path / "p.gpkg", block_size=50)
    vec = read_vector(tmp_path / "p.gpkg")
    with rasterio.open(files.labels) as ds:
        lab = ds.read(1)
        burned = rasterize(zip(vec.geometries, vec.attributes["class_id"].tolist()), out_shape=lab.shape,
                           transform=ds.transform, fill=0, dtype="uint8")
    np.testing.assert_array_equal(burned, lab)
    assert set(vec.attributes["class_name"]) <= {"building", "road", "water", "vegetation"}
