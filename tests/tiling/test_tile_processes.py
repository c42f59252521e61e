"""Local worker processes (many small patches): the same dataset as one worker, and errors in a worker
reach the command as one ``error:`` line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geoseg.cli.tile import main
from geoseg.errors import UnreadableRasterError
from geoseg.runtime import processes
from geoseg.tiling import tiler
from geoseg.tiling.plan import plan_scenes
from geoseg.tiling.tiler import TileConfig, local_processes, run_tiling

from factories import write_raster


def _files(folder: Path) -> dict[str, bytes]:
    """Every patch, index, list and dataset.json (the .gpkg files carry their write time)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".gpkg"}


def test_when_local_workers_are_processes(monkeypatch):
    cfg = TileConfig(scenes=("a.tif",), out="o", size=256, workers=2)
    monkeypatch.setattr(processes, "_COMMAND", False)  # pytest's main module is a file: a script
    assert not local_processes(cfg, 10_000)  # auto never spawns workers that would rerun a script
    monkeypatch.setattr(processes, "_COMMAND", True)  # a geoseg command (cli.common.make_main marks it)
    assert local_processes(cfg, 512) and not local_processes(cfg, 511)  # 256 windows per worker
    assert not local_processes(TileConfig(scenes=("a.tif",), out="o", size=512, workers=2), 10_000)
    assert not local_processes(TileConfig(scenes=("a.tif",), out="o", size=256, workers=1), 10_000)
    assert not local_processes(TileConfig(scenes=("a.tif",), out="o", size=256, workers=2,
                                          scheduler="tcp://127.0.0.1:1"), 10_000)
    # --pool overrides the choice
    assert local_processes(TileConfig(scenes=("a.tif",), out="o", size=1024, workers=2, pool="processes"), 4)
    assert not local_processes(TileConfig(scenes=("a.tif",), out="o", size=64, workers=2, pool="threads"), 10_000)
    assert not local_processes(TileConfig(scenes=("a.tif",), out="o", size=64, workers=1, pool="processes"), 10_000)


def test_processes_give_the_one_worker_dataset(make_raster, tmp_path, monkeypatch):
    scenes = [make_raster(f"s{i}.tif", height=96, width=128, bands=3, nodata=0, seed=i) for i in range(2)]
    labels = [write_raster(tmp_path / f"l{i}.tif", (np.arange(96 * 128).reshape(96, 128) % 5).astype(np.uint8))
              for i in range(2)]
    common = dict(labels=tuple(map(str, labels)), size=32, stride=24, val_fraction=0.25, split="spatial",
                  batch_size=7, quiet=True)
    one = run_tiling(TileConfig(scenes=tuple(map(str, scenes)), out=str(tmp_path / "one"), **common))
    monkeypatch.setattr(tiler, "PROCESS_MIN_WINDOWS_PER_WORKER", 1)  # auto picks processes for this small run
    monkeypatch.setattr(processes, "_COMMAND", True)
    cfg = TileConfig(scenes=tuple(map(str, scenes)), out=str(tmp_path / "procs"), workers=2, **common)
    assert local_processes(cfg, 2)
    procs = run_tiling(cfg)
    assert procs.patches == one.patches and sum(one.patches.values()) > 20
    assert _files(tmp_path / "procs") == _files(tmp_path / "one")
    # The pool is how, not what: a run resumed with other workers and pool is accepted, same dataset.
    monkeypatch.undo()
    args = [*map(str, scenes), "--labels", *map(str, labels), "--size", "32", "--stride", "24", "--val-fraction",
            "0.25", "--split", "spatial", "--batch-size", "7", "--quiet", "--out", str(tmp_path / "cli")]
    assert main([*args, "--workers", "2", "--pool", "processes"]) == 0
    assert _files(tmp_path / "cli") == _files(tmp_path / "one")
    assert main([*args, "--resume", "--workers", "3", "--pool", "threads"]) == 0
    assert _files(tmp_path / "cli") == _files(tmp_path / "one")


def test_error_in_a_worker_process_is_one_error_line(tmp_path, capsys):
    # A header GDAL opens, tiles cut off the end of the file: reading them fails in the worker.
    data = np.random.default_rng(0).integers(1, 255, (256, 256), dtype=np.uint8)
    scene = write_raster(tmp_path / "cut.tif", data, tiled=True, blockxsize=64, blockysize=64)
    os.truncate(scene, os.path.getsize(scene) - 3 * 64 * 64)
    cfg = TileConfig(scenes=(str(scene),), out=str(tmp_path / "api"), size=64, workers=2, pool="processes",
                     quiet=True)
    plans = plan_scenes(cfg)[0]  # the plan (headers only) passes: the failure is the workers' read
    assert local_processes(cfg, sum(len(p.windows) for p in plans))
    out = tmp_path / "ds"
    assert main([str(scene), "--out", str(out), "--size", "64", "--workers", "2", "--pool", "processes",
                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "cut.tif" in err[0], err
    assert not (out / "dataset.json").exists() and not (out / "index.csv").exists()
    with pytest.raises(UnreadableRasterError, match="cut.tif"):
        run_tiling(cfg)


def test_script_without_main_guard_gets_an_error_that_says_so(make_raster, tmp_path):
    """A spawned worker imports the caller's main module: unguarded, the script runs again in it and the
    worker never takes its task; the caller gets a WorkerProcessError naming the guard, not a hang."""
    scene = make_raster("s.tif", height=64, width=64, bands=1, nodata=0)
    script = tmp_path / "unguarded.py"
    script.write_text("from geoseg.tiling.tiler import TileConfig, run_tiling\n"
                      f"run_tiling(TileConfig(scenes=({str(scene)!r},), out={str(tmp_path / 'ds')!r}, size=16,"
                      " workers=2, pool='processes', quiet=True, overwrite=True))\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(tiler.__file__).parents[2])})
    assert proc.returncode != 0
    assert "WorkerProcessError" in proc.stderr and "if __name__ ==" in proc.stderr, proc.stderr[-2000:]
