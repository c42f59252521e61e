"""``--config FILE.yaml``: YAML values checked with the flags' own types and choices, one ``error:`` line
naming the file and the key, exit 2 (bad usage); positionals from YAML; command-line flags win."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
import rasterio

from geoseg.cli import evaluate as evaluate_cli
from geoseg.cli import labels as labels_cli
from geoseg.cli import sample as sample_cli
from geoseg.cli import tile as tile_cli
from geoseg.cli import train as train_cli
from geoseg.cli.common import CommandParser, parse_args, parse_int_list
from geoseg.cli.config import config_keys, validate_config
from geoseg.errors import ConfigError


def _yaml(tmp_path, text: str, name: str = "c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _parser() -> CommandParser:
    p = CommandParser(prog="t")
    p.add_argument("scenes", nargs="+")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--name")
    g = p.add_argument_group("g")
    g.add_argument("--mode", choices=("stride", "random"), default="stride")
    g.add_argument("--pad", action="store_true")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--bands", type=parse_int_list)
    p.add_argument("--labels", nargs="+", default=[])
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--config")
    return p


# --- validate_config: one value at a time ----------------------------------------------------


@pytest.mark.parametrize("mapping,expected", [
    ({"size": 64}, {"size": 64}),
    ({"size": "64"}, {"size": 64}),                     # a quoted number, as typed after the flag
    ({"lr": "1e-3"}, {"lr": 0.001}),                    # YAML 1.1 reads 1e-3 as a string
    ({"lr": 2}, {"lr": 2.0}),
    ({"name": 12}, {"name": "12"}),
    ({"size": None, "name": None}, {}),                 # null: the default
    ({"pad": True}, {"pad": True}),
    ({"pad": False}, {}),                               # false for a flag: not given
    ({"augment": False}, {"augment": False}),
    ({"no-augment": True}, {"augment": False}),
    ({"no_augment": False}, {"augment": True}),
    ({"bands": [3, 1]}, {"bands": [3, 1]}),             # a list for a comma-separated option
    ({"bands": "3,1"}, {"bands": [3, 1]}),
    ({"labels": "a.tif"}, {"labels": ["a.tif"]}),       # one scalar for nargs="+"
    ({"scenes": ["a.tif", "b.tif"]}, {"scenes": ["a.tif", "b.tif"]}),
    ({"tag": ["x", "y"]}, {"tag": ["x", "y"]}),
])
def test_values_convert_like_flags(mapping, expected):
    assert validate_config(_parser(), mapping, "c.yaml") == expected


@pytest.mark.parametrize("mapping,message", [
    ({"size": "abc"}, "c.yaml: key 'size': expected an integer, got 'abc'"),
    ({"size": 2.5}, "c.yaml: key 'size': expected an integer, got 2.5"),
    ({"size": True}, "c.yaml: key 'size': expected an integer, got true"),
    ({"size": [1, 2]}, "c.yaml: key 'size': expected an integer, got [1, 2]"),
    ({"lr": "abc"}, "c.yaml: key 'lr': expected a float, got 'abc'"),
    ({"name": False}, "c.yaml: key 'name': expected a string, got false"),
    ({"mode": "grid"}, "c.yaml: key 'mode': invalid choice 'grid' (choose from stride, random)"),
    ({"pad": "yes please"}, "c.yaml: key 'pad': expected true or false, got 'yes please'"),
    ({"pad": 1}, "c.yaml: key 'pad': expected true or false, got 1"),
    ({"augment": "off"}, "c.yaml: key 'augment': expected true or false, got 'off'"),
    ({"bands": "a,b"}, "c.yaml: key 'bands': expected comma-separated integers, got 'a,b'"),
    ({"scenes": []}, "c.yaml: key 'scenes': expected at least one value, got an empty list"),
    ({"size": 1, "sise": 2}, "c.yaml: unknown key(s) sise; valid keys: augment, bands, labels, lr, mode, name, "
                             "pad, scenes, size, tag"),
    ({"config": "other.yaml"}, "c.yaml: unknown key(s) config"),
    ({"size": 1, "size_": 2, "batch": 3}, "c.yaml: unknown key(s) size_, batch"),
    ({"scenes": ["a"], "Scenes": ["b"]}, "unknown key(s) Scenes"),
    ({"size": 1, "si-ze": 2}, "unknown key(s) si-ze"),
])
def test_bad_values_name_the_file_and_the_key(mapping, message):
    with pytest.raises(ConfigError) as exc:
        validate_config(_parser(), mapping, "c.yaml")
    assert message in str(exc.value)


def test_same_option_twice_and_not_a_mapping():
    with pytest.raises(ConfigError, match="keys 'no-augment' and 'augment' set the same option"):
        validate_config(_parser(), {"no-augment": True, "augment": True}, "c.yaml")
    with pytest.raises(ConfigError, match=r"c.yaml: expected a mapping of option names to values, found int 256"):
        validate_config(_parser(), 256, "c.yaml")


def test_options_of_groups_and_exclusive_groups_are_recorded():
    keys = config_keys(evaluate_cli.build_parser())
    assert {"label-field", "label_field", "burn-value", "predictions", "num-classes"} <= set(keys)
    assert keys["burn-value"][0].dest == "burn_value"
    assert "help" not in keys and "config" not in keys
    assert validate_config(evaluate_cli.build_parser(), {"burn-value": "3"}, "e.yaml") == {"burn_value": 3}


# --- through the commands' parsers and entry points ------------------------------------------


def test_positionals_from_yaml_and_flags_win(tmp_path):
    cfg = _yaml(tmp_path, "scenes: [a.tif, b.tif]\nout: ds\nsize: 32\nmode: random\npad: false\n")
    args = parse_args(tile_cli.build_parser(), ["--config", str(cfg)])
    assert (args.scenes, args.out, args.size, args.mode, args.pad) == (["a.tif", "b.tif"], "ds", 32, "random", False)
    args = parse_args(tile_cli.build_parser(), ["--config", str(cfg), "c.tif", "--size", "16", "--pad"])
    assert (args.scenes, args.size, args.pad, args.mode) == (["c.tif"], 16, True, "random")
    cfg = _yaml(tmp_path, "dataset: ds\nepochs: 3\nmodel-args: {encoder_depth: 2}\naugment: false\n", "t.yaml")
    args = parse_args(train_cli.build_parser(), ["--config", str(cfg), "--out", "b"])
    config = train_cli.config_from_args(args)
    assert (config.dataset, config.epochs, config.model_args, config.augment) == ("ds", 3, {"encoder_depth": 2}, False)
    assert parse_args(train_cli.build_parser(), ["--config", str(cfg), "other"]).dataset == "other"


def test_sub_command_options_from_yaml(tmp_path):
    cfg = _yaml(tmp_path, "palette: pal.json\nout: o.tif\n")
    args = parse_args(labels_cli.build_parser(), ["index2color", "x.tif", "--config", str(cfg)])
    assert (args.action, args.palette, args.out) == ("index2color", "pal.json", "o.tif")
    bad = _yaml(tmp_path, "size: 3\n", "bad.yaml")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) size; valid keys: input, out, overwrite, palette"):
        parse_args(labels_cli.build_parser(), ["color2index", "x.tif", "--config", str(bad)])


@pytest.mark.parametrize("text,message", [
    ("size: abc\n", "key 'size': expected an integer, got 'abc'"),
    ("dtype: float64\n", "key 'dtype': invalid choice 'float64' (choose from uint16, uint8)"),
    ("size: 128\nsead: 2\n", "unknown key(s) sead; valid keys: bands, crs, dtype, out_dir, overwrite"),
    ("overwrite: 1\n", "key 'overwrite': expected true or false, got 1"),
    ("- size\n- 128\n", "expected a mapping of option names to values, found list"),
])
def test_entry_point_bad_config_is_one_line_exit_2(text, message, tmp_path, capsys):
    cfg = _yaml(tmp_path, text)
    assert sample_cli.main([str(tmp_path / "s"), "--config", str(cfg)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {cfg}") and message in line, line
    assert not (tmp_path / "s").exists()


def test_missing_config_file_is_bad_usage(tmp_path, capsys):
    assert sample_cli.main([str(tmp_path / "s"), "--config", str(tmp_path / "nope.yaml")]) == 2
    assert f"no such config file: {tmp_path / 'nope.yaml'}" in _one_error_line(capsys)


def test_false_for_a_flag_leaves_it_unset(tmp_path, capsys):
    out = tmp_path / "s"
    cfg = _yaml(tmp_path, f"out_dir: {out}\nsize: 64\nseed: 1\nquiet: true\noverwrite: false\n")
    assert sample_cli.main(["--config", str(cfg)]) == 0  # the positional comes from YAML
    assert capsys.readouterr().out == ""                  # quiet: true
    assert sample_cli.main(["--config", str(cfg)]) == 1   # overwrite: false -> the output exists
    assert "output exists" in _one_error_line(capsys)
    assert sample_cli.main(["--config", str(cfg), "--overwrite", "--seed", "2"]) == 0  # flags win
    with rasterio.open(out / "scene.tif") as ds:
        assert json.loads(ds.tags()["GEOSEG_SAMPLE"]) | {"geoseg_version": None} == {
            "seed": 2, "size": 64, "bands": 4, "dtype": "uint8", "geoseg_version": None}


def test_real_entry_point_prints_no_traceback(tmp_path):
    cfg = _yaml(tmp_path, "size: abc\n")
    proc = subprocess.run([sys.executable, "-m", "geoseg.sample", str(tmp_path / "s"), "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"error: {cfg}: key 'size': expected an integer, got 'abc'\n"
