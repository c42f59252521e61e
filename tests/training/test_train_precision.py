"""``--precision float32|mixed`` and ``--jit-compile``: options, every zoo model's float32 output under
mixed precision, what a CPU run does and records, and (GPU only) a mixed-precision run end to end."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from geoseg.cli.train import build_parser, config_from_args
from geoseg.cli.train import main as train_main
from geoseg.errors import ConfigError, InvalidParameterError, ModelConfigError
from geoseg.runtime.tensorflow import peak_memory_mb, visible_gpus
from geoseg.training import TrainConfig, fit
from geoseg.training.callbacks import read_state
from geoseg.training.device import (
    check_float32_output,
    cpu_count,
    resolve_jit,
    resolve_precision,
    training_strategy,
)
from geoseg.training.pipeline import map_parallelism

MOBILE = {"backbone": "mobilenetv2", "encoder_kwargs": {"alpha": 0.35}}
WIDTHS = {"encoder_widths": (4, 8, 8, 16, 16)}
#: Every zoo model, tiny (a few thousand to a few hundred thousand weights).
ZOO_TINY = {
    "unet": {"encoder_filters": 4, "encoder_depth": 2, "dropout": 0.0},
    "resunet": {"encoder_filters": 4},
    "mobile_unet": {"encoder_alpha": 0.35, "decoder_filters": (32, 16, 16, 8, 8)},
    "deeplabv3": {**MOBILE, "decoder_filters": 16},
    "deeplabv3plus": {**MOBILE, "decoder_filters": 16, "decoder_low_level_filters": 8},
    "fcn32s": {**WIDTHS, "fc_channels": 16, "dropout": 0.0},
    "fcn16s": {**WIDTHS, "fc_channels": 16, "dropout": 0.0},
    "fcn8s": {**WIDTHS, "fc_channels": 16, "dropout": 0.0},
    "segnet": WIDTHS,
    "pspnet": {**MOBILE, "decoder_filters": 16},
    "refinenet": {**MOBILE, "decoder_filters": 8, "decoder_top_filters": 16},
    "denseaspp": {**MOBILE, "decoder_bottleneck": 16, "decoder_growth": 8},
    "dilatednet": {**WIDTHS, "fc_channels": 16, "dropout": 0.0},
}


def _parse(argv):
    return config_from_args(build_parser().parse_args(["ds", "--out", "b", *argv]))


def test_precision_and_jit_options():
    assert _parse([]).precision == "float32" and _parse([]).jit_compile == "auto"
    assert _parse(["--precision", "mixed"]).precision == "mixed"
    assert _parse(["--mixed-precision"]).precision == "mixed"  # the old flag is an alias
    assert _parse(["--jit-compile", "on"]).jit_compile == "on"
    # Python API / YAML through TrainConfig: the old key still works, the new one is recorded
    assert TrainConfig.from_dict({"mixed-precision": True}).precision == "mixed"
    assert TrainConfig.from_dict({"mixed_precision": False}).precision == "float32"
    assert TrainConfig.from_dict({"mixed_precision": True, "precision": "mixed"}).precision == "mixed"
    assert "mixed_precision" not in TrainConfig().to_dict() and TrainConfig(jit_compile=True).jit_compile == "on"
    with pytest.raises(ConfigError, match="contradicts precision 'float32'"):
        TrainConfig.from_dict({"mixed_precision": True, "precision": "float32"})
    with pytest.raises(InvalidParameterError, match=r"--precision must be one of float32, mixed, found 'float16'"):
        TrainConfig(precision="float16")
    with pytest.raises(InvalidParameterError, match=r"--jit-compile must be one of auto, on, off, found 'xla'"):
        TrainConfig(jit_compile="xla")


def test_yaml_precision_keys(tmp_path, capsys):
    """YAML goes through the same parser: ``precision: mixed`` and the old ``mixed-precision: true``
    both give mixed; the two keys together are refused as setting one option twice."""
    from geoseg.cli.config import apply_config, load_yaml

    for text in ("precision: mixed\n", "mixed-precision: true\n"):
        f = tmp_path / "t.yaml"
        f.write_text(text + "jit-compile: 'off'\n")
        parser = build_parser()
        apply_config(parser, load_yaml(f), str(f))
        cfg = config_from_args(parser.parse_args(["ds", "--out", "b"]))
        assert (cfg.precision, cfg.jit_compile) == ("mixed", "off")
    f.write_text("precision: float32\nmixed-precision: true\n")
    with pytest.raises(ConfigError, match="set the same option"):
        apply_config(build_parser(), load_yaml(f), str(f))


@pytest.mark.parametrize("name", sorted(ZOO_TINY))
def test_zoo_outputs_float32_under_mixed_precision(name):
    from geoseg.models import get_model, list_models

    assert set(ZOO_TINY) == set(list_models())  # a new zoo model gets a row here
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = get_model(name, 3, (64, 64, 4), **ZOO_TINY[name])
        binary = get_model(name, 1, (64, 64, 4), activation="sigmoid", **ZOO_TINY[name])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # the policy took: the body computes in float16 ...
    assert any(layer.compute_dtype == "float16" for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    # ... and the output (softmax / sigmoid) in float32
    for m in (model, binary):
        assert [str(o.dtype) for o in m.outputs] == ["float32"]
        check_float32_output(m)
    p = keras.ops.convert_to_numpy(model(np.random.default_rng(0).random((1, 64, 64, 4), np.float32)))
    assert p.dtype == np.float32 and p.shape == (1, 64, 64, 3)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-3)


def test_float16_output_refused(model_fn):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = model_fn(3, (32, 32, 4))  # its softmax follows the float16 policy
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(ModelConfigError, match="outputs float16 under mixed precision.*dtype='float32'"):
        check_float32_output(model)


def test_device_helpers_on_this_machine(caplog):
    gpus = visible_gpus()
    if gpus:
        pytest.skip("CPU-side behaviour")
    assert resolve_precision("mixed", []) == "float32" and "needs a GPU" in caplog.text
    assert resolve_precision("float32", []) == "float32"
    assert resolve_jit("on", []) is False and resolve_jit("off", []) is False and resolve_jit("auto", []) == "auto"
    assert resolve_precision("mixed", ["gpu"]) == "mixed" and resolve_jit("on", ["gpu"]) is True
    assert peak_memory_mb([]) is None
    import tensorflow as tf

    assert training_strategy([]) is tf.distribute.get_strategy()  # CPU: the default strategy
    import os

    assert map_parallelism() == cpu_count() == len(os.sched_getaffinity(0))


def test_cpu_run_with_mixed_and_xla_trains_float32_and_records_it(tiny_dataset, model_fn, tmp_path, caplog):
    if visible_gpus():
        pytest.skip("CPU fallback")
    ds = tiny_dataset()
    out = tmp_path / "b"
    res = fit(TrainConfig(dataset=str(ds), out=str(out), epochs=1, batch_size=4, quiet=True, tensorboard=False,
                          precision="mixed", jit_compile="on"), model_fn=model_fn)
    assert "--precision mixed needs a GPU" in caplog.text and "--jit-compile on needs a GPU" in caplog.text
    assert keras.config.dtype_policy().name == "float32"  # restored after the run
    assert all(w.dtype == "float32" for w in res.model.weights) and res.model.jit_compile is False
    meta = json.loads((out / "geoseg.json").read_text())
    t = meta["training"]
    assert (t["precision"], t["jit_compile"]) == ("float32", False)  # what ran
    assert (t["config"]["precision"], t["config"]["jit_compile"]) == ("mixed", "on")  # what was asked
    assert t["device"].startswith("CPU (")
    params = read_state(out / "checkpoints")["parameters"]
    assert (params["precision"], params["jit-compile"]) == ("mixed", "on") and "mixed-precision" not in params


def test_resume_of_a_checkpoint_with_the_old_flag(tiny_dataset, model_fn, tmp_path):
    """A checkpoint recorded before --precision (``mixed-precision: false``) resumes with the defaults,
    and one recorded with ``mixed-precision: true`` is refused without --precision mixed."""
    ds = tiny_dataset()
    out = tmp_path / "b"
    cfg = dict(dataset=str(ds), out=str(out), epochs=1, batch_size=4, quiet=True, tensorboard=False, seed=1)
    fit(TrainConfig(**cfg), model_fn=model_fn)
    state_file = out / "checkpoints" / "state.json"
    state = json.loads(state_file.read_text())
    params = state["parameters"]
    del params["precision"], params["jit-compile"]
    for old, ok in ((True, False), (False, True)):
        params["mixed-precision"] = old
        state_file.write_text(json.dumps(state))
        again = TrainConfig(**{**cfg, "epochs": 1, "resume": True})
        if ok:
            assert fit(again, model_fn=model_fn).epochs == 1
        else:
            with pytest.raises(InvalidParameterError, match="precision: 'mixed' before, 'float32' now"):
                fit(again, model_fn=model_fn)


@pytest.mark.gpu
def test_mixed_precision_run_on_gpu_predicts(tmp_path):
    """On a GPU: 2 epochs of a small U-Net with --precision mixed finish, record mixed, and the float32
    bundle predicts a scene."""
    train_and_predict(tmp_path, "mixed")


def train_and_predict(tmp_path, precision: str) -> None:
    """Tile a 256 px sample scene, train 2 epochs through the CLI, predict the scene with the bundle:
    labels are classes, probabilities (uint8, p * 255) sum to about 255 on valid pixels."""
    import rasterio

    from geoseg.apps.sample import make_sample
    from geoseg.inference import predict_scene
    from geoseg.tiling.tiler import TileConfig, run_tiling

    s = make_sample(tmp_path / "sample", size=256, seed=1)
    run_tiling(TileConfig(scenes=(str(s.scene),), labels=(str(s.labels),), classes=str(s.classes),
                          out=str(tmp_path / "ds"), size=64, stride=64, split="random", val_fraction=0.25, quiet=True))
    out = tmp_path / "bundle"
    rc = train_main([str(tmp_path / "ds"), "--out", str(out), "--model", "unet", "--model-args",
                     "encoder_depth=2,encoder_filters=8,dropout=0", "--epochs", "2", "--batch-size", "4",
                     "--precision", precision, "--quiet", "--no-tensorboard"])
    assert rc == 0
    meta = json.loads((out / "geoseg.json").read_text())
    assert meta["training"]["precision"] == precision and meta["training"]["epochs"] == 2
    assert ("CPU" in meta["training"]["device"]) == (not visible_gpus())
    pred = predict_scene(out, s.scene, tmp_path / "pred", overwrite=True, progress=False)
    with rasterio.open(pred.label) as ds:
        label = ds.read(1)
    with rasterio.open(pred.prob) as ds:
        prob = ds.read().astype(int)
    k = len(meta["classes"])
    valid = label != 255
    assert label.shape == (256, 256) and valid.mean() > 0.5 and set(np.unique(label[valid])) <= set(range(k))
    assert np.abs(prob[:, valid].sum(0) - 255).max() <= k  # uint8 probabilities of a float32 softmax
