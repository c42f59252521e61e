"""``--time-budget``: fit the epoch count and the LR schedule to a wall-clock budget.

The run's clock starts when :func:`geoseg.training.fit` is called. After each of the first
:data:`PLAN_EPOCHS` epochs of a call the callback estimates one epoch as ``steps_per_epoch``
times the steady step time (the time between the end of the first batch and the end of the
last one of the latest epoch, divided by the batches in between, so graph tracing in the first
batch does not count) plus the latest validation time plus the latest epoch-end work
(checkpoints, curves: put this callback after those), and plans::

    planned = epochs_done + floor((deadline - now) / epoch_seconds)
    deadline = start + budget - reserve,   reserve = SAVE_SECONDS

(``reserve`` covers restoring the best weights and writing the bundle), then moves
the end of the LR schedule to ``planned * steps_per_epoch`` so that it decays to its minimum as
the budget ends. The plan is remade after every epoch of the first half of the run (at least
:data:`PLAN_EPOCHS`), so a machine that gets faster or slower (other jobs) moves the end of
the schedule smoothly while the LR is still high; after that it is kept, so the decay at the
end is not disturbed. Training then stops after epoch ``planned``, or earlier at an epoch end when the next epoch
would not fit, or inside an epoch (``model.stop_training`` after a batch; Keras still
validates and runs the epoch-end callbacks, so checkpoints stay complete) when the time left no
longer covers the validation and the reserve: a run overshoots its budget by at most one
batch plus the misestimate of the final steps.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import keras

log = logging.getLogger(__name__)

#: Epochs of a call after which the plan is always (re)made.
PLAN_EPOCHS = 2
#: Share of the planned epochs during which the plan is remade.
PLAN_FRACTION = 0.5
#: Seconds kept for writing the bundle (model.keras, geoseg.json, curves).
SAVE_SECONDS = 3.0


class TimeBudget(keras.callbacks.Callback):
    """Stops training so that the run ends within ``seconds`` of ``start`` (see module doc).

    Args:
        seconds: the budget in seconds.
        start: ``time.perf_counter()`` value at which the run began.
        steps_per_epoch: batches per epoch.
        schedule: a :class:`~geoseg.training.schedules.WarmupSchedule` to refit (or None).
        initial_epoch: epochs done before this call (``--resume``).
        on_plan: called with the planned epoch count whenever it changes (e.g. to tell early
            stopping how long the run is).
    """

    def __init__(self, seconds: float, start: float, steps_per_epoch: int, schedule: Any = None,
                 initial_epoch: int = 0, on_plan: Any = None):
        super().__init__()
        self.seconds, self.start = float(seconds), float(start)
        self.steps_per_epoch = int(steps_per_epoch)
        self.schedule, self.on_plan = schedule, on_plan
        self.initial_epoch = int(initial_epoch)
        self.train_times: list[float] = []
        self.step_seconds: float | None = None
        self.overhead_seconds = 0.0
        self._t_last_batch = 0.0
        self._t_first_batch: float | None = None
        self._batches = 0
        self.val_seconds = 0.0
        self.planned: int | None = None
        self.stopped = False
        self._t_epoch = self._t_val = 0.0

    # -- clock ----------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def reserve(self) -> float:
        """Seconds kept after training: restoring the best weights and writing the bundle."""
        return SAVE_SECONDS

    def epoch_seconds(self) -> float:
        """Estimated seconds of one more epoch (training + validation), 0 before any was timed."""
        if self.step_seconds is not None:
            return self.step_seconds * self.steps_per_epoch + self.val_seconds + self.overhead_seconds
        if not self.train_times:
            return 0.0
        return self.train_times[-1] + self.val_seconds + self.overhead_seconds

    def _stop(self) -> None:
        self.stopped = True
        self.model.stop_training = True

    # -- Keras hooks ----------------------------------------------------------------------
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._t_epoch = time.perf_counter()
        self._t_val = 0.0
        self._t_first_batch, self._batches = None, 0

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._t_val_start = time.perf_counter()

    def on_test_end(self, logs: dict | None = None) -> None:
        self._t_val = time.perf_counter() - self._t_val_start
        self.val_seconds = max(self.val_seconds * 0.5, self._t_val)  # lean to the slower recent value

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = self._t_last_batch = time.perf_counter()
        self._batches += 1
        if self._t_first_batch is None:
            self._t_first_batch = now
        elif self._batches > 2:  # steady rate from the batches after the first
            self.step_seconds = (now - self._t_first_batch) / (self._batches - 1)
        # Inside an epoch: stop when what is left only covers this epoch's validation and the reserve.
        if self.elapsed() + self.val_seconds + self.reserve() >= self.seconds:
            self._stop()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        self.train_times.append(self._t_last_batch - self._t_epoch)
        self.overhead_seconds = max(0.0, now - self._t_last_batch - self._t_val)
        done = epoch + 1
        if len(self.train_times) <= PLAN_EPOCHS or done <= PLAN_FRACTION * (self.planned or 0):
            self.plan(done)
        planned_done = self.planned is not None and done >= self.planned
        if planned_done or self.elapsed() + self.epoch_seconds() + self.reserve() > self.seconds:
            self._stop()

    def plan(self, done: int) -> None:
        """Set :attr:`planned` from the time left and move the schedule's end to it."""
        left = self.seconds - self.reserve() - self.elapsed()
        planned = done + max(0, math.floor(left / max(self.epoch_seconds(), 1e-6)))
        log.info("time budget: %.0f of %.0f s used after %d epoch(s); one epoch takes %.1f s (steps %.1f s, "
                 "validation %.1f s, epoch end %.1f s): planning %d epoch(s)", self.elapsed(), self.seconds, done,
                 self.epoch_seconds(), (self.step_seconds or 0.0) * self.steps_per_epoch, self.val_seconds,
                 self.overhead_seconds, planned)
        if planned == self.planned:
            return
        self.planned = planned
        if self.schedule is not None and hasattr(self.schedule, "set_total_steps"):
            self.schedule.set_total_steps(planned * self.steps_per_epoch)
        if self.on_plan is not None:
            self.on_plan(planned)
