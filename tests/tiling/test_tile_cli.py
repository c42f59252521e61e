"""``python -m geoseg.tile`` through its entry point: bad inputs, config files, kill + --resume."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import shapely
from affine import Affine

from geoseg.cli.tile import main
from geoseg.io.classes import ClassMap, index_to_color
from geoseg.io.vector import write_vector

from factories import DEFAULT_CRS, DEFAULT_TRANSFORM, write_raster

ROOT = Path(__file__).resolve().parents[2]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture
def scene(make_raster):
    return make_raster("scene.tif", height=64, width=64, bands=3, nodata=0)


def test_cli_success_and_summary(scene, tmp_path, capsys):
    lab = write_raster(tmp_path / "lab.tif", np.ones((64, 64), np.uint8))
    rc = main([str(scene), "--labels", str(lab), "--out", str(tmp_path / "ds"), "--size", "32", "--stride", "16",
               "--classes", "bg,thing", "--bands", "3,1", "--compress", "deflate", "--quiet"])
    assert rc == 0 and capsys.readouterr().out == ""
    rc = main([str(scene), "--labels", str(lab), "--out", str(tmp_path / "ds"), "--size", "32", "--overwrite"])
    out = capsys.readouterr().out
    assert rc == 0 and "Wrote 4 patches (train 3, val 1)" in out and str(tmp_path / "ds") in out


@pytest.mark.parametrize("case", [
    "missing", "not_raster", "nocrs_vector", "unwarpable", "no_overlap", "no_attribute", "too_small",
    "stride0", "stride_gt_size", "palette", "exists", "unpaired", "bad_config_key",
])
def test_cli_bad_input(case, scene, tmp_path, capsys):
    out = str(tmp_path / "ds")
    argv = [str(scene), "--out", out, "--size", "32"]
    expect = ""
    if case == "missing":
        argv[0], expect = str(tmp_path / "nope.tif"), "no such file"
    elif case == "not_raster":
        (tmp_path / "text.tif").write_text("hello")
        argv[0], expect = str(tmp_path / "text.tif"), "not a readable raster"
    elif case == "nocrs_vector":
        argv[0] = str(write_raster(tmp_path / "plain.tif", np.ones((1, 64, 64), np.uint8), crs=None,
                                   transform=Affine.identity()))
        write_vector(tmp_path / "v.gpkg", [shapely.box(0, 0, 9, 9)], {"class_id": np.array([1])}, crs=DEFAULT_CRS)
        argv += ["--labels", str(tmp_path / "v.gpkg"), "--label-field", "class_id"]
        expect = "has no CRS"
    elif case == "unwarpable":
        lab = write_raster(tmp_path / "lab.tif", np.ones((50, 50), np.uint8), crs=None, transform=Affine.identity())
        argv += ["--labels", str(lab)]
        expect = "cannot warp labels"
    elif case == "no_overlap":
        lab = write_raster(tmp_path / "lab.tif", np.ones((64, 64), np.uint8),
                           transform=DEFAULT_TRANSFORM * Affine.translation(0, 5000))
        argv += ["--labels", str(lab)]
        expect = "not overlap"
    elif case == "no_attribute":
        write_vector(tmp_path / "v.gpkg", [shapely.box(500000, 4649750, 500010, 4649770)],
                     {"cls": np.array([1])}, crs=DEFAULT_CRS)
        argv += ["--labels", str(tmp_path / "v.gpkg"), "--label-field", "class_id"]
        expect = "no attribute 'class_id'; attributes are: cls"
    elif case == "too_small":
        argv[argv.index("--size") + 1], expect = "100", "smaller than --size 100 (use --pad"
    elif case == "stride0":
        argv += ["--stride", "0"]
        expect = "--stride must be > 0"
    elif case == "stride_gt_size":
        argv += ["--stride", "40"]
        expect = "--allow-gaps"
    elif case == "palette":
        classes = ClassMap.from_names(["a", "b"])
        classes.save(tmp_path / "pal.json")
        rgb = index_to_color(np.zeros((64, 64), np.uint8), classes)
        rgb[:, 0, :5] = 77
        argv += ["--labels", str(write_raster(tmp_path / "rgb.tif", rgb)), "--palette", str(tmp_path / "pal.json")]
        expect = "1 color(s) not in the palette: (77,77,77): 5 px"
    elif case == "exists":
        os.makedirs(out)
        Path(out, "dataset.json").write_text("{}")
        expect = "output exists"
    elif case == "unpaired":
        (tmp_path / "scenes").mkdir()
        (tmp_path / "labs").mkdir()
        for name in ("a", "b"):
            write_raster(tmp_path / "scenes" / f"{name}.tif", np.ones((1, 64, 64), np.uint8))
        write_raster(tmp_path / "labs" / "a.tif", np.ones((64, 64), np.uint8))
        write_raster(tmp_path / "labs" / "c.tif", np.ones((64, 64), np.uint8))
        argv = [str(tmp_path / "scenes"), "--labels", str(tmp_path / "labs"), "--out", out, "--size", "32"]
        expect = "scenes without labels: " + str(tmp_path / "scenes" / "b.tif")
    elif case == "bad_config_key":
        (tmp_path / "c.yaml").write_text("size: 32\nstrid: 16\n")
        argv += ["--config", str(tmp_path / "c.yaml")]
        expect = "unknown key(s) strid"
    capsys.readouterr()  # fixture-writing warnings
    assert main(argv) == (2 if case == "bad_config_key" else 1)  # a bad config file is bad usage
    msg = _err(capsys)
    assert expect in msg, msg
    if case != "exists":
        assert not Path(out, "index.csv").exists()


def test_cli_resume_refuses_other_parameters(scene, tmp_path, capsys):
    out = str(tmp_path / "ds")
    assert main([str(scene), "--out", out, "--size", "32", "--quiet"]) == 0
    assert main([str(scene), "--out", out, "--size", "16", "--resume", "--quiet"]) == 1
    assert "--resume with other parameters" in _err(capsys)
    assert main([str(scene), "--out", out, "--size", "32", "--resume", "--overwrite"]) == 2  # bad usage
    assert "exclude each other" in _err(capsys)


def test_cli_allow_gaps_and_config(scene, tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(f"scenes: [{scene}]\nout: {tmp_path / 'ds'}\nsize: 16\nstride: 40\n"
                                     "allow-gaps: true\nval_fraction: 0\nquiet: true\n")
    assert main(["--config", str(tmp_path / "c.yaml")]) == 0
    with open(tmp_path / "ds" / "index.csv") as fh:
        rows = list(csv.DictReader(fh))
    # Gaps between 16 and 40, last window still snapped to the edge (48).
    assert [(int(r["row_off"]), int(r["col_off"])) for r in rows] == [(r, c) for r in (0, 40, 48) for c in (0, 40, 48)]


def test_cli_help_is_fast_and_light():
    code = "import sys; from geoseg.tile import main\ntry:\n main(['--help'])\nexcept SystemExit: pass\n" \
           "assert 'tensorflow' not in sys.modules and 'dask.distributed' not in sys.modules, 'heavy import'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--label-field" in r.stdout


def test_killed_run_resumes_to_the_same_dataset(make_raster, tmp_path):
    scene = make_raster("scene.tif", height=320, width=320, bands=2, nodata=0)
    lab = write_raster(tmp_path / "lab.tif", (np.arange(320 * 320).reshape(320, 320) % 5).astype(np.uint8))
    args = [str(scene), "--labels", str(lab), "--size", "16", "--batch-size", "20", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    part = tmp_path / "part"
    cmd = [sys.executable, "-m", "geoseg.tile", *args, "--out", str(part)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = part / ".journal.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 40:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (part / "index.csv").exists() and journal.exists()
    assert main([*args, "--out", str(part), "--resume"]) == 0
    full_rows = (tmp_path / "full" / "index.csv").read_text()
    assert (part / "index.csv").read_text() == full_rows
    assert (part / "dataset.json").read_text() == (tmp_path / "full" / "dataset.json").read_text()
    with open(part / "index.csv") as fh:
        for r in csv.DictReader(fh):
            for key in ("image", "label"):
                assert (part / r[key]).read_bytes() == (tmp_path / "full" / r[key]).read_bytes()
    assert not list(part.rglob("*.tmp-*"))
