"""Per-band input normalization shared by training and prediction.

A normalization is a plain dict stored in ``dataset.json`` and in a bundle's ``geoseg.json``:

- ``{"method": "meanstd", "mean": [...], "std": [...]}``: ``(x - mean) / std``
- ``{"method": "minmax", "min": [...], "max": [...]}``: ``(x - min) / (max - min)`` clipped to [0, 1]
  (min/max are usually the 2nd and 98th percentiles)
- ``None``: raw pixel values (cast to float32).

One value per input band, in the model's band order.
"""

from __future__ import annotations

import numpy as np

from geoseg.errors import BandCountError, InvalidParameterError

METHODS = ("meanstd", "minmax")


def normalize(x: np.ndarray, norm: dict | None, channel_axis: int = -1) -> np.ndarray:
    """Normalize an array of pixels to float32.

    Args:
        x: pixels, channels on ``channel_axis`` (``(H, W, C)`` or ``(N, H, W, C)`` by default).
        norm: a normalization dict (see module doc) or None for raw values.
        channel_axis: axis holding the bands.

    Raises:
        BandCountError: the normalization has another band count than ``x``.
    """
    x = np.asarray(x, dtype=np.float32)
    if norm is None:
        return x
    method = norm.get("method", "meanstd")
    nb = x.shape[channel_axis]
    shape = [1] * x.ndim
    shape[channel_axis] = nb
    if method == "meanstd":
        a, b = np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)
        _check(a, nb)
        return (x - a.reshape(shape)) / np.maximum(b, 1e-6).reshape(shape)
    if method == "minmax":
        a, b = np.asarray(norm["min"], np.float32), np.asarray(norm["max"], np.float32)
        _check(a, nb)
        return np.clip((x - a.reshape(shape)) / np.maximum(b - a, 1e-6).reshape(shape), 0.0, 1.0)
    raise InvalidParameterError(f"unknown normalization method {method!r}; choose from {', '.join(METHODS)}")


def _check(values: np.ndarray, nb: int) -> None:
    if values.shape[0] != nb:
        raise BandCountError(f"normalization has {values.shape[0]} band(s) but the input has {nb}")


def from_statistics(stats: dict, method: str = "meanstd") -> dict:
    """Build a normalization dict from ``dataset.json`` statistics (keys mean, std, p2, p98)."""
    if method == "meanstd":
        return {"method": "meanstd", "mean": list(stats["mean"]), "std": list(stats["std"])}
    if method in ("minmax", "percentile"):
        return {"method": "minmax", "min": list(stats.get("p2", stats.get("min"))),
                "max": list(stats.get("p98", stats.get("max")))}
    raise InvalidParameterError(f"unknown normalization {method!r}; choose from meanstd, percentile")
