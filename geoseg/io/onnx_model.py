"""ONNX model files written by ``geoseg export --format onnx``: their metadata and an onnxruntime session.

An exported file is a self-describing model: its ``metadata_props`` carry

- ``geoseg``: the bundle's ``geoseg.json`` (classes and colours, bands, normalization, tile,
  stride, ``output_channels``, ``input`` statistics, ...) plus ``"onnx"``: the graph's layout, so
  that ``geoseg predict --model MODEL.onnx`` rebuilds the same :class:`~geoseg.io.bundle.Bundle`
  record the Keras path uses;
- the keys the QGIS Deepness plugin reads (JSON values): ``model_type`` (``"Segmentor"``),
  ``class_names`` (``{"0": name, ...}``), ``tile_size`` and ``tiles_size`` (pixels),
  ``tiles_overlap`` (percent of the tile), ``standardization_mean`` / ``standardization_std``,
  ``seg_thresh`` and, when known, ``resolution`` (cm per pixel).

The graph (:data:`LAYOUT`) takes **raw band values** ``(N, C, H, W)`` float32 (channels first,
as Deepness feeds them) and returns probabilities ``(N, K, H, W)`` (K = 1 for a binary sigmoid
model); the bundle's normalization is inside the graph. Deepness divides pixels by 255 and then
standardizes, so the file sets ``standardization_mean = 0`` and ``standardization_std = 1/255``
per band: the graph gets the raw values back.

Nothing here imports TensorFlow; onnxruntime is imported when a session is opened (the
``onnx`` extra: ``pip install geoseg[onnx]``).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import BundleError, InputNotFoundError

#: metadata key holding the geoseg bundle record (JSON).
GEOSEG_KEY = "geoseg"
#: what the graph takes and returns, recorded under ``meta["onnx"]["layout"]``.
LAYOUT = "NCHW"
#: the graph's input and output names.
INPUT_NAME = "image"
OUTPUT_NAME = "probs"


def deepness_metadata(meta: dict[str, Any], bands: int, resolution_cm: float | None = None) -> dict[str, str]:
    """The QGIS Deepness keys for a bundle record (values JSON-encoded, as the plugin reads them).

    Args:
        meta: the bundle's ``geoseg.json`` record.
        bands: model input channels C.
        resolution_cm: ground resolution in centimetres per pixel, None when unknown.
    """
    tile = int(meta["tile_size"])
    stride = int(meta.get("stride") or max(1, tile // 2))
    names = {str(c["index"]): str(c["name"]) for c in meta["classes"]}
    out = {
        "model_type": json.dumps("Segmentor"),
        "class_names": json.dumps(names),
        "tile_size": json.dumps(tile),   # the key the plugin's code reads
        "tiles_size": json.dumps(tile),  # the key its documentation names
        "tiles_overlap": json.dumps(int(round(100 * (tile - stride) / tile))),
        # Deepness feeds x / 255, standardized: (x / 255 - 0) / (1 / 255) = x, the raw values the graph expects
        "standardization_mean": json.dumps([0.0] * bands),
        "standardization_std": json.dumps([1.0 / 255.0] * bands),
        "seg_thresh": json.dumps(0.5),
    }
    if resolution_cm is not None:
        out["resolution"] = json.dumps(float(resolution_cm))
    return out


def geoseg_metadata(meta: dict[str, Any], dynamic_spatial: bool) -> dict[str, str]:
    """The ``geoseg`` key: the bundle record plus the graph's layout (see the module docstring)."""
    record = dict(meta)
    record["onnx"] = {"layout": LAYOUT, "input": INPUT_NAME, "output": OUTPUT_NAME,
                      "input_values": "raw band values (normalization inside the graph)",
                      "dynamic_spatial": bool(dynamic_spatial)}
    return {GEOSEG_KEY: json.dumps(record, default=_json_default)}


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def is_onnx_path(path: str | os.PathLike) -> bool:
    """True for a ``.onnx`` file name (case-insensitive)."""
    return Path(path).suffix.lower() == ".onnx"


def _import_onnxruntime(path: Path):
    try:
        import onnxruntime
    except ImportError:
        raise BundleError(f"predicting with {path} needs onnxruntime: pip install 'geoseg[onnx]'") from None
    return onnxruntime


@functools.lru_cache(maxsize=2)
def _session(path: str, mtime: float):
    """One onnxruntime session per file version (``mtime``), shared by metadata reads and the model."""
    ort = _import_onnxruntime(Path(path))
    try:
        return ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for corrupt files
        raise BundleError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0][:200]}") from None


def open_session(path: str | os.PathLike):
    """The onnxruntime ``InferenceSession`` of an ONNX file (CPU).

    Raises:
        InputNotFoundError: no such file.
        BundleError: onnxruntime is missing or cannot load the file.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"no such ONNX model: {p}")
    return _session(str(p.resolve()), p.stat().st_mtime)


def read_onnx_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The bundle record stored in an exported ONNX file (``geoseg.json`` + ``"onnx"``).

    Raises:
        InputNotFoundError: no such file.
        BundleError: the file lacks geoseg metadata (not written by ``geoseg export``) or is corrupt.
    """
    p = Path(path)
    props = open_session(p).get_modelmeta().custom_metadata_map
    if GEOSEG_KEY not in props:
        raise BundleError(f"{p} has no '{GEOSEG_KEY}' metadata: export the bundle with "
                          "'geoseg export BUNDLE --format onnx' (other ONNX files lack classes, bands and tile size)")
    try:
        meta = json.loads(props[GEOSEG_KEY])
    except json.JSONDecodeError as exc:
        raise BundleError(f"corrupt '{GEOSEG_KEY}' metadata in {p}: {exc}") from None
    missing = [k for k in ("classes", "tile_size", "onnx") if k not in meta]
    if missing:
        raise BundleError(f"'{GEOSEG_KEY}' metadata of {p} lacks key(s): {', '.join(missing)}")
    if meta["onnx"].get("layout") != LAYOUT:
        raise BundleError(f"{p}: graph layout {meta['onnx'].get('layout')!r}, this geoseg reads {LAYOUT}")
    return meta


class OnnxModel:
    """An exported model run by onnxruntime, called like the Keras model on channels-last arrays.

    ``model(x)`` maps raw band values ``(N, H, W, C)`` float32 to ``(N, H, W, K)`` float32
    probabilities (the graph itself is channels first, see the module docstring).

    Args:
        path: the ``.onnx`` file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.session = open_session(self.path)
        inp = self.session.get_inputs()[0]
        out = self.session.get_outputs()[0]
        self.input_name = inp.name
        dims = [d if isinstance(d, int) else None for d in inp.shape]
        odims = [d if isinstance(d, int) else None for d in out.shape]
        if len(dims) != 4 or len(odims) != 4:
            raise BundleError(f"{self.path}: expected a 4-D input and output (N, C, H, W), "
                              f"found {inp.shape} -> {out.shape}")
        #: channels-last views of the graph's shapes (``None`` = dynamic), like ``keras.Model``.
        self.input_shape = (None, dims[2], dims[3], dims[1])
        self.output_shape = (None, odims[2], odims[3], odims[1])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``(N, H, W, C)`` raw values -> ``(N, H, W, K)`` probabilities (float32)."""
        feed = np.ascontiguousarray(np.transpose(np.asarray(x, dtype=np.float32), (0, 3, 1, 2)))
        y = self.session.run(None, {self.input_name: feed})[0]
        return np.transpose(y, (0, 2, 3, 1))
