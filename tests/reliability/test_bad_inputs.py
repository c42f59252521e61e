"""Hostile input never crashes: every command, fed a bad input or bad usage, exits 1 (user error) or
2 (bad usage) with exactly one ``error:`` line on stderr, no traceback, and leaves nothing behind.

One table row per case: the command line (``{name}`` = a corpus file of conftest.py, ``{out}`` =
a fresh output path that must still be absent afterwards), the exit code, and a piece of the message.
Commands run in-process through their ``main(argv)``.
"""

from __future__ import annotations

import hashlib
import importlib
import shlex
from pathlib import Path

import pytest

from geoseg.__main__ import COMMANDS

# (id, command line, exit code, expected piece of the error line)
CASES = [
    # --- tile -----------------------------------------------------------------------------
    ("tile-missing-scene", "tile {absent} --out {out}", 1, "no such file"),
    ("tile-not-a-raster", "tile {garbage} --out {out}", 1, "not a readable raster"),
    ("tile-cut-scene", "tile {scene_cut} --size 16 --out {out}", 1, "scene_cut.tif: cannot read"),
    ("tile-cut-scene-mid-run", "tile {scene1_cut} --size 16 --out {out}", 1, "cannot read window col 0, row 32"),
    ("tile-cut-labels", "tile {scene} --labels {labels_cut} --size 16 --out {out}", 1, "cannot read window"),
    ("tile-float-labels", "tile {scene} --labels {labels_float} --size 32 --out {out}", 1, "0.5 (256 px)"),
    ("tile-negative-labels", "tile {scene} --labels {labels_negative} --size 32 --out {out}", 1, "-3 (256 px)"),
    ("tile-labels-300", "tile {scene} --labels {labels_300} --size 32 --out {out}", 1, "value(s) 300"),
    ("tile-labels-beyond-classes", "tile {scene} --labels {labels} --classes a,b --size 32 --out {out}", 1,
     "beyond the 2 classes"),
    ("tile-labels-2-bands", "tile {scene} --labels {labels_2band} --size 32 --out {out}", 1, "has 2 bands"),
    ("tile-rgb-labels-no-palette", "tile {scene} --labels {labels_rgb} --size 32 --out {out}", 1, "--palette"),
    ("tile-rgb-labels-unknown-colours", "tile {scene} --labels {labels_rgb} --palette {palette} --size 32 "
     "--out {out}", 1, "not in the palette"),
    ("tile-labels-no-overlap", "tile {scene} --labels {labels_far} --size 32 --out {out}", 1, "does not overlap"),
    ("tile-labels-no-georef-other-size", "tile {scene} --labels {labels_bare} --size 32 --out {out}", 1,
     "no georeference"),
    ("tile-empty-vector", "tile {scene} --labels {vector_empty} --size 32 --out {out}", 1, "are empty"),
    ("tile-vector-no-class-attribute", "tile {scene} --labels {vector_noattr} --size 32 --out {out}", 1,
     "give --label-field"),
    ("tile-vector-missing-field", "tile {scene} --labels {vector} --label-field nope --size 32 --out {out}", 1,
     "no attribute 'nope'"),
    ("tile-vector-text-no-classes", "tile {scene} --labels {vector_text} --label-field kind --size 32 --out {out}", 1,
     "holds text values"),
    ("tile-not-a-vector", "tile {scene} --labels {vector_garbage} --size 32 --out {out}", 1,
     "not a readable vector file"),
    ("tile-utm-geojson-as-lonlat", "tile {scene} --labels {vector_utm_geojson} --size 32 --out {out}", 1,
     "--labels-crs"),
    ("tile-bad-labels-crs", "tile {scene} --labels {vector} --labels-crs EPSG:999999 --size 32 --out {out}", 1,
     "is not a CRS"),
    ("tile-scene-too-small", "tile {tiny_scene} --size 32 --out {out}", 1, "--pad"),
    ("tile-size-zero", "tile {scene} --size 0 --out {out}", 1, "--size"),
    ("tile-band-out-of-range", "tile {scene} --bands 9 --size 32 --out {out}", 1, "band 9 requested"),
    ("tile-out-under-a-file", "tile {scene} --size 32 --out {afile}/ds", 1, "is a file, not a folder"),
    ("tile-out-is-a-file", "tile {scene} --size 32 --out {afile}", 1, "a file is there"),
    ("tile-out-read-only", "tile {scene} --size 32 --out /proc/geoseg-test", 1, "not writable"),
    ("tile-existing-dataset", "tile {scene} --size 32 --out {existing_dir}", 1, "output exists"),
    ("tile-no-out", "tile {scene} --size 32", 2, "--out DATASET is required"),
    ("tile-overwrite-and-resume", "tile {scene} --out {out} --overwrite --resume", 2, "exclude each other"),
    ("tile-bad-mode", "tile {scene} --mode zigzag --out {out}", 2, "invalid choice"),
    ("tile-size-not-a-number", "tile {scene} --size abc --out {out}", 2, "invalid int value"),
    ("tile-config-unknown-key", "tile {scene} --out {out} --config {cfg_unknown}", 2, "bogus_key"),
    ("tile-config-bad-value", "tile {scene} --out {out} --config {cfg_bad_value}", 2, "'abc'"),
    ("tile-config-not-yaml", "tile {scene} --out {out} --config {cfg_not_yaml}", 2, "not_yaml.yaml"),
    ("tile-config-missing", "tile {scene} --out {out} --config {absent}.yaml", 2, "absent.tif.yaml"),
    # --- train (command line and inputs only) -----------------------------------------------
    ("train-no-out", "train {empty_dir}", 2, "--out BUNDLE_DIR is required"),
    ("train-missing-dataset", "train {absent}_ds --out {out}", 1, "no such dataset folder"),
    ("train-not-a-dataset", "train {empty_dir} --out {out}", 1, "not a geoseg dataset"),
    ("train-out-under-a-file", "train {empty_dir} --out {afile}/bundle", 1, "is a file, not a folder"),
    ("train-bad-lr", "train {empty_dir} --out {out} --lr -1", 1, "--lr must be > 0"),
    ("train-unknown-loss", "train {empty_dir} --out {out} --loss bogus", 1, "unknown loss 'bogus'"),
    ("train-epochs-not-a-number", "train {empty_dir} --out {out} --epochs abc", 2, "invalid int value"),
    ("train-bad-optimizer", "train {empty_dir} --out {out} --optimizer bogus", 2, "invalid choice"),
    ("train-config-unknown-key", "train {empty_dir} --out {out} --config {cfg_unknown}", 2, "bogus_key"),
    # --- predict ------------------------------------------------------------------------------
    ("predict-no-model", "predict {scene} --out {out}", 2, "--model BUNDLE_DIR is required"),
    ("predict-no-out", "predict {scene} --model {bundle}", 2, "--out DIR is required"),
    ("predict-missing-bundle", "predict {scene} --model {absent}_bundle --out {out}", 1, "no such bundle"),
    ("predict-bundle-without-json", "predict {scene} --model {bundle_nojson} --out {out}", 1, "no geoseg.json"),
    ("predict-bundle-bad-json", "predict {scene} --model {bundle_badjson} --out {out}", 1, "corrupt"),
    ("predict-model-cut-off", "predict {scene} --model {bundle_cut} --out {out}", 1, "corrupt or cut off"),
    ("predict-missing-scene", "predict {absent} --model {bundle} --out {out}", 1, "no such file"),
    ("predict-not-a-raster", "predict {garbage} --model {bundle} --out {out}", 1, "not a readable raster"),
    ("predict-cut-scene", "predict {scene_cut} --model {bundle} --out {out}", 1, "cannot read window"),
    ("predict-band-count", "predict {scene3} --model {bundle} --out {out}", 1, "has 3 band(s)"),
    ("predict-dtype-mismatch", "predict {scene_u16} --model {bundle_stats} --out {out}", 1, "dtype uint16"),
    ("predict-stride-too-large", "predict {scene} --model {bundle} --stride 40 --out {out}", 1,
     "larger than the tile size"),
    ("predict-threshold-not-binary", "predict {scene} --model {bundle} --threshold 0.3 --out {out}", 1,
     "binary models"),
    ("predict-out-under-a-file", "predict {scene} --model {bundle} --out {afile}/pred", 1, "is a file, not a folder"),
    ("predict-out-read-only", "predict {scene} --model {bundle} --out /proc/geoseg-test", 1, "not writable"),
    ("predict-overwrite-and-resume", "predict {scene} --model {bundle} --out {out} --overwrite --resume", 2,
     "exclude each other"),
    ("predict-bad-blend", "predict {scene} --model {bundle} --blend median --out {out}", 2, "invalid choice"),
    # --- evaluate -----------------------------------------------------------------------------
    ("evaluate-no-labels", "evaluate {pred} --num-classes 3", 2, "--labels LABEL"),
    ("evaluate-missing-prediction", "evaluate {absent} --labels {labels} --num-classes 3", 1, "no such file"),
    ("evaluate-prediction-4-bands", "evaluate {scene} --labels {labels} --num-classes 3", 1, "has 4 bands"),
    ("evaluate-cut-labels", "evaluate {pred} --labels {labels_cut} --num-classes 3", 1, "cannot read window"),
    ("evaluate-float-labels", "evaluate {pred} --labels {labels_float} --num-classes 3", 1, "value(s) 0.5"),
    ("evaluate-too-few-classes", "evaluate {pred} --labels {labels} --num-classes 2", 1, "holds class value(s) 2"),
    ("evaluate-empty-vector", "evaluate {pred} --labels {vector_empty} --num-classes 3", 1, "are empty"),
    ("evaluate-field-and-burn-value", "evaluate {pred} --labels {vector} --num-classes 3 --label-field class_id "
     "--burn-value 1", 2, "not allowed with argument"),
    ("evaluate-aoi-and-dataset", "evaluate {pred} --labels {labels} --num-classes 3 --aoi {vector} "
     "--dataset {empty_dir}", 2, "exclude each other"),
    ("evaluate-report-under-a-file", "evaluate {pred} --labels {labels} --num-classes 3 --report {afile}/r", 1,
     "is a file, not a folder"),
    ("evaluate-report-read-only", "evaluate {pred} --labels {labels} --num-classes 3 --report /proc/geoseg-r", 1,
     "not writable"),
    # --- vectorize ----------------------------------------------------------------------------
    ("vectorize-missing-input", "vectorize {absent} --out {out}.gpkg", 1, "no such file"),
    ("vectorize-not-a-raster", "vectorize {garbage} --out {out}.gpkg", 1, "not a readable raster"),
    ("vectorize-cut-input", "vectorize {labels_cut} --out {out}.gpkg", 1, "cannot read window"),
    ("vectorize-4-bands", "vectorize {scene} --out {out}.gpkg", 1, "4 bands"),
    ("vectorize-out-under-a-file", "vectorize {labels} --out {afile}/v.gpkg", 1, "is a file, not a folder"),
    ("vectorize-out-read-only", "vectorize {labels} --out /proc/geoseg-v.gpkg", 1, "not writable"),
    ("vectorize-out-is-a-folder", "vectorize {labels} --out {empty_dir}", 1, "a folder is there"),
    ("vectorize-bad-driver", "vectorize {labels} --driver KML --out {out}.kml", 2, "invalid choice"),
    # --- labels -------------------------------------------------------------------------------
    ("labels-no-action", "labels", 2, "required"),
    ("labels-color2index-no-palette", "labels color2index {labels_rgb} --out {out}.tif", 2, "--palette"),
    ("labels-color2index-unknown-colours", "labels color2index {labels_rgb} --palette {palette} --out {out}.tif", 1,
     "not in the palette"),
    ("labels-color2index-missing-palette", "labels color2index {labels_rgb} --palette {absent}.json "
     "--out {out}.tif", 1, "absent.tif.json"),
    ("labels-index2color-cut-input", "labels index2color {labels_cut} --out {out}.tif", 1, "cannot read window"),
    ("labels-index2color-missing-input", "labels index2color {absent} --out {out}.tif", 1, "no such file"),
    ("labels-out-under-a-file", "labels index2color {labels} --out {afile}/x.tif", 1, "is a file, not a folder"),
    ("labels-out-read-only", "labels index2color {labels} --out /proc/geoseg-x.tif", 1, "not writable"),
    ("labels-existing-output", "labels index2color {labels} --out {existing_tif}", 1, "output exists"),
    # --- sample -------------------------------------------------------------------------------
    ("sample-out-under-a-file", "sample {afile}/s --size 64", 1, "is a file, not a folder"),
    ("sample-out-read-only", "sample /proc/geoseg-s --size 64", 1, "not writable"),
    ("sample-size-zero", "sample {out} --size 0", 1, "--size"),
    ("sample-bad-crs", "sample {out} --size 64 --crs EPSG:999999", 1, "EPSG:999999"),
    ("sample-bad-dtype", "sample {out} --dtype complex64", 2, "invalid choice"),
    # --- pipeline -----------------------------------------------------------------------------
    ("pipeline-missing-file", "pipeline {absent}.yaml --out {out}", 2, "absent.tif.yaml"),
    ("pipeline-unknown-key", "pipeline {pl_unknown_key} --out {out}", 2, "bogus"),
    ("pipeline-bad-value", "pipeline {pl_bad_value} --out {out}", 2, "'abc'"),
    ("pipeline-no-inputs", "pipeline {pl_no_inputs} --out {out}", 2, "inputs"),
    ("pipeline-missing-scene", "pipeline {pl_missing_scene} --out {out}", 1, "no such input"),
    ("pipeline-cut-scene", "pipeline {pl_cut_scene} --out {out}", 1, "scene_cut.tif: cannot read"),
    ("pipeline-out-read-only", "pipeline {pl_cut_scene} --out /proc/geoseg-p", 1, "not writable"),
    # --- export ------------------------------------------------------------------------------
    ("export-missing-bundle", "export {absent}_bundle --format stac --out {out}.json", 1, "no such bundle"),
    ("export-bad-resolution", "export {bundle} --resolution -1 --out {out}.onnx", 1, "--resolution must be > 0"),
    ("export-out-under-a-file", "export {bundle} --format stac --out {afile}/x.json", 1, "is a file, not a folder"),
    ("export-bad-format", "export {bundle} --format tflite --out {out}", 2, "invalid choice"),
    # --- quicklook ---------------------------------------------------------------------------
    ("quicklook-missing-scene", "quicklook {absent} --out {out}.png", 1, "no such file"),
    ("quicklook-not-a-raster", "quicklook {garbage} --out {out}.png", 1, "not a readable raster"),
    ("quicklook-no-out", "quicklook {scene}", 2, "--out PNG is required"),
    ("quicklook-nothing-to-draw", "quicklook --out {out}.png", 2, "give a SCENE"),
    ("quicklook-band-out-of-range", "quicklook {scene} --bands 9 --out {out}.png", 1, "band 9"),
    ("quicklook-bad-stretch", "quicklook {scene} --stretch 5 --out {out}.png", 2, "expected two percentiles"),
    ("quicklook-not-png", "quicklook {scene} --out {out}.jpg", 1, "expected a .png file"),
    ("quicklook-out-under-a-file", "quicklook {scene} --out {afile}/x.png", 1, "is a file, not a folder"),
]


def _snapshot(root: Path) -> dict[str, str]:
    """Relative path -> content digest of every file under ``root`` (folders as ``dir``)."""
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


def test_the_corpus_is_large_and_covers_every_command():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
    commands = {c[1].split()[0] for c in CASES}
    assert commands == set(COMMANDS), set(COMMANDS) ^ commands


@pytest.mark.parametrize("name,line,code,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_and_leaves_nothing(name, line, code, message, corpus, tmp_path, capsys):
    out = tmp_path / "out"
    argv = shlex.split(line.format(out=out, **vars(corpus)))
    corpus_root = Path(corpus.scene).parent
    before = _snapshot(corpus_root)
    command = importlib.import_module(COMMANDS[argv[0]][0])
    try:
        rc = command.main(argv[1:])
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert rc == code, err
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], err
    assert "Traceback" not in err, err
    # nothing left behind: no output, no temporary or lock file, the inputs untouched
    assert not list(tmp_path.iterdir()), sorted(p.name for p in tmp_path.iterdir())
    assert _snapshot(corpus_root) == before
