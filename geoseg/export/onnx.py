"""``geoseg export --format onnx``: a bundle as one self-describing ONNX file.

The graph takes raw band values ``(N, C, H, W)`` float32 and returns probabilities
``(N, K, H, W)`` (normalization inside, :mod:`geoseg.export.graph`); batch is always dynamic,
height and width where the model can be traced at unknown sizes. Conversion is Keras's own
``model.export(format="onnx")`` (tf2onnx underneath, the ``export`` extra). The metadata
(:mod:`geoseg.io.onnx_model`) carries the bundle record for ``geoseg predict --model FILE.onnx``
and the keys of the QGIS Deepness plugin.

Every export is checked before it is kept: onnxruntime on random raw windows against the
Keras path (reader normalization + model) within :data:`TOLERANCE`, at the tile size and, for a
dynamic graph, at a ``tile x 2 tile`` window against a dynamic-size copy of the Keras model.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import BundleError, OutputExistsError
from geoseg.export.graph import dynamic_twin, export_with_fallback, reference, sample_raw
from geoseg.io.atomic import atomic_output
from geoseg.io.bundle import Bundle, model_input_channels
from geoseg.io.onnx_model import INPUT_NAME, deepness_metadata, geoseg_metadata

log = logging.getLogger("geoseg.export")

#: largest absolute difference of probabilities accepted between ONNX and Keras.
TOLERANCE = 1e-4


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise BundleError(f"exporting to ONNX needs {module}: pip install 'geoseg[export]'") from None


def run_onnx(path: str | os.PathLike, raw_nchw: np.ndarray) -> np.ndarray:
    """Run an ONNX file on ``(N, C, H, W)`` float32 with onnxruntime (CPU)."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: raw_nchw.astype(np.float32)})[0]


def check_onnx(bundle: Bundle, path: str | os.PathLike, tile: int | None, batch: int = 2) -> float:
    """Compare an exported file with the Keras path on random raw windows; return the max abs difference.

    Args:
        bundle: the Keras bundle exported.
        path: the ONNX file.
        tile: the size it was exported at, None for dynamic (then also checked at ``tile x 2 tile``).
        batch: windows per check.

    Raises:
        BundleError: a difference above :data:`TOLERANCE`, or a wrong output shape.
    """
    t = bundle.tile_size
    sizes = [(t, t)] + ([(t, 2 * t)] if tile is None else [])
    worst = 0.0
    for i, (h, w) in enumerate(sizes):
        raw = sample_raw(bundle, (batch, h, w, model_input_channels(bundle.model)), seed=i)
        model = bundle.model if (h, w) == (t, t) else dynamic_twin(bundle.model)
        want = reference(bundle, raw, model)
        got = np.transpose(run_onnx(path, np.transpose(raw, (0, 3, 1, 2))), (0, 2, 3, 1))
        if got.shape != want.shape:
            raise BundleError(f"ONNX export of {bundle.directory} outputs {got.shape} for input {raw.shape}, "
                              f"Keras {want.shape}")
        diff = float(np.max(np.abs(got - want)))
        if not diff <= TOLERANCE:
            raise BundleError(f"ONNX export of {bundle.directory} differs from the Keras model by {diff:.2e} "
                              f"(> {TOLERANCE:g}) at {h}x{w} px")
        worst = max(worst, diff)
    return worst


def export_onnx(bundle: Bundle, out: str | os.PathLike, *, resolution_cm: float | None = None,
                overwrite: bool = False, opset: int | None = None) -> dict[str, Any]:
    """Write ``out`` (a ``.onnx`` file) from a Keras bundle, with metadata, after checking it.

    Args:
        bundle: the bundle (its Keras model is loaded here).
        out: output file.
        resolution_cm: ground resolution (cm per pixel) for Deepness' ``resolution`` key; None: unknown.
        overwrite: replace an existing file.
        opset: ONNX opset; None: the converter's default.

    Returns:
        ``{"path", "dynamic_spatial", "max_abs_diff", "input_shape", "output_shape"}``.

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is False.
        BundleError: tf2onnx/onnx missing, conversion failed, or the check failed.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {out} (use --overwrite to replace it)")
    onnx = _require("onnx")
    _require("tf2onnx")
    import tensorflow as tf

    bands = model_input_channels(bundle.model)
    diffs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="geoseg-onnx-") as tmp:
        raw_path = Path(tmp) / "raw.onnx"

        def write(wrapper, tile: int | None) -> None:
            spec = tf.TensorSpec((None, bands, tile, tile), tf.float32, name=INPUT_NAME)
            with warnings.catch_warnings():  # Keras' numpy-2 patch of tf2onnx probes np.object
                warnings.simplefilter("ignore", FutureWarning)
                wrapper.export(str(raw_path), format="onnx", verbose=False, input_signature=[spec],
                               opset_version=opset)

        def check(tile: int | None) -> None:
            diffs.append(check_onnx(bundle, raw_path, tile))

        dynamic = export_with_fallback(bundle, write, check, channels_first=True)
        proto = onnx.load(str(raw_path))
    _rename_output(proto)
    props = {**deepness_metadata(bundle.meta, bands, resolution_cm), **geoseg_metadata(bundle.meta, dynamic)}
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "geoseg"
    proto.doc_string = (f"geoseg bundle {bundle.directory.name}: raw band values (N, C, H, W) float32 -> "
                        f"probabilities (N, K, H, W); normalization inside the graph")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp_out:
        onnx.save(proto, str(tmp_out))
    shape = [d.dim_value or None for d in proto.graph.input[0].type.tensor_type.shape.dim]
    oshape = [d.dim_value or None for d in proto.graph.output[0].type.tensor_type.shape.dim]
    log.info("ONNX %s: input %s, output %s, max |ONNX - Keras| %.2e", out, shape, oshape, max(diffs))
    return {"path": out, "dynamic_spatial": dynamic, "max_abs_diff": max(diffs), "input_shape": shape,
            "output_shape": oshape}


def _rename_output(proto) -> None:
    """Name the graph's only output ``probs`` (tf2onnx names it after the Keras layer path)."""
    from geoseg.io.onnx_model import OUTPUT_NAME

    old = proto.graph.output[0].name
    if old == OUTPUT_NAME:
        return
    for node in proto.graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = OUTPUT_NAME
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = OUTPUT_NAME
    proto.graph.output[0].name = OUTPUT_NAME
