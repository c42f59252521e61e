"""``--balance``: random windows with a requested share holding foreground (non-background) labels.

On small real scenes the rare classes cover a few percent of the pixels, so most uniform random
windows are background only. :func:`balanced_windows` draws candidate windows in rounds of
``max(count, 64)`` (the same uniform draw as :func:`geoseg.io.windows.random_windows`, from its
own seeded stream), reads the labels of each candidate and sorts it into "foreground" (any
label pixel in ``1..254``) or "background" (only 0 and 255). It stops once
``round(share * count)`` foreground and ``count - round(share * count)`` background windows are
found, or after :data:`MAX_DRAWS_PER_WINDOW` ``* count`` candidates; a short kind is then filled
with the other (and a warning says so). The kept windows stay in draw order.

Everything happens in the planning process from the seed and the labels, so the windows do not
depend on the number of workers. Image nodata is not read here (labels only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from rasterio.windows import Window

from geoseg.io.classes import IGNORE_INDEX
from geoseg.io.label_source import LabelSource
from geoseg.io.labels import open_labels
from geoseg.io.raster import gdal_env
from geoseg.io.windows import random_windows

log = logging.getLogger("geoseg.tiling")

#: Candidates drawn at most per requested window before a short kind is filled with the other.
MAX_DRAWS_PER_WINDOW = 50
#: Smallest round of candidates.
MIN_ROUND = 64


def has_foreground(labels: np.ndarray) -> bool:
    """True when a label patch holds a class other than background (0) and "no label" (255)."""
    return bool(((labels > 0) & (labels < IGNORE_INDEX)).any())


def balanced_windows(height: int, width: int, size: int, count: int, share: float, labels: LabelSource,
                     seed: Sequence[int], accept: Callable[[list[Window]], list[bool]] | None = None,
                     scene: str = "scene") -> list[Window]:
    """``count`` random windows of which ``round(share * count)`` hold foreground labels.

    Args:
        height, width: (padded) scene size in pixels.
        size: window side in pixels.
        count: windows wanted.
        share: wanted share of windows with foreground (0..1).
        labels: the scene's label source.
        seed: seed sequence of the candidate draw (e.g. ``[seed, scene_index, tag]``).
        accept: optional filter of candidates (``--aoi``): one bool per window.
        scene: scene name for the warning.

    Returns:
        The windows in draw order.
    """
    rng = np.random.default_rng(list(seed))
    want_fg = int(round(share * count))
    want_bg = count - want_fg
    fg: list[tuple[int, Window]] = []
    bg: list[tuple[int, Window]] = []
    drawn = 0
    batch = max(count, MIN_ROUND)
    with gdal_env(), open_labels(labels) as reader:
        while (len(fg) < want_fg or len(bg) < want_bg) and drawn < MAX_DRAWS_PER_WINDOW * count:
            cands = random_windows(height, width, size, batch, rng)
            keep = accept(cands) if accept is not None else [True] * len(cands)
            cands = [w for w, k in zip(cands, keep) if k]
            reader.prepare(cands)
            for k, w in enumerate(cands):
                (fg if has_foreground(reader.read(w)) else bg).append((drawn + k, w))
            drawn += batch
    take_fg, take_bg = fg[:want_fg], bg[:want_bg]
    if len(take_fg) < want_fg or len(take_bg) < want_bg:
        log.warning("--balance %s: scene %s gave %d window(s) with foreground and %d without in %d draws "
                    "(wanted %d and %d); the short kind is filled with the other", share, scene, len(fg),
                    len(bg), drawn, want_fg, want_bg)
        missing = count - len(take_fg) - len(take_bg)
        extra = bg[want_bg:] if len(take_fg) < want_fg else fg[want_fg:]
        (take_bg if len(take_fg) < want_fg else take_fg).extend(extra[:missing])
    return [w for _, w in sorted(take_fg + take_bg, key=lambda t: t[0])]
