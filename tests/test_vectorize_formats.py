"""Vectorize: areas in square metres in any CRS, GeoJSON in EPSG:4326 (RFC 7946), GeoParquet.

The area reference is independent of PROJ: a pixel of a lon/lat (or Web-Mercator) grid is the
region between two parallels and two meridians, whose area on the WGS 84 ellipsoid has a closed
form (authalic latitude); a polygon's area is the sum over its pixels.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_geom

from geoseg.cli.vectorize import main
from geoseg.convert.polygons import vectorize
from geoseg.io.vector import read_vector

A, F = 6378137.0, 1 / 298.257223563  # WGS 84
B = A * (1 - F)
E = math.sqrt(F * (2 - F))
R_MERC = 6378137.0  # EPSG:3857 sphere


def _q(lat_deg: np.ndarray) -> np.ndarray:
    s = np.sin(np.radians(lat_deg))
    return s / (1 - E**2 * s**2) + np.log((1 + E * s) / (1 - E * s)) / (2 * E)


def cell_area(lat0, lat1, dlon_deg):
    """Ellipsoidal area (m²) between two parallels over ``dlon_deg`` of longitude."""
    return np.abs(B**2 * np.radians(dlon_deg) / 2 * (_q(lat1) - _q(lat0)))


def labels_array() -> np.ndarray:
    a = np.zeros((60, 80), np.uint8)
    a[3:50, 5:20] = 1            # a tall block: area varies along it with latitude
    a[10:20, 30:75] = 2          # a wide block
    a[30:55, 40:70] = 1
    a[35:45, 50:60] = 0          # a hole
    a[58:60, 0:80] = 3           # a strip on the bottom edge
    return a


def reference_areas(a: np.ndarray, lat_edges: np.ndarray, dlon: float) -> dict[int, list[float]]:
    """Per class, sorted areas of the 4-connected components, from per-row pixel areas."""
    from scipy import ndimage

    row_area = cell_area(lat_edges[:-1], lat_edges[1:], dlon)  # (H,) m² of one pixel in each row
    out: dict[int, list[float]] = {}
    for k in np.unique(a):
        if k == 0:
            continue
        comp, n = ndimage.label(a == k)
        out[int(k)] = sorted(float((row_area[:, None] * (comp == i)).sum()) for i in range(1, n + 1))
    return out


def vector_areas(path) -> dict[int, list[float]]:
    vec = read_vector(path)
    out: dict[int, list[float]] = {}
    for k, area in zip(vec.attributes["class_id"].tolist(), vec.attributes["area"].tolist()):
        out.setdefault(int(k), []).append(float(area))
    return {k: sorted(v) for k, v in out.items()}


def _assert_close(got, want, rel=1e-5):  # LAEA after densifying: ~1e-9 here; planar Mercator is 300 % off
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rel)


@pytest.fixture
def scene_4326(make_raster):
    """0.001° pixels north of 52° N: a metre of longitude is 0.62 of a metre of latitude there."""
    t = Affine(0.001, 0.0, 13.3, 0.0, -0.001, 52.55)
    return make_raster("geo.tif", data=labels_array()[None], crs=CRS.from_epsg(4326), transform=t, nodata=255), t


@pytest.fixture
def scene_3857(make_raster):
    """30 m Web-Mercator pixels at 60° N, where Mercator areas are 4x the true ones."""
    x0, y0 = 1_000_000.0, 8_399_737.89
    t = Affine(30.0, 0.0, x0, 0.0, -30.0, y0)
    return make_raster("merc.tif", data=labels_array()[None], crs=CRS.from_epsg(3857), transform=t, nodata=255), t


def test_areas_in_square_metres_geographic(scene_4326, tmp_path):
    pytest.importorskip("scipy")
    path, t = scene_4326
    vectorize(path, tmp_path / "geo.gpkg", block_size=16)
    lat_edges = t.f + t.e * np.arange(61)
    _assert_close(vector_areas(tmp_path / "geo.gpkg"), reference_areas(labels_array(), lat_edges, t.a))


def test_areas_in_square_metres_web_mercator(scene_3857, tmp_path):
    pytest.importorskip("scipy")
    path, t = scene_3857
    vectorize(path, tmp_path / "merc.gpkg", block_size=16)
    y_edges = t.f + t.e * np.arange(61)
    lat_edges = np.degrees(np.arctan(np.sinh(y_edges / R_MERC)))  # EPSG:3857's inverse (spherical formula)
    dlon = math.degrees(t.a / R_MERC)
    want = reference_areas(labels_array(), lat_edges, dlon)
    got = vector_areas(tmp_path / "merc.gpkg")
    _assert_close(got, want)
    # Planar Web-Mercator areas would be ~4x too large at 60° N.
    mercator = sorted(shapely.area(read_vector(tmp_path / "merc.gpkg").geometries))
    assert max(mercator) > 3.5 * max(max(v) for v in got.values())


def test_min_area_is_square_metres(scene_3857, tmp_path):
    pytest.importorskip("scipy")
    path, _ = scene_3857
    vectorize(path, tmp_path / "all.gpkg")
    areas = sorted(a for v in vector_areas(tmp_path / "all.gpkg").values() for a in v)
    cut = (areas[1] + areas[2]) / 2  # between the 2nd and 3rd smallest polygons
    n = vectorize(path, tmp_path / "big.gpkg", min_area=cut)
    assert n == len(areas) - 2
    assert min(a for v in vector_areas(tmp_path / "big.gpkg").values() for a in v) >= cut


def test_geojson_is_rfc7946_lon_lat(scene_3857, tmp_path):
    path, _ = scene_3857
    vectorize(path, tmp_path / "merc.gpkg")
    n = vectorize(path, tmp_path / "merc.geojson", block_size=16)  # several strips appended
    doc = json.loads((tmp_path / "merc.geojson").read_text())
    assert "crs" not in doc and len(doc["features"]) == n
    gpkg = read_vector(tmp_path / "merc.gpkg")
    geo = read_vector(tmp_path / "merc.geojson")
    assert geo.crs.to_epsg() == 4326
    want = {round(a, 3): transform_geom("EPSG:3857", "EPSG:4326", shapely.geometry.mapping(g))
            for g, a in zip(gpkg.geometries, gpkg.attributes["area"])}
    for g, a in zip(geo.geometries, geo.attributes["area"]):
        ref = shapely.geometry.shape(want[round(a, 3)])  # same area attribute as the GeoPackage's
        assert 8.9 < g.bounds[0] < 10 and 59 < g.bounds[1] < 61  # lon, lat order
        assert shapely.hausdorff_distance(g, ref) < 1e-7  # RFC 7946: 7 decimals (~1 cm)
        assert g.exterior.is_ccw  # RFC 7946: exterior rings counter-clockwise


def test_geoparquet(scene_3857, tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    path, _ = scene_3857
    vectorize(path, tmp_path / "merc.gpkg")
    assert main([str(path), "--out", str(tmp_path / "merc.parquet"), "--block-size", "16", "--quiet"]) == 0
    table = pq.read_table(tmp_path / "merc.parquet")
    geo = json.loads(table.schema.metadata[b"geo"])
    column = geo["columns"]["geometry"]
    assert geo["primary_column"] == "geometry" and column["encoding"] == "WKB"
    assert column["geometry_types"] == ["Polygon"]
    assert CRS.from_user_input(json.dumps(column["crs"])).to_epsg() == 3857
    gpkg = read_vector(tmp_path / "merc.gpkg")
    got = sorted(zip(table.column("class_id").to_pylist(), table.column("area").to_pylist(),
                     (shapely.normalize(shapely.from_wkb(w)).wkb for w in table.column("geometry").to_pylist())))
    want = sorted(zip(gpkg.attributes["class_id"].tolist(), gpkg.attributes["area"].tolist(),
                      (shapely.normalize(g).wkb for g in gpkg.geometries)))
    assert [(c, w) for c, _, w in got] == [(c, w) for c, _, w in want]
    np.testing.assert_allclose([a for _, a, _ in got], [a for _, a, _ in want], rtol=1e-9)
    bbox = column["bbox"]
    with rasterio.open(path) as ds:
        b = ds.bounds
    assert b.left <= bbox[0] < bbox[2] <= b.right and b.bottom <= bbox[1] < bbox[3] <= b.top
    # --format parquet picks the suffix when --out is not given.
    path.with_suffix(".parquet").unlink()
    assert main([str(path), "--format", "parquet", "--quiet"]) == 0
    assert path.with_suffix(".parquet").is_file()
