"""--time-budget: duration parsing, a run that ends within its budget, and the schedule fitted to it."""

from __future__ import annotations

import json
import time

import keras  # noqa: F401  (imported before the clock starts, as in any Python session that trains)
import numpy as np
import pytest

from geoseg.cli.train import main
from geoseg.errors import InvalidParameterError
from geoseg.io.bundle import load_bundle
from geoseg.training import TrainConfig, fit
from geoseg.training.config import parse_duration
from geoseg.training.data import PatchReader, load_dataset, split_rows
from geoseg.training.pipeline import make_tf_dataset


@pytest.mark.parametrize("text, seconds", [("600", 600.0), (90, 90.0), ("90s", 90.0), ("10m", 600.0),
                                           ("1.5h", 5400.0), (" 2M ", 120.0), (None, None), ("", None)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["ten", "10x", "-5m", "0", "m", "inf", "nan"])
def test_parse_duration_rejects(text):
    with pytest.raises(InvalidParameterError, match="--time-budget"):
        parse_duration(text)


def test_config_takes_budget_string():
    assert TrainConfig(dataset="d", out="o", time_budget="2m").time_budget == 120.0
    with pytest.raises(InvalidParameterError, match="--balance must be in"):
        TrainConfig(dataset="d", out="o", balance=1.5)


def test_cli_takes_time_budget():
    from geoseg.cli.train import build_parser, config_from_args

    args = build_parser().parse_args(["ds", "--out", "b", "--time-budget", "10m", "--balance", "0.5"])
    cfg = config_from_args(args)
    assert cfg.time_budget == 600.0 and cfg.balance == 0.5
    assert main(["ds", "--out", "b", "--time-budget", "soon"]) == 1


def test_run_ends_within_budget_with_a_valid_bundle(tiny_dataset, model_fn, tmp_path):
    # A two-layer model: graph tracing (seconds on a loaded CPU, not bounded by any budget) stays small.
    ds = tiny_dataset(n_train=24, n_val=4)
    # Margin: one batch, the validation and the bundle written after the budget's last check.
    budget, margin = 20.0, 8.0
    t0 = time.perf_counter()
    # Early stopping off: on a quiet machine the tiny model runs enough epochs within the budget for
    # its patience to end the run first (seen once in a full suite), and this test is about the budget.
    res = fit(TrainConfig(dataset=str(ds), out=str(tmp_path / "bundle"), time_budget=budget, batch_size=4, lr=0.01,
                          quiet=True, tensorboard=False, early_stopping_patience=0), model_fn=model_fn)
    wall = time.perf_counter() - t0
    out = res.bundle
    meta = json.loads((out / "geoseg.json").read_text())
    train = meta["training"]
    assert wall <= budget + margin and train["seconds"] <= wall + 0.1, (wall, train["seconds"])
    assert res.stopped_by == train["stopped_by"] == "time_budget" and not train["stopped_early"]
    assert train["time_budget"] == budget and train["epochs"] >= 3 and train["epochs"] == res.epochs
    assert train["planned_epochs"] >= train["epochs"] - 1
    # The schedule was fitted to the budget: by the last epoch the LR has decayed well below its peak.
    history = json.loads((out / "checkpoints" / "state.json").read_text())["history"]
    assert len(history) == train["epochs"]
    assert history[-1]["lr"] < 0.5 * 0.01, [h["lr"] for h in history]
    best = json.loads((out / "checkpoints" / "state.json").read_text())["files"]["best_weights"]
    assert (out / "history.csv").exists() and (out / "checkpoints" / best).exists()
    # The bundle reloads and predicts from the best checkpoint.
    bundle = load_bundle(out)
    info = load_dataset(ds)
    reader = PatchReader(info, split_rows(info)[1])
    x, _ = next(iter(make_tf_dataset(reader, meta["normalization"], info.nodata, 4, training=False)))
    probs = bundle.model.predict(x, verbose=0)
    assert probs.shape == (4, 32, 32, 3) and np.allclose(probs.sum(-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(probs, res.model.predict(x, verbose=0), atol=1e-6)
    assert meta["input"]["dtype"] == "uint8" and len(meta["input"]["min"]) == 4


def test_budget_smaller_than_one_epoch_still_writes_a_bundle(tiny_dataset, model_fn, tmp_path):
    ds = tiny_dataset()
    res = fit(TrainConfig(dataset=str(ds), out=str(tmp_path / "b"), time_budget=0.5, batch_size=4, quiet=True,
                          tensorboard=False), model_fn=model_fn)
    assert res.epochs == 1 and res.stopped_by == "time_budget"
    assert load_bundle(res.bundle).model is not None
