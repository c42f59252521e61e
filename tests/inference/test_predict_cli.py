"""``python -m geoseg.predict`` through its entry point: outputs, errors, --overwrite, --resume, --config."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geoseg.cli.predict import main


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.tags()


def _listing(folder: Path) -> list[str]:
    """Raster outputs in ``folder`` (not the hidden run record ``.geoseg_predict.json``, nor the QGIS/GDAL
    side-cars ``.qml`` and ``.aux.xml``: tests/inference/test_qgis_outputs.py checks those)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.suffix not in (".qml", ".xml"))


def test_cli_writes_label_and_prob_for_each_scene(softmax_bundle_dir, make_raster, tmp_path, capsys):
    a = make_raster("a.tif", height=50, width=40, bands=4, seed=1)
    b = make_raster("b.tif", height=33, width=70, bands=4, seed=2)
    out = tmp_path / "out"
    code = main(["--model", str(softmax_bundle_dir), str(a), str(b), "--out", str(out), "--blend", "gaussian",
                 "--batch-size", "3", "--prob-dtype", "float32"])
    assert code == 0
    assert _listing(out) == ["a_label.tif", "a_prob.tif", "b_label.tif", "b_prob.tif"]
    label, tags = _read(out / "b_label.tif")
    prob, _ = _read(out / "b_prob.tif")
    assert label.shape == (1, 33, 70) and np.array_equal(label[0], prob.argmax(axis=0))
    assert tags["GEOSEG_BLEND"] == "gaussian"
    err = capsys.readouterr().err
    assert "a.tif" in err and "\r" not in err  # the summary; no progress bar when stderr is not a terminal


def test_cli_quiet_prints_nothing(softmax_bundle_dir, make_raster, tmp_path, capsys):
    scene = make_raster("q.tif", height=40, width=40, bands=4)
    assert main(["--model", str(softmax_bundle_dir), str(scene), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_existing_outputs_are_kept_unless_overwrite(softmax_bundle_dir, make_raster, tmp_path, capsys):
    scene = make_raster("s.tif", height=40, width=40, bands=4)
    out = tmp_path / "out"
    args = ["--model", str(softmax_bundle_dir), str(scene), "--out", str(out), "--quiet"]
    assert main(args) == 0
    before = (out / "s_label.tif").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: output exists:") and "s_label.tif" in err and err.count("\n") == 1
    assert (out / "s_label.tif").stat().st_mtime_ns == before
    assert main(args + ["--overwrite"]) == 0
    assert (out / "s_label.tif").stat().st_mtime_ns != before
    assert _listing(out) == ["s_label.tif", "s_prob.tif"]


def _corrupt_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / "model.keras").write_bytes(b"not a zip archive")
    return dst


@pytest.mark.parametrize("case,message", [
    ("missing_bundle", "no such bundle"),
    ("no_json", "bundle has no geoseg.json"),
    ("corrupt_model", "cannot load model"),
    ("band_count", "has 3 band(s); bundle"),
    ("stride_too_large", "--stride 40 is larger than the tile size 32"),
    ("stride_zero", "--stride must be > 0"),
    ("unreadable_scene", "not a readable raster"),
    ("missing_scene", "no such file"),
    ("no_out", "--out DIR is required"),
])
def test_bad_input_is_one_error_line_and_leaves_no_output(softmax_bundle_dir, make_raster, tmp_path, capsys,
                                                         case, message):
    bundle = str(softmax_bundle_dir)
    good = make_raster("good.tif", height=40, width=40, bands=4)
    scenes = [str(good)]
    extra: list[str] = []
    if case == "missing_bundle":
        bundle = str(tmp_path / "nope")
    elif case == "no_json":
        d = tmp_path / "nojson"
        shutil.copytree(softmax_bundle_dir, d)
        (d / "geoseg.json").unlink()
        bundle = str(d)
    elif case == "corrupt_model":
        bundle = str(_corrupt_bundle(softmax_bundle_dir, tmp_path / "corrupt"))
    elif case == "band_count":
        scenes.append(str(make_raster("three.tif", height=40, width=40, bands=3)))
    elif case == "stride_too_large":
        extra = ["--stride", "40"]
    elif case == "stride_zero":
        extra = ["--stride", "0"]
    elif case == "unreadable_scene":
        bad = tmp_path / "bad.tif"
        bad.write_bytes(b"garbage, not a TIFF")
        scenes.append(str(bad))
    elif case == "missing_scene":
        scenes.append(str(tmp_path / "absent.tif"))
    out = tmp_path / "out"
    argv = ["--model", bundle, *scenes, *([] if case == "no_out" else ["--out", str(out)]), *extra]
    assert main(argv) == (2 if case == "no_out" else 1)  # a required option missing: bad usage
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()  # nothing written, not even for the good scene


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--blend", "median", "x.tif"])
    assert exc.value.code == 2


def test_config_file_supplies_options(softmax_bundle_dir, make_raster, tmp_path):
    scene = make_raster("c.tif", height=40, width=40, bands=4)
    cfg = tmp_path / "predict.yaml"
    cfg.write_text(f"model: {softmax_bundle_dir}\nout: {tmp_path / 'out'}\nblend: spline\nno-prob: true\n"
                   f"quiet: true\nscenes: [{scene}]\n")
    assert main(["--config", str(cfg)]) == 0
    assert _listing(tmp_path / "out") == ["c_label.tif"]
    _, tags = _read(tmp_path / "out" / "c_label.tif")
    assert tags["GEOSEG_BLEND"] == "spline"
    bad = tmp_path / "bad.yaml"
    bad.write_text("bogus_key: 1\n")
    assert main(["--config", str(bad), str(scene)]) == 2  # a bad config file is bad usage


KILLER = textwrap.dedent("""
    import os, signal, sys
    from geoseg.inference import writers
    real = writers.PredictionWriter.write
    def write(self, row, label, prob):
        real(self, row, label, prob)
        if self.paths.label.name == "b_label.tif" and row > 0:
            self._flush()  # make sure some of scene b is on disk, then die like `kill -9`
            os.kill(os.getpid(), signal.SIGKILL)
    writers.PredictionWriter.write = write
    from geoseg.cli.predict import main
    sys.exit(main(sys.argv[1:]))
""")


def test_resume_after_kill_gives_the_same_files(softmax_bundle_dir, make_raster, tmp_path):
    scenes = [str(make_raster(f"{n}.tif", height=130, width=50, bands=4, seed=i)) for i, n in enumerate("abc")]
    common = ["--model", str(softmax_bundle_dir), *scenes, "--quiet", "--blend", "spline"]
    ref = tmp_path / "ref"
    assert main(common + ["--out", str(ref)]) == 0

    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", KILLER, *common, "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    names = _listing(out)
    assert {"a_label.tif", "a_prob.tif"} <= set(names) and "b_label.tif" not in names
    assert any(".tmp-" in n and n.startswith("b_") for n in names)  # the killed scene's partial temp files
    a_mtime = (out / "a_label.tif").stat().st_mtime_ns

    assert main(common + ["--out", str(out)]) == 1  # outputs of a exist: refused without --resume/--overwrite
    assert main(common + ["--out", str(out), "--resume"]) == 0
    assert _listing(out) == _listing(ref)
    assert (out / "a_label.tif").stat().st_mtime_ns == a_mtime  # finished scene kept
    for name in _listing(ref):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


@pytest.mark.slow
def test_python_m_predict_prints_no_tensorflow_chatter(identity_bundle_dir, make_raster, tmp_path):
    """TensorFlow's C++ start-up lines (absl, oneDNN, CUDA) never reach stderr: an error detected
    after TensorFlow loaded (the model's input bands) is the only line, a quiet run prints nothing."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    four = make_raster("four.tif", height=40, width=40, bands=4)
    proc = subprocess.run([sys.executable, "-m", "geoseg.predict", "--model", str(identity_bundle_dir), str(four),
                           "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "expects 3" in lines[0], proc.stderr
    three = make_raster("three.tif", height=40, width=40, bands=3)
    proc = subprocess.run([sys.executable, "-m", "geoseg.predict", "--model", str(identity_bundle_dir), str(three),
                           "--out", str(tmp_path / "out"), "--quiet"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert _listing(tmp_path / "out") == ["three_label.tif", "three_prob.tif"]
