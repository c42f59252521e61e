"""Tiny model bundles for the inference tests (built here; the model zoo is not needed)."""

from __future__ import annotations

import numpy as np
import pytest

TILE = 32


def _identity_model(bands: int):
    import keras

    inp = keras.Input((TILE, TILE, bands))
    return keras.Model(inp, keras.layers.Identity()(inp), name="identity")


def _softmax_model(bands: int, classes: int):
    """3x3 conv + softmax with fixed weights: windows disagree near their edges (zero padding),
    so blending, halos and batching really matter."""
    import keras

    inp = keras.Input((TILE, TILE, bands))
    conv = keras.layers.Conv2D(classes, 3, padding="same", name="conv")
    out = keras.layers.Softmax()(conv(inp))
    model = keras.Model(inp, out, name="tiny_softmax")
    rng = np.random.default_rng(42)
    conv.set_weights([rng.normal(0, 0.05, (3, 3, bands, classes)).astype("float32"),
                      rng.normal(0, 0.1, classes).astype("float32")])
    return model


@pytest.fixture(scope="session")
def identity_bundle_dir(tmp_path_factory):
    """Bundle of an identity model on 3 bands ('probabilities' = input bands), tile 32, stride 16."""
    from geoseg.io.bundle import save_bundle

    d = tmp_path_factory.mktemp("bundles") / "identity"
    save_bundle(_identity_model(3), d, ["red", "green", "blue"], TILE, stride=TILE // 2)
    return d


@pytest.fixture(scope="session")
def identity_bundle(identity_bundle_dir):
    from geoseg.io.bundle import load_bundle

    return load_bundle(identity_bundle_dir)


@pytest.fixture(scope="session")
def softmax_bundle_dir(tmp_path_factory):
    """Bundle of a 3x3-conv softmax model: 4 bands -> 3 classes, minmax normalization, tile 32."""
    from geoseg.io.bundle import save_bundle

    d = tmp_path_factory.mktemp("bundles") / "softmax"
    norm = {"method": "minmax", "min": [0, 0, 0, 0], "max": [255, 255, 255, 255]}
    save_bundle(_softmax_model(4, 3), d, [{"index": 0, "name": "water", "color": [0, 0, 255]},
                                          {"index": 1, "name": "forest", "color": [0, 128, 0]},
                                          {"index": 2, "name": "urban", "color": [200, 0, 0]}],
                TILE, normalization=norm, stride=TILE // 2, bands=[1, 2, 3, 4])
    return d


@pytest.fixture(scope="session")
def softmax_bundle(softmax_bundle_dir):
    from geoseg.io.bundle import load_bundle

    return load_bundle(softmax_bundle_dir)


def read(path):
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read()
