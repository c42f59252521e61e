"""Backbone table: skip features at their strides, dilation, band-adapted pretrained weights (local files)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from geoseg.errors import ModelConfigError  # noqa: E402
from geoseg.models import backbones as bb  # noqa: E402
from geoseg.models.pretrained import adapt_kernel  # noqa: E402


@pytest.mark.parametrize("name", ["resnet50", "resnet50v2", "xception", "vgg16", "mobilenetv2",
                                  "efficientnetv2b0", "densenet121"])
def test_skips_and_dilation(name):
    model = bb.build_backbone(name, (96, 96, 4), output_stride=16)
    sizes = {s: t.shape[1] for s, t in bb.skip_outputs(model, name).items()}
    if name == "xception":  # its entry flow uses "valid" 3x3 convs: 96 -> 45 -> 23 before "same" layers
        assert (sizes[2], sizes[4]) == (45, 23)
        sizes.update({2: 48, 4: 24})
    assert sizes == {2: 48, 4: 24, 8: 12, 16: 6, 32: 6}, sizes
    assert model.output.shape[1] == 6


def test_resnet_dilation_rates_follow_deeplab():
    model = bb.build_backbone("resnet50", (64, 64, 3), output_stride=8)
    assert model.get_layer("conv3_block1_2_conv").dilation_rate == (1, 1)
    assert model.get_layer("conv4_block1_1_conv").strides == (1, 1)
    assert model.get_layer("conv4_block1_2_conv").dilation_rate == (2, 2)
    assert model.get_layer("conv5_block3_2_conv").dilation_rate == (4, 4)
    assert model.output.shape[1:3] == (8, 8)
    reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    assert model.count_params() == reference.count_params()  # dilation changes no weight shape


def test_mobilenet_padding_layers_neutralised_when_destrided():
    model = bb.build_backbone("mobilenetv2", (64, 64, 3), output_stride=8)
    conv = model.get_layer("block_13_depthwise")
    assert conv.strides == (1, 1) and conv.padding == "same"
    assert model.get_layer("block_14_depthwise").dilation_rate == (4, 4)
    assert model.get_layer("out_relu").output.shape[1:3] == (8, 8)


@pytest.mark.parametrize("fmt", ["weights.h5", "keras"])
def test_local_rgb_weights_adapted_to_bands(tmp_path, fmt):
    keras.utils.set_random_seed(0)
    rgb = bb.build_backbone("mobilenetv2", (32, 32, 3), alpha=0.35)
    rng = np.random.default_rng(0)
    rgb.set_weights([rng.normal(size=w.shape).astype("float32") for w in rgb.get_weights()])
    path = tmp_path / f"rgb.{fmt}"
    rgb.save_weights(path) if fmt == "weights.h5" else rgb.save(path)
    k = rgb.get_layer("Conv1").get_weights()[0]
    for bands in ((4, 13) if fmt == "keras" else (4,)):
        model = bb.build_backbone("mobilenetv2", (32, 32, bands), output_stride=16, weights=str(path), alpha=0.35)
        got = model.get_layer("Conv1").get_weights()[0]
        assert got.shape == (3, 3, bands, k.shape[-1])
        np.testing.assert_allclose(got[:, :, :3], k * 3 / bands, rtol=1e-6)  # RGB kernels kept (scaled)
        np.testing.assert_allclose(got[:, :, 3:], np.repeat(k.mean(axis=2, keepdims=True), bands - 3, axis=2)
                                   * 3 / bands, rtol=1e-5)  # extra bands: scaled mean kernel
        np.testing.assert_array_equal(got, adapt_kernel(k, bands))
        for layer in ("block_16_project", "block_16_project_BN"):
            for a, b in zip(model.get_layer(layer).get_weights(), rgb.get_layer(layer).get_weights()):
                np.testing.assert_array_equal(a, b)


def test_imagenet_download_failure_is_a_clear_error(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ModelConfigError, match="cannot download ImageNet weights for backbone 'mobilenetv2'"):
        bb.build_backbone("mobilenetv2", (32, 32, 4), weights="imagenet", alpha=0.35)


def test_unknown_backbone_and_stride():
    with pytest.raises(ModelConfigError, match="unknown backbone 'resnet18'; expected one of"):
        bb.build_backbone("resnet18", (64, 64, 3))
    with pytest.raises(ModelConfigError, match="output_stride must be 8, 16 or 32"):
        bb.build_backbone("resnet50", (64, 64, 3), output_stride=4)
