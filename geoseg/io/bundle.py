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
      "training": {...}, "metrics": {...}   # free-form summaries
    }
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoseg import __version__
from geoseg.io.atomic import atomic_output
from geoseg.io.classes import IGNORE_INDEX, ClassMap
from geoseg.errors import BundleError, InputNotFoundError, OutputExistsError

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
META_FILE = "geoseg.json"


@dataclass
class Bundle:
    """A loaded bundle. ``model`` is a ``keras.Model`` (loaded lazily on first access)."""

    directory: Path
    meta: dict[str, Any]
    _model: Any = field(default=None, repr=False)

    @property
    def model(self):
        if self._model is None:
            self._model = load_keras_model(self.directory / MODEL_FILE)
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


def load_keras_model(path: Path):
    """Load a ``.keras`` file with geoseg's custom layers registered."""
    import keras

    import geoseg.models  # noqa: F401  (registers custom layers for deserialization)

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # keras raises many types for corrupt archives
        raise BundleError(f"cannot load model {path}: {str(exc).splitlines()[0][:200]}") from None


def save_bundle(model, /, directory: str | os.PathLike, classes: ClassMap | list[str] | list[dict],
                tile_size: int, normalization: dict | None = None, *, overwrite: bool = False,
                **metadata: Any) -> Path:
    """Write ``model.keras`` and ``geoseg.json`` into ``directory`` (each file atomically).

    Args:
        model: a ``keras.Model`` mapping ``(N, tile, tile, bands)`` to ``(N, tile, tile, classes)``
            (positional-only, so that ``metadata`` may hold the ``model`` record: name and arguments).
        directory: bundle folder (created).
        classes: a ClassMap, a list of names, or the JSON list of class dicts.
        tile_size: model input size in pixels.
        normalization: see :mod:`geoseg.io.normalization`; None feeds raw pixel values.
        overwrite: replace an existing bundle.
        **metadata: extra keys for ``geoseg.json`` (bands, stride, nodata, model, training, metrics...).

    Raises:
        OutputExistsError: the bundle exists and ``overwrite`` is False.
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
    }
    meta.update(metadata)
    with atomic_output(d / MODEL_FILE) as tmp:
        model.save(tmp)
    with atomic_output(d / META_FILE) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
    return d


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
    """Read and validate ``geoseg.json`` without importing TensorFlow.

    Raises:
        InputNotFoundError: no such folder.
        BundleError: missing or invalid ``geoseg.json`` / ``model.keras``.
    """
    d = Path(directory)
    if not d.exists():
        raise InputNotFoundError(f"no such bundle: {d}")
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
