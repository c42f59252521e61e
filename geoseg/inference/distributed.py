"""Prediction on dask: scenes and strips of one scene as independent tasks.

Each task predicts the rows ``[first, stop)`` of one scene together with its halo (the windows
that touch those rows, up to one tile beyond them), so no task needs another's results. The
accumulation order of every pixel is the same as in a single pass, so the output is identical
to the single-process result.

Workers load the bundle's model once (cached per worker process, keyed by the bundle path and
the model file's modification time) and return encoded rows (uint8 labels, probabilities in
the output dtype); this process writes them in row order, so workers need to read the bundle
and the scenes but never write. ``--workers N`` starts a local cluster of N processes with one
thread each; ``--scheduler ADDRESS`` connects to an existing dask.distributed cluster (both
through :func:`geoseg.runtime.cluster.dask_client`).

At most ``2 x workers`` strips are in flight or waiting to be written, which bounds the memory
of this process to a few strips whatever the number and size of the scenes.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from geoseg.inference.blending import weight_window
from geoseg.inference.engine import (
    default_strip_rows,
    iter_strip_blocks,
    make_forward,
    remove_scene_temps,
    run_job,
    scene_writer,
    strip_ranges,
)
from geoseg.inference.options import PredictionResult, PredictOptions, SceneJob
from geoseg.inference.progress import SceneProgress
from geoseg.inference.reader import ScenePlan
from geoseg.inference.writers import choose_block, encode
from geoseg.io.bundle import Bundle, load_bundle
from geoseg.io.remote import absolute, as_path
from geoseg.runtime.cluster import dask_client
from geoseg.runtime.tensorflow import import_tensorflow

log = logging.getLogger("geoseg.predict")


@functools.lru_cache(maxsize=2)
def _worker_model(bundle_dir: str, mtime: float, bands: int, tta: bool, threads: int | None):
    """(bundle, forward) loaded once per worker process (``mtime`` invalidates a replaced model)."""
    tf = import_tensorflow()
    if threads:
        try:  # only possible before TensorFlow's runtime starts, i.e. on the first task
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
    bundle = load_bundle(bundle_dir)
    return bundle, make_forward(bundle, list(range(bands)), tta)


def predict_strip_task(bundle_dir: str, mtime: float, scene: str, bands: Sequence[int], height: int, width: int,
                       first: int, stop: int, options: dict, threads: int | None = None):
    """Worker task: predict scene rows ``[first, stop)`` with their halo; return them encoded.

    Returns:
        ``(first, label (n, W) uint8, prob (K, n, W) or None, windows, nodata_windows)``.
    """
    opts = PredictOptions(**options)
    bundle, forward = _worker_model(bundle_dir, mtime, len(bands), opts.tta, threads)
    plan = ScenePlan.create(height, width, bundle.tile_size, opts.stride)
    weights = None if opts.blend == "mean" else weight_window(plan.tile, opts.blend)
    counts = [0, 0]
    labels, probs = [], []
    for block in iter_strip_blocks(forward, as_path(scene), plan, bands, bundle.normalization, weights, first, stop,
                                   opts.batch_size, counts=counts, prefetch_depth=opts.prefetch):
        label, prob = encode(block.prob, block.valid, opts.prob_dtype, opts.write_prob, opts.threshold)
        labels.append(label)
        probs.append(prob)
    prob = np.concatenate(probs, axis=1) if opts.write_prob else None
    return first, np.concatenate(labels), prob, counts[0] + counts[1], counts[1]


class _SceneState:
    """Client-side state of one scene: its writer, progress bar and strips waiting to be written."""

    def __init__(self, bundle: Bundle, job: SceneJob, opts: PredictOptions, strips: list[tuple[int, int]]):
        self.job = job
        self.strips = strips
        self.pending: dict[int, tuple] = {}
        self.next = 0
        self.windows = 0
        self.nodata_windows = 0
        self.t0 = time.perf_counter()
        if opts.resume:
            remove_scene_temps(job.paths)
        info = job.info
        plan = ScenePlan.create(info.height, info.width, bundle.tile_size, opts.stride)
        total = sum(plan.count(a, b) for a, b in strips)
        self.bar = SceneProgress(info.path.name, total, info.width * info.height, enabled=opts.progress)
        self.writer = scene_writer(bundle, job, opts)
        self.writer.__enter__()
        self.open = True

    def add(self, index: int, result: tuple) -> int:
        """Store a finished strip, write every strip now in order; return how many were written."""
        self.pending[index] = result
        written = 0
        while self.next in self.pending:
            first, label, prob, windows, nodata = self.pending.pop(self.next)
            self.writer.write(first, label, prob)
            self.windows += windows
            self.nodata_windows += nodata
            self.bar.update(windows)
            self.next += 1
            written += 1
        return written

    @property
    def done(self) -> bool:
        return self.next == len(self.strips)

    def finish(self) -> PredictionResult:
        self.open = False
        self.writer.__exit__(None, None, None)
        self.bar.close()
        j = self.job
        return PredictionResult(j.info.path, j.paths.label, j.paths.prob, windows=self.windows,
                                nodata_windows=self.nodata_windows, seconds=time.perf_counter() - self.t0)

    def abort(self, exc: BaseException) -> None:
        if self.open:
            self.open = False
            self.writer.__exit__(type(exc), exc, exc.__traceback__)
            self.bar.close()


def predict_jobs_dask(bundle: Bundle, jobs: Sequence[SceneJob], opts: PredictOptions, workers: int = 2,
                      scheduler: str | None = None) -> Iterator[PredictionResult]:
    """Predict validated scenes on dask; yields one result per scene as it completes."""
    from distributed import as_completed

    local = [j for j in jobs if opts.mode != "stride"]
    if local:  # one forward pass per scene: not worth shipping; predicted here
        forward = make_forward(bundle, local[0].bands, opts.tta)
        for job in local:
            yield run_job(bundle, forward, job, opts)
    jobs = [j for j in jobs if opts.mode == "stride"]
    if not jobs:
        return
    bundle_dir = str(Path(bundle.directory).resolve())
    mtime = os.path.getmtime(bundle.model_path)
    options = asdict(opts)
    threads = None if scheduler else max(1, (os.cpu_count() or 1) // max(1, workers))
    tasks = []
    for ji, job in enumerate(jobs):
        rows = opts.strip_rows or default_strip_rows(bundle.tile_size, choose_block(job.info.height, job.info.width))
        for si, strip in enumerate(strip_ranges(job.info.height, rows)):
            tasks.append((ji, si, strip))
    with dask_client(workers, scheduler) as client:
        limit = max(2, 2 * (workers if not scheduler else len(client.scheduler_info().get("workers", {})) or 2))
        states: dict[int, _SceneState] = {}
        futures = as_completed()
        index: dict[str, tuple[int, int]] = {}
        outstanding = 0
        nxt = 0
        try:
            while nxt < len(tasks) or outstanding:
                while nxt < len(tasks) and outstanding < limit:
                    ji, si, (a, b) = tasks[nxt]
                    job = jobs[ji]
                    if ji not in states:
                        strips = [t[2] for t in tasks if t[0] == ji]
                        states[ji] = _SceneState(bundle, job, opts, strips)
                    fut = client.submit(predict_strip_task, bundle_dir, mtime, str(absolute(job.info.path)),
                                        list(job.bands), job.info.height, job.info.width, a, b, options, threads,
                                        pure=False, key=f"geoseg-predict-{ji}-{si}-{os.getpid()}-{time.time_ns()}")
                    index[fut.key] = (ji, si)
                    futures.add(fut)
                    outstanding += 1
                    nxt += 1
                fut = next(futures)
                ji, si = index.pop(fut.key)
                result = fut.result()
                fut.release()
                state = states[ji]
                outstanding -= state.add(si, result)
                if state.done:
                    yield state.finish()
                    del states[ji]
        except BaseException as exc:
            for state in states.values():
                state.abort(exc)
            raise
