"""Training callbacks: checkpoints + resume state + early stopping, and the training-curve PNG.

Checkpoint folder ``OUT/checkpoints/``:

- ``last.weights.h5`` and ``last.optimizer.npz`` (optimizer variables in order, including the
  iteration counter that drives the LR schedule), rewritten at the end of every epoch;
- ``best.weights.h5``, rewritten when the monitored value improves;
- ``state.json`` ``{"epoch", "best", "best_epoch", "wait", "smoothed", "best_smoothed", "monitor",
  "stopped_early", "history"}``,
  written last, so it only ever points at complete weight files (each file is renamed into
  place when complete). ``--resume`` reads it and continues at ``epoch``.

Early stopping on a small validation set must not end a run that is still improving: one lucky
epoch early on would otherwise start the patience clock, and the epoch-to-epoch noise of a few
validation patches is often larger than the progress per epoch. So patience counts epochs
without a new best of the *smoothed* monitor (exponential moving average, weight
:data:`SMOOTHING` on the newest epoch), and stopping is not allowed before
:data:`MIN_FRACTION` of the planned epochs (the LR schedule does most of its work in its second
half). The best checkpoint still follows the raw monitor value.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

import keras
import numpy as np

STATE_FILE = "state.json"
LAST_WEIGHTS = "last.weights.h5"
LAST_OPTIMIZER = "last.optimizer.npz"
BEST_WEIGHTS = "best.weights.h5"

#: Weight of the newest epoch in the smoothed monitor used for early stopping.
SMOOTHING = 0.3
#: Early stopping may end a run only after this share of its planned epochs.
MIN_FRACTION = 0.5


def _tmp_name(final: Path) -> Path:
    # Keras insists on the ".weights.h5" ending, so the marker goes in front of the name.
    return final.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{final.name}")


def _replace(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)


def save_weights_atomic(model, path: Path) -> None:
    tmp = _tmp_name(path)
    try:
        model.save_weights(tmp)
        _replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_optimizer_state(optimizer, path: Path) -> None:
    tmp = _tmp_name(path)
    try:
        np.savez(tmp, *[np.asarray(v) for v in optimizer.variables])
        _replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_optimizer_state(optimizer, model, path: Path) -> None:
    """Assign saved optimizer variables (building the optimizer's slots first).

    Raises:
        ValueError: the saved state has another layout than this optimizer (other options).
    """
    optimizer.build(model.trainable_variables)
    with np.load(path) as saved:
        values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if len(values) != len(optimizer.variables) or any(
            tuple(v.shape) != tuple(s.shape) for v, s in zip(optimizer.variables, values)):
        raise ValueError(f"{path} holds {len(values)} optimizer variables, "
                         f"the optimizer has {len(optimizer.variables)}")
    for var, value in zip(optimizer.variables, values):
        var.assign(value)


def read_state(folder: Path) -> dict[str, Any] | None:
    f = folder / STATE_FILE
    if not f.exists():
        return None
    return json.loads(f.read_text())


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
    """

    def __init__(self, folder: Path, monitor: str = "val_miou", patience: int = 0,
                 state: dict[str, Any] | None = None, planned_epochs: int | None = None,
                 smoothing: float = SMOOTHING, min_fraction: float = MIN_FRACTION):
        super().__init__()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.monitor = monitor
        self.mode_max = not monitor.endswith("loss")
        self.patience = int(patience)
        self.planned_epochs = planned_epochs
        self.smoothing, self.min_fraction = float(smoothing), float(min_fraction)
        state = state or {}
        self.epoch = int(state.get("epoch", 0))
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.wait = int(state.get("wait", 0))
        self.smoothed = state.get("smoothed")
        self.best_smoothed = state.get("best_smoothed")
        self.stopped_early = bool(state.get("stopped_early", False))
        self.history: list[dict[str, Any]] = list(state.get("history", []))

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
        if self._improved(value):
            self.best, self.best_epoch = value, epoch + 1
            save_weights_atomic(self.model, self.folder / BEST_WEIGHTS)
        if not math.isnan(value):
            self.smoothed = value if self.smoothed is None else (
                self.smoothing * value + (1.0 - self.smoothing) * self.smoothed)
        if self._better(self.smoothed, self.best_smoothed):
            self.best_smoothed, self.wait = self.smoothed, 0
        else:
            self.wait += 1
        save_weights_atomic(self.model, self.folder / LAST_WEIGHTS)
        save_optimizer_state(self.model.optimizer, self.folder / LAST_OPTIMIZER)
        self.epoch = epoch + 1
        self.history.append({"epoch": epoch + 1, **{k: _jsonable(v) for k, v in logs.items()}})
        if self.may_stop(epoch + 1):
            self.stopped_early = True
            self.model.stop_training = True
        self.write_state()

    def write_state(self) -> None:
        state = {"epoch": self.epoch, "best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                 "smoothed": self.smoothed, "best_smoothed": self.best_smoothed, "monitor": self.monitor,
                 "stopped_early": self.stopped_early, "history": self.history}
        tmp = _tmp_name(self.folder / STATE_FILE)
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        _replace(tmp, self.folder / STATE_FILE)


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
