"""Early stopping on a noisy validation metric, and the balanced (rare-class) patch sampler."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from geoseg.training.callbacks import CheckpointState
from geoseg.training.pipeline import index_stream
from geoseg.training.sampling import draw_share, patches_with, rare_classes


def _drive(tmp_path, values, **kwargs) -> CheckpointState:
    """Feed ``values`` as ``val_miou`` epoch by epoch to a CheckpointState on a tiny compiled model."""
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    ck = CheckpointState(tmp_path / "ck", "val_miou", **kwargs)
    ck.set_model(model)
    for epoch, v in enumerate(values):
        model.stop_training = False
        ck.on_epoch_end(epoch, {"val_miou": float(v), "loss": 1.0})
        if model.stop_training:
            break
    return ck


def _noisy_rise(n=40, seed=0):
    """A metric improving by 0.005 per epoch, with validation noise (sd 0.01) and one lucky epoch
    (+0.12 at epoch 4) that the trend only passes after 24 more epochs.

    The default patience (10) on the raw metric stops such a run at epoch 14; see the reference below.
    """
    rng = np.random.default_rng(seed)
    values = 0.4 + 0.005 * np.arange(n) + rng.normal(0, 0.01, n)
    values[3] += 0.12
    return values


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_early_stopping_lets_a_noisy_improving_run_finish(tmp_path, seed):
    values = _noisy_rise(seed=seed)
    ck = _drive(tmp_path, values, patience=10, planned_epochs=len(values))
    assert not ck.stopped_early and ck.epoch == len(values)
    # The best checkpoint follows the raw metric.
    assert ck.best == pytest.approx(values.max()) and ck.best_epoch == int(values.argmax()) + 1
    # Reference: plain early stopping (raw value, no minimum length) ends the same run early.
    plain = _drive(tmp_path / "plain", values, patience=10, planned_epochs=len(values), smoothing=1.0, min_fraction=0)
    assert plain.stopped_early and plain.epoch < len(values)


def test_early_stopping_ends_a_plateau_but_not_before_half_the_plan(tmp_path):
    rng = np.random.default_rng(3)
    values = np.r_[np.linspace(0.2, 0.6, 5), 0.6 + rng.normal(0, 0.005, 35)]
    ck = _drive(tmp_path, values, patience=3, planned_epochs=40)
    assert ck.stopped_early and 20 <= ck.epoch < 40
    # A run whose plan is short stops as soon as patience runs out.
    short = _drive(tmp_path / "short", values, patience=3, planned_epochs=8)
    assert short.stopped_early and short.epoch < 20


def test_rare_classes_and_patches_with():
    # 2 classes: building at 3 % < 0.5 / 2; 4 classes: threshold 12.5 %.
    assert rare_classes([970, 30]) == [1]
    assert rare_classes([50, 30, 10, 10]) == [2, 3]
    assert rare_classes([50, 50]) == [] and rare_classes([0, 0]) == []
    assert rare_classes([100, 0, 5]) == [2]  # an absent class is not "rare"
    rows = [{"count_0": "100", "count_1": "0"}, {"count_0": "90", "count_1": "10"}, {"id": "no counts"}]
    labels = np.zeros((3, 4, 4), np.uint8)
    labels[2, 1, 1] = 1
    np.testing.assert_array_equal(patches_with(rows, [1], labels), [False, True, True])
    np.testing.assert_array_equal(patches_with(rows, [1]), [False, True, False])
    np.testing.assert_array_equal(patches_with(rows, []), [False, False, False])


def test_draw_share_only_oversamples():
    mask = np.array([True] * 10 + [False] * 90)
    assert draw_share(mask, 0.5) == 0.5
    assert draw_share(mask, 0.05) is None  # uniform draws already give 10 %
    assert draw_share(mask, 0.0) is None
    assert draw_share(np.zeros(5, bool), 0.5) is None and draw_share(np.ones(5, bool), 0.5) is None


@pytest.mark.parametrize("balance, expected", [(0.5, 0.5), (0.8, 0.8), (0.0, 0.1)])
def test_balanced_sampler_draws_rare_patches_at_the_requested_rate(balance, expected):
    n, draws = 200, 6000
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(0).choice(n, 20, replace=False)] = True  # 10 % of the patches
    idx = np.fromiter(index_stream(n, seed=4, rare_mask=mask, balance=balance).take(draws).as_numpy_iterator(),
                      np.int64)
    assert idx.min() >= 0 and idx.max() < n
    share = mask[idx].mean()
    tol = 4 * np.sqrt(expected * (1 - expected) / draws)  # 4 binomial standard deviations
    assert abs(share - expected) <= tol, (share, expected)
    # Every patch is still drawn: the common ones are not starved.
    assert len(np.unique(idx)) == n
    if balance == 0.0:  # plain shuffling: each run of n draws is a permutation
        assert sorted(idx[:n]) == list(range(n))


def test_balanced_sampler_is_seeded():
    mask = np.arange(50) < 5
    a = list(index_stream(50, seed=1, rare_mask=mask, balance=0.5).take(100).as_numpy_iterator())
    b = list(index_stream(50, seed=1, rare_mask=mask, balance=0.5).take(100).as_numpy_iterator())
    c = list(index_stream(50, seed=2, rare_mask=mask, balance=0.5).take(100).as_numpy_iterator())
    assert a == b and a != c
