"""``--resume``: the options a run must keep, and the checkpoint it continues from.

A resumed run continues the interrupted one exactly: on CPU with a fixed ``--epochs``, a run
killed at any point and resumed ends with the same weights and history, bit for bit, as one that
was never interrupted. What makes it so:

- the checkpoint (:mod:`geoseg.training.callbacks`) holds the weights, the optimizer variables
  (with the iteration counter that drives the LR schedule) and the random-seed states of the
  model's layers of one epoch, named by ``state.json``, which is written last;
- the training stream is a pure function of the seed and the draw number
  (:func:`geoseg.training.pipeline.make_tf_dataset` ``start``): the resumed run starts it at
  ``epochs done * steps per epoch * batch size``, with the shuffling and augmentation that draw
  had;
- early stopping's counters and the history come back from ``state.json``;
- the options that decide the result are recorded there and must be the same
  (:func:`run_parameters`; a change is refused, listing each one).

A ``--time-budget`` run is not repeatable (its epoch count follows the clock): resumed, it
continues its plan (the budget counts the training time before the interruption, the LR schedule
keeps the planned length) but is not bit-exact.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from geoseg.errors import BundleError
from geoseg.io.run_record import check_same_parameters
from geoseg.training.config import TrainConfig
from geoseg.training.data import DatasetInfo

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
#: The file names of a checkpoint folder written before snapshots were named by epoch.
LEGACY_FILES = {"last_weights": "last.weights.h5", "last_optimizer": "last.optimizer.npz",
                "best_weights": "best.weights.h5"}

#: Options that do not change what a run computes: they may differ on ``--resume``.
FREE_OPTIONS = ("dataset", "out", "overwrite", "resume", "quiet", "verbose", "tensorboard", "cache",
                "debug_samples")


def dataset_digest(info: DatasetInfo) -> str:
    """``index.csv + dataset.json sha256 <12 hex>``: the dataset's identity, wherever its folder lies."""
    h = hashlib.sha256()
    for name in ("index.csv", "dataset.json"):
        h.update((info.root / name).read_bytes())
    return f"index.csv + dataset.json sha256 {h.hexdigest()[:12]}"


def run_parameters(cfg: TrainConfig, info: DatasetInfo) -> dict[str, Any]:
    """The options that decide a run's result, by option name (as JSON would give them back)."""
    params = {k.replace("_", "-"): v for k, v in cfg.to_dict().items() if k not in FREE_OPTIONS}
    params["dataset"] = dataset_digest(info)
    return json.loads(json.dumps(params))


def resume_state(cfg: TrainConfig, info: DatasetInfo, folder: Path) -> dict[str, Any] | None:
    """The checkpoint state to continue from: None without ``--resume`` or without a checkpoint.

    Raises:
        InvalidParameterError: the checkpoint was written with other options (each change listed).
    """
    if not cfg.resume:
        return None
    state = read_state(folder)
    if state is None:
        return None
    recorded = state.get("parameters")
    if recorded is None:
        log.warning("%s predates recorded options: resuming without checking that they are the same",
                    folder / STATE_FILE)
    else:
        check_same_parameters(_current_names(recorded), run_parameters(cfg, info), folder / STATE_FILE)
    return state


def _current_names(recorded: dict[str, Any]) -> dict[str, Any]:
    """Recorded parameters of a checkpoint written before ``--precision`` / ``--jit-compile``: its
    ``mixed-precision`` flag as ``precision``, and XLA as Keras chose it then (``auto``)."""
    out = dict(recorded)
    if "mixed-precision" in out and "precision" not in out:
        out["precision"] = "mixed" if out.pop("mixed-precision") else "float32"
        out.setdefault("jit-compile", "auto")
    return out


def read_state(folder: Path) -> dict[str, Any] | None:
    """The checkpoint state of ``folder`` (None when there is none), with ``files`` always present.

    Raises:
        BundleError: ``state.json`` is not a JSON object (it is only ever renamed into place complete,
            so it was edited or damaged by hand).
    """
    f = Path(folder) / STATE_FILE
    if not f.exists():
        return None
    try:
        state = json.loads(f.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot resume: {f} is damaged ({exc}); use --overwrite to start again") from None
    if not isinstance(state, dict):
        raise BundleError(f"cannot resume: {f} is damaged (not a JSON object); use --overwrite to start again")
    state.setdefault("files", dict(LEGACY_FILES))
    return state
