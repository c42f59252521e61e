"""Pretrained weights: copy by layer name, adapting the first convolution to any band count.

RGB-trained kernels ``k`` of shape ``(kh, kw, 3, F)`` become ``(kh, kw, B, F)``:

- ``B >= 3``: bands 1-3 keep ``k``; extra bands get the mean RGB kernel ``m = mean(k, axis=2)``;
  the whole kernel is then scaled by ``3 / B`` so that, for inputs whose bands have similar
  statistics, the pre-activation keeps the magnitude it had with three bands.
- ``B < 3``: every band gets ``m * 3 / B`` (for one band: the sum of the RGB kernels, which is what
  a grey image repeated three times would have produced).

Keras 1/2 HDF5 weight files (:func:`load_legacy_h5`; root attribute ``layer_names``, one group per
layer with a ``weight_names`` attribute, as ``Model.save_weights`` wrote them before Keras 3) load
by layer name; Caffe VGG names ``conv{b}_{i}`` also match ``block{b}_conv{i}``. Conv kernels are
converted the way Keras 2 converted Keras 1 files (``preprocess_weights_for_loading``):

- layout: channels-first ("th") kernels ``(out, in, kh, kw)`` become ``(kh, kw, in, out)``
  (transpose 2, 3, 1, 0); the layout is read from the shapes of the whole file;
- orientation: kernels of the Theano backend are flipped in both spatial axes, because Theano
  convolves while TensorFlow (and Caffe) correlate. The backend is the file's ``backend`` attribute
  (Keras 2); Keras 1 files record none, and their channels-first kernels are taken as Theano's.
  This is the case of the Keras 1 port of the Dilation weights (DavideA/dilation-keras, Theano dim
  ordering, which itself runs ``convert_all_kernels_in_model`` = this flip on TensorFlow), whose
  kernels are the Caffe ones (fyu/dilation) flipped.

Layers whose weights are fixed by construction (``fixed_weights = True``, e.g. the bilinear
``ctx_upsample``) keep them: the Keras port stores an approximation there (nearest upsampling + a
16x16 conv), while geoseg's layer is the original Caffe deconvolution.
"""

from __future__ import annotations

import logging
import os
import re
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
    """Load a local ``.weights.h5`` (by structure), ``.keras`` or Keras 1/2 ``.h5`` file (by layer name).

    Raises:
        InputNotFoundError: no such file.
        ModelConfigError: the file does not fit the model (band count, classes, architecture).
    """
    import keras

    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"no such weights file: {p}")
    if p.suffix.lower() in (".h5", ".hdf5") and is_legacy_h5(p):
        load_legacy_h5(model, p)
        return
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


# --- Keras 1/2 HDF5 weight files ------------------------------------------------------------------

#: Caffe / Keras-1 VGG layer names (``conv3_2``) -> keras.applications names (``block3_conv2``)
_CAFFE_VGG = re.compile(r"conv(\d)_(\d)")


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _legacy_root(f):
    """The group holding ``layer_names``: the file itself, or ``model_weights`` of a whole-model file."""
    if "layer_names" in f.attrs:
        return f
    group = f.get("model_weights")
    return group if group is not None and "layer_names" in group.attrs else None


def is_legacy_h5(path: str | os.PathLike) -> bool:
    """True for a Keras 1/2 HDF5 weights or model file (root or ``model_weights`` attribute ``layer_names``)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return _legacy_root(f) is not None
    except OSError:  # not an HDF5 file
        return False


def read_legacy_h5(path: str | os.PathLike) -> tuple[dict[str, list[np.ndarray]], dict[str, str]]:
    """Layer name -> weight arrays (in ``weight_names`` order) of a Keras 1/2 HDF5 file, and its attributes.

    Layers without weights (pooling, padding, dropout) are left out. The attributes are
    ``backend`` and ``keras_version`` where the file records them (Keras 2 does, Keras 1 does not).

    Raises:
        ModelConfigError: not a Keras 1/2 weights file.
    """
    import h5py

    with h5py.File(path, "r") as f:
        root = _legacy_root(f)
        if root is None:
            raise ModelConfigError(f"{path}: not a Keras 1/2 HDF5 weights file (no 'layer_names' attribute)")
        attrs = {k: _text(f.attrs[k]) for k in ("backend", "keras_version") if k in f.attrs}
        layers = {}
        for layer in (_text(n) for n in root.attrs["layer_names"]):
            group = root[layer]
            names = [_text(n) for n in group.attrs.get("weight_names", [])]
            if names:
                layers[layer] = [np.asarray(group[n]) for n in names]
    return layers, attrs


def _kernel_fits(kernel_shape: tuple, target: tuple) -> bool:
    """A kernel (kh, kw, in, out) fits the target, the input axis possibly adapted from RGB."""
    return kernel_shape == target or (kernel_shape[:2] == target[:2] and kernel_shape[3] == target[3]
                                      and kernel_shape[2] == 3)


def _kernel_layout(pairs: list[tuple[tuple, tuple]], keras_version: str | None) -> str:
    """``"th"`` (out, in, kh, kw) or ``"tf"`` (kh, kw, in, out): the layout the file's 4-D kernels fit."""
    seen = set()
    for shape, target in pairs:
        fits = {name for name, s in (("tf", shape), ("th", tuple(shape[i] for i in (2, 3, 1, 0))))
                if _kernel_fits(s, target)}
        if len(fits) == 1:
            seen |= fits
    if len(seen) == 1:
        return seen.pop()
    if len(seen) > 1:
        raise ModelConfigError("the file mixes channels-first and channels-last kernels")
    return "th" if (keras_version or "1").startswith("1") else "tf"  # nothing tells: Keras 1 defaulted to th


def _target_layer(name: str, layers: dict):
    if name in layers:
        return layers[name]
    m = _CAFFE_VGG.fullmatch(name)
    return layers.get(f"block{m.group(1)}_conv{m.group(2)}") if m else None


def load_legacy_h5(model, path: str | os.PathLike, theano_kernels: bool | None = None) -> list[str]:
    """Load a Keras 1/2 HDF5 weights file into ``model`` by layer name, converting conv kernels.

    See the module docstring for the name matching, the layout and the Theano flip. A first conv
    trained on RGB is adapted to the model's band count (:func:`adapt_kernel`); the channel order
    of the file is kept (Caffe weights expect BGR). Layers of the file that find no layer of the
    same name and shape, and trainable model layers left without weights, are named in a warning
    (fine-tuning to other classes leaves the classifier out); layers with ``fixed_weights`` keep theirs.

    Args:
        model: the ``keras.Model`` to fill.
        path: the ``.h5`` file.
        theano_kernels: flip kernels spatially; None = the file's ``backend`` attribute, or, when it
            records none (Keras 1), True for channels-first kernels.

    Returns:
        the names of the model layers that received weights.

    Raises:
        ModelConfigError: not a Keras 1/2 file, or no layer of the file fits the model.
    """
    p = Path(path)
    layers, attrs = read_legacy_h5(p)
    targets = {layer.name: layer for layer in _all_layers(model)}
    matched = {name: (arrays, _target_layer(name, targets)) for name, arrays in layers.items()}
    pairs = [(a.shape, tuple(t.get_weights()[i].shape)) for arrays, t in matched.values()
             if t is not None and len(t.get_weights()) == len(arrays) for i, a in enumerate(arrays) if a.ndim == 4]
    layout = _kernel_layout(pairs, attrs.get("keras_version"))
    if theano_kernels is None:
        theano_kernels = attrs["backend"] == "theano" if "backend" in attrs else layout == "th"
    copied, skipped, fixed = [], [], []
    for name, (arrays, layer) in matched.items():
        if layer is not None and getattr(layer, "fixed_weights", False):
            fixed.append(layer.name)
            continue
        new = None if layer is None else _convert(arrays, layer.get_weights(), layout, theano_kernels)
        if new is None:
            skipped.append(name if layer is None else f"{name} (file {[a.shape for a in arrays]}, "
                                                      f"model {[w.shape for w in layer.get_weights()]})")
            continue
        layer.set_weights(new)
        copied.append(layer.name)
    if not copied:
        raise ModelConfigError(f"{p}: no layer of this Keras {attrs.get('keras_version', '1')} weights file fits "
                               f"the model (file layers: {', '.join(list(layers)[:8])})")
    empty = [t.name for t in targets.values() if t.trainable_weights and t.name not in copied]
    if skipped or empty:
        log.warning("%s: not loaded: %s; model layers left as initialized: %s", p.name,
                    "; ".join(skipped) or "none", ", ".join(empty) or "none")
    log.info("%s: %d layers loaded (%s kernels%s); kept fixed: %s", p.name, len(copied), layout,
             ", flipped (Theano)" if theano_kernels else "", ", ".join(fixed) or "none")
    return copied


def _convert(arrays: list[np.ndarray], current: list[np.ndarray], layout: str, flip: bool) -> list | None:
    """The file's arrays in Keras 3 layout for a layer whose weights are ``current``, or None if they do not fit."""
    if len(arrays) != len(current):
        return None
    out = []
    for a, w in zip(arrays, current):
        if a.ndim == 4:
            if layout == "th":
                a = a.transpose(2, 3, 1, 0)
            if flip:
                a = a[::-1, ::-1]
            if not _kernel_fits(a.shape, w.shape):
                return None
            a = adapt_kernel(a, w.shape[2])
        elif a.shape != w.shape:
            return None
        out.append(np.ascontiguousarray(a, dtype=w.dtype))
    return out
