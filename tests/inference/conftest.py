"""Tiny model bundles for the inference tests (built here; the model zoo is not needed)."""

from __future__ import annotations

import numpy as np
import pytest

TILE = 32


def _keras():
    from geoseg.runtime.tensorflow import import_tensorflow

    import_tensorflow()  # the tests' stderr without TensorFlow's start-up lines
    import keras

    return keras


def _identity_model(bands: int):
    keras = _keras()

    inp = keras.Input((TILE, TILE, bands))
    return keras.Model(inp, keras.layers.Identity()(inp), name="identity")


def _softmax_model(bands: int, classes: int):
    """3x3 conv + softmax with fixed weights: windows disagree near their edges (zero padding),
    so blending, halos and batching really matter."""
    keras = _keras()

    inp = keras.Input((TILE, TILE, bands))
    conv = keras.layers.Conv2D(classes, 3, padding="same", name="conv")
    out = keras.layers.Softmax()(conv(inp))
    model = keras.Model(inp, out, name="tiny_softmax")
    rng = np.random.default_rng(42)
    conv.set_weights([rng.normal(0, 0.05, (3, 3, bands, classes)).astype("float32"),
                      rng.normal(0, 0.1, classes).astype("float32")])
    return model


def _binary_pair(bands: int):
    """(sigmoid model, softmax model) with ``softmax([0, logit]) == sigmoid(logit)``: the softmax
    model's class-0 logit is 0 and its class-1 logit is the sigmoid model's logit."""
    keras = _keras()

    rng = np.random.default_rng(7)
    kernel = rng.normal(0, 0.5, (3, 3, bands, 1)).astype("float32")
    bias = np.array([-0.5 * kernel.sum()], "float32")  # logits centred on 0 for inputs around 0.5
    inp = keras.Input((TILE, TILE, bands))
    conv = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="conv")
    sigmoid = keras.Model(inp, conv(inp), name="tiny_sigmoid")
    conv.set_weights([kernel, bias])
    inp2 = keras.Input((TILE, TILE, bands))
    conv2 = keras.layers.Conv2D(2, 3, padding="same", name="conv")
    softmax = keras.Model(inp2, keras.layers.Softmax()(conv2(inp2)), name="tiny_softmax2")
    conv2.set_weights([np.concatenate([np.zeros_like(kernel), kernel], axis=-1), np.array([0.0, bias[0]], "float32")])
    return sigmoid, softmax


BINARY_CLASSES = ["background", "building"]
BINARY_NORM = {"method": "minmax", "min": [0, 0, 0, 0], "max": [255, 255, 255, 255]}


@pytest.fixture(scope="session")
def binary_bundle_dirs(tmp_path_factory):
    """``(sigmoid, softmax)`` bundles of the same binary classifier: 4 bands, tile 32, stride 16;
    the first has one sigmoid output, the second two softmax outputs."""
    from geoseg.io.bundle import save_bundle

    root = tmp_path_factory.mktemp("bundles")
    sigmoid, softmax = _binary_pair(4)
    dirs = []
    for name, model in (("sigmoid", sigmoid), ("softmax2", softmax)):
        dirs.append(save_bundle(model, root / name, BINARY_CLASSES, TILE, normalization=BINARY_NORM,
                                stride=TILE // 2, bands=[1, 2, 3, 4]))
    return tuple(dirs)


@pytest.fixture(scope="session")
def binary_identity_bundle(tmp_path_factory):
    """Bundle of an identity model on 1 band saved as a binary model ('p' = the band's value)."""
    from geoseg.io.bundle import load_bundle, save_bundle

    d = tmp_path_factory.mktemp("bundles") / "identity1"
    save_bundle(_identity_model(1), d, BINARY_CLASSES, TILE, stride=TILE // 2)
    return load_bundle(d)


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
