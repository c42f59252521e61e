"""Prediction on video: frame by frame through the scene engine, into an overlay video.

Each frame ``(H, W, 3)`` is written to a temporary uncompressed GeoTIFF (no georeferencing)
and predicted exactly like a scene (``stride``: windows blended by
:func:`geoseg.inference.engine.iter_scene_blocks`; ``per_image``: resized to one tile by
:mod:`geoseg.inference.per_image`), so frames and photos give the same labels. Outputs, in
``OUT``:

- ``<stem>_overlay.mp4``: ``round((1 - alpha) * frame + alpha * colour[label])`` per pixel
  (the class colours of the bundle; pixels labelled 255 keep the frame);
- ``<stem>_label.mp4`` (``label_video=True``): the colour label image alone.

``<stem>`` is the file stem, or ``camera<N>`` for a camera. Both keep the source's size and
frame rate; H.264 makes them lossy (see :mod:`geoseg.io.video`).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from geoseg.errors import BandCountError, InvalidParameterError, OutputExistsError
from geoseg.inference.checks import check_scene_bands, check_scene_input
from geoseg.inference.engine import encode_block, iter_scene_blocks, make_forward
from geoseg.inference.options import PredictionResult, PredictOptions
from geoseg.inference.per_image import iter_per_image_rows
from geoseg.inference.reader import ScenePlan
from geoseg.inference.writers import LABEL_NODATA
from geoseg.io.bundle import Bundle
from geoseg.io.classes import ClassMap
from geoseg.io.raster import SceneInfo, open_scene
from geoseg.io.video import open_video, video_writer

#: Weight of the class colour in the overlay (the frame gets ``1 - alpha``).
DEFAULT_ALPHA = 0.5


def colour_lut(classes: ClassMap) -> np.ndarray:
    """``(256, 3)`` uint8: class index -> RGB colour (indices without a class: black)."""
    lut = np.zeros((256, 3), np.uint8)
    for c in classes.classes:
        lut[c.index] = c.color
    return lut


def overlay(frame: np.ndarray, label: np.ndarray, lut: np.ndarray, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Blend class colours over a frame.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        label: ``(H, W)`` uint8 class indices, 255 = none (the frame is kept there).
        lut: :func:`colour_lut`.
        alpha: colour weight in [0, 1].

    Returns:
        ``(H, W, 3)`` uint8 ``round((1 - alpha) * frame + alpha * lut[label])``.
    """
    mixed = np.rint((1.0 - alpha) * frame.astype(np.float32) + alpha * lut[label].astype(np.float32))
    out = np.clip(mixed, 0, 255).astype(np.uint8)
    keep = label == LABEL_NODATA
    out[keep] = frame[keep]
    return out


def video_outputs(out_dir: str | Path, stem: str, label_video: bool) -> list[Path]:
    """``[OUT/<stem>_overlay.mp4]`` (+ ``OUT/<stem>_label.mp4``)."""
    out = Path(out_dir)
    return [out / f"{stem}_overlay.mp4", *([out / f"{stem}_label.mp4"] if label_video else [])]


def predict_frame(forward, bundle: Bundle, info: SceneInfo, bands: list[int], opts: PredictOptions) -> np.ndarray:
    """Class labels ``(H, W)`` uint8 of one frame file, in ``opts.mode`` (255 where nothing was predicted)."""
    label = np.full((info.height, info.width), LABEL_NODATA, np.uint8)
    if opts.mode == "stride":
        plan = ScenePlan.create(info.height, info.width, bundle.tile_size, int(opts.stride or bundle.stride))
        labels_only = replace(opts, write_prob=False)  # host or device path (EncodedRows): labels only
        for block in iter_scene_blocks(forward, bundle, info, bands, plan, labels_only):
            rows, _ = encode_block(block, labels_only)
            label[block.row:block.row + block.height] = rows
    else:
        for row, rows, _ in iter_per_image_rows(forward, bundle, info, bands, replace(opts, write_prob=False),
                                                block_rows=info.height):
            label[row:row + rows.shape[0]] = rows
    return label


def _write_frame(path: Path, frame: np.ndarray) -> None:
    h, w, c = frame.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c, dtype="uint8") as ds:
            ds.write(np.moveaxis(frame, -1, 0))


def predict_video(bundle: Bundle, source: str | Path | int, out_dir: str | Path, opts: PredictOptions,
                  label_video: bool = False, alpha: float = DEFAULT_ALPHA, max_frames: int | None = None,
                  forward=None) -> PredictionResult:
    """Predict every frame of a video file or camera into ``OUT/<stem>_overlay.mp4`` (+ label video).

    Args:
        bundle: the bundle (3-band RGB models; other band counts are refused).
        source: a video file, or a camera index (int).
        out_dir: output folder (created).
        opts: resolved options (:meth:`PredictOptions.resolved`): mode, stride, blend, batch size,
            TTA, threshold, overwrite, allow_input_mismatch.
        label_video: also write the colour label video.
        alpha: colour weight of the overlay in [0, 1].
        max_frames: stop after this many frames (a camera runs until it stops or Ctrl-C otherwise).
        forward: a forward pass to reuse (default: :func:`make_forward` of the bundle).

    Returns:
        :class:`PredictionResult` with ``label`` = the overlay video, ``prob`` = the label video
        (or None) and ``windows`` = frames predicted.

    Raises:
        OutputExistsError: an output exists and ``opts.overwrite`` is not set.
        InvalidParameterError: ``alpha`` outside [0, 1], or the ``video`` extra is missing.
        BandCountError: the model does not read 3 bands.
        UnreadableRasterError, InputNotFoundError: the video cannot be read.
        InputMismatchError: the frames' values are far from the training data (first frame checked).
    """
    if not 0.0 <= alpha <= 1.0:
        raise InvalidParameterError(f"--alpha must be within 0..1, got {alpha}")
    t0 = time.perf_counter()
    lut = colour_lut(bundle.classes)
    out = Path(out_dir)
    with open_video(source) as (src, frames):
        paths = video_outputs(out, src.stem, label_video)
        for p in paths:
            if p.exists() and not opts.overwrite:
                raise OutputExistsError(f"output exists: {p} (use --overwrite to replace it)")
        n = 0
        with tempfile.TemporaryDirectory(prefix="geoseg-frames-") as tmp, contextlib.ExitStack() as stack, \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # frames have none, by nature
            writers = [stack.enter_context(video_writer(p, src.fps)) for p in paths]
            frame_path = Path(tmp) / "frame.tif"
            bands: list[int] = []
            for frame in frames:
                if max_frames is not None and n >= max_frames:
                    break
                _write_frame(frame_path, frame)
                info = open_scene(frame_path)
                if n == 0:
                    bands = _check_first_frame(info, bundle, opts, src.name)
                    forward = forward or make_forward(bundle, bands, opts.tta, opts.precision, opts.xla)
                label = predict_frame(forward, bundle, info, bands, opts)
                writers[0].append_data(overlay(frame, label, lut, alpha))
                if label_video:
                    writers[1].append_data(lut[label])
                n += 1
            if n == 0:
                raise InvalidParameterError(f"video {src.name} holds no frame")
    return PredictionResult(Path(src.name), paths[0], paths[1] if label_video else None, windows=n,
                            seconds=time.perf_counter() - t0)


def _check_first_frame(info: SceneInfo, bundle: Bundle, opts: PredictOptions, name: str) -> list[int]:
    try:
        bands = check_scene_bands(info, bundle)
    except BandCountError as exc:
        raise BandCountError(f"video {name} (RGB frames): {exc}") from None
    check_scene_input(info, bands, bundle, allow=opts.allow_input_mismatch)
    return bands
