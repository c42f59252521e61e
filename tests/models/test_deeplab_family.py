"""DeepLab v3/v3+, PSPNet, RefineNet, DenseASPP, Mobile U-Net: shapes, .keras round trip, fit, faithfulness."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
import geoseg.models as gm  # noqa: E402

TINY_ENC = {"backbone": "mobilenetv2", "encoder_kwargs": {"alpha": 0.35}}
TINY = {
    "deeplabv3": {**TINY_ENC, "decoder_filters": 16},
    "deeplabv3plus": {**TINY_ENC, "decoder_filters": 16, "decoder_low_level_filters": 8, "decoder_separable": True},
    "pspnet": {**TINY_ENC, "decoder_filters": 16},
    "refinenet": {**TINY_ENC, "decoder_filters": 8, "decoder_top_filters": 16},
    "denseaspp": {**TINY_ENC, "decoder_bottleneck": 16, "decoder_growth": 8},
    "mobile_unet": {"encoder_alpha": 0.35, "decoder_filters": (32, 16, 16, 8, 8)},
}


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _task(bands: int, n: int = 4, size: int = 32):
    """Bright band 0 -> every pixel class 1, dark -> class 0: learnable in a few steps."""
    rng = np.random.default_rng(0)
    x = rng.random((n, size, size, bands)).astype("float32")
    bright = np.arange(n) % 2 == 1
    x[bright, :, :, 0] += 1.0
    y = np.broadcast_to(bright[:, None, None], (n, size, size)).astype("int32")
    return x, y


@pytest.mark.parametrize("name", list(TINY))
def test_forward_roundtrip_and_fit(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = gm.get_model(name, 2, (32, 32, 4), **TINY[name])  # 32 px: the smallest valid MobileNetV2 input
    x, y = _task(4)
    p = np.asarray(model(x, training=False))
    assert p.shape == (4, 32, 32, 2)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    assert model.layers[-1].name == "probs" and model.get_layer("logits") is not None

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), p, rtol=0, atol=1e-6)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]

    # eager steps: tracing a training graph costs far more than a few steps at this size
    lr = 1e-3 if name == "refinenet" else 1e-2  # no BN in RefineNet's refinement path: a gentler step
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", run_eagerly=True)
    loss = model.fit(x, y, batch_size=4, epochs=4, verbose=0).history["loss"]
    assert loss[-1] < 0.9 * loss[0], loss


@pytest.mark.parametrize("bands", [1, 13])
@pytest.mark.parametrize("name", list(TINY))
def test_band_counts(name, bands):
    model = gm.get_model(name, 3, (32, 32, bands), activation=None, **TINY[name])
    out = model(np.zeros((1, 32, 32, bands), "float32"), training=False)
    assert tuple(out.shape) == (1, 32, 32, 3)
    assert model.layers[-1].name == "logits" and model.input_shape == (None, 32, 32, bands)


def test_aspp_rates_double_at_output_stride_8():
    m16 = gm.get_model("deeplabv3", 2, (64, 64, 3), output_stride=16, **TINY["deeplabv3"])
    m8 = gm.get_model("deeplabv3", 2, (64, 64, 3), output_stride=8, **TINY["deeplabv3"])
    assert [m16.get_layer(f"aspp_b{i}_conv").dilation_rate for i in (1, 2, 3)] \
        == [(6, 6), (12, 12), (18, 18)]
    assert [m8.get_layer(f"aspp_b{i}_conv").dilation_rate for i in (1, 2, 3)] == [(12, 12), (24, 24), (36, 36)]
    assert m16.get_layer("aspp_concat").output.shape[1:3] == (4, 4)
    assert m8.get_layer("aspp_concat").output.shape[1:3] == (8, 8)
    assert m16.get_layer("aspp_concat").output.shape[-1] == 5 * 16  # 1x1 + 3 atrous + image pooling


def test_deeplabv3plus_decoder_uses_stride4_features():
    m = gm.get_model("deeplabv3plus", 2, (64, 64, 3), **TINY["deeplabv3plus"])
    assert m.get_layer("decoder_concat").output.shape[1:] == (16, 16, 16 + 8)
    assert m.get_layer("decoder_conv2_conv").output.shape[-1] == 16


def test_pspnet_pyramid_levels():
    m = gm.get_model("pspnet", 2, (64, 64, 3), **TINY["pspnet"])
    feat = m.get_layer("out_relu").output.shape[-1]
    assert [m.get_layer(f"ppm_pool{i}").output.shape[1] for i in range(4)] == [1, 2, 3, 6]
    assert m.get_layer("ppm_concat").output.shape[1:] == (8, 8, feat + 4 * (feat // 4))


def test_refinenet_cascade_resolutions():
    m = gm.get_model("refinenet", 2, (64, 64, 3), **TINY["refinenet"])
    sizes = [m.get_layer(f"refine{k}_out_rcu_add").output.shape[1] for k in (4, 3, 2, 1)]
    assert sizes == [2, 4, 8, 16]
    assert m.get_layer("refine4_crp_add1").output.shape[-1] == 16


def test_denseaspp_dense_connections():
    m = gm.get_model("denseaspp", 2, (64, 64, 3), **TINY["denseaspp"])
    rates = [m.get_layer(f"daspp{i}_conv2").dilation_rate[0] for i in range(5)]
    assert rates == [3, 6, 12, 18, 24]
    c0 = m.get_layer("daspp_transition_bn").output.shape[-1]
    assert [m.get_layer(f"daspp{i}_conv1").input.shape[-1] for i in range(5)] == [c0 + 8 * i for i in range(5)]


# Reference figures (see geoseg/models/README.md). PyTorch counts exclude BN running statistics,
# so they are compared with Keras *trainable* parameters.
def test_deeplabv3_resnet101_matches_torchvision():
    m = gm.get_model("deeplabv3", 21, (512, 512, 3), backbone="resnet101")
    # torchvision deeplabv3_resnet101 = 60,996,202 params, minus its aux FCN head (2,365,205) and
    # the extra 3x3 conv + BN of its DeepLabHead (590,336), plus keras ResNet's conv biases.
    biases = sum(int(layer.bias.shape[0]) for layer in m.layers
                 if isinstance(layer, keras.layers.Conv2D) and layer.use_bias and layer.name.startswith("conv"))
    assert biases == 52672
    assert _trainable(m) == 60_996_202 - 2_365_205 - 590_336 + biases
    assert m.count_params() == 58_201_749


def test_denseaspp121_matches_authors_model():
    m = gm.get_model("denseaspp", 19, (512, 512, 3))
    # DeepMotionAIResearch/DenseASPP, DenseASPP-121 cfg, 19 classes, counted from models/DenseASPP.py
    backbone = 6_953_856  # DenseNet-121 features (torchvision count)
    transition = 1024 * 512 + 2 * 512
    aspp = sum((0 if i == 0 else 2 * (512 + 64 * i)) + (512 + 64 * i) * 128 + 128 + 2 * 128 + 128 * 64 * 9 + 64
               for i in range(5))
    classifier = (512 + 5 * 64) * 19 + 19
    assert _trainable(m) == backbone + transition + aspp + classifier == 8_280_851


def test_deeplabv3plus_xception_head_follows_paper():
    m = gm.get_model("deeplabv3plus", 21, (512, 512, 3))
    xception = 22_910_480 - (2048 * 1000 + 1000)  # keras.applications Xception without its top
    bn = 4 * 256
    aspp = (2048 * 256 + bn) * 2 + 3 * (2048 * 256 * 9 + bn) + (5 * 256 * 256 + bn)
    decoder = (256 * 48 + 4 * 48) + ((256 + 48) * 256 * 9 + bn) + (256 * 256 * 9 + bn)
    assert m.count_params() == xception + aspp + decoder + 256 * 21 + 21 == 37_709_821
