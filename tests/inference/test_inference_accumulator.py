"""Strip accumulator: exact blending, rows handed out in order, memory bounded by one tile."""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.inference.accumulator import StripAccumulator
from geoseg.inference.blending import weight_window
from geoseg.io.windows import axis_offsets


def _run(truth, tile, stride, blend, emit=None, skip_rows=()):
    """Feed windows of ``truth`` (H, W, K) as predictions; return rows and the max buffer height."""
    h, w, k = truth.shape
    rows, cols = axis_offsets(h, tile, stride), axis_offsets(w, tile, stride)
    emit = emit or (0, h)
    todo = [r for r in rows if r < emit[1] and r + tile > emit[0]]
    weights = None if blend == "mean" else weight_window(tile, blend)
    acc = StripAccumulator(w, k, tile, weights, start=todo[0], emit=emit)
    blocks = []
    for r in todo:
        blocks.extend(acc.advance(r))
        if r in skip_rows:
            continue
        for c in cols:
            acc.add(r, c, truth[r:r + tile, c:c + tile], np.ones((tile, tile), bool))
    blocks.extend(acc.finish())
    return blocks, acc.allocated_rows


@pytest.mark.parametrize("blend", ["mean", "spline", "gaussian"])
@pytest.mark.parametrize("stride", [5, 8, 16])
def test_agreeing_windows_give_back_their_values_exactly(blend, stride):
    truth = np.random.default_rng(0).random((70, 45, 3)).astype(np.float32)
    blocks, _ = _run(truth, 16, stride, blend)
    assert [b.row for b in blocks] == sorted(b.row for b in blocks)
    out = np.concatenate([b.prob for b in blocks])
    assert out.shape == truth.shape
    assert np.array_equal(out, truth)
    assert np.concatenate([b.valid for b in blocks]).all()


def test_buffer_height_does_not_grow_with_scene_height():
    tile = 16
    for height in (40, 400, 4000):
        truth = np.ones((height, 20, 2), np.float32)
        blocks, allocated = _run(truth, tile, 8, "mean")
        assert allocated == tile
        assert sum(b.height for b in blocks) == height
        assert max(b.height for b in blocks) <= tile


def test_strip_with_halo_equals_the_same_rows_of_a_full_pass():
    rng = np.random.default_rng(1)
    h, w, tile, stride = 90, 30, 16, 6
    # Windows that disagree: each window's prediction is its own random field.
    preds = {}
    rows, cols = axis_offsets(h, tile, stride), axis_offsets(w, tile, stride)
    for r in rows:
        for c in cols:
            preds[r, c] = rng.random((tile, tile, 2)).astype(np.float32)

    def run(emit):
        todo = [r for r in rows if r < emit[1] and r + tile > emit[0]]
        acc = StripAccumulator(w, 2, tile, weight_window(tile, "spline"), start=todo[0], emit=emit)
        out = []
        for r in todo:
            out.extend(acc.advance(r))
            for c in cols:
                acc.add(r, c, preds[r, c], np.ones((tile, tile), bool))
        out.extend(acc.finish())
        return np.concatenate([b.prob for b in out])

    full = run((0, h))
    strips = np.concatenate([run((a, min(a + 25, h))) for a in range(0, h, 25)])
    assert np.array_equal(full, strips)


def test_rows_without_any_window_come_out_invalid():
    truth = np.ones((64, 16, 1), np.float32)
    blocks, _ = _run(truth, 16, 16, "mean", skip_rows=(16, 32))
    valid = np.concatenate([b.valid for b in blocks])
    assert valid.shape == (64, 16)
    assert valid[:16].all() and not valid[16:48].any() and valid[48:].all()
