"""Training: tiled dataset -> ``tf.data`` -> Keras ``fit`` -> model bundle.

``fit(config) -> TrainResult`` and ``TrainConfig`` are the public API; importing this package
imports TensorFlow only when :func:`fit` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geoseg.training.config import TrainConfig

if TYPE_CHECKING:
    from geoseg.training.loop import TrainResult


def fit(config: TrainConfig | dict, **kwargs: Any) -> TrainResult:
    """Train a model and write its bundle; see :func:`geoseg.training.loop.fit`."""
    from geoseg.training.loop import fit as _fit

    return _fit(config, **kwargs)


def __getattr__(name: str):
    if name == "TrainResult":
        from geoseg.training.loop import TrainResult

        return TrainResult
    raise AttributeError(name)


__all__ = ["TrainConfig", "TrainResult", "fit"]
