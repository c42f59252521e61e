"""Weight windows: never zero, peak 1, symmetric; unknown names rejected."""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.errors import InvalidParameterError
from geoseg.inference.blending import BLENDS, MIN_WEIGHT, profile, weight_window


@pytest.mark.parametrize("blend", BLENDS)
@pytest.mark.parametrize("size", [1, 2, 7, 32, 256])
def test_weight_window_is_positive_symmetric_and_peaks_at_one(blend, size):
    w = weight_window(size, blend)
    assert w.shape == (size, size)
    assert w.min() >= MIN_WEIGHT * 0.999 and w.max() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1, ::-1])
    np.testing.assert_allclose(w, w.T)


@pytest.mark.parametrize("blend", ["spline", "gaussian"])
def test_smooth_windows_fall_from_centre_to_edge(blend):
    p = profile(64, blend)
    assert np.all(np.diff(p[:32]) > 0) and np.all(np.diff(p[32:]) < 0)
    assert p[0] < 0.05 and p[31] > 0.95


def test_mean_window_is_uniform():
    assert np.array_equal(weight_window((4, 6), "mean"), np.ones((4, 6)))


def test_unknown_blend_is_refused():
    with pytest.raises(InvalidParameterError, match="--blend 'cosine'"):
        weight_window(8, "cosine")
