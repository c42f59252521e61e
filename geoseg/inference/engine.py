"""One scene in this process: windows -> batched model -> weighted accumulation -> strips -> rasters.

Data flow of ``--mode stride`` for one scene (each arrow a thread boundary, all of them bounded
queues from :mod:`geoseg.runtime.threads`)::

    reader thread            model thread              main thread                 writer thread
    read window batches  ->  forward(batch i + 1)  ->  accumulate batch i into ->  encode (label,
    (one GDAL call per       (TensorFlow releases      the strip buffer, hand      quantize), write
     run of windows)          the GIL)                  out finished rows           whole block rows

Memory is bounded by the strip buffer (one tile of rows x scene width x output channels,
float64), a few batches and one output block row: it grows with the scene width, never with
its height.

``strip_rows`` splits the scene into strips of rows, each predicted on its own with a halo of
one tile (the windows that touch it), exactly as the dask workers do
(:mod:`geoseg.inference.distributed`); the result does not depend on it (nor on the batch
size): every pixel receives the same windows in the same order.

A binary model (one sigmoid output) is carried as that one channel all the way to the writers,
which label ``p >= threshold``.

``--accumulate device`` (the ``auto`` choice where a GPU is visible) keeps the model output on
the device: the reader thread also copies each batch onto the device (so the copy overlaps the
model), the model thread runs :meth:`Forward.device`, and the main thread blends and encodes on
the device (:class:`geoseg.inference.device.DeviceAccumulator`); only encoded uint8 (or
float32) rows reach the host and the writer thread. The outputs are the host path's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from geoseg import __version__
from geoseg.inference.accumulator import RowBlock, StripAccumulator
from geoseg.inference.blending import weight_window
from geoseg.inference.device import DeviceAccumulator, EncodedRows, Encoding, resolve_accumulate
from geoseg.inference.options import PredictionResult, PredictOptions, SceneJob
from geoseg.inference.per_image import iter_per_image_rows
from geoseg.inference.progress import SceneProgress
from geoseg.inference.reader import ScenePlan, iter_window_batches
from geoseg.inference.writers import OutputPaths, PredictionWriter, encode
from geoseg.io.atomic import TMP_MARK
from geoseg.io.bundle import Bundle
from geoseg.io.raster import SceneInfo
from geoseg.io.remote import GdalPath
from geoseg.runtime.threads import BackgroundConsumer, prefetch


def make_forward(bundle: Bundle, bands: Sequence[int], tta: bool, precision: str = "float32", xla: bool = False):
    """The forward pass for a bundle: Keras (imports TensorFlow, quietly) or an exported ONNX file."""
    from geoseg.inference.forward import make_forward as forward_for

    return forward_for(bundle, len(bands), tta, precision, xla)


def run_tags(bundle: Bundle, opts: PredictOptions, info: SceneInfo, bands: Sequence[int]) -> dict[str, str]:
    """Run metadata written in the tags of both outputs (no timestamps: reruns give identical files).

    A binary model adds ``GEOSEG_THRESHOLD`` (the label threshold on the foreground probability).
    """
    model = bundle.meta.get("model") or {}
    enc = ("p = value / 255 (band scale), 255 = nodata" if opts.prob_dtype == "uint8" else "p (float32), NaN = nodata")
    if bundle.binary:
        enc = f"one band: p of class 1 ({bundle.classes.names[1]}); " + enc
    tags = {
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
    if opts.threshold is not None:
        tags["GEOSEG_THRESHOLD"] = f"{opts.threshold:g}"
    if opts.precision != "float32":
        tags["GEOSEG_PRECISION"] = opts.precision
    return tags


def scene_writer(bundle: Bundle, job: SceneJob, opts: PredictOptions) -> PredictionWriter:
    """The (not yet entered) writer of one scene's outputs."""
    info = job.info
    return PredictionWriter(job.paths, info, bundle.classes, bundle.output_channels, opts.prob_dtype,
                            opts.compress, opts.cog, run_tags(bundle, opts, info, job.bands))


def remove_scene_temps(paths: OutputPaths) -> None:
    """Delete temporary outputs of this scene left by a killed run (``--resume``)."""
    for p in paths.all:
        for tmp in p.parent.glob(f"{p.stem}{TMP_MARK}*"):
            if tmp.is_file():
                tmp.unlink()


def run_job(bundle: Bundle, forward, job: SceneJob, opts: PredictOptions) -> PredictionResult:
    """Predict one validated scene in this process and write its outputs.

    Args:
        bundle: the bundle.
        forward: :func:`make_forward` of the bundle.
        job: the scene, from :func:`geoseg.inference.api.plan_jobs`.
        opts: resolved options (:meth:`PredictOptions.resolved`).
    """
    t0 = time.perf_counter()
    info = job.info
    if opts.resume:
        remove_scene_temps(job.paths)
    plan = ScenePlan.create(info.height, info.width, bundle.tile_size, opts.stride)
    total = plan.count() if opts.mode == "stride" else 1
    bar = SceneProgress(info.path.name, total, info.width * info.height, enabled=opts.progress)
    writer = scene_writer(bundle, job, opts)
    nodata_windows = 0
    try:
        with writer:
            def write(item: RowBlock | EncodedRows) -> None:
                writer.write(item.row, *encode_block(item, opts))

            consumer = BackgroundConsumer(write, depth=1)  # one block waiting + one being written
            try:
                if opts.mode == "stride":
                    counts = [0, 0]
                    for block in iter_scene_blocks(forward, bundle, info, job.bands, plan, opts, bar.update, counts):
                        consumer.submit(block)
                    nodata_windows = counts[1]
                else:
                    for row, label, prob in iter_per_image_rows(forward, bundle, info, job.bands, opts, writer.block):
                        consumer.submit(EncodedRows(row, label, prob))
                    bar.update(1)
            finally:
                consumer.close()
    finally:
        bar.close()
    return PredictionResult(info.path, job.paths.label, job.paths.prob, windows=total,
                            nodata_windows=nodata_windows, seconds=time.perf_counter() - t0)


def encode_block(block: RowBlock | EncodedRows, opts: PredictOptions) -> tuple[np.ndarray, np.ndarray | None]:
    """``(label (n, W) uint8, prob (K, n, W) or None)`` of finished rows (encoded already on the device path)."""
    if isinstance(block, EncodedRows):
        return block.label, block.prob
    return encode(block.prob, block.valid, opts.prob_dtype, opts.write_prob, opts.threshold)


def strip_ranges(height: int, strip_rows: int | None) -> list[tuple[int, int]]:
    """``[(first, stop), ...]`` scene rows of each strip; one strip when ``strip_rows`` is None."""
    if not strip_rows:
        return [(0, height)]
    return [(a, min(a + strip_rows, height)) for a in range(0, height, strip_rows)]


def default_strip_rows(tile: int, block: int) -> int:
    """Rows per worker task: a whole number of output blocks and at least 4 tiles (halo < 25 %)."""
    return int(math.ceil(4 * tile / block) * block)


def iter_scene_blocks(forward, bundle: Bundle, info: SceneInfo, bands: Sequence[int], plan: ScenePlan,
                      opts: PredictOptions, on_windows: Callable[[int], None] = lambda n: None,
                      counts: list[int] | None = None) -> Iterator[RowBlock | EncodedRows]:
    """Finished row blocks of a scene in row order (all strips, see ``strip_rows``).

    ``RowBlock`` on the host path, :class:`EncodedRows` on the device path (``opts.accumulate``).
    """
    for first, stop in strip_ranges(info.height, opts.strip_rows):
        yield from strip_blocks(forward, bundle, info.path, plan, bands, opts, first, stop, on_windows, counts)


def strip_blocks(forward, bundle: Bundle, path: Path | GdalPath, plan: ScenePlan, bands: Sequence[int],
                 opts: PredictOptions, first: int, stop: int, on_windows: Callable[[int], None] = lambda n: None,
                 counts: list[int] | None = None) -> Iterator[RowBlock | EncodedRows]:
    """:func:`iter_strip_blocks` of scene rows ``[first, stop)`` with the run's options resolved:
    blending weights, batch size (``forward.batch_size()`` when not given) and accumulation path."""
    weights = None if opts.blend == "mean" else weight_window(plan.tile, opts.blend)
    yield from iter_strip_blocks(forward, path, plan, bands, bundle.normalization, weights, first, stop,
                                 opts.batch_size or forward.batch_size(), on_windows, counts, opts.prefetch,
                                 device_encoding(forward, opts))


def device_encoding(forward, opts: PredictOptions) -> Encoding | None:
    """The encoding of the device path when ``opts.accumulate`` resolves to it here, else None (host)."""
    onnx = not hasattr(forward, "device")
    if resolve_accumulate(opts.accumulate, onnx) != "device":
        return None
    return Encoding(opts.prob_dtype, opts.write_prob, opts.threshold)


def iter_strip_blocks(forward, path: Path | GdalPath, plan: ScenePlan, bands: Sequence[int], norm: dict | None,
                      weights: np.ndarray | None, first: int, stop: int, batch_size: int,
                      on_windows: Callable[[int], None] = lambda n: None, counts: list[int] | None = None,
                      prefetch_depth: int = 2, encoding: Encoding | None = None) -> Iterator[RowBlock | EncodedRows]:
    """Predict scene rows ``[first, stop)`` on their own (with a halo of one tile).

    Reading runs in a prefetch thread; the model runs one batch ahead in a second prefetch
    thread, while this one accumulates the previous batch.

    Args:
        forward: a :class:`geoseg.inference.forward.Forward` (``channels`` = output channels).
        path: the scene file.
        plan: the scene's window plan.
        bands: 1-based scene bands, model order.
        norm: the bundle's normalization.
        weights: ``(tile, tile)`` blending weights, None for ``mean``.
        first, stop: scene rows to hand out.
        batch_size: windows per model call.
        on_windows: called with the windows each batch accounted for (progress).
        counts: if given, ``counts[0] += windows predicted``, ``counts[1] += nodata windows skipped``.
        prefetch_depth: batches read ahead of the model.
        encoding: given: the device path (``forward.device``, :class:`DeviceAccumulator`), which
            yields :class:`EncodedRows`; None: the host path.

    Yields:
        :class:`RowBlock` (host) or :class:`EncodedRows` (device) of rows ``[first, stop)`` in order.
    """
    rows = plan.window_rows(first, stop)
    source: Iterator
    if encoding is None:
        acc: StripAccumulator | DeviceAccumulator = StripAccumulator(
            plan.grid_width, forward.channels, plan.tile, weights, start=rows[0], emit=(first, stop),
            out_width=plan.width)
        run = forward
        source = ((b, b.data, b.valid) for b in iter_window_batches(path, plan, bands, norm, batch_size, rows))
    else:  # the device path: the reader thread also copies each batch onto the device, overlapping the model
        from geoseg.runtime.tensorflow import import_tensorflow

        tf = import_tensorflow()
        acc = DeviceAccumulator(plan.grid_width, forward.channels, plan.tile, weights, start=rows[0],
                                emit=(first, stop), out_width=plan.width, encoding=encoding)
        run = forward.device
        source = ((b, tf.identity(b.data), tf.identity(b.valid))
                  for b in iter_window_batches(path, plan, bands, norm, batch_size, rows))
    batches = prefetch(source, depth=prefetch_depth, name="geoseg-read")
    predicted = prefetch(((b, run(x), v) for b, x, v in batches), depth=1, name="geoseg-model")
    try:
        for batch, pred, valid in predicted:
            if len(batch):
                yield from acc.add_batch(batch.rows, batch.cols, pred, valid)
            if counts is not None:
                counts[0] += len(batch)
                counts[1] += batch.done - len(batch)
            on_windows(batch.done)
    finally:
        predicted.close()  # stops the model thread first: it is the one reading `batches`
        batches.close()
    yield from acc.finish()
