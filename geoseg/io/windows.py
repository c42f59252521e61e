"""Pure window maths: where to cut a scene. No I/O.

The same generators serve tiling and stride-mode prediction.

Grid formula (one axis of length ``L``, window ``size``, ``stride``):
    offsets are ``0, stride, 2*stride, ...`` while ``offset + size < L``; the last window is
    snapped back to ``L - size`` so that it ends exactly at the scene edge. The number of
    windows is ``ceil((L - size) / stride) + 1`` for ``L >= size``. With ``stride <= size``
    every pixel is covered and no window leaves the scene.
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geoseg.errors import InvalidParameterError, SceneTooSmallError


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    """``(rows, cols)`` from an int or a pair."""
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def axis_offsets(length: int, size: int, stride: int, allow_gaps: bool = False) -> list[int]:
    """Window start offsets along one axis, in pixels (see the module formula).

    Args:
        length: axis length in pixels (>= size).
        size: window length in pixels.
        stride: step between window starts in pixels (> 0; <= size unless ``allow_gaps``).
        allow_gaps: accept ``stride > size`` (pixels between windows are skipped).

    Raises:
        InvalidParameterError: stride <= 0, or stride > size without ``allow_gaps``.
        SceneTooSmallError: length < size.
    """
    check_stride(size, stride, allow_gaps)
    if length < size:
        raise SceneTooSmallError(f"axis of {length} px is smaller than the window size {size} px")
    n = math.ceil((length - size) / stride) + 1
    offsets = [min(i * stride, length - size) for i in range(n)]
    return offsets


def check_stride(size: int, stride: int, allow_gaps: bool = False) -> None:
    """Validate a stride against a window size (both in pixels)."""
    if size <= 0:
        raise InvalidParameterError(f"--size must be > 0, got {size}")
    if stride <= 0:
        raise InvalidParameterError(f"--stride must be > 0, got {stride}")
    if stride > size and not allow_gaps:
        raise InvalidParameterError(
            f"--stride {stride} is larger than --size {size}: pixels between windows would be skipped "
            "(use --allow-gaps to accept that)"
        )


def stride_windows(height: int, width: int, size: int | tuple[int, int], stride: int | tuple[int, int],
                   allow_gaps: bool = False) -> list[Window]:
    """Grid of windows over a ``height x width`` scene, row-major, last row/column snapped.

    Returns ``ceil((H - h) / sr + 1) * ceil((W - w) / sc + 1)`` windows of ``(h, w)`` pixels.

    Raises:
        SceneTooSmallError: the scene is smaller than one window (pad first, see :func:`padded_shape`).
    """
    h, w = _pair(size)
    sr, sc = _pair(stride)
    if height < h or width < w:
        raise SceneTooSmallError(f"scene of {width}x{height} px is smaller than the window {w}x{h} px")
    rows = axis_offsets(height, h, sr, allow_gaps)
    cols = axis_offsets(width, w, sc, allow_gaps)
    return [Window(c, r, w, h) for r in rows for c in cols]


def count_stride_windows(height: int, width: int, size: int | tuple[int, int],
                         stride: int | tuple[int, int]) -> int:
    """Number of windows :func:`stride_windows` returns, without building them."""
    h, w = _pair(size)
    sr, sc = _pair(stride)
    return (math.ceil((height - h) / sr) + 1) * (math.ceil((width - w) / sc) + 1)


def random_windows(height: int, width: int, size: int | tuple[int, int], count: int,
                   rng: np.random.Generator | int | None = None) -> list[Window]:
    """``count`` windows drawn uniformly over all valid positions (fully inside the scene).

    The top-left corner is uniform over ``[0, H - h] x [0, W - w]``; the same ``rng`` seed gives
    the same windows.

    Raises:
        SceneTooSmallError: the scene is smaller than one window.
        InvalidParameterError: count < 0.
    """
    h, w = _pair(size)
    if count < 0:
        raise InvalidParameterError(f"--count must be >= 0, got {count}")
    if height < h or width < w:
        raise SceneTooSmallError(f"scene of {width}x{height} px is smaller than the window {w}x{h} px")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    rows = gen.integers(0, height - h + 1, size=count)
    cols = gen.integers(0, width - w + 1, size=count)
    return [Window(int(c), int(r), w, h) for r, c in zip(rows, cols)]


def padded_shape(height: int, width: int, size: int | tuple[int, int]) -> tuple[int, int]:
    """Scene shape after padding (bottom/right) to at least one window: ``(max(H, h), max(W, w))``."""
    h, w = _pair(size)
    return max(height, h), max(width, w)


def window_bounds(window: Window, transform: Affine) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a window, in CRS units: the extent of its four corners, so it
    holds for rotated and south-up transforms too (``rasterio.windows.bounds`` assumes north-up)."""
    t = window_transform(window, transform)
    xs, ys = zip(*(t @ (c, r) for r in (0, window.height) for c in (0, window.width)))
    return (min(xs), min(ys), max(xs), max(ys))
