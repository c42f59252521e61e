"""Prediction on dask: whole scenes, or strips of scenes, as independent tasks.

With many scenes (at least :data:`SCENES_PER_WORKER` per worker) and an output folder the
workers see (a probe file this process creates there, looked for by every worker in one round
trip), each task is one whole scene, largest first: the worker predicts it exactly as a single
process does (:func:`geoseg.inference.engine.run_job`) and writes its outputs itself under
temporary names, renamed when complete. Nothing but a few numbers travels back, and no halo
window is computed twice. Otherwise (few or large scenes, ``strip_rows``, workers that do not
see the output folder) the tasks are strips:

Each strip task predicts the rows ``[first, stop)`` of one scene together with its halo (the
windows that touch those rows, up to one tile beyond them), so no task needs another's results. The
accumulation order of every pixel is the same as in a single pass, so the output is identical
to the single-process result.

Workers load the bundle's model once (cached per worker process, keyed by the bundle path and
the model file's modification time) and return encoded rows (uint8 labels, probabilities in
the output dtype); this process writes them in row order, so workers need to read the bundle
and the scenes but never write. ``--workers N`` starts a local cluster of N processes with one
thread each; ``--scheduler ADDRESS`` connects to an existing dask.distributed cluster (both
through :func:`geoseg.runtime.cluster.dask_client`).

TensorFlow's intra-op threads per worker: the cores of this machine divided among the local
workers (``--workers N``); on a cluster, the threads each worker declares (``dask worker
--nthreads``), i.e. the cores it was given.

At most ``2 x workers`` strips are in flight or waiting to be written, which bounds the memory
of this process to a few strips whatever the number and size of the scenes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseg.errors import OutputNotWritableError
from geoseg.inference.engine import (
    default_strip_rows,
    encode_block,
    make_forward,
    remove_scene_temps,
    run_job,
    scene_writer,
    strip_blocks,
    strip_ranges,
)
from geoseg.inference.options import PredictionResult, PredictOptions, SceneJob
from geoseg.inference.progress import SceneProgress
from geoseg.inference.reader import ScenePlan
from geoseg.inference.writers import OutputPaths, choose_block
from geoseg.io.atomic import temp_sibling
from geoseg.io.bundle import Bundle, load_bundle
from geoseg.io.remote import absolute, as_path
from geoseg.runtime.cluster import dask_client, worker_threads, workers_see
from geoseg.runtime.tensorflow import import_tensorflow

if TYPE_CHECKING:
    from geoseg.inference.forward import Forward, OnnxForward

#: What a strip task returns: ``(first, label (n, W) uint8, prob (K, n, W) or None, windows, nodata_windows)``.
StripResult = tuple[int, np.ndarray, np.ndarray | None, int, int]

log = logging.getLogger("geoseg.predict")

#: Whole-scene tasks when there are at least this many scenes per worker (else strips of scenes).
SCENES_PER_WORKER = 2


@functools.lru_cache(maxsize=2)
def _worker_model(bundle_dir: str, mtime: float, bands: int, tta: bool, threads: int | None,
                  precision: str = "float32", xla: bool = False) -> tuple[Bundle, Forward | OnnxForward]:
    """(bundle, forward) loaded once per worker process (``mtime`` invalidates a replaced model)."""
    tf = import_tensorflow()
    if threads:
        try:  # only possible before TensorFlow's runtime starts, i.e. on the first task
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
    bundle = load_bundle(bundle_dir)
    return bundle, make_forward(bundle, list(range(bands)), tta, precision, xla)


def _my_threads(threads: int | dict[str, int] | None) -> int | None:
    """TensorFlow intra-op threads of this worker: a number, or this worker's entry of a map by address."""
    if not isinstance(threads, dict):
        return threads
    from distributed import get_worker

    try:
        return threads.get(get_worker().address)
    except ValueError:  # not on a worker (called directly)
        return None


def predict_scene_task(bundle_dir: str, mtime: float, job: SceneJob, options: dict[str, Any],
                       threads: int | dict[str, int] | None, probe: str) -> tuple[int, int, float]:
    """Worker task: predict one whole scene and write its outputs itself, as a single process does.

    Args:
        bundle_dir: the bundle folder (absolute).
        mtime: modification time of the model file (keys the per-worker model cache).
        job: the scene with absolute input and output paths.
        options: the resolved :class:`PredictOptions` as a dict.
        threads: TensorFlow intra-op threads, or a map worker address -> threads.
        probe: a file the client created in the output folder; its absence means that this
            worker does not see the folder.

    Returns:
        ``(windows, nodata_windows, seconds)``.

    Raises:
        OutputNotWritableError: this worker does not see the output folder.
    """
    if not os.path.exists(probe):
        raise OutputNotWritableError(f"a dask worker does not see the output folder {Path(probe).parent}: "
                                     "expected a folder shared by the workers and this process")
    opts = PredictOptions(**options)
    bundle, forward = _worker_model(bundle_dir, mtime, len(job.bands), opts.tta, _my_threads(threads),
                                    opts.precision, opts.xla)
    res = run_job(bundle, forward, job, opts)
    return res.windows, res.nodata_windows, res.seconds


def predict_strip_task(bundle_dir: str, mtime: float, scene: str, bands: Sequence[int], height: int, width: int,
                       first: int, stop: int, options: dict[str, Any],
                       threads: int | dict[str, int] | None = None) -> StripResult:
    """Worker task: predict scene rows ``[first, stop)`` with their halo; return them encoded.

    Returns:
        ``(first, label (n, W) uint8, prob (K, n, W) or None, windows, nodata_windows)``.
    """
    opts = PredictOptions(**options)
    bundle, forward = _worker_model(bundle_dir, mtime, len(bands), opts.tta, _my_threads(threads), opts.precision,
                                    opts.xla)
    plan = _scene_plan(height, width, bundle, opts)
    counts = [0, 0]
    labels: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    for block in strip_blocks(forward, bundle, as_path(scene), plan, bands, opts, first, stop, counts=counts):
        label, prob = encode_block(block, opts)
        labels.append(label)
        if prob is not None:  # every block has one with opts.write_prob, none without
            probs.append(prob)
    prob = np.concatenate(probs, axis=1) if opts.write_prob else None
    return first, np.concatenate(labels), prob, counts[0] + counts[1], counts[1]


def _scene_plan(height: int, width: int, bundle: Bundle, opts: PredictOptions) -> ScenePlan:
    """The window plan of a scene of ``height`` x ``width`` pixels: the stride of the resolved
    options (:meth:`PredictOptions.resolved` always sets it), else the bundle's default."""
    stride = bundle.stride if opts.stride is None else opts.stride
    return ScenePlan.create(height, width, bundle.tile_size, stride)


class _SceneState:
    """Client-side state of one scene: its writer, progress bar and strips waiting to be written."""

    def __init__(self, bundle: Bundle, job: SceneJob, opts: PredictOptions, strips: list[tuple[int, int]]) -> None:
        self.job = job
        self.strips = strips
        self.pending: dict[int, StripResult] = {}
        self.next = 0
        self.windows = 0
        self.nodata_windows = 0
        self.t0 = time.perf_counter()
        if opts.resume:
            remove_scene_temps(job.paths)
        info = job.info
        plan = _scene_plan(info.height, info.width, bundle, opts)
        total = sum(plan.count(a, b) for a, b in strips)
        self.bar = SceneProgress(info.path.name, total, info.width * info.height, enabled=opts.progress)
        self.writer = scene_writer(bundle, job, opts)
        self.writer.__enter__()
        self.open = True

    def add(self, index: int, result: StripResult) -> int:
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

    local = [j for j in jobs if opts.mode != "stride"]
    if local:  # one forward pass per scene: not worth shipping; predicted here
        forward = make_forward(bundle, local[0].bands, opts.tta, opts.precision, opts.xla)
        for job in local:
            yield run_job(bundle, forward, job, opts)
    jobs = [j for j in jobs if opts.mode == "stride"]
    if not jobs:
        return
    bundle_dir = str(Path(bundle.directory).resolve())
    mtime = os.path.getmtime(bundle.model_path)
    with dask_client(workers, scheduler) as client:
        # TensorFlow threads: this machine's cores shared by the local workers; on a cluster, the
        # threads each worker declares (`dask worker --nthreads`), i.e. the cores it was given.
        threads: int | dict[str, int] = (worker_threads(client) if scheduler
                                         else max(1, (os.cpu_count() or 1) // max(1, workers)))
        n_workers = max(1, len(threads)) if isinstance(threads, dict) else workers
        # The bundle name is written in the outputs' tags: whole-scene tasks (which load the bundle
        # from its resolved path) only when that name is the same.
        if (opts.strip_rows is None and len(jobs) >= SCENES_PER_WORKER * n_workers
                and Path(bundle_dir).name == Path(bundle.directory).name):
            with _probe(jobs[0].paths.label.parent) as probe:
                if workers_see(client, probe):
                    yield from _predict_scenes(client, bundle, jobs, opts, bundle_dir, mtime, threads, probe)
                    return
                log.debug("dask workers do not see %s: they send strips back", probe.parent)
        yield from _predict_strips(client, bundle, jobs, opts, bundle_dir, mtime, threads, max(2, 2 * n_workers))


@contextlib.contextmanager
def _probe(folder: Path) -> Iterator[Path]:
    """A uniquely named file in ``folder`` for the workers to look for (a temporary name: a killed
    run's is removed with the other temporaries)."""
    path = temp_sibling(Path(folder).absolute() / ".geoseg_probe")
    path.write_text(f"{os.getpid()}\n")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _on_worker(job: SceneJob) -> SceneJob:
    """The job with absolute input and output paths (what a worker elsewhere needs)."""
    paths = OutputPaths(Path(job.paths.label).absolute(),
                        Path(job.paths.prob).absolute() if job.paths.prob is not None else None)
    return dataclasses.replace(job, info=dataclasses.replace(job.info, path=absolute(job.info.path)), paths=paths)


def _predict_scenes(client: Any, bundle: Bundle, jobs: Sequence[SceneJob], opts: PredictOptions, bundle_dir: str,
                    mtime: float, threads: int | dict[str, int], probe: Path) -> Iterator[PredictionResult]:
    """One task per scene, largest first; the workers write the outputs. Yields results as scenes finish."""
    from distributed import as_completed

    options = asdict(dataclasses.replace(opts, progress=False))
    plans = [_scene_plan(j.info.height, j.info.width, bundle, opts) for j in jobs]
    bar = SceneProgress(f"{len(jobs)} scenes", sum(p.count() for p in plans),
                        sum(j.info.width * j.info.height for j in jobs), enabled=opts.progress)
    index: dict[str, int] = {}
    futures = []
    for i in sorted(range(len(jobs)), key=lambda k: -jobs[k].info.width * jobs[k].info.height):
        fut = client.submit(predict_scene_task, bundle_dir, mtime, _on_worker(jobs[i]), options, threads,
                            str(probe), pure=False, key=f"geoseg-predict-{i}-{os.getpid()}-{time.time_ns()}")
        index[fut.key] = i
        futures.append(fut)
    try:
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]  # distributed leaves it unannotated
            windows, nodata, seconds = fut.result()
            bar.update(windows)
            job = jobs[index[fut.key]]
            yield PredictionResult(job.info.path, job.paths.label, job.paths.prob, windows=windows,
                                   nodata_windows=nodata, seconds=seconds)
    finally:
        bar.close()
        client.cancel([f for f in futures if not f.done()])


def _predict_strips(client: Any, bundle: Bundle, jobs: Sequence[SceneJob], opts: PredictOptions, bundle_dir: str,
                    mtime: float, threads: int | dict[str, int], limit: int) -> Iterator[PredictionResult]:
    """Strips of rows with their halo; the workers return them encoded and this process writes them."""
    from distributed import as_completed

    options = asdict(opts)
    tasks = []
    for ji, job in enumerate(jobs):
        rows = opts.strip_rows or default_strip_rows(bundle.tile_size, choose_block(job.info.height, job.info.width))
        for si, strip in enumerate(strip_ranges(job.info.height, rows)):
            tasks.append((ji, si, strip))
    states: dict[int, _SceneState] = {}
    futures = as_completed()  # type: ignore[no-untyped-call]  # distributed leaves it unannotated
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
                futures.add(fut)  # type: ignore[no-untyped-call]
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
