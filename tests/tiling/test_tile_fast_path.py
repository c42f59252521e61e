"""The light write path (GDAL's file as a template), interleaved reads and local worker threads:
every output byte-identical to plain GDAL writes and to one worker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from geoseg.tiling import writer
from geoseg.tiling.stats import BandStats
from geoseg.tiling.tiler import TileConfig, run_tiling

CRS_UTM = CRS.from_epsg(32633)
ORIGIN = Affine(0.5, 0.0, 600000.0, 0.0, -0.5, 5340000.0)


def _files(folder: Path) -> dict[str, bytes]:
    """Every patch file, index and list of a dataset (the .gpkg files carry write timestamps)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".gpkg"}


@pytest.mark.parametrize(("shape", "dtype", "nodata", "colormap", "transform"), [
    ((4, 256, 512), "uint8", 0, None, ORIGIN),
    ((3, 256, 256), "uint16", 65535, None, ORIGIN),
    ((2, 256, 256), "float32", None, None, ORIGIN),
    ((1, 256, 256), "uint8", 255, {0: (0, 0, 0, 255), 1: (200, 10, 10, 255)}, ORIGIN),
    ((4, 272, 272), "uint8", 0, None, ORIGIN),  # partial edge tiles: GDAL path kept
    ((4, 256, 256), "uint8", 0, None, ORIGIN * Affine.rotation(10)),  # rotated grid: GDAL path kept
    ((4, 64, 64), "uint8", 0, None, ORIGIN),  # striped small patch: GDAL path kept
])
def test_patch_writer_bytes_equal_gdal(tmp_path, shape, dtype, nodata, colormap, transform):
    rng = np.random.default_rng(3)
    pw = writer.PatchWriter(CRS_UTM, nodata, colormap=colormap)
    for k in range(5):
        hwc = (rng.random(shape[1:] + shape[:1]) * 250).astype(dtype)
        data = hwc.transpose(2, 0, 1)  # a (C, H, W) view of a pixel-interleaved buffer, as the tiler reads
        if shape[0] == 1:
            data = np.ascontiguousarray(data[0])
        at = transform * Affine.translation(37 * k, -11 * k)
        pw.write(tmp_path / f"fast_{k}.tif", data, at)
        writer.write_patch(tmp_path / f"gdal_{k}.tif", np.ascontiguousarray(data), at, CRS_UTM, nodata,
                           colormap=colormap)
        assert (tmp_path / f"fast_{k}.tif").read_bytes() == (tmp_path / f"gdal_{k}.tif").read_bytes()
    # Two GDAL writes teach and check the template; label patches too (their colour table is written
    # before the pixels, so GDAL's directory stays ahead of the tiles).
    fits = shape[1] % 256 == 0 and shape[2] % 256 == 0 and transform.b == 0
    assert pw.rendered == (3 if fits else 0)
    if colormap is not None:
        import rasterio

        with rasterio.open(tmp_path / "fast_4.tif") as ds:
            assert ds.colormap(1)[1] == colormap[1] and ds.colorinterp[0].name == "palette"
            assert (ds.read(1) == data).all() and ds.transform == at and ds.nodata == nodata


def test_stride_tiling_identical_across_workers_and_scheduler(make_raster, tmp_path):
    data = np.random.default_rng(5).integers(0, 256, size=(4, 768, 1024), dtype=np.uint8)
    data[:, :300, :200] = 0  # nodata corner: partly valid windows
    scene = make_raster("scene.tif", data=data, nodata=0)
    lab = make_raster("lab.tif", data=(data[0] // 64).astype(np.uint8))
    common = dict(labels=(str(lab),), size=256, stride=256, val_fraction=0.25, split="spatial", quiet=True,
                  max_nodata=0.9)
    one = run_tiling(TileConfig(scenes=(str(scene),), out=str(tmp_path / "one"), **common))
    run_tiling(TileConfig(scenes=(str(scene),), out=str(tmp_path / "two"), workers=2, **common))
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        run_tiling(TileConfig(scenes=(str(scene),), out=str(tmp_path / "dask"), scheduler=cluster.scheduler_address,
                              **common))
    a, b, d = (_files(tmp_path / n) for n in ("one", "two", "dask"))
    assert sum(one.patches.values()) == 12 and a == b == d
    # The patches hold the scene's pixels (independent reference: the array written above).
    import rasterio

    with rasterio.open(scene) as src:
        grid, crs = src.transform, src.crs
    for row in one.rows:
        r, c = row["row_off"], row["col_off"]
        with rasterio.open(tmp_path / "one" / row["image"]) as ds:
            assert (ds.read() == data[:, r:r + 256, c:c + 256]).all()
            assert ds.transform == grid * Affine.translation(c, r) and ds.crs == crs and ds.nodata == 0
    stats = json.loads((tmp_path / "one" / "dataset.json").read_text())["statistics"]
    train = [row for row in one.rows if row["split"] == "train"]
    pix = np.concatenate([data[:, r["row_off"]:r["row_off"] + 256, r["col_off"]:r["col_off"] + 256]
                          .reshape(4, -1) for r in train], axis=1)
    pix = pix[:, (pix != 0).any(axis=0)]
    assert stats["pixels"] == pix.shape[1]
    assert stats["mean"] == pytest.approx(pix.mean(axis=1).tolist(), abs=1e-6)


@pytest.mark.parametrize("side", [40, 520])  # per-band bincount below JOINT_MIN_PIXELS, joint pairs above
def test_interleaved_uint8_histograms_equal_per_band_counts(side):
    rng = np.random.default_rng(11)
    hwc = rng.integers(0, 256, size=(side, side + 16, 4), dtype=np.uint8)
    valid = rng.random((side, side + 16)) > 0.3
    fast, ref = BandStats("uint8", 4), BandStats("uint8", 4)
    fast.update(hwc.transpose(2, 0, 1), valid)
    ref.update(np.ascontiguousarray(hwc.transpose(2, 0, 1)), valid)
    expect = np.stack([np.bincount(hwc[:, :, b][valid], minlength=256) for b in range(4)])
    assert (fast.hist == expect).all() and (ref.hist == expect).all()
