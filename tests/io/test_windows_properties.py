"""Window maths invariants under hypothesis: coverage, bounds, edge snapping, counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.errors import SceneTooSmallError
from geoseg.io.windows import count_stride_windows, random_windows, stride_windows


@st.composite
def grids(draw, allow_gaps=False):
    """(height, width, (h, w), (sr, sc)) with the scene at least one window large."""
    h = draw(st.integers(1, 48))
    w = draw(st.integers(1, 48))
    height = draw(st.integers(h, 200))
    width = draw(st.integers(w, 200))
    top_r, top_c = (3 * h, 3 * w) if allow_gaps else (h, w)
    sr = draw(st.integers(1, top_r))
    sc = draw(st.integers(1, top_c))
    return height, width, (h, w), (sr, sc)


def _extent(windows):
    rows = np.array([(win.row_off, win.row_off + win.height) for win in windows])
    cols = np.array([(win.col_off, win.col_off + win.width) for win in windows])
    return rows, cols


@settings(max_examples=300, deadline=None)
@given(grids())
def test_stride_windows_cover_every_pixel_and_stay_inside(grid):
    height, width, (h, w), stride = grid
    windows = stride_windows(height, width, (h, w), stride)
    assert len(windows) == count_stride_windows(height, width, (h, w), stride)
    hits = np.zeros((height, width), np.int32)
    for win in windows:
        assert (win.height, win.width) == (h, w)
        assert 0 <= win.row_off and win.row_off + h <= height
        assert 0 <= win.col_off and win.col_off + w <= width
        hits[win.row_off:win.row_off + h, win.col_off:win.col_off + w] += 1
    assert hits.min() >= 1  # every pixel covered
    rows, cols = _extent(windows)
    assert rows[:, 0].min() == 0 and cols[:, 0].min() == 0
    assert rows[:, 1].max() == height and cols[:, 1].max() == width  # last row/column snapped to the edge


@settings(max_examples=300, deadline=None)
@given(grids(allow_gaps=True))
def test_grid_is_row_major_with_regular_offsets_and_snapped_last(grid):
    height, width, (h, w), (sr, sc) = grid
    windows = stride_windows(height, width, (h, w), (sr, sc), allow_gaps=True)
    assert len(windows) == count_stride_windows(height, width, (h, w), (sr, sc))
    row_offs = sorted({win.row_off for win in windows})
    col_offs = sorted({win.col_off for win in windows})
    assert [(win.row_off, win.col_off) for win in windows] == [(r, c) for r in row_offs for c in col_offs]
    for offs, step, size, length in ((row_offs, sr, h, height), (col_offs, sc, w, width)):
        # 0, step, 2*step, ... and a last one snapped back to length - size (never past it)
        assert offs[:-1] == [i * step for i in range(len(offs) - 1)]
        assert offs[-1] == length - size
        if len(offs) > 1:
            assert 0 < offs[-1] - offs[-2] <= step
        else:
            assert length == size  # one window exactly when the scene is one window long


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 60), st.integers(1, 60))
def test_scene_smaller_than_a_window_is_refused(height, width, h, w):
    if height >= h and width >= w:
        assert stride_windows(height, width, (h, w), (h, w))
    else:
        with pytest.raises(SceneTooSmallError):
            stride_windows(height, width, (h, w), (h, w))
        with pytest.raises(SceneTooSmallError):
            random_windows(height, width, (h, w), 3, rng=0)


@settings(max_examples=200, deadline=None)
@given(grids(), st.integers(0, 50), st.integers(0, 2**32 - 1))
def test_random_windows_stay_inside_and_repeat_with_the_seed(grid, count, seed):
    height, width, (h, w), _ = grid
    windows = random_windows(height, width, (h, w), count, rng=seed)
    assert len(windows) == count
    for win in windows:
        assert (win.height, win.width) == (h, w)
        assert 0 <= win.row_off <= height - h and 0 <= win.col_off <= width - w
    assert windows == random_windows(height, width, (h, w), count, rng=np.random.default_rng(seed))
