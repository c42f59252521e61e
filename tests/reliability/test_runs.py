"""Interrupted or concurrent runs never mix: one run per output folder (a lock naming its holder,
taken over when its process died), ``--resume`` refuses changed parameters, and a killed run's
temporary files are removed by the next run into the folder."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from geoseg.cli.predict import main as predict
from geoseg.cli.tile import main as tile
from geoseg.errors import OutputLockedError
from geoseg.io.atomic import LOCK_FILE, check_writable, is_temp_name, remove_stale_temps
from geoseg.io.lock import acquire_lock, output_lock

ROOT = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent("""
    import sys, time
    from geoseg.io.lock import acquire_lock
    lock = acquire_lock(sys.argv[1], "geoseg predict")
    print("locked", flush=True)
    time.sleep(120)
""")


def _files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())} if folder.exists() else {}


# --- the lock -----------------------------------------------------------------------------------

def test_a_held_lock_refuses_a_second_taker_and_is_gone_after_release(tmp_path):
    first = acquire_lock(tmp_path, "geoseg tile")
    record = json.loads((tmp_path / LOCK_FILE).read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    with pytest.raises(OutputLockedError, match=f"geoseg tile, pid {os.getpid()} on host"):
        acquire_lock(tmp_path, "geoseg predict")  # a second open file description: refused too
    first.release()
    first.release()  # a second release does nothing
    assert not (tmp_path / LOCK_FILE).exists()
    with acquire_lock(tmp_path, "geoseg predict") as again:
        assert again.held and again.stale is None
    assert list(tmp_path.iterdir()) == []


def test_output_lock_removes_the_folder_it_created_when_left_empty(tmp_path):
    with output_lock(tmp_path / "new" / "out", "geoseg predict") as lock:
        assert lock.created and (tmp_path / "new" / "out" / LOCK_FILE).exists()
    assert not (tmp_path / "new" / "out").exists()
    with output_lock(tmp_path / "kept", "geoseg predict"):
        (tmp_path / "kept" / "result.txt").write_text("x")
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["result.txt"]


def test_a_live_run_is_named_and_a_killed_one_taken_over(corpus, tmp_path, capsys, caplog):
    out = tmp_path / "pred"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        args = [corpus.scene, "--model", corpus.bundle, "--out", str(out), "--quiet"]
        assert predict(args) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: output folder {out} is in use by another run")
        assert f"geoseg predict, pid {holder.pid} on host {socket.gethostname()}" in err
        assert list(_files(out)) == [LOCK_FILE]  # nothing written
        # the same for tile, whose folder check would otherwise say "output exists"
        assert tile([corpus.scene, "--size", "32", "--out", str(out), "--quiet"]) == 1
        assert f"pid {holder.pid}" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / LOCK_FILE).exists()  # left by the killed process: stale
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        assert predict(args) == 0
    assert f"taking over the lock of a run that ended without releasing it (geoseg predict, pid {holder.pid}" \
        in caplog.text
    assert not (out / LOCK_FILE).exists()
    assert {"scene_label.tif", "scene_prob.tif"} <= set(_files(out))


# --- resume and temporary files -------------------------------------------------------------------

def test_predict_resume_refuses_changed_parameters_and_lists_them(corpus, tmp_path, capsys):
    out = tmp_path / "pred"
    args = [corpus.scene, "--model", corpus.bundle, "--out", str(out), "--quiet"]
    assert predict(args) == 0
    before = _files(out)
    assert predict(args + ["--resume", "--stride", "8", "--blend", "spline", "--tta"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --resume with other parameters than")
    for change in ("blend: 'mean' before, 'spline' now", "stride: 16 before, 8 now", "tta: False before, True now"):
        assert change in err, err
    assert predict(args + ["--resume", "--no-prob"]) == 1
    assert "no-prob: False before, True now" in capsys.readouterr().err
    assert _files(out) == before  # nothing touched
    assert predict(args + ["--resume", "--batch-size", "3"]) == 0  # batch size does not change outputs
    assert {k: v for k, v in _files(out).items() if not k.startswith(".")} == \
        {k: v for k, v in before.items() if not k.startswith(".")}
    assert predict(args + ["--overwrite", "--stride", "8"]) == 0  # a new run records new parameters
    assert predict(args + ["--resume", "--stride", "8"]) == 0


def test_a_plain_rerun_removes_the_temporary_files_of_a_killed_run(corpus, tmp_path):
    out = tmp_path / "pred"
    out.mkdir()
    stale = ["scene_label.tmp-0123abcd.tif", "scene_prob.tmp-89abcdef.tif", "scene_prob.tmp-89abcdef.tif.aux.xml"]
    for name in stale:
        (out / name).write_bytes(b"half written")
    (out / "notes.tmp-draft.txt").write_text("a user's file, not ours")
    assert predict([corpus.scene, "--model", corpus.bundle, "--out", str(out), "--quiet"]) == 0
    names = set(_files(out))
    assert not names & set(stale) and "notes.tmp-draft.txt" in names
    assert {"scene_label.tif", "scene_prob.tif"} <= names and LOCK_FILE not in names


def test_remove_stale_temps_touches_only_temporary_names(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.tmp-1234abcd.tif", "sub/b.tmp-1234abcd.tif", "a.tmp-1234abcd.tif.ovr", "keep.tmp-12.tif",
                 "keep.tmp-1234abcdx.tif", "keep.tif"):
        (tmp_path / name).write_text("")
    assert remove_stale_temps(tmp_path, recursive=False) == 2
    assert remove_stale_temps(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == \
        ["keep.tif", "keep.tmp-12.tif", "keep.tmp-1234abcdx.tif"]
    assert is_temp_name("x_label.tmp-0a1b2c3d.tif") and not is_temp_name("x.tmp-notes.txt")


def test_check_writable_leaves_nothing_and_accepts_a_new_nested_folder(tmp_path):
    check_writable(tmp_path / "a" / "b" / "c")
    check_writable(tmp_path / "out.gpkg", folder=False)
    assert list(tmp_path.iterdir()) == []
