"""Every shipped pipeline YAML runs end to end on a tiny scene; the pipeline runner's own rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio

from geoseg.apps.pipeline import load_pipeline, main
from geoseg.apps.sample import make_sample

PIPELINES = sorted((Path(__file__).resolve().parents[2] / "pipelines").glob("*.yaml"))

#: Overrides that make any shipped pipeline tiny: small tiles, one or two epochs, a small U-Net.
TINY = [
    "tile.size=64", "tile.stride=64", "tile.block-size=128", "tile.val-fraction=0.25", "tile.split=spatial",
    "train.epochs=1", "train.time-budget=null", "train.batch-size=8", "train.model=unet", "train.backbone=null",
    "train.weights=null",
    "train.mixed-precision=false",
    "train.model-args={encoder_depth: 2, encoder_filters: 4, dropout: 0.0}",
    "train.tensorboard=false", "predict.stride=32", "predict.cog=false", "predict.batch-size=8",
]


def test_pipeline_files_exist():
    assert any(p.name == "demo.yaml" for p in PIPELINES)
    assert len(PIPELINES) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("path", PIPELINES, ids=[p.stem for p in PIPELINES])
def test_shipped_pipeline_runs_on_a_tiny_scene(path, tmp_path, capsys):
    overrides = list(TINY)
    doc = load_pipeline(path)
    if "sample" in doc:
        overrides.append("sample.size=192")
    else:  # real-data recipes: point their inputs at a tiny synthetic scene
        s = make_sample(tmp_path / "inputs", size=192, seed=3)
        overrides += [f"inputs.scenes=[{s.scene}]", f"inputs.labels=[{s.polygons}]",
                      f"inputs.classes={s.classes}", "tile.burn-value=null", "tile.label-field=class_id",
                      "tile.bands=null", "evaluate.burn-value=null", "evaluate.label-field=class_id"]
    argv = [str(path), "--out", str(tmp_path / "run"), "--quiet"]
    for o in overrides:
        argv += ["--set", o]
    assert main(argv) == 0, capsys.readouterr().err
    run = tmp_path / "run"
    meta = json.loads((run / "bundle" / "geoseg.json").read_text())
    scene = "scene"  # the sample's scene.tif, or the tiny synthetic scene given as inputs
    label = run / "pred" / f"{scene}_label.tif"
    with rasterio.open(label) as ds:
        pred = ds.read(1)
        assert ds.crs is not None and pred.max() < meta["num_classes"]
    report = json.loads((run / "report" / "report.json").read_text())
    assert 0.0 <= report["summary"]["overall_accuracy"] <= 1.0
    assert (run / "quicklook.png").stat().st_size > 1000
    assert list((run / "vectors").glob("*.gpkg"))


def test_unknown_keys_are_rejected_with_the_valid_ones(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sample: {size: 64}\ntraning: {epochs: 1}\n")
    assert main([str(bad), "--out", str(tmp_path / "o")]) == 2  # a bad pipeline file is bad usage
    err = capsys.readouterr().err
    assert err.startswith("error:") and "traning" in err and "train" in err
    bad.write_text("sample: {size: 64}\ntile: {sise: 64}\n")
    assert main([str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "step 'tile': unknown key(s) sise" in err and "size" in err


def test_missing_inputs_are_refused_before_any_step(tmp_path, capsys):
    doc = tmp_path / "p.yaml"
    doc.write_text("inputs: {scenes: [missing.tif], labels: [missing_labels.tif]}\n")
    assert main([str(doc), "--out", str(tmp_path / "o"), "--steps", "tile"]) == 1
    err = capsys.readouterr().err
    assert err == "error: no such input: missing.tif\n"
    assert not (tmp_path / "o").exists()


def test_failing_step_stops_the_pipeline_naming_the_step(make_raster, tmp_path, capsys):
    scene = make_raster("scene.tif", height=64, width=64)
    (tmp_path / "labels.tif").write_text("not a raster")
    doc = tmp_path / "p.yaml"
    doc.write_text(f"inputs: {{scenes: [{scene}], labels: [{tmp_path / 'labels.tif'}]}}\ntile: {{size: 32}}\n")
    assert main([str(doc), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: step 'tile': ") and "labels.tif" in err[0], err
    assert not (tmp_path / "o" / "bundle").exists()  # train never ran


def test_set_into_a_non_mapping_is_refused(tmp_path, capsys):
    doc = tmp_path / "p.yaml"
    doc.write_text("sample: {size: 64}\nvectorize: false\n")
    assert main([str(doc), "--out", str(tmp_path / "o"), "--set", "vectorize.min-area=2"]) == 2
    assert "'vectorize' is not a mapping" in capsys.readouterr().err
