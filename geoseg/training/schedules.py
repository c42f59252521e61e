"""Learning-rate schedules, all with an optional linear warm-up, as one Keras schedule class.

With ``t`` the optimizer step, ``W`` the warm-up steps, ``T`` the total steps, ``lr`` the peak
rate and ``u = (t - W) / (T - W)`` the post-warm-up progress in [0, 1]:

- warm-up (``t < W``): ``lr * (t + 1) / W``;
- ``constant``: ``lr``;
- ``cosine``: ``min + (lr - min) * (1 + cos(pi * u)) / 2`` with ``min = lr * min_ratio``;
- ``cosine_restarts``: the same cosine repeated ``cycles`` times over ``T - W`` steps (SGDR);
- ``poly``: ``min + (lr - min) * (1 - u) ** power`` (power 0.9, the DeepLab schedule);
- ``exponential``: ``lr * decay_rate ** ((t - W) / decay_steps)`` (decay_steps = steps per epoch);
- ``step``: ``lr * drop ** (number of milestones passed)``, milestones at 50% and 75% of ``T``.

``T`` is held in a variable: :meth:`WarmupSchedule.set_total_steps` changes it while training
runs (``--time-budget`` fits it to the budget after timing the first epochs).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from geoseg.errors import InvalidParameterError
from geoseg.training.config import SCHEDULES


@keras.saving.register_keras_serializable(package="geoseg")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """See module doc. Steps are optimizer iterations (batches), not epochs."""

    def __init__(self, name: str, lr: float, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.01,
                 power: float = 0.9, decay_rate: float = 0.9, decay_steps: int | None = None,
                 drop: float = 0.1, milestones: tuple[float, ...] = (0.5, 0.75), cycles: int = 3):
        if name not in SCHEDULES:
            raise InvalidParameterError(f"--schedule must be one of {', '.join(SCHEDULES)}, found {name!r}")
        self.name = name
        self.lr = float(lr)
        total = max(1, int(total_steps))
        # At least one step after warm-up, so the decay phase is never empty.
        self.warmup_steps = max(0, min(int(warmup_steps), total - 1))
        self._total = tf.Variable(float(total), trainable=False, dtype=tf.float32, name="schedule_total_steps")
        self.min_ratio = float(min_ratio)
        self.power = float(power)
        self.decay_rate = float(decay_rate)
        self.decay_steps = max(1, int(decay_steps or total))
        self.drop = float(drop)
        self.milestones = tuple(float(m) for m in milestones)
        self.cycles = max(1, int(cycles))

    @property
    def total_steps(self) -> int:
        """``T``: the steps the schedule runs over."""
        return round(float(self._total.numpy()))

    def set_total_steps(self, total_steps: int) -> None:
        """Move the end of the schedule to ``total_steps`` (at least one step after warm-up)."""
        self._total.assign(float(max(int(total_steps), self.warmup_steps + 1, 1)))

    def __call__(self, step):
        t = tf.cast(step, tf.float32)
        lr, w = self.lr, float(self.warmup_steps)
        total = tf.convert_to_tensor(self._total)
        lo = lr * self.min_ratio
        td = tf.maximum(t - w, 0.0)
        u = tf.clip_by_value(td / tf.maximum(total - w, 1.0), 0.0, 1.0)
        if self.name == "constant":
            decayed = tf.constant(lr, tf.float32) + 0.0 * t
        elif self.name == "cosine":
            decayed = lo + (lr - lo) * 0.5 * (1.0 + tf.cos(math.pi * u))
        elif self.name == "cosine_restarts":
            length = tf.maximum(total - w, 1.0) / self.cycles
            phase = tf.math.floormod(td, length) / length
            phase = tf.where(td >= length * self.cycles, 1.0, phase)
            decayed = lo + (lr - lo) * 0.5 * (1.0 + tf.cos(math.pi * phase))
        elif self.name == "poly":
            decayed = lo + (lr - lo) * tf.pow(1.0 - u, self.power)
        elif self.name == "exponential":
            decayed = lr * tf.pow(self.decay_rate, td / float(self.decay_steps))
        else:  # step
            passed = sum(tf.cast(t >= m * total, tf.float32) for m in self.milestones)
            decayed = lr * tf.pow(self.drop, passed)
        if self.warmup_steps > 0:
            return tf.where(t < w, lr * (t + 1.0) / w, decayed)
        return decayed

    def get_config(self):
        return {"name": self.name, "lr": self.lr, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "min_ratio": self.min_ratio, "power": self.power, "decay_rate": self.decay_rate,
                "decay_steps": self.decay_steps, "drop": self.drop, "milestones": list(self.milestones),
                "cycles": self.cycles}


def make_schedule(name: str, lr: float, epochs: int, steps_per_epoch: int,
                  warmup_epochs: float = 0.0) -> WarmupSchedule:
    """The schedule of a training run, in optimizer steps (``epochs * steps_per_epoch`` in all)."""
    return WarmupSchedule(name, lr, total_steps=epochs * steps_per_epoch,
                          warmup_steps=round(warmup_epochs * steps_per_epoch), decay_steps=steps_per_epoch)
