"""``geoseg export --format savedmodel``: a TensorFlow SavedModel with a raw-value serving signature.

The ``serving_default`` signature takes ``image``: raw band values ``(N, H, W, C)`` float32 in the
bundle's band order (channels last, TensorFlow's convention) and returns ``{"output_0": (N, H, W,
K)}`` probabilities; the bundle normalization is inside (:mod:`geoseg.export.graph`). Height and
width are dynamic where the model allows it, else the bundle's tile size. ``geoseg.json`` is
copied into the folder's ``assets.extra/`` (TensorFlow Serving's place for side files), so the
classes, colours and tile/stride travel with the model.

The export is checked before it is kept: the signature, loaded back with
``tf.saved_model.load``, against the Keras path on random raw windows (max abs difference
<= :data:`geoseg.export.onnx.TOLERANCE`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import BundleError, OutputExistsError
from geoseg.export.graph import dynamic_twin, export_with_fallback, reference, sample_raw
from geoseg.io.bundle import Bundle, model_input_channels

SIGNATURE = "serving_default"
EXTRA_DIR = "assets.extra"


def serve(path: str | Path, raw_nhwc: np.ndarray) -> np.ndarray:
    """Call a SavedModel's ``serving_default`` on raw values ``(N, H, W, C)``; ``(N, H, W, K)`` float32."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures[SIGNATURE]
    out = fn(image=tf.constant(raw_nhwc, tf.float32))
    return np.asarray(next(iter(out.values())), dtype=np.float32)


def export_savedmodel(bundle: Bundle, out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Write a SavedModel folder ``out`` from a Keras bundle, after checking it.

    Args:
        bundle: the bundle (its Keras model is loaded here).
        out: output folder.
        overwrite: replace an existing folder.

    Returns:
        ``{"path", "dynamic_spatial", "max_abs_diff"}``.

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is False.
        BundleError: the check failed.
    """
    from geoseg.export.onnx import TOLERANCE
    from geoseg.runtime.tensorflow import import_tensorflow

    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {out} (use --overwrite to replace it)")
    tf = import_tensorflow()
    bands = model_input_channels(bundle.model)
    diffs: list[float] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".geoseg-savedmodel-", dir=out.parent) as tmp:
        target = Path(tmp) / "model"

        def write(wrapper, tile: int | None) -> None:
            if target.exists():
                shutil.rmtree(target)
            spec = tf.TensorSpec((None, tile, tile, bands), tf.float32, name="image")
            wrapper.export(str(target), format="tf_saved_model", verbose=False, input_signature=[spec])

        def check(tile: int | None) -> None:
            t = bundle.tile_size
            for i, (h, w) in enumerate([(t, t)] + ([(t, 2 * t)] if tile is None else [])):
                raw = sample_raw(bundle, (2, h, w, bands), seed=i)
                model = bundle.model if (h, w) == (t, t) else dynamic_twin(bundle.model)
                want, got = reference(bundle, raw, model), serve(target, raw)
                diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")
                if not diff <= TOLERANCE:
                    raise BundleError(f"SavedModel export of {bundle.directory} differs from the Keras model "
                                      f"by {diff:.2e} (> {TOLERANCE:g}) at {h}x{w} px")
                diffs.append(diff)

        dynamic = export_with_fallback(bundle, write, check, channels_first=False)
        extra = target / EXTRA_DIR
        extra.mkdir(exist_ok=True)
        (extra / "geoseg.json").write_text(json.dumps({**bundle.meta, "savedmodel": {
            "signature": SIGNATURE, "input": "image: raw band values (N, H, W, C) float32, normalization inside",
            "dynamic_spatial": dynamic}}, indent=2, default=str) + "\n")
        if out.exists():
            shutil.rmtree(out)
        target.rename(out)
    return {"path": out, "dynamic_spatial": dynamic, "max_abs_diff": max(diffs)}
