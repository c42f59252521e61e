"""Losses against numpy references (with ignored pixels), class weights, loss expressions."""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.errors import InvalidParameterError
from geoseg.training.config import parse_loss_terms
from geoseg.training.losses import SegmentationLoss, class_weights_from_counts

K = 3


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 6, 5, K))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    y = rng.integers(0, K, (2, 6, 5)).astype(np.uint8)
    y[0, :2] = 255  # ignored
    y[1, -1, -1] = 255
    return y, p.astype(np.float32)


def _valid(y, p):
    m = y != 255
    return y[m].astype(int), p[m]


def np_ce(y, p, w=None):
    t, q = _valid(y, p)
    w = np.ones(K) if w is None else np.asarray(w)
    return (w[t] * -np.log(q[np.arange(len(t)), t])).sum() / w[t].sum()


def np_focal(y, p, gamma=2.0):
    t, q = _valid(y, p)
    pt = q[np.arange(len(t)), t]
    return (-(1 - pt) ** gamma * np.log(pt)).mean()


def np_dice(y, p, s=1.0):
    t, q = _valid(y, p)
    g = np.eye(K)[t]
    inter, sp, sg = (q * g).sum(0), q.sum(0), g.sum(0)
    return 1 - ((2 * inter + s) / (sp + sg + s)).mean()


def np_jaccard(y, p, s=1.0):
    t, q = _valid(y, p)
    g = np.eye(K)[t]
    inter, sp, sg = (q * g).sum(0), q.sum(0), g.sum(0)
    return 1 - ((inter + s) / (sp + sg - inter + s)).mean()


def np_lovasz(y, p):
    """Berman et al.'s reference algorithm, on the valid pixels only."""
    t, q = _valid(y, p)
    losses = []
    for c in range(K):
        fg = (t == c).astype(float)
        if fg.sum() == 0:
            continue
        err = np.abs(fg - q[:, c])
        order = np.argsort(-err, kind="stable")
        e, f = err[order], fg[order]
        inter = f.sum() - np.cumsum(f)
        union = f.sum() + np.cumsum(1 - f)
        jac = 1 - inter / union
        jac[1:] = jac[1:] - jac[:-1]
        losses.append((e * jac).sum())
    return np.mean(losses)


def np_bce_binary(y, p1):
    m = y != 255
    t, q = y[m].astype(float), p1[m]
    return (-(t * np.log(q) + (1 - t) * np.log(1 - q))).mean()


@pytest.mark.parametrize("name,ref", [("ce", np_ce), ("focal", np_focal), ("dice", np_dice),
                                      ("jaccard", np_jaccard), ("lovasz", np_lovasz)])
def test_loss_matches_numpy(batch, name, ref):
    y, p = batch
    got = float(SegmentationLoss(name)(y, p))
    assert got == pytest.approx(ref(y, p), rel=1e-4)
    # Changing predictions on ignored pixels changes nothing.
    p2 = p.copy()
    p2[0, :2] = np.roll(p2[0, :2], 1, axis=-1)
    assert float(SegmentationLoss(name)(y, p2)) == pytest.approx(got, rel=1e-5)


def test_weighted_ce_and_sum(batch):
    y, p = batch
    w = [0.5, 2.0, 1.0]
    assert float(SegmentationLoss("ce", class_weights=w)(y, p)) == pytest.approx(np_ce(y, p, w), rel=1e-5)
    combo = float(SegmentationLoss("0.5*ce+dice", class_weights=w)(y, p))
    assert combo == pytest.approx(0.5 * np_ce(y, p, w) + np_dice(y, p), rel=1e-5)
    # labels may come as (N, H, W, 1)
    assert float(SegmentationLoss("dice")(y[..., None], p)) == pytest.approx(np_dice(y, p), rel=1e-5)


def test_binary_model_losses(batch):
    y, _ = batch
    y = np.where(y == 255, 255, y % 2).astype(np.uint8)
    p1 = np.random.default_rng(1).uniform(0.05, 0.95, y.shape + (1,)).astype(np.float32)
    ref = np_bce_binary(y, p1[..., 0])
    assert float(SegmentationLoss("bce")(y, p1)) == pytest.approx(ref, rel=1e-5)
    assert float(SegmentationLoss("ce")(y, p1)) == pytest.approx(ref, rel=1e-5)  # CE of (1-p, p) = BCE
    two = np.concatenate([1 - p1, p1], -1)
    assert float(SegmentationLoss("dice")(y, p1)) == pytest.approx(
        float(SegmentationLoss("dice")(y, two)), rel=1e-6)


def test_multiclass_bce_is_one_vs_all(batch):
    y, p = batch
    t, q = _valid(y, p)
    g = np.eye(K)[t]
    ref = (-(g * np.log(q) + (1 - g) * np.log(1 - q))).mean()
    assert float(SegmentationLoss("bce")(y, p)) == pytest.approx(ref, rel=1e-5)


def test_perfect_prediction_scores_zero():
    y = np.array([[[0, 1], [2, 255]]], np.uint8)
    p = np.eye(K, dtype=np.float32)[np.where(y == 255, 0, y)]
    for name in ("dice", "jaccard", "lovasz"):
        assert float(SegmentationLoss(name)(y, p)) == pytest.approx(0.0, abs=1e-6)
    assert float(SegmentationLoss("ce")(y, p)) < 1e-5


def test_class_weights_auto_and_median():
    counts = [9700, 300, 0]
    w = class_weights_from_counts(counts, "auto")
    f = np.array([0.97, 0.03])
    raw = 1 / np.sqrt(f)
    np.testing.assert_allclose(w[:2], raw / (f * raw).sum(), rtol=1e-5)
    assert w[2] == 1.0 and w[1] > 5 * w[0]
    m = class_weights_from_counts([9900, 100], "median")  # raw [0.505, 50], normalized, then clipped
    assert m[1] == pytest.approx(10.0) and m[0] < 1
    np.testing.assert_array_equal(class_weights_from_counts(counts, "none"), [1, 1, 1])


def test_loss_expression_parsing():
    assert parse_loss_terms("0.5*ce + dice") == [(0.5, "ce"), (1.0, "dice")]
    assert parse_loss_terms("lovasz_softmax") == [(1.0, "lovasz")]
    with pytest.raises(InvalidParameterError, match="unknown loss 'tversky'"):
        parse_loss_terms("ce+tversky")
    with pytest.raises(InvalidParameterError, match="not a number"):
        parse_loss_terms("x*ce")
