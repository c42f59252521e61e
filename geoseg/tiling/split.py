"""Train/validation splits of a scene's windows, decided up front from geometry and a seed.

- ``random``: a seeded permutation of the windows; ``round(fraction * n)`` of them go to val.
- ``spatial``: the scene is cut into square blocks of ``block`` pixels; whole blocks are drawn
  (seeded) into validation until the windows lying entirely inside validation blocks reach
  ``fraction`` of all windows. A window is ``val`` when every block it touches is a validation
  block, ``train`` when none is, and dropped (``None``) when it straddles both, so that no
  training patch shares a pixel with a validation patch, overlapping strides included.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rasterio.windows import Window

from geoseg.errors import InvalidParameterError

SPLITS = ("random", "spatial")

#: Default spatial block side, in windows.
BLOCK_WINDOWS = 4


def random_split(n: int, fraction: float, seed: int) -> list[str]:
    """``"train"``/``"val"`` for ``n`` windows: exactly ``round(fraction * n)`` val, seeded."""
    _check_fraction(fraction)
    n_val = int(round(fraction * n))
    order = np.random.default_rng([seed, 0x5117]).permutation(n)
    out = ["train"] * n
    for i in order[:n_val]:
        out[int(i)] = "val"
    return out


def block_span(window: Window, block: int) -> tuple[int, int, int, int]:
    """Inclusive block index ranges ``(r0, r1, c0, c1)`` that a window (pixels) touches."""
    r, c = int(window.row_off), int(window.col_off)
    h, w = int(window.height), int(window.width)
    return max(r, 0) // block, max(r + h - 1, 0) // block, max(c, 0) // block, max(c + w - 1, 0) // block


def spatial_split(windows: Sequence[Window], height: int, width: int, block: int, fraction: float,
                  seed: int) -> list[str | None]:
    """Assign windows to ``"train"``, ``"val"`` or ``None`` (dropped) by whole blocks.

    Args:
        windows: windows of one scene (pixels).
        height, width: scene size in pixels.
        block: block side in pixels.
        fraction: target share of windows in validation (0..1).
        seed: seed of the block draw.
    """
    _check_fraction(fraction)
    if block <= 0:
        raise InvalidParameterError(f"--block-size must be > 0 pixels, got {block}")
    n = len(windows)
    if fraction == 0 or n == 0:
        return ["train"] * n
    nbr, nbc = -(-height // block), -(-width // block)
    spans = [block_span(w, block) for w in windows]
    is_val = np.zeros((nbr, nbc), bool)
    target = fraction * n
    order = np.random.default_rng([seed, 0x5BA7]).permutation(nbr * nbc)

    touching: dict[int, list[int]] = {}
    for i, (r0, r1, c0, c1) in enumerate(spans):
        for br in range(r0, r1 + 1):
            for bc in range(c0, c1 + 1):
                touching.setdefault(br * nbc + bc, []).append(i)
    inside = 0
    for k in order:
        is_val[k // nbc, k % nbc] = True
        # Only windows touching the new block can have become entirely validation.
        for i in touching.get(int(k), []):
            r0, r1, c0, c1 = spans[i]
            if is_val[r0:r1 + 1, c0:c1 + 1].all():
                inside += 1
        if inside >= target:
            break
    out: list[str | None] = []
    for s in spans:
        touched = is_val[s[0]:s[1] + 1, s[2]:s[3] + 1]
        out.append("val" if touched.all() else ("train" if not touched.any() else None))
    return out


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise InvalidParameterError(f"--val-fraction must be in [0, 1), got {fraction}")
