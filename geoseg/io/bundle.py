"""Model bundles: ``model.keras`` plus ``geoseg.json``, everything prediction needs.

``geoseg.json`` (format_version 1)::

    {
      "format_version": 1, "geoseg_version": "0.1.0",
      "model": {"name": "unet", "arguments": {...}},          # how to rebuild it (informative)
      "classes": [{"index": 0, "name": "background", "color": [0, 0, 0]}, ...],
      "num_classes": 5,
      "bands": [1, 2, 3, 4],          # 1-based band indices of the scene, in model input order
      "normalization": null | {"method": "meanstd", "mean": [...], "std": [...]} | {...minmax...},
      "tile_size": 256, "stride": 128,  # pixels; stride = default for stride-mode prediction
      "nodata": null | 0,                # scene nodata seen in training (input side)
      "ignore_index": 255,
      "output_channels": 5,              # model output channels: num_classes, or 1 for a binary
                                         # (one sigmoid output) model of 2 classes, p = p(class 1)
      "input": {"dtype": "uint8", "min": [...], "max": [...], "p2": [...], "p98": [...]},
                                         # optional: training pixel statistics per model band
      "training": {...}, "metrics": {...}   # free-form summaries
    }

Bundles written before ``output_channels`` existed are read as binary when their recorded model
arguments say ``num_classes: 1`` and the bundle has 2 classes; without ``input`` prediction skips
the input range check (:mod:`geoseg.inference.checks`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoseg import __version__
from geoseg.errors import BundleError, InputNotFoundError, InvalidParameterError, OutputExistsError
from geoseg.io.atomic import atomic_output
from geoseg.io.classes import IGNORE_INDEX, ClassMap
from geoseg.io.onnx_model import OnnxModel, is_onnx_path, read_onnx_meta

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
META_FILE = "geoseg.json"


@dataclass
class Bundle:
    """A loaded bundle. ``model`` is a ``keras.Model`` (loaded lazily on first access).

    ``directory`` may also be an exported ``.onnx`` file (:mod:`geoseg.io.onnx_model`): ``meta``
    is then the record stored in it and ``model`` an :class:`~geoseg.io.onnx_model.OnnxModel`.
    """

    directory: Path
    meta: dict[str, Any]
    _model: Any = field(default=None, repr=False)

    @property
    def is_onnx(self) -> bool:
        """True for an exported ONNX file run by onnxruntime (no TensorFlow)."""
        return is_onnx_path(self.directory)

    @property
    def model_path(self) -> Path:
        """The model file: ``model.keras`` inside the bundle, or the ``.onnx`` file itself."""
        return self.directory if self.is_onnx else self.directory / MODEL_FILE

    @property
    def meta_path(self) -> Path:
        """The file holding the record: ``geoseg.json`` inside the bundle, or the ``.onnx`` file itself."""
        return self.directory if self.is_onnx else self.directory / META_FILE

    @property
    def model(self):
        if self._model is None:
            self._model = OnnxModel(self.directory) if self.is_onnx else load_keras_model(self.model_path)
        return self._model

    @property
    def classes(self) -> ClassMap:
        return ClassMap.from_json(self.meta["classes"])

    @property
    def num_classes(self) -> int:
        return int(self.meta.get("num_classes", self.classes.num_classes))

    @property
    def tile_size(self) -> int:
        return int(self.meta["tile_size"])

    @property
    def stride(self) -> int:
        return int(self.meta.get("stride") or max(1, self.tile_size // 2))

    @property
    def bands(self) -> list[int] | None:
        return self.meta.get("bands")

    @property
    def normalization(self) -> dict | None:
        return self.meta.get("normalization")

    @property
    def output_channels(self) -> int:
        """Channels the model outputs: ``num_classes``, or 1 for a binary (sigmoid) model."""
        if self.meta.get("output_channels") is not None:
            return int(self.meta["output_channels"])
        model = self.meta.get("model")
        args = model.get("arguments") if isinstance(model, dict) else None
        if isinstance(args, dict) and args.get("num_classes") == 1 and self.num_classes == 2:
            return 1
        return self.num_classes

    @property
    def binary(self) -> bool:
        """True for a model with one sigmoid output ``p`` read as the probabilities ``(1 - p, p)``."""
        return self.output_channels == 1 and self.num_classes == 2

    @property
    def input_stats(self) -> dict | None:
        """Training pixel statistics (``dtype``, per-band ``min``/``max``/``p2``/``p98``) or None."""
        return self.meta.get("input")


def load_keras_model(path: Path):
    """Load a ``.keras`` file with geoseg's custom layers registered (imports TensorFlow quietly).

    Raises:
        BundleError: the file is missing, not a ``.keras`` (zip) archive (cut off or corrupt), or
            Keras cannot rebuild the model from it.
    """
    import zipfile

    from geoseg.runtime.tensorflow import import_tensorflow

    if not Path(path).is_file():
        raise BundleError(f"cannot load model {path}: no such file")
    if not zipfile.is_zipfile(path):  # Keras reports any non-zip file as "File not found"
        raise BundleError(f"cannot load model {path}: the file is corrupt or cut off (a .keras model is a zip "
                          f"archive, this one is not: {Path(path).stat().st_size} bytes); copy or save the bundle "
                          "again")
    import_tensorflow()
    import keras

    import geoseg.models  # noqa: F401  (registers custom layers for deserialization)

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # keras raises many types for corrupt archives
        raise BundleError(f"cannot load model {path}: {str(exc).splitlines()[0][:200]}") from None


def model_input_channels(model) -> int | None:
    """Channels of the model's (first) input, None when its shape does not say."""
    return _last_dim(getattr(model, "input_shape", None))


def model_output_channels(model) -> int | None:
    """Channels of the model's (first) output, None when its shape does not say."""
    return _last_dim(getattr(model, "output_shape", None))


def _last_dim(shape) -> int | None:
    if isinstance(shape, list):
        shape = shape[0] if shape else None
    try:
        return int(shape[-1]) if shape and shape[-1] is not None else None
    except (TypeError, IndexError):
        return None


def save_bundle(model, /, directory: str | os.PathLike, classes: ClassMap | list[str] | list[dict],
                tile_size: int, normalization: dict | None = None, *, overwrite: bool = False,
                input_stats: dict | None = None, **metadata: Any) -> Path:
    """Write ``model.keras`` and ``geoseg.json`` into ``directory`` (each file atomically).

    Args:
        model: a ``keras.Model`` mapping ``(N, tile, tile, bands)`` to ``(N, tile, tile, classes)``,
            or to ``(N, tile, tile, 1)`` sigmoid probabilities of class 1 for 2 classes (binary)
            (positional-only, so that ``metadata`` may hold the ``model`` record: name and arguments).
        directory: bundle folder (created).
        classes: a ClassMap, a list of names, or the JSON list of class dicts.
        tile_size: model input size in pixels.
        normalization: see :mod:`geoseg.io.normalization`; None feeds raw pixel values.
        overwrite: replace an existing bundle.
        input_stats: training pixel statistics, stored as ``"input"``: ``{"dtype": "uint8",
            "min": [...], "max": [...], "p2": [...], "p98": [...]}``, one value per model input
            band in model order (``p2``/``p98`` optional); prediction refuses scenes of another
            dtype or far outside this range. None: no check.
        **metadata: extra keys for ``geoseg.json`` (bands, stride, nodata, model, training, metrics...).

    Raises:
        OutputExistsError: the bundle exists and ``overwrite`` is False.
        BundleError: the model's output channels fit neither the classes nor a binary model.
        InvalidParameterError: ``input_stats`` is malformed.
    """
    d = Path(directory)
    if (d / META_FILE).exists() and not overwrite:
        raise OutputExistsError(f"bundle exists: {d} (use --overwrite to replace it)")
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(classes, ClassMap):
        cmap = classes
    elif classes and isinstance(classes[0], dict):
        cmap = ClassMap.from_json(classes)
    else:
        cmap = ClassMap.from_names(list(classes))
    channels = model_output_channels(model) or cmap.num_classes
    if channels == 1 and cmap.num_classes != 2:
        raise BundleError(f"model outputs 1 channel (a binary sigmoid model) but {cmap.num_classes} class(es) "
                          f"are given for bundle {d}; a binary model needs exactly 2 classes (background, foreground)")
    if channels not in (1, cmap.num_classes):
        raise BundleError(f"model outputs {channels} channels but {cmap.num_classes} classes are given "
                          f"for bundle {d}")
    stats = check_input_stats(input_stats, model_input_channels(model))
    meta = {
        "format_version": FORMAT_VERSION,
        "geoseg_version": __version__,
        "model": {"name": getattr(model, "name", "model"), "arguments": {}},
        "classes": cmap.to_json(),
        "num_classes": cmap.num_classes,
        "bands": None,
        "normalization": normalization,
        "tile_size": int(tile_size),
        "stride": max(1, int(tile_size) // 2),
        "nodata": None,
        "ignore_index": IGNORE_INDEX,
        "output_channels": channels,
    }
    if stats is not None:
        meta["input"] = stats
    meta.update(metadata)
    with atomic_output(d / MODEL_FILE) as tmp:
        model.save(tmp)
    with atomic_output(d / META_FILE) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
    return d


def check_input_stats(stats: dict | None, bands: int | None = None) -> dict | None:
    """Validate ``input_stats`` for :func:`save_bundle`; return it with plain floats.

    Args:
        stats: ``{"dtype": str, "min": [...], "max": [...], "p2": [...], "p98": [...]}`` or None.
        bands: model input channels, when known: the length every list must have.

    Raises:
        InvalidParameterError: a key is missing or unknown, a dtype is not a numpy dtype, lists
            differ in length, or a minimum exceeds its maximum.
    """
    if stats is None:
        return None
    import numpy as np

    keys = ("dtype", "min", "max", "p2", "p98")
    unknown = sorted(set(stats) - set(keys))
    missing = [k for k in ("dtype", "min", "max") if stats.get(k) is None]
    if unknown or missing:
        raise InvalidParameterError(f"input_stats: unknown key(s) {unknown}, missing {missing}; "
                                    f"expected {', '.join(keys)}")
    try:
        dtype = np.dtype(str(stats["dtype"])).name
    except TypeError:
        raise InvalidParameterError(f"input_stats: dtype {stats['dtype']!r} is not a numpy dtype") from None
    out: dict[str, Any] = {"dtype": dtype}
    n = bands if bands is not None else int(np.size(stats["min"]))
    for key in keys[1:]:
        if stats.get(key) is None:
            continue
        values = [float(v) for v in np.ravel(stats[key])]
        if len(values) != n:
            raise InvalidParameterError(f"input_stats: {key} has {len(values)} value(s), expected {n} "
                                        "(one per model input band)")
        out[key] = values
    bad = [i + 1 for i, (lo, hi) in enumerate(zip(out["min"], out["max"])) if lo > hi]
    if bad:
        raise InvalidParameterError(f"input_stats: min > max for model band(s) {bad}")
    return out


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_bundle_meta(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``geoseg.json`` (or an exported ``.onnx`` file's record) without importing TensorFlow.

    Raises:
        InputNotFoundError: no such folder.
        BundleError: missing or invalid ``geoseg.json`` / ``model.keras``.
    """
    d = Path(directory)
    if not d.exists():
        raise InputNotFoundError(f"no such bundle: {d}")
    if d.is_file() and is_onnx_path(d):
        return read_onnx_meta(d)
    if not d.is_dir():
        raise BundleError(f"a bundle is a folder with {MODEL_FILE} and {META_FILE}, found a file: {d}")
    mf = d / META_FILE
    if not mf.exists():
        raise BundleError(f"bundle has no {META_FILE}: {d}")
    try:
        meta = json.loads(mf.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"corrupt {mf}: {exc}") from None
    missing = [k for k in ("classes", "tile_size") if k not in meta]
    if missing:
        raise BundleError(f"{mf} lacks key(s): {', '.join(missing)}")
    if int(meta.get("format_version", 1)) > FORMAT_VERSION:
        raise BundleError(f"{mf} has format_version {meta['format_version']}; this geoseg reads up to {FORMAT_VERSION}")
    if not (d / MODEL_FILE).exists():
        raise BundleError(f"bundle has no {MODEL_FILE}: {d}")
    return meta


def load_bundle(directory: str | os.PathLike, load_model: bool = True) -> Bundle:
    """Open a bundle; with ``load_model`` the Keras model is loaded now (imports TensorFlow)."""
    d = Path(directory)
    b = Bundle(directory=d, meta=read_bundle_meta(d))
    if load_model:
        _ = b.model
    return b
