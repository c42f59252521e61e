"""fit(): bundle contents and reload, reproducibility, resume after an interrupt, early stopping."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from geoseg.errors import ConfigError, OutputExistsError
from geoseg.io.bundle import load_bundle
from geoseg.training import TrainConfig, fit
from geoseg.training.callbacks import read_state
from geoseg.training.data import PatchReader, load_dataset, split_rows
from geoseg.training.pipeline import make_tf_dataset


def _cfg(ds, out, **kw):
    base = dict(dataset=str(ds), out=str(out), epochs=2, batch_size=4, lr=0.01, quiet=True, seed=1)
    base.update(kw)
    return TrainConfig(**base)


def _val_batch(ds, norm):
    info = load_dataset(ds)
    reader = PatchReader(info, split_rows(info)[1])
    x, y = next(iter(make_tf_dataset(reader, norm, info.nodata, 4, training=False)))
    return x.numpy(), y.numpy()


def test_fit_writes_bundle_that_reloads_identically(tiny_dataset, model_fn, tmp_path):
    ds = tiny_dataset()
    res = fit(_cfg(ds, tmp_path / "b1"), model_fn=model_fn)
    out = res.bundle
    for name in ("model.keras", "geoseg.json", "history.csv", "history.json", "training_curves.png",
                 "checkpoints/best-0002.weights.h5", "checkpoints/last-0002.weights.h5",
                 "checkpoints/last-0002.optimizer.npz", "checkpoints/state.json"):
        assert (out / name).exists(), name
    assert any((out / "logs").rglob("*tfevents*"))
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (out / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and "val_miou" in rows[0] and "lr" in rows[0]

    meta = json.loads((out / "geoseg.json").read_text())
    info = json.loads((ds / "dataset.json").read_text())
    assert meta["model"] == {"name": "tiny", "arguments": {"num_classes": 3, "input_shape": [32, 32, 4],
                                                           "backbone": None, "activation": "softmax"}}
    assert meta["classes"] == info["classes"] and meta["bands"] == [1, 2, 3, 4]
    assert meta["normalization"] == {"method": "meanstd", "mean": info["statistics"]["mean"],
                                     "std": info["statistics"]["std"]}
    assert (meta["tile_size"], meta["stride"], meta["nodata"], meta["ignore_index"]) == (32, 16, 0, 255)
    assert meta["training"]["epochs"] == 2 and meta["training"]["config"]["loss"] == "ce+dice"
    assert len(meta["training"]["class_weights"]) == 3
    assert meta["training"]["stopped_by"] == "epochs" and meta["training"]["planned_epochs"] == 2
    assert meta["input"]["dtype"] == "uint8" and meta["input"]["p98"] == info["statistics"]["p98"]
    assert set(meta["metrics"]) == {"val_loss", "miou", "oa", "f1", "iou"}
    assert meta["metrics"] == res.metrics and set(meta["metrics"]["iou"]) == {"background", "building", "water"}
    # final metrics are those of the best checkpoint
    best = max(h["val_miou"] for h in res.history)
    assert res.metrics["miou"] == pytest.approx(best, abs=1e-5)

    # ... and those of an independent pass of the restored model over the (4) validation patches.
    x, y = _val_batch(ds, meta["normalization"])
    pred = res.model.predict(x, verbose=0).argmax(-1)
    ok = y != 255
    cm = np.bincount(y[ok].astype(np.int64) * 3 + pred[ok], minlength=9).reshape(3, 3)
    assert res.metrics["oa"] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-5)
    b = load_bundle(out)
    np.testing.assert_array_equal(b.model.predict(x, verbose=0), res.model.predict(x, verbose=0))

    # A seeded CPU run is reproducible: same weights, same history.
    again = fit(_cfg(ds, tmp_path / "b2"), model_fn=model_fn)
    for a, c in zip(res.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, c)
    assert [h["loss"] for h in res.history] == [h["loss"] for h in again.history]

    # The output exists now: refused without --overwrite (before any training).
    with pytest.raises(OutputExistsError, match="--overwrite"):
        fit(_cfg(ds, out), model_fn=model_fn)


class _Interrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt in the middle of epoch ``epoch`` (0-based), like Ctrl-C."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch, self.current = epoch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 0:
            raise KeyboardInterrupt


def test_resume_after_interrupt(tiny_dataset, model_fn, tmp_path):
    ds = tiny_dataset()
    out = tmp_path / "bundle"
    cfg = _cfg(ds, out, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, model_fn=model_fn, callbacks=[_Interrupt(1)])
    state = read_state(out / "checkpoints")
    assert state["epoch"] == 1 and not (out / "geoseg.json").exists()
    with pytest.raises(OutputExistsError, match="--resume"):
        fit(cfg, model_fn=model_fn)
    res = fit(_cfg(ds, out, epochs=3, resume=True), model_fn=model_fn)
    assert res.epochs == 3 and [h["epoch"] for h in res.history] == [1, 2, 3]
    steps = 2  # 8 training patches / batch 4
    # Optimizer state came back: the iteration counter (and so the LR schedule) continued.
    assert int(res.model.optimizer.iterations) == 3 * steps
    with (out / "history.csv").open() as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]
    assert json.loads((out / "geoseg.json").read_text())["training"]["epochs"] == 3


def test_early_stopping_and_binary_model(tiny_dataset, model_fn, tmp_path):
    ds = tiny_dataset(num_classes=2)
    # A learning rate too small to move the loss: val_loss stops improving at once.
    res = fit(_cfg(ds, tmp_path / "b", epochs=6, lr=1e-9, warmup_epochs=0, schedule="constant",
                   monitor="val_loss", early_stopping_patience=1, loss="bce+dice",
                   model_args={"num_classes": 1}, tensorboard=False), model_fn=model_fn)
    assert res.stopped_early and res.epochs < 6
    assert res.model.output_shape[-1] == 1 and set(res.metrics["iou"]) == {"background", "building"}
    meta = json.loads((res.bundle / "geoseg.json").read_text())
    assert meta["model"]["arguments"]["activation"] == "sigmoid" and meta["training"]["stopped_early"]


def test_config_yaml_rejects_unknown_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("dataset: d\nout: o\nepochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown key.*learning_rate.*valid keys:.*batch_size"):
        TrainConfig.from_yaml(f)
    f.write_text("dataset: d\nout: o\nepochs: 3\nbatch-size: 2\nmodel_args: {encoder_depth: 2}\n")
    cfg = TrainConfig.from_yaml(f)
    assert (cfg.epochs, cfg.batch_size, cfg.model_args) == (3, 2, {"encoder_depth": 2})


def test_fast_batchnorm_lowers_momentum_of_nested_layers():
    from geoseg.training.build import fast_batchnorm

    inner_in = keras.Input((8, 8, 3))
    inner = keras.Model(inner_in, keras.layers.BatchNormalization(momentum=0.999)(inner_in), name="backbone")
    inp = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization(momentum=0.5)(inner(inp))
    model = keras.Model(inp, keras.layers.BatchNormalization(momentum=0.999)(x))
    assert fast_batchnorm(model) == 2
    moms = sorted(layer.momentum for m in (model, inner) for layer in m.layers
                  if isinstance(layer, keras.layers.BatchNormalization))
    assert moms == [0.5, 0.9, 0.9]
