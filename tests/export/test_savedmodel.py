"""``geoseg export --format savedmodel``: ``serving_default`` on raw band values == normalization + Keras."""

from __future__ import annotations

import json

import numpy as np
import pytest
from export_factories import MINMAX, keras_reference, zoo_bundle

from geoseg.errors import OutputExistsError
from geoseg.export.graph import dynamic_twin
from geoseg.export.savedmodel import export_savedmodel
from geoseg.io.bundle import load_bundle
from geoseg.runtime.tensorflow import import_tensorflow


def _serve(path, raw):
    tf = import_tensorflow()
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["image"]
    out = signature(image=tf.constant(raw))
    assert len(out) == 1
    return np.asarray(next(iter(out.values())))


def test_savedmodel_signature_takes_raw_values(unet_bundle_dir, tmp_path):
    bundle = load_bundle(unet_bundle_dir)
    result = export_savedmodel(bundle, tmp_path / "sm")
    assert result["dynamic_spatial"] is True
    rng = np.random.default_rng(0)
    raw = rng.uniform(1, 255, (3, 32, 32, 4)).astype(np.float32)
    raw[1, 3:9, 4:6, 0] = np.nan
    want = keras_reference(bundle, raw)
    assert float(want.std()) > 1e-3
    np.testing.assert_allclose(_serve(tmp_path / "sm", raw), want, rtol=0, atol=1e-4)
    wide = rng.uniform(1, 255, (1, 32, 80, 4)).astype(np.float32)
    np.testing.assert_allclose(_serve(tmp_path / "sm", wide), keras_reference(bundle, wide, dynamic_twin(bundle.model)),
                               rtol=0, atol=1e-4)
    record = json.loads((tmp_path / "sm" / "assets.extra" / "geoseg.json").read_text())
    assert record["classes"] == bundle.meta["classes"] and record["savedmodel"]["signature"] == "serving_default"
    with pytest.raises(OutputExistsError):
        export_savedmodel(bundle, tmp_path / "sm")


@pytest.mark.slow
def test_savedmodel_fixed_size_model_minmax(tmp_path):
    bundle = load_bundle(zoo_bundle(tmp_path, "deeplabv3", tile=32, norm=MINMAX))
    result = export_savedmodel(bundle, tmp_path / "sm", overwrite=True)
    assert result["dynamic_spatial"] is False  # ResizeLike cannot be traced at unknown sizes
    raw = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 4)).astype(np.float32)
    np.testing.assert_allclose(_serve(tmp_path / "sm", raw), keras_reference(bundle, raw), rtol=0, atol=1e-4)
