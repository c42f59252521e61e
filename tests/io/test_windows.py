"""Pure window maths: counts, positions, edge snapping, reproducibility."""

import math

import numpy as np
import pytest
from affine import Affine
from rasterio.windows import Window

from geoseg.errors import InvalidParameterError, SceneTooSmallError
from geoseg.io.windows import (
    axis_offsets,
    count_stride_windows,
    padded_shape,
    random_windows,
    stride_windows,
    window_bounds,
)


@pytest.mark.parametrize("length,size,stride,expected", [
    (10, 4, 4, [0, 4, 6]),      # last snapped back to end at 10
    (12, 4, 4, [0, 4, 8]),      # exact fit: no extra window
    (10, 4, 2, [0, 2, 4, 6]),
    (4, 4, 3, [0]),             # scene == window
    (11, 5, 3, [0, 3, 6]),
])
def test_axis_offsets_snap_to_edge(length, size, stride, expected):
    offs = axis_offsets(length, size, stride)
    assert offs == expected
    assert offs[-1] + size == length
    assert len(offs) == math.ceil((length - size) / stride) + 1


@pytest.mark.parametrize("h,w,size,stride", [(100, 130, 32, 16), (64, 64, 64, 32), (97, 45, 20, 7)])
def test_stride_windows_cover_every_pixel_and_stay_inside(h, w, size, stride):
    wins = stride_windows(h, w, size, stride)
    assert len(wins) == count_stride_windows(h, w, size, stride)
    cover = np.zeros((h, w), int)
    for win in wins:
        r, c = int(win.row_off), int(win.col_off)
        assert 0 <= r and r + size <= h and 0 <= c and c + size <= w
        assert (win.width, win.height) == (size, size)
        cover[r:r + size, c:c + size] += 1
    assert cover.min() >= 1
    # row-major order
    keys = [(int(x.row_off), int(x.col_off)) for x in wins]
    assert keys == sorted(keys)


def test_rectangular_size_and_stride():
    wins = stride_windows(50, 70, (10, 20), (10, 20))
    assert {(int(w.height), int(w.width)) for w in wins} == {(10, 20)}
    assert sorted({int(w.col_off) for w in wins}) == [0, 20, 40, 50]


def test_stride_errors():
    with pytest.raises(InvalidParameterError, match="--stride must be > 0, got 0"):
        stride_windows(10, 10, 4, 0)
    with pytest.raises(InvalidParameterError, match="larger than --size"):
        stride_windows(10, 10, 4, 5)
    assert axis_offsets(10, 4, 5, allow_gaps=True) == [0, 5, 6]
    with pytest.raises(SceneTooSmallError, match="smaller than the window"):
        stride_windows(10, 3, 4, 2)


def test_random_windows_reproducible_and_inside():
    a = random_windows(100, 80, 16, 50, rng=7)
    b = random_windows(100, 80, 16, 50, rng=np.random.default_rng(7))
    assert a == b
    assert a != random_windows(100, 80, 16, 50, rng=8)
    for w in a:
        assert 0 <= w.row_off <= 84 and 0 <= w.col_off <= 64
    # uniform: both extremes reachable on a tiny scene
    many = random_windows(17, 17, 16, 400, rng=0)
    assert {int(w.row_off) for w in many} == {0, 1}
    with pytest.raises(SceneTooSmallError):
        random_windows(10, 10, 16, 1, rng=0)


def test_window_bounds_north_up_and_rotated():
    t = Affine(0.5, 0, 500000, 0, -0.5, 4649776)
    win = Window(10, 20, 8, 4)
    assert window_bounds(win, t) == (500005.0, 4649764.0, 500009.0, 4649766.0)
    south_up = Affine(0.5, 0, 500000, 0, 0.5, 4649776)  # rows grow northwards
    assert window_bounds(win, south_up) == (500005.0, 4649786.0, 500009.0, 4649788.0)


def test_padded_shape():
    assert padded_shape(10, 50, 32) == (32, 50)
    assert padded_shape(40, 20, (16, 24)) == (40, 24)
