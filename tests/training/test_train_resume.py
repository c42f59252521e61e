"""``--resume`` is exact: a seeded CPU run interrupted mid-epoch and resumed ends with the same weights
and history, bit for bit, as an uninterrupted one; history.csv and history.json agree with each other
and with the checkpoint state."""

from __future__ import annotations

import csv
import json
import math

import keras
import numpy as np
import pytest

from geoseg.training import TrainConfig, fit
from geoseg.training.callbacks import read_state

#: U-Net with batch norm and dropout: the batch-norm momentum (not in the weights file) and the dropout
#: seed state (not in the weights file either) must both come back on resume.
UNET = {"model": "unet", "model_args": {"encoder_depth": 2, "encoder_filters": 4, "dropout": 0.3, "batch_norm": True}}


def _cfg(ds, out, **kw) -> TrainConfig:
    base = dict(dataset=str(ds), out=str(out), epochs=3, batch_size=4, lr=0.01, seed=3, quiet=True,
                tensorboard=False, **UNET)
    base.update(kw)
    return TrainConfig(**base)


class _InterruptAt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt (Ctrl-C) after batch ``batch`` of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt


def read_history_csv(path) -> list[dict]:
    """history.csv as rows of numbers (``nan`` -> None), for comparison with history.json."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        row = {}
        for k, v in r.items():
            x = float(v)
            row[k] = int(x) if k == "epoch" else (None if math.isnan(x) else x)
        out.append(row)
    return out


def test_resume_is_bit_exact_and_history_files_agree(tiny_dataset, tmp_path):
    ds = tiny_dataset(n_train=10, n_val=4)  # 3 steps of 4 = 12 draws an epoch: epochs cut across reshuffles
    ref = fit(_cfg(ds, tmp_path / "ref"))

    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(ds, out), callbacks=[_InterruptAt(epoch=1, batch=1)])
    assert read_state(out / "checkpoints")["epoch"] == 1
    # Options that do not change the result may differ on resume (patches read without the cache,
    # debug pictures drawn from a second copy of the stream, TensorBoard on).
    res = fit(_cfg(ds, out, resume=True, cache=False, debug_samples=2, tensorboard=True, quiet=False))

    assert res.epochs == ref.epochs == 3
    wr, wc = ref.model.get_weights(), res.model.get_weights()
    assert len(wr) == len(wc) and all(np.array_equal(a, b) for a, b in zip(wr, wc))
    assert res.history == ref.history  # every loss, metric and learning rate, bit for bit
    assert int(res.model.optimizer.iterations) == int(ref.model.optimizer.iterations) == 9
    assert (out / "history.csv").read_text() == (tmp_path / "ref" / "history.csv").read_text()

    # history.json = history.csv = the state's history (epoch 1-based everywhere).
    for run in (tmp_path / "ref", out):
        rows = json.loads((run / "history.json").read_text())
        assert rows == read_history_csv(run / "history.csv")
        state = read_state(run / "checkpoints")
        assert [r["epoch"] for r in rows] == [1, 2, 3]
        assert rows == state["history"]
        assert set(rows[0]) >= {"loss", "val_loss", "miou", "val_miou", "lr"}
        # one snapshot left: the files state.json names, nothing else
        names = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert names == sorted({"state.json", *state["files"].values()})


def test_resume_of_a_finished_run_keeps_history_in_step(tiny_dataset, model_fn, tmp_path):
    ds = tiny_dataset()
    out = tmp_path / "b"
    fit(TrainConfig(dataset=str(ds), out=str(out), epochs=2, batch_size=4, quiet=True, tensorboard=False,
                    seed=1), model_fn=model_fn)
    # A damaged history file (a kill while writing it would not leave one: it is renamed into place)
    # is rewritten from the checkpoint state on resume.
    (out / "history.csv").write_text("epoch\n0\n")
    (out / "history.json").unlink()
    res = fit(TrainConfig(dataset=str(ds), out=str(out), epochs=2, batch_size=4, quiet=True, tensorboard=False,
                          seed=1, resume=True), model_fn=model_fn)
    assert res.epochs == 2
    rows = json.loads((out / "history.json").read_text())
    assert rows == read_history_csv(out / "history.csv") and [r["epoch"] for r in rows] == [1, 2]
