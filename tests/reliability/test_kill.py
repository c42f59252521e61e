"""A run killed (SIGKILL) at a random, seeded point and then resumed gives the same bytes as an
uninterrupted run: tile and predict.

The kill point is the k-th patch write (tile) or row-block write (predict), with k drawn from a
seeded generator between 1 and the number of writes an uninterrupted run makes (counted on the
reference run), so the run always dies part-way and the test is reproducible.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from geoseg.cli.predict import main as predict
from geoseg.cli.tile import main as tile
from geoseg.inference import writers
from geoseg.io.atomic import LOCK_FILE, is_temp_name
from geoseg.tiling import writer as tile_writer

from factories import write_raster

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

#: Runs a command, SIGKILLing the process at the k-th call of ``module.function`` (``function`` may be
#: ``Class.method``).
KILLER = textwrap.dedent("""
    import importlib, os, signal, sys, threading
    module, function, k, command = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    mod = importlib.import_module(module)
    *owners, function = function.split(".")
    for name in owners:
        mod = getattr(mod, name)
    real, calls, lock = getattr(mod, function), [0], threading.Lock()
    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        with lock:
            calls[0] += 1
            if calls[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(mod, function, wrapped)
    sys.exit(importlib.import_module(command).main(sys.argv[5:]))
""")


def _count_calls(monkeypatch, module, name: str) -> list[int]:
    real, calls = getattr(module, name), [0]

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def _kill_at(k: int, module: str, function: str, command: str, argv: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", KILLER, module, function, str(k), command, *argv], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_same_outputs(ref: Path, out: Path, skip_suffixes: tuple[str, ...] = ()) -> None:
    a, b = _all_files(ref), _all_files(out)
    assert sorted(a) == sorted(b), set(a) ^ set(b)
    assert not [n for n in b if is_temp_name(Path(n).name) or Path(n).name == LOCK_FILE]
    for name in a:
        if not name.endswith(skip_suffixes):
            assert a[name] == b[name], name


@pytest.mark.parametrize("seed", [11, 12])
def test_tile_killed_at_a_random_point_resumes_to_the_same_dataset(seed, tmp_path, monkeypatch):
    rng = np.random.default_rng(seed)
    scene = write_raster(tmp_path / "scene.tif", rng.integers(1, 255, (3, 96, 96)).astype(np.uint8), nodata=0)
    labels = write_raster(tmp_path / "labels.tif", rng.integers(0, 4, (96, 96)).astype(np.uint8), nodata=255)
    args = [str(scene), "--labels", str(labels), "--size", "16", "--stride", "12", "--batch-size", "8",
            "--split", "spatial", "--quiet"]
    calls = _count_calls(monkeypatch, tile_writer, "write_patch")
    assert tile([*args, "--out", str(tmp_path / "ref")]) == 0
    monkeypatch.undo()
    k = random.Random(seed).randint(1, calls[0] - 1)
    out = tmp_path / "killed"
    _kill_at(k, "geoseg.tiling.writer", "write_patch", "geoseg.cli.tile", [*args, "--out", str(out)])
    assert (out / ".journal.jsonl").exists() and not (out / "dataset.json").exists()
    assert tile([*args, "--out", str(out), "--resume"]) == 0
    # GeoPackages hold their write time: compared by content through the index they mirror
    _assert_same_outputs(tmp_path / "ref", out, skip_suffixes=(".gpkg",))


def test_predict_killed_at_a_random_point_resumes_to_the_same_files(corpus, tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    scenes = [str(write_raster(tmp_path / f"{n}.tif", rng.integers(1, 255, (4, 130, 70)).astype(np.uint8),
                               nodata=0)) for n in "abc"]
    args = ["--model", corpus.bundle, *scenes, "--blend", "spline", "--quiet"]
    calls = _count_calls(monkeypatch, writers.PredictionWriter, "write")
    assert predict([*args, "--out", str(tmp_path / "ref")]) == 0
    monkeypatch.undo()
    k = random.Random(7).randint(1, calls[0] - 1)
    out = tmp_path / "killed"
    _kill_at(k, "geoseg.inference.writers", "PredictionWriter.write", "geoseg.cli.predict",
             [*args, "--out", str(out)])
    names = {p.name for p in out.iterdir()}
    assert any(is_temp_name(n) for n in names) and LOCK_FILE in names  # died mid-scene, holding the lock
    assert predict([*args, "--out", str(out), "--resume"]) == 0
    _assert_same_outputs(tmp_path / "ref", out)
