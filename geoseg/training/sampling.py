"""Which training patches to draw: rare-class detection for the balanced sampler (no TensorFlow).

The balanced sampler (``--balance P``, see :func:`geoseg.training.pipeline.index_stream`) draws
a share ``P`` of the training patches from those that contain a *rare* class, the rest from
the others. A class is rare when its share of the training pixels is below
``RARE_FACTOR / K`` (``K`` classes): half of what it would hold if all classes were equal, e.g.
buildings at 3 % of the pixels in a 2-class dataset (threshold 25 %).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: A class is rare below ``RARE_FACTOR / K`` of the training pixels.
RARE_FACTOR = 0.5


def rare_classes(counts: Sequence[float], factor: float = RARE_FACTOR) -> list[int]:
    """Indices of the classes whose pixel share is below ``factor / K`` (absent classes excluded).

    Args:
        counts: pixels per class in the training split, ``(K,)``.
        factor: see :data:`RARE_FACTOR`.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.sum() <= 0:
        return []
    share = c / c.sum()
    return [int(k) for k in np.flatnonzero((share > 0) & (share < factor / len(c)))]


def patches_with(rows: Sequence[dict[str, str]], classes: Sequence[int],
                 labels: np.ndarray | None = None) -> np.ndarray:
    """Boolean ``(N,)``: patch ``i`` holds at least one pixel of one of ``classes``.

    Read from the index's ``count_<k>`` columns; when a row lacks them, from ``labels``
    (``(N, H, W)`` class indices, e.g. the cached label memmap) if given, else False.
    """
    out = np.zeros(len(rows), bool)
    if not classes:
        return out
    for i, r in enumerate(rows):
        vals = [r.get(f"count_{k}") or "" for k in classes]
        if all(vals):
            out[i] = any(float(v) > 0 for v in vals)
        elif labels is not None:
            out[i] = bool(np.isin(np.asarray(labels[i]), list(classes)).any())
    return out


def draw_share(mask: np.ndarray, balance: float) -> float | None:
    """Probability of drawing from the ``mask`` patches, or None for plain uniform shuffling.

    Uniform when ``balance`` is 0, when every or no patch is in ``mask``, or when uniform
    draws already reach ``balance`` (the sampler only ever oversamples).
    """
    n, m = len(mask), int(np.count_nonzero(mask))
    if balance <= 0 or m == 0 or m == n or m / n >= balance:
        return None
    return float(balance)
