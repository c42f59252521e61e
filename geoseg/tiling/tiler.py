"""Cut scenes (and their labels) into georeferenced training patches: the API behind ``geoseg.tile``.

``run_tiling(TileConfig(...)) -> TileResult``. The plan (windows, ids, splits) is made up front
in this process from the scene headers, the seed and pure window maths, so it does not depend
on the number of workers. The work is then mapped over ``(scene, batch of windows)`` tasks:
in this process with one worker (its patch writes on a second thread), on N threads or N
worker processes with N local workers (:func:`local_processes`), or on a running
dask.distributed cluster (``scheduler``). Each
task opens its scene itself (no dataset is pickled) and reads window by window inside
:func:`geoseg.io.raster.gdal_env`, so memory stays bounded whatever the scene size.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseg import __version__
from geoseg.errors import DatasetError, GeoSegError, WorkerProcessError
from geoseg.io.atomic import atomic_output, check_writable
from geoseg.io.classes import IGNORE_INDEX, ClassMap
from geoseg.io.label_values import check_class_counts
from geoseg.io.lock import output_lock
from geoseg.io.raster import SceneInfo
from geoseg.io.remote import absolute
from geoseg.runtime.cluster import dask_client
from geoseg.runtime.progress import progress_bar
from geoseg.tiling import index as index_mod
from geoseg.tiling.config import MODES, TileConfig, validate_config
from geoseg.tiling.output import DATASET_FILE, prepare_output, remove_failed_run
from geoseg.tiling.plan import ScenePlan, crs_text, plan_scenes
from geoseg.tiling.split import check_kept_split, split_areas
from geoseg.tiling.stats import BandStats
from geoseg.tiling.task import BatchResult, BatchTask, quiet_georeference_warnings, tile_batch, tile_batch_in_thread

__all__ = ["MODES", "TileConfig", "TileResult", "run_tiling", "validate_config"]

log = logging.getLogger("geoseg.tiling")

FORMAT_VERSION = 1

@dataclass
class TileResult:
    """What a tiling run produced.

    Attributes:
        out: dataset folder.
        patches: patches per split (``{"train": n, "val": m}``).
        dropped: windows not written, per reason (``nodata``, ``labeled``, ``split``, ``aoi``).
        resumed: patches kept from an interrupted run.
        num_classes: classes in dataset.json.
        seconds: wall-clock time of the run.
        pixels: scene pixels covered per split (union of the split's windows, per scene, summed).
    """

    out: Path
    patches: dict[str, int]
    dropped: dict[str, int]
    resumed: int
    num_classes: int
    seconds: float
    rows: list[dict[str, Any]] = field(repr=False, default_factory=list)
    pixels: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph for the end of a CLI run."""
        total = sum(self.patches.values())
        drop = ", ".join(f"{n} {why}" for why, n in self.dropped.items() if n and why != "split")
        parts = [f"Wrote {total} patches (train {self.patches.get('train', 0)}, val {self.patches.get('val', 0)})"]
        covered = sum(self.pixels.values())
        if covered:
            parts.append("pixels covered: " + ", ".join(
                f"{s} {100 * self.pixels.get(s, 0) / covered:.1f} %" for s in ("train", "val")))
        if self.dropped.get("split"):
            parts.append(f"{self.dropped['split']} training windows dropped for overlapping validation")
        if self.resumed:
            parts.append(f"{self.resumed} kept from the interrupted run")
        if drop:
            parts.append(f"windows skipped: {drop}")
        return "; ".join(parts) + f"; {self.num_classes} classes, {self.seconds:.1f} s -> {self.out} " \
            f"(index.csv, train.txt, val.txt, footprints.gpkg, {index_mod.SPLIT_FILE}, dataset.json)."


# --- running ----------------------------------------------------------------------------------

#: Most tasks per scene: enough to keep a few workers busy on one scene, few enough that
#: each task reuses the blocks it decompressed (a task boundary loses the GDAL cache).
TASKS_PER_SCENE = 16
#: Tasks a run aims at in all: with many scenes, each scene gets fewer (down to one task for
#: the whole scene). A task costs a worker about 12 ms besides its patches (opening the scene
#: and labels, two GDAL-written patches before the template takes over), and a task of fewer
#: window rows than a block row of a tiled scene decompresses those blocks once per task:
#: 2048 px scenes with 512 px deflate blocks cut into 256 px patches take 28 % less worker
#: CPU as one task per scene than as one task per window row.
TASKS_PER_RUN = 16
#: Upper bound of the GDAL block cache sized from the scene width, in MB.
MAX_CACHE_MB = 256


def tasks_per_scene(scenes: int) -> int:
    """Tasks each scene of a run of ``scenes`` scenes is cut into (at most; fewer for a small scene).

    Depends on the inputs only, never on the worker count, so the results do not either.
    """
    return max(1, min(TASKS_PER_SCENE, math.ceil(TASKS_PER_RUN / max(1, scenes))))


def _batches(cfg: TileConfig, items: list[tuple], n_tasks: int = TASKS_PER_SCENE) -> list[list[tuple]]:
    """Split a scene's windows into about ``n_tasks`` tasks; independent of the worker count (so are
    the results).

    Stride mode: bands of whole window rows, so that overlapping windows of one row band
    share decompressed blocks. Random mode or ``batch_size``: fixed counts of windows.
    """
    if cfg.batch_size or cfg.mode != "stride":
        bs = int(cfg.batch_size or max(16, math.ceil(len(items) / n_tasks)))
        return [items[k:k + bs] for k in range(0, len(items), bs)]
    rows: list[list[tuple]] = []
    for it in items:
        if not rows or rows[-1][0][0] != it[0]:
            rows.append([])
        rows[-1].append(it)
    per_task = max(1, math.ceil(len(rows) / n_tasks))
    return [[it for row in rows[k:k + per_task] for it in row] for k in range(0, len(rows), per_task)]


def _cache_mb(cfg: TileConfig, info: SceneInfo, n_bands: int) -> int:
    """GDAL cache for one task: the block rows one window row touches, kept for the next row.

    With overlapping rows (stride < size) the next window row reuses these blocks; a cache
    smaller than them would decompress every block twice. Grows with scene width, not area.
    """
    if cfg.mode != "stride" or cfg.effective_stride >= cfg.size:
        return cfg.cache_mb
    bh = max(1, info.block_shape[0])
    block_rows = math.ceil(cfg.size / bh) + 1
    need = block_rows * bh * info.width * n_bands * np.dtype(info.dtype).itemsize / 2**20
    return int(min(MAX_CACHE_MB, max(cfg.cache_mb, 1.25 * need)))


def _make_tasks(cfg: TileConfig, plans: list[ScenePlan], done: set[str], out: Path, bands: tuple[int, ...],
                colormap: dict | None) -> list[BatchTask]:
    tasks = []
    # One local worker leaves a core idle: give it the patch writes. A cluster or several local
    # workers already keep every core busy, where a second thread per worker only competes.
    spare_core = cfg.scheduler is None and cfg.workers <= 1 and (os.cpu_count() or 1) > 1
    for p in plans:
        items = [(int(w.row_off), int(w.col_off), int(w.height), int(w.width), pid, s)
                 for w, pid, s in zip(p.windows, p.ids, p.splits) if s is not None]
        cache = _cache_mb(cfg, p.info, len(bands))
        # Workers (a cluster's, maybe elsewhere) get absolute paths; the index keeps the names as given.
        labels = dataclasses.replace(p.labels, path=_absolute(p.labels.path)) if p.labels is not None else None
        for chunk in _batches(cfg, items, tasks_per_scene(len(plans))):
            tasks.append(BatchTask(
                scene=_absolute(p.info.path), scene_name=p.name, crs_text=crs_text(p.info), height=p.info.height,
                width=p.info.width, labels=labels, items=tuple(chunk),
                done=frozenset(it[4] for it in chunk if it[4] in done), out=_absolute(out), bands=bands,
                dtype=p.info.dtype, nodata=p.info.nodata, fmt=cfg.format, compress=cfg.compress,
                max_nodata=cfg.max_nodata, min_labeled=cfg.min_labeled, colormap=colormap,
                cache_mb=cache, seed=cfg.seed + len(tasks), write_thread=spare_core))
    return tasks


def _absolute(path: str | os.PathLike) -> Path:
    return absolute(path)  # type: ignore[return-value]  # a GDAL name (/vsicurl/...) stays a GdalPath


#: Local workers are processes, not threads, for patches of at most this many pixels (256 x 256)...
PROCESS_MAX_PATCH_PIXELS = 256 * 256
#: ... when the run has at least this many windows per worker (fewer do not repay 0.3-0.5 s of start-up).
PROCESS_MIN_WINDOWS_PER_WORKER = 256


def local_processes(cfg: TileConfig, n_windows: int) -> bool:
    """Whether ``--workers N`` (N > 1) runs as N processes rather than N threads of this process:
    as ``--pool`` says, or for ``auto`` from the patch size and the number of windows, where
    workers may start without the caller's consent (a geoseg command, a notebook; a script calling
    :func:`run_tiling` asks with ``pool="processes"`` and guards its main module:
    :mod:`geoseg.runtime.processes`).

    Threads share GDAL's block-cache lock and the GIL; measured on 2 cores (``benchmarks/README.md``,
    "Local threads against processes"): 256 px patches, 2 threads 1.2-1.3x one worker, 2 processes
    1.3-1.7x (16 to 64 scenes of 2048 px); 512 px patches, threads 1.2-1.5x, processes 0.3-0.5 s
    slower than threads.
    """
    if cfg.scheduler is not None or cfg.workers <= 1 or cfg.pool == "threads":
        return False
    if cfg.pool == "processes":
        return True
    from geoseg.runtime.processes import spawn_is_safe

    small = cfg.size * cfg.size <= PROCESS_MAX_PATCH_PIXELS
    return small and n_windows >= PROCESS_MIN_WINDOWS_PER_WORKER * cfg.workers and spawn_is_safe()


def _execute(cfg: TileConfig, tasks: list[BatchTask], on_result: Callable[[int, BatchResult], None]) -> None:
    """Run tasks in this process (one worker: in turn; N local workers: N threads, or N processes for
    many small patches: :func:`local_processes`) or on dask.distributed (``scheduler``); call
    ``on_result`` as they finish."""
    if cfg.scheduler is None and cfg.workers <= 1:
        for i, task in enumerate(tasks):
            on_result(i, tile_batch(task))
        return
    if cfg.scheduler is None:
        if local_processes(cfg, sum(len(t.items) for t in tasks)):
            from geoseg.runtime.processes import process_pool

            _execute_pool(process_pool(cfg.workers), tile_batch, tasks, on_result)
        else:
            pool = ThreadPoolExecutor(max_workers=int(cfg.workers), thread_name_prefix="geoseg-tile")
            _execute_pool(pool, tile_batch_in_thread, tasks, on_result)
        return
    from dask.distributed import as_completed

    with dask_client(cfg.workers, cfg.scheduler) as client:
        futures = client.map(tile_batch, tasks, pure=False)
        position = {f.key: i for i, f in enumerate(futures)}
        index_mod.load_writers()  # while the workers work, not after the last result
        # with_results: results come with the completion messages, not one round trip per task
        for fut, result in as_completed(futures, with_results=True):
            on_result(position[fut.key], result)


def _execute_pool(pool: Executor, fn: Callable[[BatchTask], BatchResult], tasks: list[BatchTask],
                  on_result: Callable[[int, BatchResult], None]) -> None:
    """Run ``fn`` over ``tasks`` on local workers (``pool``), calling ``on_result`` in this thread as they finish.

    Threads: a task spends most of its time in GDAL reads and writes and in numpy, which release the
    GIL, so N threads keep N cores busy without the seconds a process cluster takes to start, and
    without sending results between processes. Processes (:mod:`geoseg.runtime.processes`): for many
    small patches, whose per-patch Python and GDAL lock time threads cannot share.
    """
    with pool:
        pending = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    on_result(pending.pop(fut), fut.result())
        except BrokenExecutor as exc:
            raise WorkerProcessError(
                "a local worker process died before finishing its task (killed, out of memory, or it could not "
                "start: a script that tiles with worker processes needs 'if __name__ == \"__main__\":' around its "
                "top-level code); rerun it with --pool threads or fewer --workers") from exc
        finally:
            for fut in pending:  # a failed task (or Ctrl-C): start nothing more
                fut.cancel()


def run_tiling(config: TileConfig, progress: bool | None = None) -> TileResult:
    """Tile scenes into a dataset folder (see docs/design.md, "Dataset folder").

    Args:
        config: the options.
        progress: show a tqdm bar; default ``not config.quiet``.

    Raises:
        GeoSegError: any bad input (see :mod:`geoseg.errors`), before anything is written where possible.
    """
    with quiet_georeference_warnings():
        return _run_tiling(config, progress)


def _run_tiling(cfg: TileConfig, progress: bool | None) -> TileResult:
    t0 = time.perf_counter()
    validate_config(cfg)
    check_writable(cfg.out)
    plans, classes, palette, dropped = plan_scenes(cfg)
    out = Path(cfg.out)
    # One run per dataset folder (a second one stops naming this one); the lock also makes the
    # --overwrite clean-up and the removal of a killed run's temporary files safe.
    with output_lock(out, "geoseg tile") as lock:
        created = lock.created
        # Refuses an existing dataset: outside the clean-up below. --overwrite: the previous patches
        # are deleted on a background thread while this run tiles (waited for before the lock goes).
        prior, removal = prepare_output(cfg, out)
        try:
            return _tile(cfg, plans, classes, palette, dropped, out, prior, progress, t0)
        except GeoSegError:
            # A user or data error would fail the same way again: leave no journal that turns the next
            # run away. A --resume run keeps what was complete; other failures (a crash, Ctrl-C) keep
            # the journal for --resume.
            removal.wait()
            if not cfg.resume:
                remove_failed_run(out, created)
            raise
        finally:
            removal.wait()


def _tile(cfg: TileConfig, plans: list[ScenePlan], classes: ClassMap | None, palette: ClassMap | None,
          dropped: Counter, out: Path, prior: list[dict[str, Any]], progress: bool | None, t0: float) -> TileResult:
    done_rows = {r["id"]: r for r in prior}
    planned = {pid for p in plans for pid, s in zip(p.ids, p.splits) if s is not None}
    done_rows = {k: v for k, v in done_rows.items() if k in planned}
    bands = plans[0].bands  # alpha bands left out unless --bands names them
    class_map = classes or palette
    colormap = (class_map or ClassMap.default(IGNORE_INDEX)).colormap() if any(p.labels for p in plans) else None
    tasks = _make_tasks(cfg, plans, set(done_rows), out, bands, colormap)
    journal = index_mod.Journal(out, cfg.parameters())
    journal.open(done_rows.values())
    results: list[BatchResult | None] = [None] * len(tasks)
    n_windows = sum(len(t.items) for t in tasks)
    show = (not cfg.quiet) if progress is None else progress
    bar = progress_bar(n_windows, "win", "tiling", show)

    areas = _SceneAreas(plans, tasks, done_rows)

    def on_result(i: int, res: BatchResult) -> None:
        results[i] = res
        journal.append(res.rows)
        bar.update(len(tasks[i].items))
        areas.add(tasks[i].scene_name, res.rows)

    try:
        _execute(cfg, tasks, on_result)
    finally:
        bar.close()
        journal.close()
    new_rows = {r["id"]: r for res in results for r in res.rows}
    stats = BandStats(plans[0].info.dtype, len(bands), seed=cfg.seed)
    for res in results:  # task order, so float statistics do not depend on completion order
        stats.merge(res.stats)
        dropped.update(res.dropped)
    rows = [new_rows.get(pid) or done_rows[pid] for p in plans for pid, s in zip(p.ids, p.splits)
            if s is not None and (pid in new_rows or pid in done_rows)]
    if not rows:
        reasons = ", ".join(f"{n} by {k}" for k, n in dropped.items() if n) or "no windows"
        raise DatasetError(f"no patch passed the filters ({reasons}); nothing written to {out}")
    has_labels = any(p.labels for p in plans)
    max_label = max((len(r["counts"]) for r in rows), default=0)
    if class_map is None:
        class_map = ClassMap.default(max_label) if has_labels else ClassMap(())
    elif max_label > class_map.num_classes:  # phantom classes would follow in training: refuse
        totals = np.zeros(max_label, np.int64)
        for r in rows:
            totals[: len(r["counts"])] += np.asarray(r["counts"], np.int64)
        check_class_counts(totals, class_map.num_classes, class_map.names, f"the label patches in {out}")
    num_classes = max(class_map.num_classes, max_label if has_labels else 0)
    patches = {s: sum(r["split"] == s for r in rows) for s in ("train", "val")}
    auto_spatial = cfg.split == "spatial" and cfg.block_size is None and not cfg.val_scenes
    check_kept_split(rows, cfg.val_fraction > 0 or bool(cfg.val_scenes), cfg.val_fraction if auto_spatial else None,
                     dropped, out)
    index_mod.write_index(out, rows, num_classes)
    index_mod.write_lists(out, rows)
    scene_areas = areas.result()
    index_mod.write_split_areas(out / index_mod.SPLIT_FILE, scene_areas,
                                {p.name: (p.info.transform, crs_text(p.info)) for p in plans})
    pixels = {s: int(sum(g.area for (_, split), g in scene_areas.items() if split == s)) for s in ("train", "val")}
    _write_dataset_json(out, cfg, plans, bands, class_map, num_classes, stats, rows, patches)
    journal.close(remove=True)
    return TileResult(out=out, patches=patches, dropped={k: n for k, n in dropped.items() if n}, resumed=len(done_rows),
                      num_classes=num_classes, seconds=time.perf_counter() - t0, rows=rows, pixels=pixels)


class _SceneAreas:
    """Each scene's split areas (``split.gpkg``), computed as soon as the scene's last task is in.

    The union of a scene's windows then runs while the workers tile the other scenes, not in the
    serial tail after the last result (2 ms per scene). Each scene's rows are taken in plan order,
    as :func:`split_areas` over all rows would, so the geometries are the same whatever the
    completion order or the number of workers.
    """

    def __init__(self, plans: list[ScenePlan], tasks: list[BatchTask], done_rows: dict[str, dict[str, Any]]):
        self.plans = {p.name: p for p in plans}
        self.done_rows = done_rows
        self.left = Counter(t.scene_name for t in tasks)
        self.rows: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.plans}
        self.areas: dict[str, dict] = {}

    def add(self, scene: str, rows: list[dict[str, Any]]) -> None:
        """Rows of one finished task of ``scene``; the scene's areas once it was the last one."""
        self.rows[scene].update((r["id"], r) for r in rows)
        self.left[scene] -= 1
        if not self.left[scene]:
            self.areas[scene] = self._union(scene)

    def result(self) -> dict:
        """``{(scene, split): geometry}`` in plan order, as :func:`split_areas` of all rows returns."""
        out = {}
        for name in self.plans:  # scenes without tasks (all resumed) or not finished here
            out.update(self.areas[name] if name in self.areas else self._union(name))
        return out

    def _union(self, scene: str) -> dict:
        p, new = self.plans[scene], self.rows[scene]
        return split_areas([new.get(pid) or self.done_rows[pid] for pid, s in zip(p.ids, p.splits)
                            if s is not None and (pid in new or pid in self.done_rows)])


def _write_dataset_json(out: Path, cfg: TileConfig, plans: list[ScenePlan], bands: tuple[int, ...],
                        class_map: ClassMap, num_classes: int, stats: BandStats, rows: list[dict[str, Any]],
                        patches: dict[str, int]) -> None:
    first = plans[0].info
    names = [(first.descriptions[b - 1] if len(first.descriptions) >= b and first.descriptions[b - 1]
              else f"band_{b}") for b in bands]
    class_counts = {}
    for s in ("train", "val"):
        acc = np.zeros(num_classes, np.int64)
        for r in rows:
            if r["split"] == s and r["counts"]:
                c = np.asarray(r["counts"][:num_classes], np.int64)
                acc[: c.size] += c
        class_counts[s] = acc.tolist()
    doc = {
        "format_version": FORMAT_VERSION, "geoseg_version": __version__, "format": cfg.format,
        "bands": list(bands), "band_names": names, "dtype": first.dtype, "nodata": first.nodata,
        "tile_size": cfg.size, "classes": class_map.to_json(), "num_classes": num_classes,
        "ignore_index": IGNORE_INDEX, "statistics": stats.result(), "class_counts": class_counts,
        "patches": patches,
        "scenes": [{"path": p.name, "width": p.info.width, "height": p.info.height, "crs": crs_text(p.info) or None,
                    "transform": list(p.info.transform)[:6],
                    "labels": str(p.labels.path) if p.labels else None} for p in plans],
        "parameters": cfg.parameters(),
    }
    with atomic_output(out / DATASET_FILE) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
