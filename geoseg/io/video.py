"""Video files and cameras: frames read and written through imageio's ffmpeg plugin (extra ``video``).

Frames are ``(H, W, 3)`` uint8 RGB arrays in pixel coordinates (a video carries no
georeferencing). ``imageio-ffmpeg`` ships a static ffmpeg binary in its wheel, so MP4 (H.264)
reading and writing need no system ffmpeg. H.264 stores colours as YUV 4:2:0: frame sizes are
kept as they are when even (``macro_block_size=2``; an odd side is padded by one pixel by
imageio) and colours come back within a few levels, not bit for bit.

A camera is read through ffmpeg's capture device ``<videoN>`` (``/dev/videoN`` on Linux).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import InputNotFoundError, InvalidParameterError, UnreadableRasterError
from geoseg.io.atomic import atomic_output

#: File suffixes read as videos (anything ffmpeg reads works; these are recognised by name).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg")
#: Frames per second of an output when the source does not say.
DEFAULT_FPS = 25.0


def is_video(path: str | os.PathLike) -> bool:
    """True for a file name with a video suffix (:data:`VIDEO_SUFFIXES`, case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _imageio() -> Any:
    try:
        import imageio.v2 as iio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary; imageio alone cannot read MP4)
    except ImportError:
        raise InvalidParameterError("reading or writing video needs the optional extra 'video': "
                                    "pip install 'geoseg[video]' (imageio and imageio-ffmpeg)") from None
    return iio


@dataclass(frozen=True)
class VideoSource:
    """An opened video or camera.

    Attributes:
        name: the file path, or ``camera<N>``.
        stem: output name stem (the file stem, or ``camera<N>``).
        fps: frames per second (:data:`DEFAULT_FPS` when the source does not say).
        size: ``(width, height)`` in pixels.
        frames: frame count when known (files), else None (cameras, some containers).
    """

    name: str
    stem: str
    fps: float
    size: tuple[int, int]
    frames: int | None


@contextlib.contextmanager
def open_video(source: str | os.PathLike | int) -> Iterator[tuple[VideoSource, Iterator[np.ndarray]]]:
    """Open a video file (path) or a camera (int index) for reading.

    Yields:
        ``(VideoSource, frames)``: frames are ``(H, W, 3)`` uint8 RGB, read lazily.

    Raises:
        InputNotFoundError: the file does not exist.
        UnreadableRasterError: ffmpeg cannot read it (or the camera cannot be opened).
        InvalidParameterError: the ``video`` extra is not installed.
    """
    iio = _imageio()
    if isinstance(source, int):
        uri, name = f"<video{source}>", f"camera{source}"
        stem = name
    else:
        if not Path(source).is_file():
            raise InputNotFoundError(f"video not found: {source}")
        uri, name, stem = str(source), str(source), Path(source).stem
    try:
        reader = iio.get_reader(uri, format="FFMPEG")
        meta = reader.get_meta_data()
    except Exception as exc:  # imageio raises OSError, RuntimeError or IndexError by backend
        raise UnreadableRasterError(f"cannot read video {name}: {str(exc).splitlines()[0] if str(exc) else exc}") \
            from None
    try:
        w, h = (int(v) for v in meta.get("size", (0, 0)))
        n = None
        if not isinstance(source, int):
            with contextlib.suppress(Exception):
                count = reader.count_frames()
                n = int(count) if count and np.isfinite(count) else None
        fps = float(meta.get("fps") or DEFAULT_FPS)
        info = VideoSource(name=name, stem=stem, fps=fps, size=(w, h), frames=n)
        yield info, _frames(reader, name)
    finally:
        reader.close()


def _frames(reader: Any, name: str) -> Iterator[np.ndarray]:
    try:
        for frame in reader:
            arr = np.asarray(frame)
            if arr.ndim == 2:
                arr = np.repeat(arr[..., None], 3, axis=-1)
            yield np.ascontiguousarray(arr[..., :3], dtype=np.uint8)
    except (OSError, RuntimeError) as exc:
        raise UnreadableRasterError(f"video {name}: reading stopped ({str(exc).splitlines()[0]})") from None


@contextlib.contextmanager
def video_writer(path: str | os.PathLike, fps: float) -> Iterator[Any]:
    """Write ``(H, W, 3)`` uint8 frames to an H.264 MP4 (``writer.append_data(frame)``), atomically.

    The file appears under its name only when the ``with`` block ends without error.
    """
    iio = _imageio()
    with atomic_output(path) as tmp:
        writer = iio.get_writer(str(tmp), format="FFMPEG", fps=float(fps), codec="libx264", quality=8,
                                macro_block_size=2, pixelformat="yuv420p")
        try:
            yield writer
        finally:
            writer.close()
