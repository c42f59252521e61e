"""The model zoo: ``get_model(name, num_classes, input_shape=(H, W, bands), ...)``.

Every model maps (N, H, W, bands) to (N, H, W, num_classes): softmax probabilities (layer
``"probs"``) or logits (layer ``"logits"``, with ``activation=None``), float32 also under mixed
precision. ``list_models()`` and ``list_backbones()`` name what exists.

Importing this package imports every architecture module of :data:`registry.MODELS`, which
registers their custom layers with Keras so that ``.keras`` files load back
(:func:`geoseg.io.bundle.load_keras_model` relies on it). Importing plain ``geoseg`` does not.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path
from typing import Any

from geoseg.errors import InputNotFoundError, ModelConfigError
from geoseg.models import layers as layers
from geoseg.models import registry
from geoseg.models.backbones import BACKBONES, get_spec

__all__ = ["get_model", "list_models", "list_backbones", "input_multiple"]

_ACTIVATIONS = ("softmax", "sigmoid", None)


def _import_architectures() -> dict[str, str]:
    """Import every builder module once; returns module -> reason for those not importable yet."""
    missing = {}
    for target in sorted(set(registry.MODELS.values())):
        module = target.split(":")[0]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real import error inside an existing module
                raise
            missing[module] = "module not found"
    return missing


_MISSING = _import_architectures()


def list_models() -> list[str]:
    """Names accepted by :func:`get_model` (architectures whose module is present)."""
    return [n for n, t in registry.MODELS.items() if t.split(":")[0] not in _MISSING]


def list_backbones() -> list[str]:
    """Backbone names accepted by the ``backbone`` argument (see :mod:`geoseg.models.backbones`)."""
    return list(BACKBONES)


def input_multiple(name: str, output_stride: int | None = None, **kwargs: Any) -> int:
    """What input height and width (pixels) must be a multiple of for model ``name``."""
    module = importlib.import_module(registry.MODELS[name].split(":")[0])
    refine = getattr(module, "input_multiple", None)
    if callable(refine):
        return int(refine(name, output_stride, **kwargs))
    rule = registry.INPUT_MULTIPLE.get(name, 32)
    if rule == "output_stride":
        if output_stride is None:
            output_stride = inspect.signature(registry.resolve(name)).parameters["output_stride"].default
        return int(output_stride)
    return int(rule)


def get_model(name: str, num_classes: int, input_shape: tuple = (256, 256, 3), backbone: str | None = None,
              weights: str | os.PathLike | None = None, output_stride: int | None = None,
              activation: str | None = "softmax", **kwargs: Any):
    """Build an uncompiled segmentation model.

    Args:
        name: one of :func:`list_models`.
        num_classes: output channels (>= 1).
        input_shape: ``(H, W, bands)`` in pixels; H and W a multiple of :func:`input_multiple`
            (or None for a size-agnostic model where the architecture allows it); any band count.
        backbone: one of :func:`list_backbones`, or None for the model's default.
        weights: None (random), ``"imagenet"`` (keras.applications encoder weights, first conv
            adapted to the band count) or the path of a ``.weights.h5`` / ``.keras`` file, or of a
            Keras 1/2 ``.h5`` weights file (Theano/channels-first kernels converted; see
            :func:`geoseg.models.pretrained.load_legacy_h5`).
            ``.keras`` files are matched by layer name, so a saved backbone works too; RGB files
            are adapted to the band count (:mod:`geoseg.models.pretrained`).
        output_stride: 8, 16 or 32; None for the model's own default (16 for DeepLab, 8 for
            PSPNet and DenseASPP, 32 for encoder-decoders).
        activation: ``"softmax"`` (default), ``"sigmoid"`` or None (logits).
        **kwargs: architecture options (``encoder_*`` / ``decoder_*``; see each builder).

    Returns:
        A ``keras.Model`` (N, H, W, bands) -> (N, H, W, num_classes).

    Raises:
        ModelConfigError: unknown name, backbone or option, bad shape, unusable weights.
        InputNotFoundError: ``weights`` names a file that does not exist.
    """
    if name not in registry.MODELS:
        raise ModelConfigError(f"unknown model {name!r}; expected one of: {', '.join(list_models())}")
    if registry.MODELS[name].split(":")[0] in _MISSING:
        raise ModelConfigError(f"model {name!r} is registered but its module is not available in this install")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelConfigError(f"num_classes must be an integer >= 1 for model {name!r}, got {num_classes!r}")
    shape = _check_shape(name, input_shape)
    if backbone is not None and backbone not in BACKBONES:
        get_spec(backbone)  # raises, listing the valid names
    if output_stride is not None and output_stride not in (8, 16, 32):
        raise ModelConfigError(f"output_stride must be 8, 16 or 32 for model {name!r}, got {output_stride!r}")
    if activation not in _ACTIVATIONS:
        raise ModelConfigError(f"activation must be one of softmax, sigmoid or None, got {activation!r}")
    builder = registry.resolve(name)
    params = inspect.signature(builder).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        fixed = {"num_classes", "input_shape", "backbone", "weights", "output_stride", "activation"}
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            valid = [p for p in params if p not in fixed]
            raise ModelConfigError(f"unknown option(s) {', '.join(unknown)} for model {name!r}; "
                                   f"valid: {', '.join(valid) or 'none'}")
    multiple = input_multiple(name, output_stride, **kwargs)
    for axis, size in zip(("height", "width"), shape[:2]):
        if size is not None and size % multiple:
            raise ModelConfigError(f"input {axis} {size} px is not a multiple of {multiple} for model {name!r}"
                                   f"{'' if output_stride is None else f' at output_stride {output_stride}'}")
    path = None
    if weights is not None and weights != "imagenet":
        path = Path(weights)
        if not path.exists():
            raise InputNotFoundError(f"no such weights file: {path}")
        if not path.name.lower().endswith((".keras", ".h5", ".hdf5")):
            raise ModelConfigError(f"weights must be None, 'imagenet', a .keras/.weights.h5 file or a Keras 1/2 "
                                   f".h5 file, got {path}")
    args: dict[str, Any] = {"backbone": backbone, "activation": activation, **kwargs}
    if output_stride is not None:
        args["output_stride"] = output_stride
    if weights == "imagenet":
        args["weights"] = "imagenet"
    model = builder(num_classes, shape, **args)
    if path is not None:
        _load_file(model, path, lambda bands: builder(num_classes, (*shape[:2], bands), **args))
    return model


def _check_shape(name: str, input_shape) -> tuple:
    try:
        h, w, bands = input_shape
    except (TypeError, ValueError):
        raise ModelConfigError(f"input_shape must be (height, width, bands) for model {name!r}, "
                               f"got {input_shape!r}") from None
    for label, v in (("height", h), ("width", w)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ModelConfigError(f"input {label} must be a positive integer or None, got {v!r}")
    if isinstance(bands, bool) or not isinstance(bands, int) or bands < 1:
        raise ModelConfigError(f"input bands must be an integer >= 1 for model {name!r}, got {bands!r}")
    return (h, w, bands)


def _load_file(model, path: Path, build_with_bands) -> None:
    """Load a weights file; an RGB ``.weights.h5`` goes through an RGB twin and is band-adapted."""
    from geoseg.models.pretrained import load_weights_file, transfer_weights

    bands = model.input_shape[-1]
    if bands == 3 or not path.name.endswith(".weights.h5"):  # .keras and Keras 1/2 files: by layer name
        load_weights_file(model, path)
        return
    try:
        model.load_weights(path)
        return
    except Exception:  # structure differs: perhaps the file holds the RGB twin of this model
        pass
    twin = build_with_bands(3)
    try:
        twin.load_weights(path)
    except Exception as exc:
        raise ModelConfigError(f"weights {path} fit neither this {bands}-band model nor its RGB twin: "
                               f"{str(exc).splitlines()[0][:160]}") from None
    transfer_weights(twin, model)
