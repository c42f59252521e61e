"""The whole pipeline file is checked before the first step runs: section shapes, keys, values,
wired keys and the commands' own range checks; each step gets the namespace its parser builds."""

from __future__ import annotations

import pytest

from geoseg.apps.pipeline import build_parser, main, plan_pipeline

#: A valid pipeline on the sample scene; tests append or replace sections.
BASE = "sample: {size: 64}\ntile: {size: 32}\ntrain: {epochs: 1}\n"


def _run(tmp_path, text: str, *extra: str) -> int:
    doc = tmp_path / "p.yaml"
    doc.write_text(text)
    return main([str(doc), "--out", str(tmp_path / "o"), "--quiet", *extra])


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("text,message", [
    # a bad key or value in the LAST step is found before the sample step writes anything
    (BASE + "vectorize: {min-aera: 4}\n", "step 'vectorize': unknown key(s) min-aera; valid keys: "),
    (BASE + "vectorize: {min-area: abc}\n", "step 'vectorize': key 'min-area': expected a float, got 'abc'"),
    (BASE + "evaluate: {mode: median}\n", "step 'evaluate': key 'mode': invalid choice 'median' (choose from "),
    (BASE + "predict: {tta: maybe}\n", "step 'predict': key 'tta': expected true or false, got 'maybe'"),
    ("sample: {size: abc}\n", "step 'sample': key 'size': expected an integer, got 'abc'"),
    ("sample: 256\n", "step 'sample' must be a mapping of option names to values (or null for the defaults, "
                      "false to skip it), found int 256"),
    (BASE + "predict: [stride, 64]\n", "step 'predict' must be a mapping"),
    (BASE.replace("tile: {size: 32}", "tile: {size: 32, out: elsewhere}"),
     "step 'tile': key(s) out are set by the pipeline"),
    (BASE + "evaluate: {labels: [x.tif]}\n", "step 'evaluate': key(s) labels are set by the pipeline"),
    (BASE + "quicklook: 1\n", "key 'quicklook': expected true or false, got 1"),
    ("inputs: {scenes: [a.tif], lables: [b.tif]}\n", "inputs: unknown key(s) lables; valid keys: scenes, labels"),
    ("tile: {size: 32}\n", "needs a 'sample' step or 'inputs'"),
])
def test_bad_pipeline_is_refused_before_the_first_step(text, message, tmp_path, capsys):
    assert _run(tmp_path, text) == 2
    line = _error(capsys)
    assert line.startswith(f"error: {tmp_path / 'p.yaml'}: ") and message in line, line
    assert not (tmp_path / "o").exists()  # not even the output folder of step 1


def test_range_errors_of_later_steps_are_found_before_the_first_step(tmp_path, capsys):
    # values of the right type but out of range: the commands' config_from_args (exit 1, user error)
    assert _run(tmp_path, BASE.replace("epochs: 1", "epochs: 0")) == 1
    assert "--epochs must be >= 1, found 0" in _error(capsys)
    assert _run(tmp_path, BASE.replace("tile: {size: 32}", "tile: {size: 32, stride: 0}")) == 1
    assert "--stride must be > 0" in _error(capsys)
    assert not (tmp_path / "o").exists()


def test_bad_set_and_steps_are_refused(tmp_path, capsys):
    assert _run(tmp_path, BASE, "--set", "train.epochs=abc") == 2
    assert "step 'train': key 'epochs': expected an integer, got 'abc'" in _error(capsys)
    assert _run(tmp_path, BASE, "--steps", "tile,trian") == 2
    assert "--steps: unknown step(s) trian" in _error(capsys)
    assert not (tmp_path / "o").exists()


def _plan(tmp_path, text: str, *extra: str):
    doc = tmp_path / "p.yaml"
    doc.write_text(text)
    return plan_pipeline(build_parser().parse_args([str(doc), "--out", str(tmp_path / "o"), *extra]))


def test_each_step_gets_its_commands_namespace_with_wired_paths(tmp_path):
    plan = _plan(tmp_path, BASE + "predict: {tta: false, cog: true, blend: spline}\ntrain: {augment: false, "
                 "model-args: {encoder_depth: 2}, epochs: 2}\nvectorize: false\n",
                 "--set", "train.epochs=3", "--overwrite")
    out = tmp_path / "o"
    assert list(plan.steps) == ["sample", "tile", "train", "predict", "evaluate"]  # vectorize: false skips it
    assert plan.steps["sample"].out_dir == str(out / "sample") and plan.steps["sample"].size == 64
    tile = plan.steps["tile"]
    assert tile.scenes == [str(out / "sample" / "scene.tif")] and tile.labels == [str(out / "sample" / "labels.tif")]
    assert (tile.out, tile.size, tile.classes, tile.mode) == (str(out / "dataset"), 32,
                                                                str(out / "sample" / "classes.json"), "stride")
    train = plan.steps["train"]
    assert (train.dataset, train.out, train.epochs, train.augment) == (str(out / "dataset"), str(out / "bundle"),
                                                                       3, False)
    assert train.model_args == '{"encoder_depth": 2}' and train.overwrite is True  # --overwrite reaches each step
    predict = plan.steps["predict"]
    assert (predict.tta, predict.cog, predict.blend, predict.model) == (False, True, "spline", str(out / "bundle"))
    assert plan.steps["evaluate"].predictions == [str(out / "pred" / "scene_label.tif")]
    assert plan.steps["evaluate"].num_classes is None  # taken from the bundle once it exists
    assert not out.exists()


def test_steps_subset_and_inputs(make_raster, tmp_path):
    scene = make_raster("a.tif", height=64, width=64)
    labels = make_raster("a_labels.tif", height=64, width=64, bands=1)
    plan = _plan(tmp_path, f"inputs: {{scenes: [{scene}], labels: {labels}, classes: 'bg,thing'}}\n"
                           "tile: {size: 32}\n", "--steps", "tile,train")
    assert list(plan.steps) == ["tile", "train"]
    assert plan.steps["tile"].labels == [str(labels)] and plan.steps["tile"].classes == "bg,thing"
