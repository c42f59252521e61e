"""The tiling task: read, label, filter and write the patches of one batch of windows of one scene.

Runs in any process (this one, a local dask worker or a cluster worker): it opens the scene and
its labels itself, inside a bounded GDAL cache; nothing but paths and numbers is pickled.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geoseg.io.classes import IGNORE_INDEX
from geoseg.io.label_source import LabelSource
from geoseg.io.labels import inside_mask, open_labels
from geoseg.io.raster import gdal_env, read_window, valid_mask
from geoseg.io.windows import window_bounds
from geoseg.runtime.threads import BackgroundConsumer
from geoseg.tiling import writer
from geoseg.tiling.stats import BandStats


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


# --- the task (runs in a worker) --------------------------------------------------------------

@contextlib.contextmanager
def quiet_georeference_warnings():
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
    with quiet_georeference_warnings():
        return _tile_batch(task)


def tile_batch_in_thread(task: BatchTask) -> BatchResult:
    """:func:`tile_batch` for a worker thread of a run whose caller has already quietened the
    georeference warnings (``warnings.catch_warnings`` is not thread-safe: it is entered once,
    around the whole run, by :func:`geoseg.tiling.tiler.run_tiling`)."""
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
        # At most 4 patch writes in flight; GDAL makes a default Env per call in that thread, which
        # leaves the process-wide block-cache cap set by gdal_env above untouched.
        consumer = (stack.enter_context(BackgroundConsumer(_call, depth=4, name="geoseg-tile-write"))
                    if task.write_thread else None)
        submit = consumer.submit if consumer is not None else _call
        ds = stack.enter_context(rasterio.open(task.scene))
        crs, scene_transform = ds.crs, ds.transform
        image_writer = writer.PatchWriter(crs, task.nodata, fmt=task.fmt, compress=task.compress)
        label_writer = writer.PatchWriter(crs, IGNORE_INDEX, fmt=task.fmt, compress=task.compress,
                                          colormap=task.colormap)
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
            data = (_read_interleaved(ds, task.bands, win, task.dtype) if inside  # fill_value slows plain reads 3x
                    else read_window(ds, list(task.bands), win, boundless=True, fill_value=fill))
            valid = _valid(data, task.nodata, win, task.height, task.width, inside)
            npx = h * w
            nodata_fraction = 1.0 - np.count_nonzero(valid) / npx
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
            transform = window_transform(win, scene_transform)
            submit(functools.partial(image_writer.write, img_path, data, transform))
            label_rel = ""
            if labels is not None:
                lab_path = writer.patch_path(task.out, "labels", pid, task.fmt)
                submit(functools.partial(label_writer.write, lab_path, labels.astype(np.uint8, copy=False), transform))
                label_rel = f"labels/{lab_path.name}"
            if split == "train":
                stats.update(data, valid)
            minx, miny, maxx, maxy = window_bounds(win, scene_transform)
            rows.append({
                "id": pid, "scene": task.scene_name, "split": split, "row_off": r, "col_off": c,
                "width": w, "height": h, "minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy,
                "crs": task.crs_text, "nodata_fraction": round(nodata_fraction, 6),
                "labeled_fraction": round(labeled, 6), "image": f"images/{img_path.name}", "label": label_rel,
                "counts": counts,
            })
    return BatchResult(rows=rows, stats=stats, dropped=dropped)


def _read_interleaved(ds: Any, bands: tuple[int, ...], win: Window, dtype: str) -> np.ndarray:
    """A window as a ``(C, H, W)`` view of a pixel-interleaved ``(H, W, C)`` buffer.

    For a pixel-interleaved scene this costs up to ~0.5 ms more per 512 px 4-band window than
    band by band, and saves more: the buffer is what a pixel-interleaved patch file holds
    (:class:`geoseg.tiling.writer.PatchWriter` copies its tiles; interleaving in numpy costs
    ~2.4 ms), and the 8-bit histograms read it two bands at a time.
    """
    buf = np.empty((int(win.height), int(win.width), len(bands)), dtype=dtype)
    return read_window(ds, list(bands), win, out=buf.transpose(2, 0, 1))


def _valid(data: np.ndarray, nodata: float | None, win: Window, height: int, width: int, inside: bool) -> np.ndarray:
    if nodata is not None and data.dtype.kind in "iu" and float(nodata).is_integer():
        info = np.iinfo(data.dtype)
        if info.min <= nodata <= info.max:  # compare as the pixels' type, not as float64 (8x the work)
            nodata = data.dtype.type(int(nodata))  # type: ignore[assignment]
            packed = _packed_valid(data, nodata)
            if packed is not None:
                return packed if inside else packed & inside_mask(win, height, width)
    valid = valid_mask(data, nodata)
    if not inside:
        valid &= inside_mask(win, height, width)
    return valid


def _packed_valid(data: np.ndarray, nodata: Any) -> np.ndarray | None:
    """:func:`geoseg.io.raster.valid_mask` of integer pixels in a pixel-interleaved buffer, one
    comparison per pixel: all C bands equal ``nodata`` exactly when the pixel's C * itemsize bytes,
    read as one unsigned integer, equal ``nodata`` repeated C times. None for any other layout."""
    hwc = data.transpose(1, 2, 0)
    word = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}.get(hwc.shape[2] * hwc.itemsize)
    if word is None or not hwc.flags.c_contiguous:
        return None
    pattern = np.full(hwc.shape[2], nodata, dtype=hwc.dtype).view(word)[0]
    return hwc.view(word)[:, :, 0] != pattern


def _call(job: functools.partial) -> None:
    job()
