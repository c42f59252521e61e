"""Cut scenes (and their labels) into georeferenced training patches: the API behind ``geoseg.tile``.

``run_tiling(TileConfig(...)) -> TileResult``. The plan (windows, ids, splits) is made up front
in this process from the scene headers, the seed and pure window maths, so it does not depend
on the number of workers. The work is then mapped over ``(scene, batch of windows)`` tasks:
in this process with one worker, on a dask.distributed ``LocalCluster`` of processes with
more, or on a running cluster (``scheduler``). Each task opens its scene itself (no dataset is
pickled) and reads window by window inside :func:`geoseg.raster.gdal_env`, so memory stays
bounded whatever the scene size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from rasterio.windows import Window

from geoseg import __version__
from geoseg.atomic import atomic_output, check_output, remove_stale_temps
from geoseg.classes import IGNORE_INDEX, ClassMap, load_palette
from geoseg.errors import (
    BandCountError,
    DatasetError,
    InvalidParameterError,
    NoOverlapError,
    SceneTooSmallError,
)
from geoseg.raster import RASTER_SUFFIXES, SceneInfo, check_bands, expand_inputs, gdal_env, open_scene, valid_mask
from geoseg.tiling import index as index_mod
from geoseg.tiling import writer
from geoseg.tiling.labels import VECTOR_SUFFIXES, LabelSource, is_vector, open_labels, resolve_labels
from geoseg.tiling.split import BLOCK_WINDOWS, SPLITS, random_split, spatial_split
from geoseg.tiling.stats import BandStats
from geoseg.tiling.windows import (
    check_stride,
    padded_shape,
    random_windows,
    stride_windows,
    window_bounds,
    window_transform,
)

log = logging.getLogger("geoseg.tiling")

MODES = ("stride", "random")
DATASET_FILE = "dataset.json"
FORMAT_VERSION = 1

#: Config fields that do not change the dataset (how it is computed, not what).
_RUN_ONLY = ("out", "workers", "scheduler", "overwrite", "resume", "quiet", "batch_size", "cache_mb")


@dataclass(frozen=True)
class TileConfig:
    """Everything ``python -m geoseg.tile`` accepts; field names are the long option names.

    Sizes, strides and offsets are in pixels. ``labels`` holds one entry per scene (same order),
    folders/globs (paired by file stem), or a single vector file for every scene.
    """

    scenes: tuple[str, ...]
    out: str
    labels: tuple[str, ...] = ()
    mode: str = "stride"
    size: int = 256
    stride: int | None = None
    count: int = 100
    seed: int = 0
    classes: str | None = None
    palette: str | None = None
    label_field: str | None = None
    burn_value: int | None = None
    aoi: str | None = None
    max_nodata: float = 1.0
    min_labeled: float = 0.0
    bands: tuple[int, ...] | None = None
    val_fraction: float = 0.2
    split: str = "random"
    block_size: int | None = None
    pad: bool = False
    allow_gaps: bool = False
    format: str = "tif"
    compress: str = "none"
    workers: int = 1
    scheduler: str | None = None
    batch_size: int | None = None
    overwrite: bool = False
    resume: bool = False
    quiet: bool = False
    cache_mb: int = 64

    @property
    def effective_stride(self) -> int:
        return int(self.stride) if self.stride is not None else int(self.size)

    def parameters(self) -> dict[str, Any]:
        """The options that determine the dataset (recorded in dataset.json, checked by --resume)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in _RUN_ONLY}
        out["scenes"], out["labels"] = list(self.scenes), list(self.labels)
        out["bands"] = list(self.bands) if self.bands is not None else None
        out["stride"] = self.effective_stride if self.mode == "stride" else None
        if self.mode == "stride":
            out.pop("count")
        return out


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
    """

    out: Path
    patches: dict[str, int]
    dropped: dict[str, int]
    resumed: int
    num_classes: int
    seconds: float
    rows: list[dict[str, Any]] = field(repr=False, default_factory=list)

    def summary(self) -> str:
        """One paragraph for the end of a CLI run."""
        total = sum(self.patches.values())
        drop = ", ".join(f"{n} {why}" for why, n in self.dropped.items() if n)
        parts = [f"Wrote {total} patches (train {self.patches.get('train', 0)}, val {self.patches.get('val', 0)})"]
        if self.resumed:
            parts.append(f"{self.resumed} kept from the interrupted run")
        if drop:
            parts.append(f"windows skipped: {drop}")
        return "; ".join(parts) + f"; {self.num_classes} classes, {self.seconds:.1f} s -> {self.out} " \
            f"(index.csv, footprints.gpkg, dataset.json)."


# --- planning (main process) ------------------------------------------------------------------

@dataclass
class _ScenePlan:
    info: SceneInfo
    name: str
    labels: LabelSource | None
    shape: tuple[int, int]
    windows: list[Window]
    ids: list[str]
    splits: list[str | None]


@dataclass(frozen=True)
class BatchTask:
    """One unit of work: a batch of windows of one scene (picklable: paths and numbers only).

    ``items`` holds ``(row_off, col_off, height, width, id, split)``; ``done`` the ids already
    written by an interrupted run (their image is read back for statistics only).
    """

    scene: Path
    scene_name: str
    crs_text: str
    height: int
    width: int
    labels: LabelSource | None
    items: tuple[tuple[int, int, int, int, str, str], ...]
    done: frozenset[str]
    out: Path
    bands: tuple[int, ...]
    dtype: str
    nodata: float | None
    fmt: str
    compress: str
    max_nodata: float
    min_labeled: float
    colormap: dict[int, tuple[int, int, int, int]] | None
    cache_mb: int
    seed: int
    write_thread: bool = False  # overlap writing with reading (only where a core is spare)


@dataclass
class BatchResult:
    rows: list[dict[str, Any]]
    stats: BandStats
    dropped: Counter


def validate_config(cfg: TileConfig) -> None:
    """Check option values that need no file (fails before anything is read).

    Raises:
        InvalidParameterError: an option is out of range or inconsistent with another.
    """
    if not cfg.scenes:
        raise InvalidParameterError("no scene given")
    if cfg.mode not in MODES:
        raise InvalidParameterError(f"--mode must be one of {', '.join(MODES)}, got {cfg.mode!r}")
    if cfg.size <= 0:
        raise InvalidParameterError(f"--size must be > 0 pixels, got {cfg.size}")
    if cfg.mode == "stride":
        check_stride(cfg.size, cfg.effective_stride, cfg.allow_gaps)
    elif cfg.count <= 0:
        raise InvalidParameterError(f"--count must be > 0 in random mode, got {cfg.count}")
    if cfg.split not in SPLITS:
        raise InvalidParameterError(f"--split must be one of {', '.join(SPLITS)}, got {cfg.split!r}")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise InvalidParameterError(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    if not 0.0 <= cfg.max_nodata <= 1.0:
        raise InvalidParameterError(f"--max-nodata must be in [0, 1], got {cfg.max_nodata}")
    if not 0.0 <= cfg.min_labeled <= 1.0:
        raise InvalidParameterError(f"--min-labeled must be in [0, 1], got {cfg.min_labeled}")
    if cfg.min_labeled > 0 and not cfg.labels:
        raise InvalidParameterError("--min-labeled needs --labels")
    if cfg.format not in writer.FORMATS:
        raise InvalidParameterError(f"--format must be one of {', '.join(writer.FORMATS)}, got {cfg.format!r}")
    from geoseg.profiles import COMPRESSIONS

    if cfg.compress not in COMPRESSIONS:
        raise InvalidParameterError(f"--compress must be one of {', '.join(COMPRESSIONS)}, got {cfg.compress!r}")
    if cfg.overwrite and cfg.resume:
        raise InvalidParameterError("--overwrite and --resume exclude each other")
    if cfg.workers < 1:
        raise InvalidParameterError(f"--workers must be >= 1, got {cfg.workers}")
    if cfg.label_field and cfg.burn_value is not None:
        raise InvalidParameterError("give either --label-field or --burn-value, not both")


def parse_classes(spec: str | None) -> ClassMap | None:
    """``--classes``: a palette file (JSON or ``index,name,r,g,b`` lines) or comma-separated names."""
    if not spec:
        return None
    p = Path(spec)
    if p.exists() or p.suffix.lower() in (".json", ".csv", ".txt"):
        return load_palette(p)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"--classes has repeated names: {spec}")
    return ClassMap.from_names(names)


def pair_labels(scene_items: Sequence[str], label_items: Sequence[str], scenes: Sequence[Path]) -> list[Path | None]:
    """One label path per scene: same order, by file stem for folders/globs, or one vector for all.

    Raises:
        InvalidParameterError: counts differ, or scenes have no label with their stem.
    """
    if not label_items:
        return [None] * len(scenes)
    labels = expand_inputs(label_items, suffixes=(*RASTER_SUFFIXES, *VECTOR_SUFFIXES))
    if len(labels) == 1 and len(scenes) > 1 and is_vector(labels[0]):
        return [labels[0]] * len(scenes)

    def patterned(items: Sequence[str]) -> bool:
        return any(Path(s).is_dir() or any(ch in str(s) for ch in "*?[") for s in items)

    if patterned(scene_items) or patterned(label_items):
        by_stem: dict[str, Path] = {}
        for p in labels:
            by_stem.setdefault(p.stem, p)
        missing = [s for s in scenes if s.stem not in by_stem]
        if missing:
            stems = {s.stem for s in scenes}
            extra = [p for p in labels if p.stem not in stems]
            raise InvalidParameterError(
                "scenes and labels do not pair by file stem: scenes without labels: "
                + ", ".join(str(s) for s in missing[:10])
                + ("; labels without scene: " + ", ".join(str(p) for p in extra[:10]) if extra else ""))
        return [by_stem[s.stem] for s in scenes]
    if len(labels) != len(scenes):
        raise InvalidParameterError(f"{len(scenes)} scene(s) but {len(labels)} label file(s); give one --labels "
                                    "entry per scene in the same order, or folders paired by file stem")
    return list(labels)


def _windows_for(cfg: TileConfig, info: SceneInfo, scene_index: int) -> tuple[tuple[int, int], list[Window]]:
    h, w = info.shape
    if h < cfg.size or w < cfg.size:
        if not cfg.pad:
            raise SceneTooSmallError(f"scene {info.path} is {w}x{h} px, smaller than --size {cfg.size} "
                                     "(use --pad to pad it with nodata)")
        h, w = padded_shape(h, w, cfg.size)
    if cfg.mode == "stride":
        return (h, w), stride_windows(h, w, cfg.size, cfg.effective_stride, cfg.allow_gaps)
    rng = np.random.default_rng([cfg.seed, scene_index])
    return (h, w), random_windows(h, w, cfg.size, cfg.count, rng)


def _aoi_filter(aoi_path: str, info: SceneInfo, windows: list[Window]) -> list[bool]:
    from geoseg.tiling.labels import reproject_geometries
    from geoseg.vector import read_vector

    if info.crs is None:
        from geoseg.errors import MissingGeoreferenceError

        raise MissingGeoreferenceError(f"scene {info.path} has no CRS; --aoi {aoi_path} cannot be placed on it")
    data = read_vector(aoi_path)
    geoms = data.geometries[~(shapely.is_missing(data.geometries) | shapely.is_empty(data.geometries))]
    if data.crs is not None and data.crs != info.crs and len(geoms):
        geoms = reproject_geometries(geoms, data.crs, info.crs)
    area = shapely.union_all(geoms)
    scene_box = shapely.box(*info.bounds)
    if area.is_empty or not area.intersects(scene_box):
        raise NoOverlapError(f"--aoi {aoi_path} does not overlap scene {info.path} (scene bounds "
                             f"{tuple(round(v, 3) for v in info.bounds)})")
    shapely.prepare(area)
    boxes = shapely.box(*np.array([window_bounds(wi, info.transform) for wi in windows]).T) if windows else []
    return list(shapely.covers(area, boxes)) if windows else []


def plan_scenes(cfg: TileConfig) -> tuple[list[_ScenePlan], ClassMap | None, ClassMap | None, Counter]:
    """Open and validate every input and decide every window, id and split (no pixel read)."""
    scenes = expand_inputs(cfg.scenes)
    label_paths = pair_labels(cfg.scenes, cfg.labels, scenes)
    classes = parse_classes(cfg.classes)
    palette = load_palette(cfg.palette) if cfg.palette else None
    stems = Counter(p.stem for p in scenes)
    dup = [s for s, n in stems.items() if n > 1]
    if dup:
        raise InvalidParameterError(f"scenes share a file name ({', '.join(dup)}); patch ids would collide")
    plans: list[_ScenePlan] = []
    dropped: Counter = Counter()
    first: SceneInfo | None = None
    for i, (path, lab) in enumerate(zip(scenes, label_paths)):
        need_geo = bool(cfg.aoi) or (lab is not None and is_vector(lab))
        info = open_scene(path, require_georeference=need_geo)
        bands = check_bands(info, cfg.bands)
        if first is None:
            first = info
        elif info.dtype != first.dtype:
            raise BandCountError(f"scene {path} is {info.dtype} but {first.path} is {first.dtype}; "
                                 "all scenes of a dataset need the same data type")
        elif len(bands) != len(check_bands(first, cfg.bands)):
            raise BandCountError(f"scene {path} has {info.count} band(s) but {first.path} has {first.count}; "
                                 "select the same bands with --bands")
        if not info.has_georeference:
            log.warning("scene %s has no CRS/geotransform: patches will carry pixel coordinates only", path)
        shape, wins = _windows_for(cfg, info, i)
        source = resolve_labels(lab, info, shape, palette=palette, label_field=cfg.label_field,
                                burn_value=cfg.burn_value) if lab is not None else None
        if cfg.aoi:
            keep = _aoi_filter(cfg.aoi, info, wins)
            dropped["aoi"] += keep.count(False)
            wins = [w for w, k in zip(wins, keep) if k]
        ids = _window_ids(path.stem, wins)
        if cfg.split == "spatial":
            block = cfg.block_size or BLOCK_WINDOWS * cfg.size
            splits = spatial_split(wins, shape[0], shape[1], block, cfg.val_fraction, cfg.seed + i)
        else:
            splits = random_split(len(wins), cfg.val_fraction, cfg.seed + i)
        dropped["split"] += splits.count(None)
        plans.append(_ScenePlan(info=info, name=str(path), labels=source, shape=shape, windows=wins, ids=ids,
                                splits=splits))
    return plans, classes, palette, dropped


def _window_ids(stem: str, windows: Sequence[Window]) -> list[str]:
    seen: Counter = Counter()
    out = []
    for w in windows:
        base = f"{stem}_r{int(w.row_off)}_c{int(w.col_off)}"
        n = seen[base]
        seen[base] += 1
        out.append(base if n == 0 else f"{base}_{n}")
    return out


def _crs_text(info: SceneInfo) -> str:
    if info.crs is None:
        return ""
    epsg = info.crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else info.crs.to_wkt()


# --- the task (runs in a worker) --------------------------------------------------------------

@contextlib.contextmanager
def _quiet_georeference_warnings():
    # A scene without georeference is allowed (patches are pixels only); say it once, not per patch.
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        warnings.filterwarnings("ignore", message=".*'crs' was not provided", category=UserWarning)
        yield


def tile_batch(task: BatchTask) -> BatchResult:
    """Read, label, filter and write the patches of one batch of windows (one scene).

    Runs in any process: it opens the scene and labels itself, inside a bounded GDAL cache.
    """
    with _quiet_georeference_warnings():
        return _tile_batch(task)


def _tile_batch(task: BatchTask) -> BatchResult:
    stats = BandStats(task.dtype, len(task.bands), seed=task.seed)
    rows: list[dict[str, Any]] = []
    dropped: Counter = Counter()
    wins = [Window(c, r, w, h) for (r, c, h, w, _, _) in task.items]
    fill = task.nodata if task.nodata is not None else 0
    with contextlib.ExitStack() as stack:
        stack.enter_context(gdal_env(task.cache_mb))
        # Patch files are written on a second thread (GDAL releases the GIL while it writes)
        # while this one reads, masks and counts the next window; the batch returns only when
        # every write is done, so the journal never lists a patch that is not on disk.
        writes = stack.enter_context(_BackgroundWrites(depth=4 if task.write_thread else 0))
        ds = stack.enter_context(rasterio.open(task.scene))
        lab = stack.enter_context(open_labels(task.labels)) if task.labels is not None else None
        if lab is not None:
            lab.prepare([w for w, it in zip(wins, task.items) if it[4] not in task.done])
        for win, (r, c, h, w, pid, split) in zip(wins, task.items):
            inside = r >= 0 and c >= 0 and r + h <= task.height and c + w <= task.width
            img_path = writer.patch_path(task.out, "images", pid, task.fmt)
            if pid in task.done:
                if split == "train":  # statistics must cover kept patches too
                    data = writer.read_patch_file(img_path)
                    stats.update(data, _valid(data, task.nodata, win, task.height, task.width, inside))
                continue
            data = (ds.read(list(task.bands), window=win) if inside  # fill_value slows plain reads 3x
                    else ds.read(list(task.bands), window=win, boundless=True, fill_value=fill))
            valid = _valid(data, task.nodata, win, task.height, task.width, inside)
            npx = h * w
            nodata_fraction = 1.0 - float(valid.sum()) / npx
            if nodata_fraction > task.max_nodata:
                dropped["nodata"] += 1
                continue
            counts: list[int] = []
            labeled = 0.0
            labels = None
            if lab is not None:
                labels = lab.read(win)
                labels[~valid] = IGNORE_INDEX  # pixels without image never feed training
                bc = np.bincount(labels.ravel(), minlength=256)[:IGNORE_INDEX]
                nz = np.nonzero(bc)[0]
                counts = bc[: nz[-1] + 1].tolist() if nz.size else []
                labeled = float(bc[1:].sum()) / npx
                if labeled < task.min_labeled:
                    dropped["labeled"] += 1
                    continue
            transform = window_transform(win, ds.transform)
            writes.submit(writer.write_patch, img_path, data, transform, ds.crs, task.nodata, fmt=task.fmt,
                          compress=task.compress)
            label_rel = ""
            if labels is not None:
                lab_path = writer.patch_path(task.out, "labels", pid, task.fmt)
                writes.submit(writer.write_label, lab_path, labels, transform, ds.crs, fmt=task.fmt,
                              compress=task.compress, colormap=task.colormap)
                label_rel = f"labels/{lab_path.name}"
            if split == "train":
                stats.update(data, valid)
            minx, miny, maxx, maxy = window_bounds(win, ds.transform)
            rows.append({
                "id": pid, "scene": task.scene_name, "split": split, "row_off": r, "col_off": c,
                "width": w, "height": h, "minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy,
                "crs": task.crs_text, "nodata_fraction": round(nodata_fraction, 6),
                "labeled_fraction": round(labeled, 6), "image": f"images/{img_path.name}", "label": label_rel,
                "counts": counts,
            })
    return BatchResult(rows=rows, stats=stats, dropped=dropped)


class _BackgroundWrites:
    """At most ``depth`` patch writes in flight on one background thread.

    Leaving the context waits for every write and re-raises the first failure.
    """

    def __init__(self, depth: int = 4):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geoseg-tile-write")
        self._pending: list = []
        self._depth = depth

    def __enter__(self) -> _BackgroundWrites:
        return self

    def submit(self, fn, *args, **kwargs) -> None:
        if self._depth == 0:  # no spare core: write here
            fn(*args, **kwargs)
            return
        while len(self._pending) >= self._depth:  # bounded memory: patches waiting to be written
            self._pending.pop(0).result()
        # No Env of its own: rasterio makes a default one per call in this thread, which leaves
        # the process-wide block-cache cap set by the batch's gdal_env untouched.
        self._pending.append(self._pool.submit(fn, *args, **kwargs))

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            for fut in self._pending:
                if exc_type is None:
                    fut.result()
                else:
                    fut.cancel()
        finally:
            self._pool.shutdown(wait=True)


def _valid(data: np.ndarray, nodata: float | None, win: Window, height: int, width: int, inside: bool) -> np.ndarray:
    valid = valid_mask(data, nodata)
    if not inside:
        from geoseg.tiling.labels import inside_mask

        valid &= inside_mask(win, height, width)
    return valid


# --- running ----------------------------------------------------------------------------------

#: Target number of tasks per scene: enough to keep a few workers busy, few enough that
#: each task reuses the blocks it decompressed (a task boundary loses the GDAL cache).
TASKS_PER_SCENE = 16
#: Upper bound of the GDAL block cache sized from the scene width, in MB.
MAX_CACHE_MB = 256


def _batches(cfg: TileConfig, items: list[tuple]) -> list[list[tuple]]:
    """Split a scene's windows into tasks; independent of the worker count (so are the results).

    Stride mode: bands of whole window rows, so that overlapping windows of one row band
    share decompressed blocks. Random mode or ``batch_size``: fixed counts of windows.
    """
    if cfg.batch_size or cfg.mode != "stride":
        bs = int(cfg.batch_size or max(16, math.ceil(len(items) / TASKS_PER_SCENE)))
        return [items[k:k + bs] for k in range(0, len(items), bs)]
    rows: list[list[tuple]] = []
    for it in items:
        if not rows or rows[-1][0][0] != it[0]:
            rows.append([])
        rows[-1].append(it)
    per_task = max(1, math.ceil(len(rows) / TASKS_PER_SCENE))
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


def _make_tasks(cfg: TileConfig, plans: list[_ScenePlan], done: set[str], out: Path, bands: tuple[int, ...],
                colormap: dict | None) -> list[BatchTask]:
    tasks = []
    # One local worker leaves a core idle: give it the patch writes. A cluster or several local
    # workers already keep every core busy, where a second thread per worker only competes.
    spare_core = cfg.scheduler is None and cfg.workers <= 1 and (os.cpu_count() or 1) > 1
    for p in plans:
        items = [(int(w.row_off), int(w.col_off), int(w.height), int(w.width), pid, s)
                 for w, pid, s in zip(p.windows, p.ids, p.splits) if s is not None]
        cache = _cache_mb(cfg, p.info, len(bands))
        for chunk in _batches(cfg, items):
            tasks.append(BatchTask(
                scene=p.info.path, scene_name=p.name, crs_text=_crs_text(p.info), height=p.info.height,
                width=p.info.width, labels=p.labels, items=tuple(chunk),
                done=frozenset(it[4] for it in chunk if it[4] in done), out=out, bands=bands,
                dtype=p.info.dtype, nodata=p.info.nodata, fmt=cfg.format, compress=cfg.compress,
                max_nodata=cfg.max_nodata, min_labeled=cfg.min_labeled, colormap=colormap,
                cache_mb=cache, seed=cfg.seed + len(tasks), write_thread=spare_core))
    return tasks


def _execute(cfg: TileConfig, tasks: list[BatchTask], on_result: Callable[[int, BatchResult], None]) -> None:
    """Run tasks in this process (one worker) or on dask.distributed; call ``on_result`` as they finish."""
    if cfg.scheduler is None and cfg.workers <= 1:
        for i, task in enumerate(tasks):
            on_result(i, tile_batch(task))
        return
    from dask.distributed import Client, LocalCluster, as_completed

    if not log.isEnabledFor(logging.DEBUG):  # importing distributed resets its loggers to INFO
        for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker",
                     "distributed.core", "distributed.http.proxy"):
            logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        if cfg.scheduler:
            client = stack.enter_context(Client(cfg.scheduler))
        else:
            import dask

            # distributed starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap
            # threshold at 128 kB: every patch-sized array is then mmapped and page-faulted afresh, making
            # workers about 3x slower than this process. Patch-sized arrays stay on the heap instead.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 32 << 20,
                                  "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 16 << 20}):
                cluster = stack.enter_context(LocalCluster(
                    n_workers=cfg.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                    silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        futures = client.map(tile_batch, tasks, pure=False)
        position = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            on_result(position[fut.key], fut.result())


def _prepare_output(cfg: TileConfig, out: Path) -> list[dict[str, Any]]:
    """Check/clear the output folder; return the rows an interrupted run left (``--resume``)."""
    check_output(out, overwrite=cfg.overwrite, resume=cfg.resume)
    if cfg.overwrite and out.exists():
        for name in ("images", "labels"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in (index_mod.INDEX_FILE, index_mod.FOOTPRINTS_FILE, DATASET_FILE, index_mod.JOURNAL_FILE):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    if not cfg.resume:
        return []
    params = cfg.parameters()
    rows: list[dict[str, Any]] = []
    meta = out / DATASET_FILE
    if meta.exists():
        index_mod.check_same_parameters(json.loads(meta.read_text()).get("parameters", {}), params, meta)
        rows = index_mod.read_index(out) if (out / index_mod.INDEX_FILE).exists() else []
    rows += index_mod.Journal(out, params).load()
    kept = {}
    for row in rows:
        if (out / row["image"]).exists() and (not row["label"] or (out / row["label"]).exists()):
            kept[row["id"]] = row
    return list(kept.values())


def run_tiling(config: TileConfig, progress: bool | None = None) -> TileResult:
    """Tile scenes into a dataset folder (see docs/design.md, "Dataset folder").

    Args:
        config: the options.
        progress: show a tqdm bar; default ``not config.quiet``.

    Raises:
        GeoSegError: any bad input (see :mod:`geoseg.errors`), before anything is written where possible.
    """
    with _quiet_georeference_warnings():
        return _run_tiling(config, progress)


def _run_tiling(cfg: TileConfig, progress: bool | None) -> TileResult:
    t0 = time.perf_counter()
    validate_config(cfg)
    plans, classes, palette, dropped = plan_scenes(cfg)
    out = Path(cfg.out)
    prior = _prepare_output(cfg, out)
    done_rows = {r["id"]: r for r in prior}
    planned = {pid for p in plans for pid, s in zip(p.ids, p.splits) if s is not None}
    done_rows = {k: v for k, v in done_rows.items() if k in planned}
    bands = tuple(check_bands(plans[0].info, cfg.bands))
    class_map = classes or palette
    colormap = (class_map or ClassMap.default(IGNORE_INDEX)).colormap() if any(p.labels for p in plans) else None
    tasks = _make_tasks(cfg, plans, set(done_rows), out, bands, colormap)
    journal = index_mod.Journal(out, cfg.parameters())
    journal.open(done_rows.values())
    results: list[BatchResult | None] = [None] * len(tasks)
    n_windows = sum(len(t.items) for t in tasks)
    show = (not cfg.quiet) if progress is None else progress
    from tqdm import tqdm

    bar = tqdm(total=n_windows, unit="win", desc="tiling", disable=not show, leave=False)

    def on_result(i: int, res: BatchResult) -> None:
        results[i] = res
        journal.append(res.rows)
        bar.update(len(tasks[i].items))

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
    elif max_label > class_map.num_classes:
        log.warning("labels hold class index %d but only %d classes are named (%s)", max_label - 1,
                    class_map.num_classes, cfg.classes or cfg.palette)
    num_classes = max(class_map.num_classes, max_label if has_labels else 0)
    index_mod.write_index(out, rows, num_classes)
    patches = {s: sum(r["split"] == s for r in rows) for s in ("train", "val")}
    _write_dataset_json(out, cfg, plans, bands, class_map, num_classes, stats, rows, patches)
    journal.close(remove=True)
    return TileResult(out=out, patches=patches, dropped={k: n for k, n in dropped.items() if n}, resumed=len(done_rows),
                      num_classes=num_classes, seconds=time.perf_counter() - t0, rows=rows)


def _write_dataset_json(out: Path, cfg: TileConfig, plans: list[_ScenePlan], bands: tuple[int, ...],
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
        "scenes": [{"path": p.name, "width": p.info.width, "height": p.info.height, "crs": _crs_text(p.info) or None,
                    "transform": list(p.info.transform)[:6],
                    "labels": str(p.labels.path) if p.labels else None} for p in plans],
        "parameters": cfg.parameters(),
    }
    with atomic_output(out / DATASET_FILE) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
