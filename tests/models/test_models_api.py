"""geoseg.models API: listing, validation messages, custom layers, import hygiene."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
import geoseg.models as gm  # noqa: E402
from geoseg.errors import InputNotFoundError, ModelConfigError  # noqa: E402
from geoseg.models.layers import AdaptiveAveragePooling2D, ResizeLike  # noqa: E402

MINE = ["deeplabv3", "deeplabv3plus", "pspnet", "refinenet", "denseaspp", "mobile_unet"]
TINY = {"backbone": "mobilenetv2", "encoder_kwargs": {"alpha": 0.35}, "decoder_filters": 8}


def test_lists():
    assert set(MINE) <= set(gm.list_models())
    assert {"resnet50", "resnet101", "resnet50v2", "resnet101v2", "resnet152v2", "xception", "vgg16", "vgg19",
            "mobilenetv2", "efficientnetv2b0", "efficientnetv2b3"} <= set(gm.list_backbones())


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "deeplab5"}, r"unknown model 'deeplab5'; expected one of: .*deeplabv3plus"),
    ({"backbone": "resnet9"}, r"unknown backbone 'resnet9'; expected one of: .*mobilenetv2"),
    ({"input_shape": (60, 64, 4)}, r"input height 60 px is not a multiple of 16 for model 'deeplabv3'"),
    ({"input_shape": (64, 72, 4), "output_stride": 16}, r"width 72 px is not a multiple of 16 .*output_stride 16"),
    ({"num_classes": 0}, r"num_classes must be an integer >= 1"),
    ({"input_shape": (64, 64)}, r"input_shape must be \(height, width, bands\)"),
    ({"input_shape": (64, 64, 0)}, r"bands must be an integer >= 1"),
    ({"output_stride": 4}, r"output_stride must be 8, 16 or 32"),
    ({"activation": "tanh"}, r"activation must be one of"),
    ({"decoder_widht": 3}, r"unknown option\(s\) decoder_widht for model 'deeplabv3'; valid: .*decoder_filters"),
    ({"backbone": "xception", "decoder_filters": 8}, r"backbone 'xception' needs inputs of at least 71 px, got 64"),
])
def test_get_model_errors(kwargs, match):
    args = {"name": "deeplabv3", "num_classes": 3, "input_shape": (64, 64, 4), **kwargs}
    with pytest.raises(ModelConfigError, match=match):
        gm.get_model(**args)


def test_model_specific_errors(tmp_path):
    with pytest.raises(ModelConfigError, match="mobile_unet has a MobileNetV2 encoder"):
        gm.get_model("mobile_unet", 2, (64, 64, 3), backbone="resnet50")
    with pytest.raises(ModelConfigError, match="refinenet .*output_stride must be 32, got 16"):
        gm.get_model("refinenet", 2, (64, 64, 3), output_stride=16)
    with pytest.raises(ModelConfigError, match="not a multiple of 8 for model 'pspnet'"):
        gm.get_model("pspnet", 2, (68, 68, 3))
    with pytest.raises(InputNotFoundError, match="no such weights file"):
        gm.get_model("deeplabv3", 2, (64, 64, 3), weights=tmp_path / "none.weights.h5", **TINY)
    assert gm.input_multiple("deeplabv3plus", 8) == 8 and gm.input_multiple("refinenet") == 32


def test_full_model_weights_file_rgb_twin(tmp_path):
    keras.utils.set_random_seed(0)
    rgb = gm.get_model("deeplabv3", 2, (32, 32, 3), **TINY)
    rgb.save_weights(tmp_path / "m.weights.h5")
    rgb.save(tmp_path / "m.keras")
    for path in ("m.weights.h5", "m.keras"):
        four = gm.get_model("deeplabv3", 2, (32, 32, 4), weights=tmp_path / path, **TINY)
        k3, k4 = rgb.get_layer("Conv1").get_weights()[0], four.get_layer("Conv1").get_weights()[0]
        np.testing.assert_allclose(k4[:, :, :3], k3 * 3 / 4, rtol=1e-6)
        np.testing.assert_allclose(k4[:, :, 3], k3.mean(axis=2) * 3 / 4, rtol=1e-5)
        np.testing.assert_array_equal(four.get_layer("classifier").get_weights()[0],
                                      rgb.get_layer("classifier").get_weights()[0])


def test_resize_like_layer_dynamic_and_config():
    layer = ResizeLike(name="r")
    clone = ResizeLike.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    inp, ref = keras.Input((None, None, 2)), keras.Input((None, None, 1))
    model = keras.Model([inp, ref], clone([inp, ref]))
    out = model([np.ones((1, 3, 5, 2), "float32"), np.zeros((1, 12, 20, 1), "float32")])
    assert tuple(out.shape) == (1, 12, 20, 2)
    np.testing.assert_allclose(np.asarray(out), 1.0)


def test_adaptive_pooling_matches_numpy():
    layer = AdaptiveAveragePooling2D((3, 2))
    assert AdaptiveAveragePooling2D.from_config(layer.get_config()).output_size == (3, 2)
    x = np.random.default_rng(0).random((2, 7, 5, 3)).astype("float32")
    out = np.asarray(layer(x))
    want = np.zeros((2, 3, 2, 3), "float32")
    for i in range(3):
        for j in range(2):
            h0, h1 = (i * 7) // 3, -(-(i + 1) * 7 // 3)
            w0, w1 = (j * 5) // 2, -(-(j + 1) * 5 // 2)
            want[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    np.testing.assert_allclose(out, want, rtol=1e-5)


def test_registered_custom_layers():
    assert keras.saving.get_registered_object("geoseg>ResizeLike") is ResizeLike
    assert keras.saving.get_registered_object("geoseg>AdaptiveAveragePooling2D") is AdaptiveAveragePooling2D


def test_import_geoseg_is_light():
    code = "import sys, geoseg; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
