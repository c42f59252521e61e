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


def _file_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".geoseg.lock"}


@pytest.mark.slow
def test_many_scenes_go_whole_to_the_workers_which_write_the_single_process_files(softmax_bundle_dir, make_raster,
                                                                                  tmp_path, monkeypatch):
    """4 scenes on 2 workers: one task per scene written by the worker, byte for byte the single-process files;
    the 300-row scene is not cut into strips (no halo window predicted twice). Workers that do not see the
    output folder get strips instead, written here, with the same bytes."""
    import geoseg.inference.distributed as dist
    from geoseg.inference.engine import default_strip_rows
    from geoseg.inference.writers import choose_block

    assert default_strip_rows(32, choose_block(300, 40)) < 300  # strips would split the tall scene
    scenes = [make_raster("tall.tif", height=300, width=40, bands=4, seed=1)] + [
        make_raster(f"s{i}.tif", height=40 + 8 * i, width=50, bands=4, seed=10 + i) for i in range(3)]
    opts = dict(blend="spline", batch_size=4, progress=False)
    single = predict_scenes(softmax_bundle_dir, scenes, tmp_path / "single", **opts)
    whole = predict_scenes(softmax_bundle_dir, scenes, tmp_path / "whole", workers=2, **opts)
    assert [r.windows for r in whole] == [r.windows for r in single]
    assert [r.scene for r in whole] == [r.scene for r in single]
    assert _file_bytes(tmp_path / "whole") == _file_bytes(tmp_path / "single")
    assert not list((tmp_path / "whole").glob("*.tmp-*"))  # the probe file is gone

    monkeypatch.setattr(dist, "workers_see", lambda client, path: False)
    strips = predict_scenes(softmax_bundle_dir, scenes, tmp_path / "strips", workers=2, **opts)
    assert strips[0].windows > single[0].windows
    assert _file_bytes(tmp_path / "strips") == _file_bytes(tmp_path / "single")


def test_a_worker_that_does_not_see_the_output_folder_is_refused(softmax_bundle_dir, make_raster, tmp_path):
    from dataclasses import asdict

    from geoseg.errors import OutputNotWritableError
    from geoseg.inference.distributed import predict_scene_task
    from geoseg.inference.options import PredictOptions, SceneJob
    from geoseg.inference.writers import output_paths
    from geoseg.io.bundle import load_bundle
    from geoseg.io.raster import open_scene

    scene = make_raster("s.tif", height=40, width=40, bands=4, seed=3)
    bundle = load_bundle(softmax_bundle_dir, load_model=False)
    job = SceneJob(open_scene(scene), [1, 2, 3, 4], output_paths(scene, tmp_path / "out"))
    options = asdict(PredictOptions(progress=False).resolved(bundle))
    with pytest.raises(OutputNotWritableError, match="does not see the output folder"):
        predict_scene_task(str(softmax_bundle_dir), 0.0, job, options, None, str(tmp_path / "out" / "probe"))
    assert not (tmp_path / "out").exists()
