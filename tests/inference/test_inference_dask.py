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
