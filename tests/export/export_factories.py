"""Small zoo bundles for the export tests (``from export_factories import ...``), with random weights.

Several zoo models initialize their classifier at zero (FCN's scoring layers, as in the paper),
which would give uniform probabilities that any converter reproduces; :func:`randomize` draws
every weight so outputs vary across pixels and classes.
"""

from __future__ import annotations

import numpy as np

E = {"backbone": "mobilenetv2", "encoder_kwargs": {"alpha": 0.35}}
W = (4, 8, 8, 16, 16)
#: the small configurations of tests/models, per zoo model.
TINY = {
    "unet": {"encoder_filters": 4, "dropout": 0.0},
    "resunet": {"encoder_filters": 4},
    "mobile_unet": {"encoder_alpha": 0.35, "decoder_filters": (32, 16, 16, 8, 8)},
    "deeplabv3": {**E, "decoder_filters": 16},
    "deeplabv3plus": {**E, "decoder_filters": 16, "decoder_low_level_filters": 8, "decoder_separable": True},
    "fcn32s": {"encoder_widths": W, "fc_channels": 16, "dropout": 0.0},
    "fcn16s": {"encoder_widths": W, "fc_channels": 16, "dropout": 0.0},
    "fcn8s": {"encoder_widths": W, "fc_channels": 16, "dropout": 0.0},
    "segnet": {"encoder_widths": W},
    "pspnet": {**E, "decoder_filters": 16},
    "refinenet": {**E, "decoder_filters": 8, "decoder_top_filters": 16},
    "denseaspp": {**E, "decoder_bottleneck": 16, "decoder_growth": 8},
    "dilatednet": {"encoder_widths": W, "fc_channels": 16, "dropout": 0.0},
}
MEANSTD = {"method": "meanstd", "mean": [100.0, 90.0, 80.0, 120.0], "std": [30.0, 25.0, 20.0, 40.0]}
MINMAX = {"method": "minmax", "min": [10.0, 10.0, 10.0, 10.0], "max": [240.0, 230.0, 220.0, 250.0]}
STATS = {"dtype": "uint8", "min": [1, 1, 1, 1], "max": [255, 255, 255, 255]}
CLASSES = [{"index": 0, "name": "background", "color": [0, 0, 0]},
           {"index": 1, "name": "building", "color": [220, 20, 60]},
           {"index": 2, "name": "tree", "color": [0, 128, 0]}]


def keras_module():
    from geoseg.runtime.tensorflow import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def randomize(model, seed: int = 0):
    """Draw every weight: kernels ~ N(0, 2/fan_in) (He), biases and BN shifts ~ N(0, 0.1), BN scales and
    variances in [0.5, 1.5] (non-trainable fixed kernels, e.g. bilinear upsampling, are kept)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        name = w.path.split("/")[-1]
        shape = tuple(w.shape)
        if not w.trainable and "moving" not in name:
            continue
        if "variance" in name or name == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) <= 1:
            value = rng.normal(0, 0.1, shape)
        else:
            value = rng.normal(0, np.sqrt(2.0 / max(1, int(np.prod(shape[:-1])))), shape)
        w.assign(value.astype(w.dtype))
    return model


def zoo_bundle(root, name: str, tile: int = 64, classes=CLASSES, norm=MEANSTD, activation="softmax", **extra):
    """A saved bundle of zoo model ``name`` (small config, random weights, 4 bands)."""
    import geoseg.models as gm
    from geoseg.io.bundle import save_bundle

    keras = keras_module()
    keras.utils.set_random_seed(0)
    k = len(classes) if activation == "softmax" else 1
    model = randomize(gm.get_model(name, k, (tile, tile, 4), activation=activation, **TINY[name]))
    return save_bundle(model, root / name, classes, tile, norm, overwrite=True, input_stats=STATS,
                       bands=[1, 2, 3, 4], band_names=["red", "green", "blue", "nir"], stride=tile // 2,
                       model={"name": name, "arguments": {"num_classes": k, **TINY[name]}}, **extra)


def keras_reference(bundle, raw_nhwc: np.ndarray, model=None) -> np.ndarray:
    """Independent reference: the normalization formula written out, NaN -> 0, then the Keras model."""
    norm = bundle.normalization
    x = raw_nhwc.astype(np.float32)
    if norm["method"] == "meanstd":
        x = (x - np.float32(norm["mean"])) / np.float32(norm["std"])
    else:
        lo, hi = np.float32(norm["min"]), np.float32(norm["max"])
        x = np.clip((x - lo) / (hi - lo), 0, 1)
    x = np.where(np.isfinite(x), x, 0).astype(np.float32)
    return np.asarray((model or bundle.model)(x, training=False), dtype=np.float32)
