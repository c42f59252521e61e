"""One line per epoch on stdout, for runs where Keras's progress bar does not fit.

Keras's bar assumes a terminal and a known epoch count: written to a file or a pipe it is a
stream of control characters, and under ``--time-budget`` (epochs planned as the run goes) it
reads "Epoch 1/1000000". :class:`EpochLines` prints instead, after every epoch::

    epoch 3/12 (planned)  41 s  loss 0.412  val_loss 0.388  val_miou 0.561  val_oa 0.942
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import keras

#: Logged values shown, in this order, when present.
SHOWN = ("loss", "miou", "val_loss", "val_miou", "val_oa", "val_f1")


def use_epoch_lines(budgeted: bool, stream: Any = None) -> bool:
    """Whether to print :class:`EpochLines` instead of Keras's bar: a budgeted run, or no terminal."""
    stream = sys.stdout if stream is None else stream
    return budgeted or not getattr(stream, "isatty", lambda: False)()


class EpochLines(keras.callbacks.Callback):
    """Print one line per epoch.

    Args:
        total: the epoch count, or a callable giving the current plan (``--time-budget``).
        stream: where to write (stdout by default).
    """

    def __init__(self, total: int | Callable[[], int | None], stream: Any = None) -> None:
        super().__init__()
        self._total = total
        self._stream = stream
        self._start = time.perf_counter()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        total = self._total() if callable(self._total) else self._total
        of = f"/{total} (planned)" if callable(self._total) and total else (f"/{total}" if total else "")
        values = "  ".join(f"{k} {float(v):.4g}" for k in SHOWN if (v := (logs or {}).get(k)) is not None)
        line = f"epoch {epoch + 1}{of}  {time.perf_counter() - self._start:.0f} s  {values}"
        print(line, file=self._stream or sys.stdout, flush=True)
