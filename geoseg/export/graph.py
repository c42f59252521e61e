"""The exported graph: raw band values -> bundle normalization -> the bundle's Keras model.

Both ONNX and SavedModel exports take raw pixel values so that a user (QGIS, a serving stack)
needs nothing from geoseg but the file. :class:`Normalize` is the bundle normalization of
:func:`geoseg.io.normalization.normalize` in Keras ops (same float32 arithmetic and 1e-6
floors), followed by the reader's rule that non-finite values become 0 after normalization.

:func:`raw_model` wraps the bundle model: channels last ``(N, H, W, C) -> (N, H, W, K)`` for the
SavedModel, channels first ``(N, C, H, W) -> (N, K, H, W)`` for ONNX (the layout of the QGIS
Deepness plugin). ``tile=None`` leaves the spatial size dynamic; :func:`export_with_fallback`
tries that first and falls back to the bundle's tile size for models whose layers cannot be
traced with unknown sizes (the resize of DeepLab, PSPNet, RefineNet, DenseASPP, Mobile U-Net and
ResUNet reads the size as a Python value).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from geoseg.io.bundle import Bundle, model_input_channels
from geoseg.runtime.tensorflow import import_tensorflow

log = logging.getLogger("geoseg.export")


def _keras():
    import_tensorflow()
    import keras

    return keras


def make_normalize_layer(norm: dict | None, name: str = "normalize"):
    """A Keras layer applying ``norm`` to ``(..., C)`` float32 and zeroing non-finite results."""
    keras = _keras()
    ops = keras.ops

    class Normalize(keras.layers.Layer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.norm = norm

        def call(self, x):
            x = ops.cast(x, "float32")
            if norm is not None:
                if norm.get("method", "meanstd") == "meanstd":
                    a = np.asarray(norm["mean"], np.float32)
                    b = np.maximum(np.asarray(norm["std"], np.float32), np.float32(1e-6))
                    x = (x - a) / b
                else:
                    a = np.asarray(norm["min"], np.float32)
                    b = np.maximum(np.asarray(norm["max"], np.float32) - a, np.float32(1e-6))
                    x = ops.clip((x - a) / b, 0.0, 1.0)
            # one select per test, conditioned directly on IsNaN / IsInf: tf2onnx keeps those as Where
            # nodes (it turns other selects into cond * x + (1 - cond) * 0, and NaN * 0 is NaN)
            x = ops.where(ops.isnan(x), ops.zeros_like(x), x)
            return ops.where(ops.isinf(x), ops.zeros_like(x), x)

    return Normalize(name=name)


def raw_model(bundle: Bundle, tile: int | None, channels_first: bool):
    """The bundle's model behind its normalization, taking raw band values.

    Args:
        bundle: a Keras bundle.
        tile: spatial size in pixels, None for dynamic height and width.
        channels_first: ``(N, C, H, W)`` in and ``(N, K, H, W)`` out (ONNX), else channels last.
    """
    keras = _keras()
    model = bundle.model
    bands = model_input_channels(model)
    shape = (bands, tile, tile) if channels_first else (tile, tile, bands)
    inp = keras.Input(shape, name="image", dtype="float32")
    x = keras.layers.Permute((2, 3, 1), name="to_channels_last")(inp) if channels_first else inp
    x = make_normalize_layer(bundle.normalization)(x)
    y = model(x, training=False)
    if isinstance(y, (list, tuple)):
        y = y[0]
    if channels_first:
        y = keras.layers.Permute((3, 1, 2), name="probs")(y)
    return keras.Model(inp, y, name="geoseg_raw")


def dynamic_twin(model):
    """A copy of a functional model whose input layers take any height and width (same weights).

    Raises whatever Keras raises when the architecture cannot be rebuilt at unknown sizes.
    """
    _keras()
    config = model.get_config()

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            if o.get("class_name") == "InputLayer":
                shape = o["config"].get("batch_shape")
                if shape and len(shape) == 4:
                    o["config"]["batch_shape"] = [shape[0], None, None, shape[-1]]
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(config)
    twin = model.__class__.from_config(config)
    twin.set_weights(model.get_weights())
    return twin


def sample_raw(bundle: Bundle, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random raw band values ``shape`` (channels last) spread over the training range of each band.

    The range is the bundle's ``input`` min/max, else mean +- 2 std, else min..max of a minmax
    normalization, else 0..255.
    """
    rng = np.random.default_rng(seed)
    bands = shape[-1]
    stats, norm = bundle.input_stats or {}, bundle.normalization or {}
    if stats.get("min") is not None:
        lo, hi = np.asarray(stats["min"], float), np.asarray(stats["max"], float)
    elif norm.get("mean") is not None:
        m, s = np.asarray(norm["mean"], float), np.asarray(norm["std"], float)
        lo, hi = m - 2 * s, m + 2 * s
    elif norm.get("min") is not None:
        lo, hi = np.asarray(norm["min"], float), np.asarray(norm["max"], float)
    else:
        lo, hi = np.zeros(bands), np.full(bands, 255.0)
    return (lo + (hi - lo) * rng.random(shape)).astype(np.float32)


def reference(bundle: Bundle, raw_nhwc: np.ndarray, model=None) -> np.ndarray:
    """What geoseg's Keras path computes for raw windows: reader normalization, then the model."""
    from geoseg.io.normalization import normalize

    x = normalize(raw_nhwc, bundle.normalization)
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    y = (model or bundle.model)(x, training=False)
    if isinstance(y, (list, tuple)):
        y = y[0]
    return np.asarray(y, dtype=np.float32)


def export_with_fallback(bundle: Bundle, write: Callable[[Any, int | None], None],
                         check: Callable[[int | None], None], channels_first: bool) -> bool:
    """Export with dynamic height/width when the model allows it, else at the bundle's tile size.

    Args:
        bundle: a Keras bundle.
        write: ``write(wrapper_model, tile_or_None)`` writes the artifact.
        check: ``check(tile_or_None)`` verifies the written artifact (raises on a mismatch).
        channels_first: layout of the wrapper (see :func:`raw_model`).

    Returns:
        True when the written artifact has dynamic height and width.
    """
    try:
        write(raw_model(bundle, None, channels_first), None)
        check(None)
        return True
    except Exception as exc:  # tracing errors of any kind: fall back to a fixed size
        log.info("dynamic height/width not exportable (%s: %s); exporting at the tile size %d px",
                 type(exc).__name__, str(exc).splitlines()[0][:160] if str(exc) else "", bundle.tile_size)
    write(raw_model(bundle, bundle.tile_size, channels_first), bundle.tile_size)
    check(bundle.tile_size)
    return False
