"""Training callbacks: checkpoints + resume state + early stopping, the history files, the curve PNG.

Checkpoint folder ``OUT/checkpoints/``, one consistent snapshot per epoch:

- ``last-<epoch>.weights.h5`` (``<epoch>`` = 4 digits, 1-based): the weights after that epoch;
- ``last-<epoch>.optimizer.npz``: the optimizer variables in order (``arr_<i>``, including the
  iteration counter that drives the LR schedule) and the random-seed states of the model's
  layers (``seed_<i>``, e.g. dropout), so that a resumed run draws the same numbers;
- ``best-<epoch>.weights.h5``: the weights of the best ``monitor`` value so far;
- ``state.json`` ``{"epoch", "files", "best", "best_epoch", "wait", "smoothed", "best_smoothed",
  "monitor", "stopped_early", "planned_epochs", "seconds", "parameters", "history"}``.

Every file is written under a temporary name and renamed when complete; ``state.json`` is written
last and names (``files``) the weight and optimizer files it goes with, and only then are the
older snapshots deleted. A run killed at any point therefore leaves a ``state.json`` whose files
are complete and belong together; ``--resume`` reads it and continues after ``epoch``.

Early stopping on a small validation set must not end a run that is still improving: one lucky
epoch early on would otherwise start the patience clock, and the epoch-to-epoch noise of a few
validation patches is often larger than the progress per epoch. So patience counts epochs
without a new best of the *smoothed* monitor (exponential moving average, weight
:data:`SMOOTHING` on the newest epoch), and stopping is not allowed before
:data:`MIN_FRACTION` of the planned epochs (the LR schedule does most of its work in its second
half). The best checkpoint still follows the raw monitor value.

History files ``OUT/history.csv`` and ``OUT/history.json`` (:class:`HistoryFiles`): one row per
epoch, ``epoch`` 1-based (as in ``state.json``, ``best_epoch`` and the progress lines) then the
epoch logs by name; both are rewritten from the state's history, so they always agree with it and
with each other.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

import keras
import numpy as np

from geoseg.training.resume import STATE_FILE, read_state

#: Names of the per-epoch snapshot files (``{epoch:04d}``), pruned when no longer named by the state.
_SNAPSHOT_PREFIXES = ("last-", "best-")

#: Weight of the newest epoch in the smoothed monitor used for early stopping.
SMOOTHING = 0.3
#: Early stopping may end a run only after this share of its planned epochs.
MIN_FRACTION = 0.5


def last_weights_name(epoch: int) -> str:
    return f"last-{epoch:04d}.weights.h5"


def last_optimizer_name(epoch: int) -> str:
    return f"last-{epoch:04d}.optimizer.npz"


def best_weights_name(epoch: int) -> str:
    return f"best-{epoch:04d}.weights.h5"


def _tmp_name(final: Path) -> Path:
    # Keras insists on the ".weights.h5" ending, so the marker goes in front of the name (in the form
    # geoseg.io.atomic.is_temp_name knows, so that remove_stale_temps clears what a killed run left).
    return final.with_name(f".tmp-{uuid.uuid4().hex[:8]}.{final.name}")


def _replace(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)


def save_weights_atomic(model, path: Path) -> None:
    tmp = _tmp_name(path)
    try:
        model.save_weights(tmp)
        _replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = _tmp_name(path)
    try:
        tmp.write_text(text)
        _replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def seed_states(model) -> list[Any]:
    """The model's random-seed variables (``SeedGenerator`` states of dropout and the like), in order.

    ``save_weights`` leaves them out; without them a resumed run would draw other dropout masks.
    """
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def save_optimizer_state(optimizer, path: Path, model=None) -> None:
    """Write the optimizer variables (and ``model``'s seed states) to ``path`` (``.npz``) atomically."""
    tmp = _tmp_name(path)
    seeds = {f"seed_{i}": np.asarray(v) for i, v in enumerate(seed_states(model) if model is not None else [])}
    try:
        with tmp.open("wb") as fh:
            np.savez(fh, *[np.asarray(v) for v in optimizer.variables], **seeds)
        _replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_optimizer_state(optimizer, model, path: Path) -> None:
    """Assign saved optimizer variables (building the optimizer's slots first) and seed states.

    Raises:
        ValueError: the saved state has another layout than this optimizer or model (other options).
    """
    optimizer.build(model.trainable_variables)
    with np.load(path) as saved:
        values = [saved[f"arr_{i}"] for i in range(sum(k.startswith("arr_") for k in saved.files))]
        seeds = [saved[f"seed_{i}"] for i in range(sum(k.startswith("seed_") for k in saved.files))]
    if len(values) != len(optimizer.variables) or any(
            tuple(v.shape) != tuple(s.shape) for v, s in zip(optimizer.variables, values)):
        raise ValueError(f"{path} holds {len(values)} optimizer variables, "
                         f"the optimizer has {len(optimizer.variables)}")
    targets = seed_states(model)
    if seeds and (len(seeds) != len(targets) or any(
            tuple(v.shape) != tuple(s.shape) for v, s in zip(targets, seeds))):
        raise ValueError(f"{path} holds {len(seeds)} random-seed states, the model has {len(targets)}")
    for var, value in zip(optimizer.variables, values):
        var.assign(value)
    for var, value in zip(targets, seeds):
        var.assign(value)


def prune_checkpoints(folder: Path, keep: dict[str, Any] | None) -> None:
    """Delete snapshot files the state does not name (older epochs, or a killed epoch's) and temporary files."""
    names = set((keep or {}).values())
    for p in Path(folder).glob("*"):
        stale_snapshot = p.name.startswith(_SNAPSHOT_PREFIXES) and p.name not in names
        if p.is_file() and (stale_snapshot or p.name.startswith(".tmp-")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _jsonable(v: Any) -> Any:
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


class CheckpointState(keras.callbacks.Callback):
    """Best/last checkpoints, early stopping and the resume state (see module doc).

    Put it first in the callback list: it adds ``lr`` to the epoch logs for the loggers after it.

    Args:
        folder: checkpoint folder.
        monitor: ``val_miou`` (higher is better) or ``val_loss`` (lower is better).
        patience: epochs without a new best of the smoothed monitor before stopping; 0 disables
            early stopping.
        state: a state read by :func:`read_state` to continue from (``--resume``).
        planned_epochs: the run's epoch count (no stop before ``MIN_FRACTION`` of it); a time
            budget updates :attr:`planned_epochs` once it has timed the first epochs.
        smoothing: weight of the newest epoch in the smoothed monitor (1 = no smoothing).
        min_fraction: see :data:`MIN_FRACTION`.
        parameters: the run's result-deciding options, recorded for ``--resume`` to compare.
        started: ``time.perf_counter()`` at which the run began, less the seconds of the runs it
            continues (``seconds`` in the state = training time of the whole run so far).
    """

    def __init__(self, folder: Path, monitor: str = "val_miou", patience: int = 0,
                 state: dict[str, Any] | None = None, planned_epochs: int | None = None,
                 smoothing: float = SMOOTHING, min_fraction: float = MIN_FRACTION, *,
                 parameters: dict[str, Any] | None = None, started: float | None = None):
        super().__init__()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.monitor = monitor
        self.mode_max = not monitor.endswith("loss")
        self.patience = int(patience)
        self.planned_epochs = planned_epochs
        self.smoothing, self.min_fraction = float(smoothing), float(min_fraction)
        self.parameters = parameters
        self.started = time.perf_counter() if started is None else float(started)
        state = state or {}
        self.epoch = int(state.get("epoch", 0))
        self.files: dict[str, Any] = dict(state.get("files") or {})
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.wait = int(state.get("wait", 0))
        self.smoothed = state.get("smoothed")
        self.best_smoothed = state.get("best_smoothed")
        self.stopped_early = bool(state.get("stopped_early", False))
        self.history: list[dict[str, Any]] = list(state.get("history", []))

    @property
    def best_weights(self) -> Path | None:
        """The best checkpoint's weight file, None before the first."""
        name = self.files.get("best_weights")
        return self.folder / name if name and (self.folder / name).exists() else None

    def _better(self, value: float | None, than: float | None) -> bool:
        if value is None or math.isnan(value):
            return False
        if than is None:
            return True
        return value > than if self.mode_max else value < than

    def _improved(self, value: float) -> bool:
        return self._better(value, self.best)

    def may_stop(self, epochs_done: int) -> bool:
        """Early stopping is allowed after ``epochs_done`` epochs (patience and minimum length)."""
        if not self.patience or self.wait < self.patience:
            return False
        planned = self.planned_epochs or 0
        return epochs_done >= max(self.patience, math.ceil(self.min_fraction * planned))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        try:
            logs["lr"] = float(np.asarray(self.model.optimizer.learning_rate))
        except Exception:  # a custom optimizer without a readable rate: leave it out
            pass
        value = logs.get(self.monitor)
        if value is None:
            raise KeyError(f"monitor {self.monitor!r} not in the epoch logs: {', '.join(sorted(logs))}")
        value = float(value)
        done = epoch + 1
        files = dict(self.files)
        if self._improved(value):
            self.best, self.best_epoch = value, done
            files["best_weights"] = best_weights_name(done)
            save_weights_atomic(self.model, self.folder / files["best_weights"])
        if not math.isnan(value):
            self.smoothed = value if self.smoothed is None else (
                self.smoothing * value + (1.0 - self.smoothing) * self.smoothed)
        if self._better(self.smoothed, self.best_smoothed):
            self.best_smoothed, self.wait = self.smoothed, 0
        else:
            self.wait += 1
        files["last_weights"], files["last_optimizer"] = last_weights_name(done), last_optimizer_name(done)
        save_weights_atomic(self.model, self.folder / files["last_weights"])
        save_optimizer_state(self.model.optimizer, self.folder / files["last_optimizer"], self.model)
        self.epoch, self.files = done, files
        self.history.append({"epoch": done, **{k: _jsonable(v) for k, v in logs.items()}})
        if self.may_stop(done):
            self.stopped_early = True
            self.model.stop_training = True
        self.write_state()
        prune_checkpoints(self.folder, self.files)

    def write_state(self) -> None:
        state = {"epoch": self.epoch, "files": self.files, "best": self.best, "best_epoch": self.best_epoch,
                 "wait": self.wait, "smoothed": self.smoothed, "best_smoothed": self.best_smoothed,
                 "monitor": self.monitor, "stopped_early": self.stopped_early,
                 "planned_epochs": self.planned_epochs,
                 "seconds": round(time.perf_counter() - self.started, 3),
                 "parameters": self.parameters, "history": self.history}
        write_text_atomic(self.folder / STATE_FILE, json.dumps(state, indent=1) + "\n")


def history_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of ``history.csv`` / ``history.json``: ``epoch`` 1-based, then the logs sorted by name."""
    rows = []
    for h in history:
        rest = {k: h[k] for k in sorted(h) if k != "epoch"}
        rows.append({"epoch": int(h["epoch"]), **rest})
    return rows


def write_history(history: list[dict[str, Any]], csv_path: Path, json_path: Path) -> None:
    """Write the history as CSV (missing or NaN values: ``nan``) and as JSON (a list of rows; NaN: null)."""
    rows = history_rows(history)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    tmp = _tmp_name(Path(csv_path))
    try:
        with tmp.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(keys)
            for row in rows:
                w.writerow(["nan" if row.get(k) is None else row[k] for k in keys])
        _replace(tmp, Path(csv_path))
    finally:
        tmp.unlink(missing_ok=True)
    write_text_atomic(Path(json_path), json.dumps(rows, indent=1) + "\n")


class HistoryFiles(keras.callbacks.Callback):
    """Rewrites ``history.csv`` and ``history.json`` from ``state.history`` after every epoch (put it
    after :class:`CheckpointState`)."""

    def __init__(self, state: CheckpointState, csv_path: Path, json_path: Path):
        super().__init__()
        self.state, self.csv_path, self.json_path = state, Path(csv_path), Path(json_path)

    def write(self) -> None:
        if self.state.history:
            write_history(self.state.history, self.csv_path, self.json_path)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.write()


class TrainingCurves(keras.callbacks.Callback):
    """Redraws ``path`` (PNG: loss and mIoU, train vs validation, per epoch) after every epoch."""

    def __init__(self, state: CheckpointState, path: Path):
        super().__init__()
        self.state, self.path = state, Path(path)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        plot_curves(self.state.history, self.path)


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss and mIoU per epoch, train and validation, as a PNG (matplotlib Agg, written atomically)."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    for ax, key, title in ((fig.add_subplot(1, 2, 1), "loss", "loss"), (fig.add_subplot(1, 2, 2), "miou", "mean IoU")):
        for prefix, style in (("", "-"), ("val_", "--")):
            ys = [h.get(prefix + key) for h in history]
            if any(y is not None for y in ys):
                ax.plot(epochs, [np.nan if y is None else y for y in ys], style, marker="o", ms=3,
                        label="validation" if prefix else "training")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = _tmp_name(Path(path))
    try:
        fig.savefig(tmp, format="png")
        _replace(tmp, Path(path))
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["STATE_FILE", "CheckpointState", "HistoryFiles", "TrainingCurves", "load_optimizer_state",
           "plot_curves", "prune_checkpoints", "read_state", "save_optimizer_state", "save_weights_atomic",
           "write_history"]
