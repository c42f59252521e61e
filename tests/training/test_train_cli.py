"""``python -m geoseg.train`` through its entry point: a real run and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from geoseg.cli.train import main

TINY_UNET = ["--model", "unet", "--model-args", "encoder_depth=2,encoder_filters=4,dropout=0", "--epochs", "1",
             "--quiet"]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_cli_trains_from_yaml_with_holdout(tiny_dataset, tmp_path, capsys):
    ds = tiny_dataset(n_train=10, n_val=0)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"dataset: {ds}\nepochs: 1\nbatch-size: 4\nval_from: train\nval-fraction: 0.2\n"
                   "model: unet\nmodel-args: {encoder_depth: 2, encoder_filters: 4}\n")
    out = tmp_path / "bundle"
    assert main(["--config", str(cfg), "--out", str(out), "--quiet", "--no-tensorboard"]) == 0
    meta = json.loads((out / "geoseg.json").read_text())
    assert meta["model"]["name"] == "unet" and meta["model"]["arguments"]["encoder_depth"] == 2
    assert meta["training"]["train_patches"] == 8 and meta["training"]["val_patches"] == 2
    assert meta["training"]["config"]["val_from"] == "train"
    # the same output again without --overwrite
    assert main([str(ds), "--out", str(out), "--epochs", "1"]) == 1
    msg = _err(capsys)
    assert "already holds a bundle" in msg and "--overwrite" in msg


def test_cli_band_count_of_weights_file(tiny_dataset, tmp_path, capsys):
    from geoseg.models import get_model

    # 5-band weights for a 4-band dataset (RGB weights would be adapted, any other count is refused)
    weights = tmp_path / "five.keras"
    get_model("unet", 3, input_shape=(32, 32, 5), encoder_depth=2, encoder_filters=4).save(weights)
    ds = tiny_dataset()
    assert main([str(ds), "--out", str(tmp_path / "b"), "--weights", str(weights), *TINY_UNET]) == 1
    msg = _err(capsys)
    assert "5 band(s)" in msg and "4" in msg and str(weights) in msg


@pytest.mark.parametrize("case", ["missing", "empty", "no_val", "bad_class", "unwritable", "yaml_key",
                                  "bad_loss", "bad_model", "bad_model_args", "bad_weights_list"])
def test_cli_bad_input(case, tiny_dataset, tmp_path, capsys):
    ds = tiny_dataset()
    out = str(tmp_path / "bundle")
    args = [str(ds), "--out", out, *TINY_UNET]
    expect = ""
    if case == "missing":
        args[0], expect = str(tmp_path / "nope"), "no such dataset folder"
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        args[0], expect = str(tmp_path / "empty"), "not a geoseg dataset"
    elif case == "no_val":
        args[0], expect = str(tiny_dataset("nv", n_val=0)), "no validation patches"
    elif case == "bad_class":
        meta = json.loads((ds / "dataset.json").read_text())
        meta.update(num_classes=2, classes=meta["classes"][:2])
        (ds / "dataset.json").write_text(json.dumps(meta))
        expect = "holds class 2 but dataset.json defines 2 classes"
    elif case == "unwritable":
        (tmp_path / "afile").write_text("x")
        args[2], expect = str(tmp_path / "afile" / "bundle"), "afile is a file, not a folder"
    elif case == "yaml_key":
        cfg = tmp_path / "c.yaml"
        cfg.write_text("epochs: 2\nlearning-rate: 0.1\n")
        args += ["--config", str(cfg)]
        expect = "unknown key(s) learning-rate; valid keys:"
    elif case == "bad_loss":
        args += ["--loss", "ce+tversky"]
        expect = "unknown loss 'tversky'"
    elif case == "bad_model":
        args += ["--model", "nosuchnet"]
        expect = "unknown model 'nosuchnet'"
    elif case == "bad_model_args":
        args += ["--model-args", "encoder_depth"]
        expect = "--model-args expects JSON or key=value"
    elif case == "bad_weights_list":
        args += ["--class-weights", "1,2"]
        expect = "--class-weights has 2 value(s) but the dataset has 3 classes"
    assert main(args) == (2 if case == "yaml_key" else 1)  # a bad config file is bad usage
    assert expect in _err(capsys)


def test_help_does_not_import_tensorflow():
    code = "import sys; from geoseg.cli.train import build_parser; build_parser().format_help(); " \
           "import geoseg.training; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
