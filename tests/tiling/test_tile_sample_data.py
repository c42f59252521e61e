"""Tiling the synthetic sample scene, and the real rasters of ../shared/data (skipped when absent)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize

from geoseg.apps.sample import make_sample
from geoseg.io.vector import read_vector
from geoseg.tiling.tiler import TileConfig, run_tiling

SN4 = "SN4_buildings_train_AOI_6_Atlanta_nadir10_catid_1030010003993E00_PS-RGBNIR_732701_3729639_clipped.tif"
SN4_VEC = "SN4_buildings_train_AOI_6_Atlanta_geojson_buildings_732701_3729639.geojson"


def _rows(ds):
    with open(ds / "index.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_sample_raster_and_vector_labels_agree(tmp_path):
    s = make_sample(tmp_path / "s", size=256)
    common = dict(scenes=(str(s.scene),), size=64, stride=48, classes=str(s.classes), quiet=True, val_fraction=0.25,
                  split="spatial", block_size=128)
    a = run_tiling(TileConfig(out=str(tmp_path / "a"), labels=(str(s.labels),), **common))
    b = run_tiling(TileConfig(out=str(tmp_path / "b"), labels=(str(s.polygons),), label_field="class_id", **common))
    assert a.patches == b.patches and a.num_classes == 5
    ra, rb = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [r["id"] for r in ra] == [r["id"] for r in rb]
    for x, y in zip(ra, rb):
        with rasterio.open(tmp_path / "a" / x["label"]) as p, rasterio.open(tmp_path / "b" / y["label"]) as q:
            np.testing.assert_array_equal(p.read(1), q.read(1))
    meta = json.loads((tmp_path / "a" / "dataset.json").read_text())
    assert meta["band_names"] == ["red", "green", "blue", "nir"] and meta["nodata"] == 0
    assert [c["name"] for c in meta["classes"]][:2] == ["background", "building"]
    assert sum(meta["class_counts"]["train"]) + sum(meta["class_counts"]["val"]) == \
        sum(int(r[f"count_{k}"]) for r in ra for k in range(5))


@pytest.mark.data
def test_real_scene_with_real_building_footprints(shared_data, tmp_path):
    scene = shared_data / SN4
    vec = shared_data / SN4_VEC
    run_tiling(TileConfig(scenes=(str(scene),), out=str(tmp_path / "ds"), labels=(str(vec),), burn_value=1,
                          size=128, stride=96, bands=(1, 2, 3), quiet=True, val_fraction=0.0))
    v = read_vector(vec)
    with rasterio.open(scene) as src:
        want = rasterize([(g, 1) for g in v.geometries], out_shape=src.shape, transform=src.transform, dtype="uint8")
    rows = _rows(tmp_path / "ds")
    assert len(rows) == 5 * 5
    for r in rows:
        ro, co = int(r["row_off"]), int(r["col_off"])
        with rasterio.open(tmp_path / "ds" / r["label"]) as p:
            np.testing.assert_array_equal(p.read(1), want[ro:ro + 128, co:co + 128])
            assert p.crs.to_epsg() == 32616


@pytest.mark.data
def test_real_rotated_landsat_nodata_filter(shared_data, tmp_path):
    res = run_tiling(TileConfig(scenes=(str(shared_data / "RGB.byte.tif"),), out=str(tmp_path / "ds"), size=128,
                                max_nodata=0.25, quiet=True, val_fraction=0.0))
    rows = _rows(tmp_path / "ds")
    assert res.dropped["nodata"] > 0 and rows
    assert all(float(r["nodata_fraction"]) <= 0.25 for r in rows)
    stats = json.loads((tmp_path / "ds" / "dataset.json").read_text())["statistics"]
    # Only valid pixels (not 0 in all three bands) enter the statistics.
    valid = sum(round((1 - float(r["nodata_fraction"])) * 128 * 128) for r in rows)
    assert stats["pixels"] == valid < len(rows) * 128 * 128


@pytest.mark.data
def test_sn4_clip_default_bands_and_building_share(shared_data, tmp_path, caplog):
    """Band 4 of the SN4 clip is a constant 255: left out by default with a notice. The building
    share of the tiled labels equals an independent rasterize of the whole clip."""
    import logging

    from rasterio.warp import transform_geom

    caplog.set_level(logging.WARNING)
    scene, vec = shared_data / SN4, shared_data / SN4_VEC
    run_tiling(TileConfig(scenes=(str(scene),), out=str(tmp_path / "ds"), labels=(str(vec),), burn_value=1,
                          size=128, stride=128, pad=True, quiet=True, val_fraction=0.0))
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["bands"] == [1, 2, 3]
    assert "band 4 (" in caplog.text and "alpha band and is left out" in caplog.text
    # Independent reference: the GeoJSON parsed by shapely (its legacy 'crs' member names the UTM zone).
    doc = json.loads(vec.read_text())
    with rasterio.open(scene) as src:
        shape, transform, crs = src.shape, src.transform, src.crs
    assert "32616" in json.dumps(doc.get("crs")) and crs.to_epsg() == 32616
    geoms = [transform_geom(crs, crs, f["geometry"]) for f in doc["features"]]
    want = rasterize([(g, 1) for g in geoms], out_shape=shape, transform=transform, dtype="uint8")
    rows = _rows(tmp_path / "ds")  # the last row/column of windows snaps to the edge: windows overlap
    built = sum(int(r["count_1"]) for r in rows)
    labeled = sum(int(r["count_0"]) + int(r["count_1"]) for r in rows)
    windows = [want[int(r["row_off"]):int(r["row_off"]) + 128, int(r["col_off"]):int(r["col_off"]) + 128] for r in rows]
    assert labeled == sum(w.size for w in windows) == len(rows) * 128 * 128
    assert built == sum(int(w.sum()) for w in windows) > 1000
    assert abs(built / labeled - want.mean()) < 0.02  # building share of the patches ~ of the whole clip
