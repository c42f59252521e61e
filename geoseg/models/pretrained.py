"""Pretrained weights: copy by layer name, adapting the first convolution to any band count.

RGB-trained kernels ``k`` of shape ``(kh, kw, 3, F)`` become ``(kh, kw, B, F)``:

- ``B >= 3``: bands 1-3 keep ``k``; extra bands get the mean RGB kernel ``m = mean(k, axis=2)``;
  the whole kernel is then scaled by ``3 / B`` so that, for inputs whose bands have similar
  statistics, the pre-activation keeps the magnitude it had with three bands.
- ``B < 3``: every band gets ``m * 3 / B`` (for one band: the sum of the RGB kernels, which is what
  a grey image repeated three times would have produced).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from geoseg.errors import InputNotFoundError, ModelConfigError

log = logging.getLogger(__name__)


def adapt_kernel(kernel: np.ndarray, bands: int) -> np.ndarray:
    """Adapt an RGB conv kernel ``(kh, kw, 3, F)`` to ``bands`` input channels (see module doc)."""
    k = np.asarray(kernel)
    if k.shape[2] == bands:
        return k
    mean = k.mean(axis=2, keepdims=True)
    if bands >= 3:
        extra = np.repeat(mean, bands - 3, axis=2)
        return (np.concatenate([k[:, :, :3], extra], axis=2) * (3.0 / bands)).astype(k.dtype)
    return (np.repeat(mean, bands, axis=2) * (3.0 / bands)).astype(k.dtype)


def transfer_weights(source, target, strict: bool = False) -> list[str]:
    """Copy weights from ``source`` to ``target`` (two ``keras.Model``), matching layers by name.

    A layer whose kernel differs only in its input-channel axis (the first convolution of a
    multispectral model) is adapted with :func:`adapt_kernel`. Returns the names of the layers copied.

    Raises:
        ModelConfigError: ``strict`` and some target layer with weights found no source layer.
    """
    src = {layer.name: layer for layer in _all_layers(source)}
    copied, missing = [], []
    for layer in _all_layers(target):
        tw = layer.get_weights()
        if not tw:
            continue
        s = src.get(layer.name)
        if s is None or len(s.get_weights()) != len(tw):
            missing.append(layer.name)
            continue
        sw = s.get_weights()
        new = []
        for a, b in zip(sw, tw):
            if a.shape == b.shape:
                new.append(a)
            elif a.ndim == 4 and a.shape[:2] == b.shape[:2] and a.shape[3] == b.shape[3] and a.shape[2] == 3:
                new.append(adapt_kernel(a, b.shape[2]))
            else:
                new = None
                break
        if new is None:
            missing.append(layer.name)
            continue
        layer.set_weights(new)
        copied.append(layer.name)
    if strict and missing:
        raise ModelConfigError(f"no matching pretrained weights for layer(s): {', '.join(missing[:10])}")
    log.debug("copied %d layers, %d without source", len(copied), len(missing))
    return copied


def _all_layers(model):
    """Layers of a model, descending into nested models (keras.applications backbones)."""
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ in ("Functional", "Model", "Sequential"):
            out.extend(_all_layers(layer))
        else:
            out.append(layer)
    return out


def load_weights_file(model, path: str | os.PathLike) -> None:
    """Load a local ``.weights.h5`` (by structure) or ``.keras`` file (by layer name) into ``model``.

    Raises:
        InputNotFoundError: no such file.
        ModelConfigError: the file does not fit the model (band count, classes, architecture).
    """
    import keras

    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"no such weights file: {p}")
    try:
        if p.name.endswith(".keras"):
            # geoseg.models (this module's package) has registered every custom layer already
            src = keras.saving.load_model(p, compile=False)
            _check_bands(src, model, p)
            copied = transfer_weights(src, model)
            if not copied:
                raise ModelConfigError(f"{p}: no layer names in common with the model")
        else:
            model.load_weights(p)
    except ModelConfigError:
        raise
    except Exception as exc:
        raise ModelConfigError(f"weights {p} do not fit the model: {str(exc).splitlines()[0][:200]}") from None


def _check_bands(src, dst, path: Path) -> None:
    sb, db = src.input_shape[-1], dst.input_shape[-1]
    if sb != db and sb != 3:  # RGB weights are adapted to any band count (see adapt_kernel)
        raise ModelConfigError(f"weights {path} were trained on {sb} band(s) but the model has {db}")
