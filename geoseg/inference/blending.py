"""Blending weights for stride-mode prediction: ``p = sum(w_i * p_i) / sum(w_i)``.

Each window ``i`` covering a pixel contributes its softmax ``p_i`` with the weight ``w_i`` that
its weight window holds at that pixel. The weight windows here are separable (an outer product
of one 1-D profile per axis) and strictly positive everywhere, so a pixel covered by a single
window (a scene border) keeps a valid value and the normalization never divides by zero.

- ``mean``: all weights 1, the classic stride-mode average.
- ``spline``: the quadratic spline of "smoothly blended patches": ``f(d) = 2 d^2`` for
  ``d <= 1/2`` and ``1 - 2 (1 - d)^2`` above, with ``d`` in ``(0, 1]`` the distance of the pixel
  centre to the nearest window edge relative to half the window.
- ``gaussian``: ``exp(-x^2 / (2 sigma^2))`` with ``sigma = size / 8`` around the window centre.

The 2-D window is the outer product of the 1-D profiles lifted by a floor (``MIN_WEIGHT`` of the
peak), which keeps the weights away from zero so that a pixel seen only by window edges (a scene
corner) still gets a well conditioned value.
"""

from __future__ import annotations

import numpy as np

from geoseg.errors import InvalidParameterError

BLENDS = ("mean", "spline", "gaussian")

#: Smallest weight relative to the window's peak weight (1).
MIN_WEIGHT = 1e-3


def _centres(n: int) -> np.ndarray:
    """Pixel centres of an axis of ``n`` pixels, relative position in (0, 1)."""
    return (np.arange(n, dtype=np.float64) + 0.5) / n


def profile(n: int, blend: str) -> np.ndarray:
    """1-D weight profile of ``n`` pixels, float64, peak 1 (before the floor of :func:`weight_window`).

    Raises:
        InvalidParameterError: unknown blend name.
    """
    if blend == "mean":
        return np.ones(n, dtype=np.float64)
    u = _centres(n)
    if blend == "spline":
        d = 1.0 - np.abs(2.0 * u - 1.0)  # 1 at the centre, -> 0 at the edges
        f: np.ndarray = np.where(d <= 0.5, 2.0 * d**2, 1.0 - 2.0 * (1.0 - d) ** 2)
    elif blend == "gaussian":
        sigma = 1.0 / 8.0
        f = np.exp(-((u - 0.5) ** 2) / (2.0 * sigma**2))
    else:
        raise InvalidParameterError(f"--blend {blend!r} is not known; choose from {', '.join(BLENDS)}")
    peak: float = f.max()
    return f / peak


def weight_window(size: int | tuple[int, int], blend: str = "mean") -> np.ndarray:
    """``(h, w)`` float64 weight window for one prediction window of ``size`` pixels.

    ``MIN_WEIGHT + (1 - MIN_WEIGHT) * outer(profile(h), profile(w))``: peak 1, never below
    ``MIN_WEIGHT`` (also in the corners).
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if blend == "mean":
        return np.ones((h, w), dtype=np.float64)
    return MIN_WEIGHT + (1.0 - MIN_WEIGHT) * np.outer(profile(h, blend), profile(w, blend))
