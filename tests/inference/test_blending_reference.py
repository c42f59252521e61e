"""Stride-mode blending against a brute-force reference.

Random per-window predictions (every window its own random field, so windows disagree) are
stitched by geoseg's strip accumulator and compared with ``sum_i(w_i * p_i) / sum_i(w_i)``
computed in float64 over all the windows covering each pixel, with the weight windows rebuilt
from the formulas documented in :mod:`geoseg.inference.blending`.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.inference.accumulator import StripAccumulator
from geoseg.inference.blending import BLENDS, MIN_WEIGHT, weight_window
from geoseg.io.windows import axis_offsets


def _reference_profile(n: int, blend: str) -> np.ndarray:
    u = (np.arange(n) + 0.5) / n  # pixel centres, relative position
    if blend == "mean":
        return np.ones(n)
    if blend == "spline":
        d = 1.0 - np.abs(2.0 * u - 1.0)
        f = np.array([2 * x * x if x <= 0.5 else 1 - 2 * (1 - x) ** 2 for x in d])
    else:
        f = np.exp(-((u - 0.5) ** 2) / (2 * (1 / 8) ** 2))
    return f / f.max()


def _reference_weights(tile: int, blend: str) -> np.ndarray:
    if blend == "mean":
        return np.ones((tile, tile))
    return MIN_WEIGHT + (1 - MIN_WEIGHT) * np.outer(_reference_profile(tile, blend), _reference_profile(tile, blend))


def _stitch(preds, height, width, k, tile, stride, blend, emit):
    """Drive the accumulator as the engine does: window rows in order, advance before each row."""
    rows = axis_offsets(height, tile, stride)
    cols = axis_offsets(width, tile, stride)
    todo = [r for r in rows if r < emit[1] and r + tile > emit[0]]
    weights = None if blend == "mean" else weight_window(tile, blend)
    acc = StripAccumulator(width, k, tile, weights, start=todo[0], emit=emit)
    blocks = []
    for r in todo:
        blocks.extend(acc.advance(r))
        for c in cols:
            acc.add(r, c, preds[(r, c)], np.ones((tile, tile), bool))
    blocks.extend(acc.finish())
    return blocks


def _brute_force(preds, height, width, k, tile, blend):
    """float64 sum(w p) / sum(w) at every pixel, over every window covering it."""
    wts = _reference_weights(tile, blend)
    num = np.zeros((height, width, k))
    den = np.zeros((height, width))
    for (r, c), p in preds.items():
        for i in range(tile):  # pixel by pixel of the window, no slicing tricks
            for j in range(tile):
                num[r + i, c + j] += wts[i, j] * p[i, j]
                den[r + i, c + j] += wts[i, j]
    return num / den[..., None]


def _random_preds(height, width, k, tile, stride, seed):
    rng = np.random.default_rng(seed)
    preds = {}
    for r in axis_offsets(height, tile, stride):
        for c in axis_offsets(width, tile, stride):
            preds[(r, c)] = rng.random((tile, tile, k)) + 0.01  # away from 0: relative error is meaningful
    return preds


@pytest.mark.parametrize("blend", BLENDS)
def test_weight_window_matches_documented_formula(blend):
    for tile in (1, 2, 7, 16, 33):
        np.testing.assert_allclose(weight_window(tile, blend), _reference_weights(tile, blend), rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(tile=st.integers(2, 12), data=st.data())
def test_stitched_equals_brute_force(tile, data):
    stride = data.draw(st.integers(1, tile), label="stride")
    height = data.draw(st.integers(tile, 40), label="height")
    width = data.draw(st.integers(tile, 40), label="width")
    k = data.draw(st.integers(1, 4), label="k")
    blend = data.draw(st.sampled_from(BLENDS), label="blend")
    first = data.draw(st.integers(0, height - 1), label="emit_first")
    stop = data.draw(st.integers(first + 1, height), label="emit_stop")
    preds = _random_preds(height, width, k, tile, stride, data.draw(st.integers(0, 2**31), label="seed"))
    ref = _brute_force(preds, height, width, k, tile, blend)

    # the whole scene, then an arbitrary strip of rows (as a distributed strip with its halo)
    for emit in ((0, height), (first, stop)):
        blocks = _stitch(preds, height, width, k, tile, stride, blend, emit)
        assert [b.row for b in blocks] == sorted(b.row for b in blocks)
        out = np.concatenate([b.prob for b in blocks]).astype(np.float64)
        assert out.shape == (emit[1] - emit[0], width, k)
        np.testing.assert_allclose(out, ref[emit[0]:emit[1]], rtol=1e-6, atol=0)
        assert np.concatenate([b.valid for b in blocks]).all()


@pytest.mark.parametrize("blend", BLENDS)
def test_blends_differ_where_windows_disagree(blend):
    """The comparison above can fail: a wrong blend (here: plain mean) is far off the reference."""
    height, width, k, tile, stride = 30, 26, 3, 10, 4
    preds = _random_preds(height, width, k, tile, stride, seed=3)
    got = np.concatenate([b.prob for b in _stitch(preds, height, width, k, tile, stride, blend, (0, height))])
    others = [b for b in BLENDS if b != blend]
    for other in others:
        assert not np.allclose(got, _brute_force(preds, height, width, k, tile, other), rtol=1e-6, atol=0)
