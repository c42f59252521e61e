"""Prediction on a local dask cluster (2 worker processes) equals the single-process result."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from geoseg.inference import predict_scenes


@pytest.mark.slow
def test_two_workers_give_the_single_process_result(softmax_bundle_dir, make_raster, tmp_path):
    scenes = [make_raster("tall.tif", height=170, width=45, bands=4, seed=1),
              make_raster("small.tif", height=20, width=25, bands=4, seed=2)]
    opts = dict(blend="gaussian", batch_size=4, prob_dtype="float32", progress=False)
    single = predict_scenes(softmax_bundle_dir, scenes, tmp_path / "single", **opts)
    multi = predict_scenes(softmax_bundle_dir, scenes, tmp_path / "multi", workers=2, strip_rows=48, **opts)
    assert [r.scene for r in multi] == [r.scene for r in single]
    assert multi[0].windows > single[0].windows  # strips recomputed their halo windows
    for s, m in zip(single, multi):
        for a, b in ((s.label, m.label), (s.prob, m.prob)):
            with rasterio.open(a) as x, rasterio.open(b) as y:
                assert np.array_equal(x.read(), y.read(), equal_nan=True)
                assert x.tags() == y.tags() and x.transform == y.transform
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir())


def test_worker_strips_of_a_binary_model_stitch_to_the_single_process_result(binary_bundle_dirs, make_raster,
                                                                             tmp_path):
    """The worker task (run here, without a cluster) encodes a binary model's one band and threshold."""
    from dataclasses import asdict
    from pathlib import Path

    from geoseg.inference.distributed import predict_strip_task
    from geoseg.inference.engine import strip_ranges
    from geoseg.inference.options import PredictOptions
    from geoseg.io.bundle import MODEL_FILE, load_bundle

    bundle_dir = binary_bundle_dirs[0]
    scene = make_raster("tall.tif", height=120, width=45, bands=4, seed=4)
    opts = dict(blend="spline", prob_dtype="float32", threshold=0.42, progress=False)
    ref = predict_scenes(bundle_dir, [scene], tmp_path / "single", **opts)[0]
    options = asdict(PredictOptions(**opts).resolved(load_bundle(bundle_dir, load_model=False)))
    mtime = (Path(bundle_dir) / MODEL_FILE).stat().st_mtime
    parts = [predict_strip_task(str(bundle_dir), mtime, str(scene), [1, 2, 3, 4], 120, 45, a, b, options)
             for a, b in strip_ranges(120, 40)]
    label = np.concatenate([p[1] for p in parts])
    prob = np.concatenate([p[2] for p in parts], axis=1)
    with rasterio.open(ref.label) as lab, rasterio.open(ref.prob) as pr:
        assert np.array_equal(label, lab.read(1)) and np.array_equal(prob, pr.read())
    assert prob.shape == (1, 120, 45) and np.array_equal(label, (prob[0] >= np.float32(0.42)).astype(np.uint8))
