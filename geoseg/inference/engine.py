"""Whole-scene prediction: windows -> batched model -> weighted accumulation -> strips -> rasters.

Data flow of ``--mode stride`` for one scene (each arrow a thread boundary)::

    reader thread            main thread                         writer thread
    read window batches  ->  model forward (batch i+1, 2nd thread) ->  encode (argmax, quantize)
    (one GDAL call per       accumulate batch i into the strip       write whole block rows
     run of windows)         buffer, hand out finished rows

Memory is bounded by the strip buffer (one tile of rows x scene width x classes, float64), a few
batches and one output block row: it grows with the scene width, never with its height.

``strip_rows`` splits the scene into strips of rows, each predicted on its own with a halo of
one tile (the windows that touch it), exactly as the dask workers do; the result does not
depend on it (nor on the batch size): every pixel receives the same windows in the same order.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from geoseg import __version__
from geoseg.io.atomic import TMP_MARK
from geoseg.io.bundle import Bundle, load_bundle
from geoseg.errors import BandCountError, InvalidParameterError, OutputExistsError
from geoseg.inference.accumulator import RowBlock, StripAccumulator
from geoseg.inference.blending import BLENDS, weight_window
from geoseg.inference.progress import SceneProgress
from geoseg.inference.reader import ScenePlan, iter_window_batches, scene_bands
from geoseg.runtime.threads import BackgroundConsumer, prefetch
from geoseg.inference.writers import PROB_DTYPES, OutputPaths, PredictionWriter, encode, output_paths
from geoseg.io.profiles import COMPRESSIONS
from geoseg.io.raster import SceneInfo, open_scene

log = logging.getLogger("geoseg.predict")

MODES = ("stride", "per_image")


@dataclass(frozen=True)
class PredictOptions:
    """Options of a prediction run (CLI flags of ``geoseg.predict`` with ``_`` for ``-``).

    Attributes:
        mode: ``stride`` (sliding windows, blended) or ``per_image`` (resize, predict once).
        stride: step between windows in pixels; None takes the bundle's default.
        blend: ``mean``, ``spline`` or ``gaussian`` (:mod:`geoseg.inference.blending`).
        batch_size: windows per model call.
        tta: average the 8 dihedral transforms of each window.
        prob_dtype: ``uint8`` (p * 255, scale metadata) or ``float32``.
        write_prob: write ``<stem>_prob.tif`` (False for ``--no-prob``).
        cog: write Cloud-Optimized GeoTIFFs with overviews.
        compress: ``deflate``, ``zstd``, ``lzw`` or ``none``.
        overwrite: replace existing outputs.
        resume: keep finished scenes (both outputs present), redo the others.
        progress: show a progress bar per scene.
        strip_rows: predict strips of this many rows independently (halo of one tile); None
            streams the whole scene in one pass. Workers use strips of a few block rows.
        prefetch: batches read ahead of the model.
    """

    mode: str = "stride"
    stride: int | None = None
    blend: str = "mean"
    batch_size: int = 8
    tta: bool = False
    prob_dtype: str = "uint8"
    write_prob: bool = True
    cog: bool = False
    compress: str = "deflate"
    overwrite: bool = False
    resume: bool = False
    progress: bool = True
    strip_rows: int | None = None
    prefetch: int = 2

    def resolved(self, bundle: Bundle) -> PredictOptions:
        """Validate against the bundle and fill the default stride.

        Raises:
            InvalidParameterError: an option is out of range (message names the option).
        """
        def choose(name: str, value, allowed) -> None:
            if value not in allowed:
                raise InvalidParameterError(f"--{name} {value!r} is not known; choose from {', '.join(allowed)}")

        choose("mode", self.mode, MODES)
        choose("blend", self.blend, BLENDS)
        choose("prob-dtype", self.prob_dtype, PROB_DTYPES)
        choose("compress", self.compress, tuple(COMPRESSIONS))
        if int(self.batch_size) < 1:
            raise InvalidParameterError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.strip_rows is not None and int(self.strip_rows) < 1:
            raise InvalidParameterError(f"strip_rows must be >= 1, got {self.strip_rows}")
        if self.overwrite and self.resume:
            raise InvalidParameterError("--overwrite and --resume exclude each other")
        tile = bundle.tile_size
        stride = bundle.stride if self.stride is None else int(self.stride)
        if stride <= 0:
            raise InvalidParameterError(f"--stride must be > 0, got {stride}")
        if stride > tile:
            raise InvalidParameterError(
                f"--stride {stride} is larger than the tile size {tile} of bundle {bundle.directory}: "
                "pixels between windows would get no prediction"
            )
        return replace(self, stride=stride, batch_size=int(self.batch_size))


@dataclass(frozen=True)
class PredictionResult:
    """What one scene produced.

    Attributes:
        scene: the input scene.
        label: ``<stem>_label.tif``.
        prob: ``<stem>_prob.tif`` (None with ``--no-prob``).
        skipped: True when ``--resume`` found both outputs and kept them.
        windows: windows covered (predicted or skipped as entirely nodata).
        nodata_windows: windows skipped because all their pixels are nodata.
        seconds: wall-clock time for the scene.
    """

    scene: Path
    label: Path
    prob: Path | None
    skipped: bool = False
    windows: int = 0
    nodata_windows: int = 0
    seconds: float = 0.0


@dataclass
class SceneJob:
    """A validated scene: its header, bands to read and output paths."""

    info: SceneInfo
    bands: list[int]
    paths: OutputPaths
    skip: bool = False


# -- public API ----------------------------------------------------------------------------------

def as_bundle(bundle_or_path: Bundle | str | os.PathLike) -> Bundle:
    """A :class:`Bundle` (model loaded lazily) from a bundle or its folder."""
    if isinstance(bundle_or_path, Bundle):
        return bundle_or_path
    return load_bundle(bundle_or_path, load_model=False)


def predict_scene(bundle_or_path: Bundle | str | os.PathLike, scene_path: str | os.PathLike,
                  out_dir: str | os.PathLike, **options) -> PredictionResult:
    """Predict one scene into ``OUT/<stem>_label.tif`` and ``OUT/<stem>_prob.tif``.

    Args:
        bundle_or_path: a loaded :class:`Bundle` or a bundle folder.
        scene_path: the GeoTIFF (or any GDAL raster) to predict.
        out_dir: output folder (created).
        **options: fields of :class:`PredictOptions`.

    Raises:
        GeoSegError: bad bundle, scene, option, or existing outputs (see :func:`predict_scenes`).
    """
    return predict_scenes(bundle_or_path, [scene_path], out_dir, **options)[0]


def predict_scenes(bundle_or_path: Bundle | str | os.PathLike, scenes: Sequence[str | os.PathLike],
                   out_dir: str | os.PathLike, workers: int = 1, scheduler: str | None = None,
                   **options) -> list[PredictionResult]:
    """Predict several scenes; every scene and output is validated before anything is written.

    Args:
        bundle_or_path: a loaded :class:`Bundle` or a bundle folder.
        scenes: scene files.
        out_dir: output folder.
        workers: > 1 runs strips of scenes on that many local dask worker processes.
        scheduler: a dask.distributed scheduler address; workers there must see the bundle and
            scene paths (the outputs are written by this process).
        **options: fields of :class:`PredictOptions`.

    Raises:
        InputNotFoundError, UnreadableRasterError: a scene or the bundle cannot be read.
        BundleError: the bundle is incomplete or its model cannot be loaded.
        BandCountError: a scene lacks the bands the model reads.
        InvalidParameterError: an option is out of range.
        OutputExistsError: an output exists and neither ``overwrite`` nor ``resume`` is set.
    """
    bundle = as_bundle(bundle_or_path)
    opts = PredictOptions(**options).resolved(bundle)
    if int(workers) < 1:
        raise InvalidParameterError(f"--workers must be >= 1, got {workers}")
    jobs = plan_jobs(bundle, scenes, out_dir, opts)
    todo = [j for j in jobs if not j.skip]
    results: dict[Path, PredictionResult] = {
        j.info.path: PredictionResult(j.info.path, j.paths.label, j.paths.prob, skipped=True) for j in jobs if j.skip
    }
    if todo and (int(workers) > 1 or scheduler):
        from geoseg.inference.distributed import predict_jobs_dask

        for res in predict_jobs_dask(bundle, todo, opts, workers=int(workers), scheduler=scheduler):
            results[res.scene] = res
    elif todo:
        forward = make_forward(bundle, todo[0].bands, opts.tta)
        for job in todo:
            results[job.info.path] = run_job(bundle, forward, job, opts)
    return [results[j.info.path] for j in jobs]


def plan_jobs(bundle: Bundle, scenes: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
              opts: PredictOptions) -> list[SceneJob]:
    """Open every scene, check its bands and outputs; nothing is written here."""
    jobs: list[SceneJob] = []
    stems: dict[str, Path] = {}
    for scene in scenes:
        info = open_scene(scene)
        if info.crs is None:
            log.warning("scene has no CRS: %s (outputs copy its pixel grid without georeference)", info.path)
        bands = check_scene_bands(info, bundle)
        paths = output_paths(info.path, out_dir, opts.write_prob)
        stem = info.path.stem
        if stem in stems:
            raise InvalidParameterError(f"two scenes share the name {stem!r}: {stems[stem]} and {info.path} "
                                        "(their outputs would collide)")
        stems[stem] = info.path
        skip = False
        if opts.resume and paths.complete():
            skip = True
        elif not (opts.overwrite or opts.resume):
            for p in paths.all:
                if p.exists():
                    raise OutputExistsError(f"output exists: {p} (use --overwrite to replace it or --resume to continue)")
        jobs.append(SceneJob(info=info, bands=bands, paths=paths, skip=skip))
    return jobs


def check_scene_bands(info: SceneInfo, bundle: Bundle) -> list[int]:
    """The scene bands the model reads, in model order.

    Raises:
        BandCountError: the scene lacks a band the bundle names, or (bundle without a band
            list) its band count differs from the model's input channels.
    """
    if bundle.bands:
        missing = [b for b in bundle.bands if b < 1 or b > info.count]
        if missing:
            raise BandCountError(f"scene {info.path} has {info.count} band(s); bundle {bundle.directory} "
                                 f"reads bands {list(bundle.bands)}")
        return list(bundle.bands)
    expected = bundle_band_count(bundle)
    if expected is not None and expected != info.count:
        raise BandCountError(f"scene {info.path} has {info.count} band(s); model of bundle {bundle.directory} "
                             f"expects {expected}")
    return scene_bands(info, None)


def bundle_band_count(bundle: Bundle) -> int | None:
    """Input channels of the bundle's model (from its metadata, else from the model itself)."""
    norm = bundle.normalization or {}
    for key in ("mean", "min"):
        if norm.get(key) is not None:
            return len(norm[key])
    from geoseg.inference.forward import _input_channels

    return _input_channels(bundle.model)


def make_forward(bundle: Bundle, bands: Sequence[int], tta: bool):
    """The compiled forward pass for a bundle (imports TensorFlow)."""
    from geoseg.inference.forward import Forward

    return Forward(bundle.model, bundle.tile_size, len(bands), bundle.num_classes, tta=tta,
                   source=str(bundle.directory))


def run_tags(bundle: Bundle, opts: PredictOptions, info: SceneInfo, bands: Sequence[int]) -> dict[str, str]:
    """Run metadata written in the tags of both outputs (no timestamps: reruns give identical files)."""
    model = bundle.meta.get("model") or {}
    enc = ("p = value / 255 (band scale), 255 = nodata" if opts.prob_dtype == "uint8" else "p (float32), NaN = nodata")
    return {
        "GEOSEG_VERSION": __version__,
        "GEOSEG_MODEL": str(model.get("name", "model")) if isinstance(model, dict) else str(model),
        "GEOSEG_BUNDLE": bundle.directory.name,
        "GEOSEG_SCENE": info.path.name,
        "GEOSEG_MODE": opts.mode,
        "GEOSEG_TILE": str(bundle.tile_size),
        "GEOSEG_STRIDE": str(opts.stride) if opts.mode == "stride" else "",
        "GEOSEG_BLEND": opts.blend if opts.mode == "stride" else "",
        "GEOSEG_TTA": "yes" if opts.tta else "no",
        "GEOSEG_BANDS": ",".join(map(str, bands)),
        "GEOSEG_PROB_ENCODING": enc,
    }


def remove_scene_temps(paths: OutputPaths) -> None:
    """Delete temporary outputs of this scene left by a killed run (``--resume``)."""
    for p in paths.all:
        for tmp in p.parent.glob(f"{p.stem}{TMP_MARK}*"):
            if tmp.is_file():
                tmp.unlink()


# -- one scene, this process ------------------------------------------------------------------

def run_job(bundle: Bundle, forward, job: SceneJob, opts: PredictOptions) -> PredictionResult:
    """Predict one validated scene in this process and write its outputs."""
    t0 = time.perf_counter()
    info = job.info
    if opts.resume:
        remove_scene_temps(job.paths)
    plan = ScenePlan.create(info.height, info.width, bundle.tile_size, opts.stride)
    total = plan.count() if opts.mode == "stride" else 1
    bar = SceneProgress(info.path.name, total, info.width * info.height, enabled=opts.progress)
    writer = PredictionWriter(job.paths, info, bundle.classes, bundle.num_classes, opts.prob_dtype,
                              opts.compress, opts.cog, run_tags(bundle, opts, info, job.bands))
    nodata_windows = 0
    try:
        with writer:
            def write(item: RowBlock | _Encoded) -> None:
                if isinstance(item, _Encoded):
                    writer.write(item.row, item.label, item.prob)
                else:
                    writer.write(item.row, *encode(item.prob, item.valid, opts.prob_dtype, opts.write_prob))

            consumer = BackgroundConsumer(write, depth=1)  # one block waiting + one being written
            try:
                if opts.mode == "stride":
                    counts = [0, 0]
                    for block in iter_scene_blocks(forward, bundle, info, job.bands, plan, opts, bar.update, counts):
                        consumer.submit(block)
                    nodata_windows = counts[1]
                else:
                    for row, label, prob in iter_per_image_rows(forward, bundle, info, job.bands, opts, writer.block):
                        consumer.submit(_Encoded(row, label, prob))
                    bar.update(1)
            finally:
                consumer.close()
    finally:
        bar.close()
    return PredictionResult(info.path, job.paths.label, job.paths.prob, windows=total,
                            nodata_windows=nodata_windows, seconds=time.perf_counter() - t0)


@dataclass(frozen=True)
class _Encoded:
    row: int
    label: np.ndarray
    prob: np.ndarray | None


def strip_ranges(height: int, strip_rows: int | None) -> list[tuple[int, int]]:
    """``[(first, stop), ...]`` scene rows of each strip; one strip when ``strip_rows`` is None."""
    if not strip_rows:
        return [(0, height)]
    return [(a, min(a + strip_rows, height)) for a in range(0, height, strip_rows)]


def iter_scene_blocks(forward, bundle: Bundle, info: SceneInfo, bands: Sequence[int], plan: ScenePlan,
                      opts: PredictOptions, on_windows: Callable[[int], None] = lambda n: None,
                      counts: list[int] | None = None) -> Iterator[RowBlock]:
    """Finished row blocks of a scene in row order (all strips, see ``strip_rows``)."""
    weights = None if opts.blend == "mean" else weight_window(plan.tile, opts.blend)
    for first, stop in strip_ranges(info.height, opts.strip_rows):
        yield from iter_strip_blocks(forward, info.path, plan, bands, bundle.normalization, weights,
                                     first, stop, opts.batch_size, on_windows, counts, opts.prefetch)


def iter_strip_blocks(forward, path: Path, plan: ScenePlan, bands: Sequence[int], norm: dict | None,
                      weights: np.ndarray | None, first: int, stop: int, batch_size: int,
                      on_windows: Callable[[int], None] = lambda n: None, counts: list[int] | None = None,
                      prefetch_depth: int = 2) -> Iterator[RowBlock]:
    """Predict scene rows ``[first, stop)`` on their own (with a halo of one tile).

    Reading runs in a prefetch thread; the model call for batch ``i + 1`` runs in a second
    thread while this one accumulates batch ``i``.

    Args:
        counts: if given, ``counts[0] += windows predicted``, ``counts[1] += nodata windows skipped``.
    """
    rows = plan.window_rows(first, stop)
    acc = StripAccumulator(plan.grid_width, forward.num_classes, plan.tile, weights, start=rows[0],
                           emit=(first, stop), out_width=plan.width)
    batches = prefetch(iter_window_batches(path, plan, bands, norm, batch_size, rows), depth=prefetch_depth)

    def accumulate(batch, pred) -> Iterator[RowBlock]:
        for i in range(len(batch)):
            r = int(batch.rows[i])
            if r != acc.base:
                yield from acc.advance(r)
            acc.add(r, int(batch.cols[i]), pred[i], batch.valid[i])
        if counts is not None:
            counts[0] += len(batch)
            counts[1] += batch.done - len(batch)
        on_windows(batch.done)

    with ThreadPoolExecutor(1, thread_name_prefix="geoseg-model") as pool:
        previous = None
        try:
            for batch in batches:
                future = pool.submit(forward, batch.data)
                if previous is not None:
                    yield from accumulate(previous[0], previous[1].result())
                previous = (batch, future)
            if previous is not None:
                yield from accumulate(previous[0], previous[1].result())
        finally:
            batches.close()
    yield from acc.finish()


# -- per-image mode ---------------------------------------------------------------------------

def iter_per_image_rows(forward, bundle: Bundle, info: SceneInfo, bands: Sequence[int], opts: PredictOptions,
                        block_rows: int) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Resize the scene to one tile, predict once, resize back strip by strip.

    Probabilities are resized bilinearly (pixel centres aligned), labels with nearest neighbour
    from the tile-resolution argmax, so here ``label == argmax(prob)`` holds at model resolution.
    Yields ``(row, label (n, W), prob (K, n, W) or None)`` encoded for the writers.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    from geoseg.inference.writers import LABEL_NODATA
    from geoseg.io.normalization import normalize
    from geoseg.io.raster import gdal_env, valid_mask

    tile = bundle.tile_size
    with gdal_env(), rasterio.open(info.path) as ds:
        small = ds.read(list(bands), out_shape=(len(bands), tile, tile), resampling=Resampling.bilinear)
        x = normalize(np.moveaxis(small, 0, -1)[None], bundle.normalization)
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        p = forward(x)[0]  # (tile, tile, K)
        label_small = np.argmax(p, axis=-1).astype(np.uint8)
        col_i0, col_i1, col_f = _linear_index(info.width, tile)
        col_near = _nearest_index(info.width, tile)
        for a in range(0, info.height, block_rows):
            b = min(a + block_rows, info.height)
            i0, i1, f = _linear_index(info.height, tile, a, b)
            rows = p[i0] * (1 - f)[:, None, None] + p[i1] * f[:, None, None]        # (n, tile, K)
            prob = rows[:, col_i0] * (1 - col_f)[None, :, None] + rows[:, col_i1] * col_f[None, :, None]
            valid = valid_mask(ds.read(list(bands), window=Window(0, a, info.width, b - a)), ds.nodata)
            label = label_small[_nearest_index(info.height, tile, a, b)][:, col_near]
            label[~valid] = LABEL_NODATA
            out = None
            if opts.write_prob:
                _, out = encode(prob.astype(np.float32), valid, opts.prob_dtype, True)
            yield a, label, out


def _linear_index(n_out: int, n_in: int, first: int = 0, stop: int | None = None):
    """Bilinear source indices and weights for output pixels ``[first, stop)`` (half-pixel centres)."""
    stop = n_out if stop is None else stop
    src = (np.arange(first, stop) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def _nearest_index(n_out: int, n_in: int, first: int = 0, stop: int | None = None) -> np.ndarray:
    stop = n_out if stop is None else stop
    return np.minimum(((np.arange(first, stop) + 0.5) * (n_in / n_out)).astype(int), n_in - 1)


def default_strip_rows(tile: int, block: int) -> int:
    """Rows per worker task: a whole number of output blocks and at least 4 tiles (halo < 25 %)."""
    return int(math.ceil(4 * tile / block) * block)
