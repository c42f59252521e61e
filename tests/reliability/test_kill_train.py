"""A training run killed (SIGKILL) at a random, seeded point after its first checkpoint and then resumed
ends with the same weights and history, bit for bit, as an uninterrupted run (seeded, CPU, fixed --epochs).

Kill points are counted in events: the end of each training batch and each file a checkpoint,
history or curve write renames into place. The reference run lists its events; the kill is drawn
from a seeded generator among those after the first ``state.json``: in the middle of an epoch (after
a batch), or right after a weights / optimizer file is renamed but before the ``state.json`` that
names it.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from geoseg.cli.tile import main as tile
from geoseg.io.atomic import LOCK_FILE, is_temp_name

from factories import write_raster

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

#: ``KILLER K EVENTS_JSON ARGS...``: runs ``geoseg train ARGS``, SIGKILLing itself at event K (0: never),
#: and writes the events it saw to EVENTS_JSON when it ends normally.
KILLER = textwrap.dedent("""
    import json, os, signal, sys
    k, log, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    from geoseg.training import callbacks
    events = []
    def event(name):
        events.append(name)
        if len(events) == k:
            os.kill(os.getpid(), signal.SIGKILL)
    real_replace = callbacks._replace
    def replace(tmp, final):
        real_replace(tmp, final)
        event("write " + final.name)
    callbacks._replace = replace
    def on_train_batch_end(self, batch, logs=None):
        event(f"batch {batch}")
    callbacks.CheckpointState.on_train_batch_end = on_train_batch_end
    from geoseg.cli.train import main
    rc = main(argv)
    with open(log, "w") as fh:
        json.dump(events, fh)
    sys.exit(rc)
""")

TRAIN = ["--model", "unet", "--model-args", "encoder_depth=2,encoder_filters=4,dropout=0.3,batch_norm=true",
         "--epochs", "3", "--batch-size", "4", "--lr", "0.01", "--seed", "5", "--no-tensorboard", "--quiet"]


def _run(k: int, events: Path, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", KILLER, str(k), str(events), *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A real tiled dataset: 4-band scene whose pixel values follow 3 label classes, 32-px patches."""
    d = tmp_path_factory.mktemp("train_kill")
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:128, 0:160]
    labels = (((yy // 20) + (xx // 28)) % 3).astype(np.uint8)
    means = np.array([[60, 60, 60, 60], [190, 70, 60, 140], [60, 170, 90, 30]], np.float64)
    img = np.clip(means[labels].transpose(2, 0, 1) + rng.normal(0, 15, (4, 128, 160)), 1, 255).astype(np.uint8)
    scene = write_raster(d / "scene.tif", img, nodata=0)
    lab = write_raster(d / "labels.tif", labels, nodata=255)
    out = d / "ds"
    assert tile([str(scene), "--labels", str(lab), "--size", "32", "--stride", "32", "--split", "spatial",
                 "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> tuple[Path, list[str]]:
    """An uninterrupted run and the events it went through."""
    d = tmp_path_factory.mktemp("train_ref")
    proc = _run(0, d / "events.json", [str(dataset), "--out", str(d / "bundle"), *TRAIN])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d / "bundle", json.loads((d / "events.json").read_text())


def _h5_arrays(f: h5py.File) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _weights(bundle: Path) -> dict[str, np.ndarray]:
    """Every array of the bundle's model and of the checkpoint files its state.json names."""
    with zipfile.ZipFile(bundle / "model.keras") as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        arrays = {f"model/{k}": v for k, v in _h5_arrays(f).items()}
    state = json.loads((bundle / "checkpoints" / "state.json").read_text())
    for key, name in state["files"].items():
        path = bundle / "checkpoints" / name
        if name.endswith(".h5"):
            with h5py.File(path) as f:
                arrays.update({f"{key}/{k}": v for k, v in _h5_arrays(f).items()})
        else:
            with np.load(path) as npz:
                arrays.update({f"{key}/{k}": npz[k] for k in npz.files})
    return arrays


@pytest.mark.parametrize("where", ["mid_epoch", "between_checkpoint_files"])
def test_train_killed_at_a_random_point_resumes_bit_exact(where, dataset, reference, tmp_path):
    ref, events = reference
    first_checkpoint = events.index("write state.json") + 1  # events counted from 1
    later = list(range(first_checkpoint + 1, len(events) + 1))
    prefixes = ("batch",) if where == "mid_epoch" else ("write last-", "write best-")  # state.json not yet
    later = [k for k in later if events[k - 1].startswith(prefixes)]
    k = random.Random(f"{where}-3").choice(later)
    out = tmp_path / "bundle"
    killed = _run(k, tmp_path / "events.json", [str(dataset), "--out", str(out), *TRAIN])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "geoseg.json").exists() and (out / LOCK_FILE).exists()  # died holding the lock

    resumed = subprocess.run([sys.executable, "-m", "geoseg.train", str(dataset), "--out", str(out), "--resume",
                              *TRAIN], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                     "TF_CPP_MIN_LOG_LEVEL": "3"},
                             capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, (events[k - 1], resumed.stderr[-3000:])

    a, b = _weights(ref), _weights(out)
    assert sorted(a) == sorted(b) and len(a) > 20
    for name in a:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), (events[k - 1], name)
    for name in ("history.csv", "history.json"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), (events[k - 1], name)
    sa, sb = (json.loads((d / "checkpoints" / "state.json").read_text()) for d in (ref, out))
    assert sa["history"] == sb["history"] and sa["files"] == sb["files"] and sb["epoch"] == 3
    ma, mb = (json.loads((d / "geoseg.json").read_text()) for d in (ref, out))
    assert ma["metrics"] == mb["metrics"] and ma["training"]["best_epoch"] == mb["training"]["best_epoch"]
    # nothing of the killed run is left: no temporary file, no lock, no older snapshot
    left = [p.name for p in out.rglob("*") if is_temp_name(p.name) or p.name == LOCK_FILE]
    assert not left, left
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == sorted({"state.json", *sb["files"].values()})
