"""Checks of a scene against a bundle before anything is predicted: bands, dtype, value range.

The input check compares a scene with the training statistics recorded in the bundle
(``geoseg.json`` key ``"input"``, see :func:`geoseg.io.bundle.save_bundle`). A scene is refused
when, for any band the model reads:

- its dtype differs from the training dtype (a uint16 scene for a uint8 model), or
- its values are far off: with the training range ``lo..hi`` and its width ``r = hi - lo``
  (``max(|hi|, 1)`` for a constant band), the scene's 2nd..98th percentiles must lie within
  ``lo - r .. hi + r`` and its median within ``lo .. hi``.

Percentiles come from a bounded sample: the overviews when the scene has some (a decimated read
of at most ``SAMPLE_SIDE`` pixels a side), the whole band when it is that small, else a grid of
``SAMPLE_GRID`` x ``SAMPLE_GRID`` windows of ``SAMPLE_WINDOW`` pixels spread over the scene (so
only the blocks under them are read). Nodata and non-finite values are left out. With
``allow_input_mismatch`` a mismatch is logged as a warning with the same numbers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from geoseg.errors import BandCountError, InputMismatchError
from geoseg.inference.reader import scene_bands
from geoseg.io.bundle import Bundle, model_input_channels
from geoseg.io.raster import SceneInfo, gdal_env, read_window

log = logging.getLogger("geoseg.predict")

#: Largest side (pixels) of the decimated read from overviews, and of a band read whole.
SAMPLE_SIDE = 1024
#: Windows per axis and their size (pixels) of the sample of a large scene without overviews.
SAMPLE_GRID = 8
SAMPLE_WINDOW = 64

OVERRIDE_FLAG = "--allow-input-mismatch"


def check_scene_bands(info: SceneInfo, bundle: Bundle) -> list[int]:
    """The scene bands the model reads (1-based), in model order.

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
    stats = bundle.input_stats or {}
    if stats.get("min") is not None:
        return len(stats["min"])
    return model_input_channels(bundle.model)


def check_scene_input(info: SceneInfo, bands: Sequence[int], bundle: Bundle, allow: bool = False) -> list[str]:
    """Compare a scene's dtype and value range with the bundle's training statistics.

    Args:
        info: the scene.
        bands: scene bands the model reads (1-based, model order: the order of the statistics).
        bundle: the bundle; without ``"input"`` statistics nothing is checked.
        allow: log mismatches as warnings instead of raising.

    Returns:
        The mismatch messages (empty when the scene fits; each also logged when ``allow``).

    Raises:
        InputMismatchError: the first mismatch, when not ``allow``.
    """
    stats = bundle.input_stats
    if not stats:
        return []
    problems: list[str] = []
    where = f"scene {info.path}"
    expected = stats.get("dtype")
    with gdal_env(), rasterio.open(info.path) as ds:
        for b in bands:  # the first band of another dtype speaks for the scene
            found = ds.dtypes[b - 1]
            if expected and found != expected:
                problems.append(f"{where} band {b}: dtype {found}, but the model of bundle {bundle.directory} "
                                f"was trained on {expected} pixels")
                break
        if not problems or allow:
            problems += _range_problems(ds, bands, stats, where, bundle.directory, stop_at_first=not allow)
    for text in problems:
        if not allow:
            raise InputMismatchError(f"{text}; convert the scene or use {OVERRIDE_FLAG} to predict anyway")
        log.warning("%s (predicting anyway: %s)", text, OVERRIDE_FLAG)
    return problems


def _range_problems(ds, bands: Sequence[int], stats: dict, where: str, bundle_dir: Path,
                    stop_at_first: bool) -> list[str]:
    lows, highs = stats.get("min"), stats.get("max")
    if lows is None or highs is None:
        return []
    problems = []
    for i, b in enumerate(bands):
        if i >= len(lows):
            break
        values = sample_band(ds, b)
        if values.size == 0:  # all nodata: nothing to judge
            continue
        p2, median, p98 = (float(v) for v in np.percentile(values, [2, 50, 98]))
        lo, hi = float(lows[i]), float(highs[i])
        r = hi - lo if hi > lo else max(abs(hi), 1.0)
        if p2 < lo - r or p98 > hi + r or not lo <= median <= hi:
            problems.append(
                f"{where} band {b}: values p2..p98 {p2:g}..{p98:g} (median {median:g}) are far from the "
                f"training range {lo:g}..{hi:g} of bundle {bundle_dir} (expected p2..p98 within "
                f"{lo - r:g}..{hi + r:g} and the median within {lo:g}..{hi:g})"
            )
            if stop_at_first:
                break
    return problems


def sample_band(ds, band: int) -> np.ndarray:
    """A bounded sample (1-D float64) of the valid values of one band (see the module docstring).

    Args:
        ds: an open rasterio dataset.
        band: 1-based band index.
    """
    h, w = ds.height, ds.width
    if max(h, w) <= SAMPLE_SIDE:
        arrays = [read_window(ds, band)]
    elif ds.overviews(band):
        scale = max(h, w) / SAMPLE_SIDE
        shape = (max(1, math.ceil(h / scale)), max(1, math.ceil(w / scale)))
        arrays = [read_window(ds, band, out_shape=shape, resampling=Resampling.nearest)]
    else:
        arrays = [read_window(ds, band, win) for win in sample_windows(h, w)]
    nodata = ds.nodatavals[band - 1]
    out = []
    for a in arrays:
        a = a.astype(np.float64, copy=False).ravel()
        keep = np.isfinite(a)
        if nodata is not None and not np.isnan(nodata):
            keep &= a != nodata
        out.append(a[keep])
    return np.concatenate(out) if out else np.zeros(0)


def sample_windows(height: int, width: int, grid: int = SAMPLE_GRID, size: int = SAMPLE_WINDOW) -> list[Window]:
    """``grid x grid`` windows of ``size`` pixels (clipped to the scene), centred on an even grid."""
    wins = []
    for i in range(grid):
        for j in range(grid):
            r = min(max(0, int((i + 0.5) * height / grid) - size // 2), max(0, height - size))
            c = min(max(0, int((j + 0.5) * width / grid) - size // 2), max(0, width - size))
            wins.append(Window(c, r, min(size, width), min(size, height)))
    return wins
