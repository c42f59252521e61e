"""FCN-32s/16s/8s and the VGG encoder: shapes, any input size, bilinear init, ImageNet-style weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from geoseg.errors import ModelConfigError
from geoseg.models import (
    get_model,
    vgg,
)
from geoseg.models.fcn import build_fcn8s, build_fcn16s, build_fcn32s
from geoseg.models.vgg_layers import BilinearKernel, bilinear_kernel_2d

BUILDERS = {"fcn32s": build_fcn32s, "fcn16s": build_fcn16s, "fcn8s": build_fcn8s}
TINY = {"encoder_widths": (4, 8, 8, 16, 16), "fc_channels": 16, "dropout": 0.0}
UPSAMPLING = {"fcn32s": {"upscore": 32}, "fcn16s": {"upscore2": 2, "upscore16": 16},
              "fcn8s": {"upscore2": 2, "upscore_pool4": 2, "upscore8": 8}}


def _run(model, x) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


def _images(n, h, w, bands, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, h, w, bands), dtype=np.float32)


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("bands", [1, 4, 13])
def test_forward_shape_and_probabilities(name, bands):
    model = get_model(name, 3, (64, 64, bands), **TINY)
    # score layers start at zero (paper): perturb them so the test sees real fused scores
    for layer in model.layers:
        if layer.name.startswith("score"):
            layer.set_weights([np.random.default_rng(1).normal(size=w.shape) for w in layer.get_weights()])
    p = _run(model, _images(2, 64, 64, bands))
    assert p.shape == (2, 64, 64, 3)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-5)
    assert p.std() > 0


@pytest.mark.parametrize("name", list(BUILDERS))
def test_upsampling_is_learnable_and_bilinear_at_init(name):
    model = BUILDERS[name](3, (64, 64, 2), **TINY)
    for layer_name, factor in UPSAMPLING[name].items():
        layer = model.get_layer(layer_name)
        assert layer.strides == (factor, factor) and layer.kernel_size == (2 * factor, 2 * factor)
        assert layer.trainable and not layer.use_bias
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        for c in range(3):
            np.testing.assert_allclose(kernel[:, :, c, c], bilinear_kernel_2d(2 * factor))
        assert np.count_nonzero(kernel) == 3 * (2 * factor) ** 2  # no cross-class weights at init
    frozen = BUILDERS[name](3, (64, 64, 2), trainable_upsampling=False, **TINY)
    assert all(not frozen.get_layer(n).trainable for n in UPSAMPLING[name])


def test_bilinear_transposed_conv_interpolates():
    """Kernel 2s, stride s, "same": interior outputs are the half-pixel bilinear resize of the input."""
    for factor in (2, 8):
        up = keras.layers.Conv2DTranspose(1, 2 * factor, strides=factor, padding="same", use_bias=False,
                                          kernel_initializer=BilinearKernel())
        ramp = np.tile(np.arange(8, dtype="float32"), (8, 1))[None, :, :, None]
        out = keras.ops.convert_to_numpy(up(ramp))[0, :, :, 0]
        assert out.shape == (8 * factor, 8 * factor)
        centres = (np.arange(8 * factor) + 0.5) / factor - 0.5  # input coordinate of each output pixel
        inner = slice(factor, 7 * factor)
        np.testing.assert_allclose(out[inner, inner], np.broadcast_to(centres[inner], out[inner, inner].shape),
                                   atol=1e-5)


@pytest.mark.parametrize("shape", [(72, 88), (40, 96)])
def test_any_input_size_gives_same_size_output(shape):
    model = get_model("fcn8s", 2, (*shape, 3), **TINY)
    assert model.get_layer("pad_to_stride") is not None
    assert _run(model, _images(1, *shape, 3)).shape == (1, *shape, 2)
    dynamic = build_fcn16s(2, (None, None, 3), **TINY)
    assert _run(dynamic, _images(2, 40, 56, 3)).shape == (2, 40, 56, 2)
    assert "pad_to_stride" not in [layer.name for layer in build_fcn32s(2, (64, 32, 3), **TINY).layers]


def test_padding_keeps_alignment():
    """A 72 x 88 input gives the top-left of the 96 x 96 zero-padded input's prediction."""
    model = build_fcn8s(2, (None, None, 3), activation=None, **TINY)
    for layer in model.layers:
        if layer.name.startswith("score"):
            layer.set_weights([np.random.default_rng(2).normal(size=w.shape) for w in layer.get_weights()])
    x = _images(1, 72, 88, 3)
    padded = np.zeros((1, 96, 96, 3), dtype="float32")
    padded[:, :72, :88] = x
    np.testing.assert_allclose(_run(model, x), _run(model, padded)[:, :72, :88], atol=1e-5)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_keras_round_trip_identical(name, tmp_path):
    model = get_model(name, 2, (None, None, 4), **TINY)
    for layer in model.layers:
        if layer.name.startswith("score"):
            layer.set_weights([np.random.default_rng(3).normal(size=w.shape) for w in layer.get_weights()])
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = _images(2, 48, 64, 4)
    np.testing.assert_array_equal(_run(loaded, x), _run(model, x))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_short_fit_lowers_loss(name):
    keras.utils.set_random_seed(1)
    model = get_model(name, 2, (32, 32, 4), **TINY)
    rng = np.random.default_rng(0)
    # one class per image, told by band 1: learnable even at FCN-32s's 1 x 1 pool5 on 32 x 32 inputs
    y = np.broadcast_to(rng.integers(0, 2, (8, 1, 1)), (8, 32, 32)).astype("int32")
    x = rng.random((8, 32, 32, 4), dtype=np.float32) * 0.2 + y[..., None] * np.array([1, 0, 0, 0], "float32")
    loss = keras.losses.SparseCategoricalCrossentropy()
    # batch statistics (training=True): BN moving averages barely move in a dozen steps; dropout is 0
    before = float(loss(y, model(x, training=True)))
    model.compile(keras.optimizers.Adam(1e-2), loss, run_eagerly=True)  # 24 eager steps < tracing a graph
    model.fit(x, y, batch_size=4, epochs=12, verbose=0)
    after = float(loss(y, model(x, training=True)))
    assert after < 0.8 * before, (before, after)


def test_vgg_encoder_matches_keras_applications():
    for backbone, app in (("vgg16", keras.applications.VGG16), ("vgg19", keras.applications.VGG19)):
        reference = app(include_top=False, weights=None, input_shape=(32, 32, 3))
        inputs = keras.Input((32, 32, 3))
        ours = keras.Model(inputs, vgg.vgg_encoder(inputs, backbone)["output"])
        assert [layer.name for layer in ours.layers[1:]] == [layer.name for layer in reference.layers[1:]]
        assert ours.count_params() == reference.count_params()
        del reference, ours


def _local_imagenet_vgg(tmp_path, monkeypatch):
    """Stand in for keras.applications' ImageNet download: random VGG16 weights saved to and loaded from disk."""
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    rng = np.random.default_rng(7)
    for layer in source.layers:
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    path = tmp_path / "vgg16_local.weights.h5"
    source.save_weights(path)
    calls = []

    def fake(backbone, include_top):
        calls.append((backbone, include_top))
        return keras.applications.VGG16(include_top=False, weights=str(path), input_shape=(None, None, 3))

    monkeypatch.setattr(vgg, "imagenet_vgg", fake)
    return source, calls


@pytest.mark.parametrize("name", ["fcn8s", "segnet"])
def test_imagenet_style_weights_kept_and_adapted(name, tmp_path, monkeypatch):
    source, calls = _local_imagenet_vgg(tmp_path, monkeypatch)
    options = {"fc_channels": 8} if name == "fcn8s" else {}
    model = get_model(name, 3, (32, 32, 4), weights="imagenet", **options)
    assert calls == [("vgg16", False)]
    src_kernel, src_bias = source.get_layer("block1_conv1").get_weights()
    kernel, bias = model.get_layer("block1_conv1").get_weights()
    assert kernel.shape == (3, 3, 4, 64)
    np.testing.assert_allclose(kernel[:, :, :3], src_kernel * 3 / 4, rtol=1e-6)  # RGB kept, rescaled
    np.testing.assert_allclose(kernel[:, :, 3], src_kernel.mean(axis=2) * 3 / 4, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(bias, src_bias)
    for name in ("block3_conv2", "block5_conv3"):
        for ours, theirs in zip(model.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)


def test_dense_classifier_converts_to_fc6_fc7():
    """VGG's fc1 (Dense on the flattened 7x7 pool5) equals fc6 as a 7x7 conv at a window."""
    widths = (4, 4, 4, 4, 6)
    inputs = keras.Input((7, 7, 6))
    x = keras.layers.Dense(10, name="fc2")(keras.layers.Dense(12, name="fc1")(keras.layers.Flatten()(inputs)))
    source = keras.Model(inputs, x)
    model = build_fcn32s(2, (32, 32, 3), encoder_widths=widths, fc_channels=12)
    copied = vgg.transfer_vgg_weights(source, model)
    assert copied == ["fc6"]  # fc2 (12 -> 10) does not fit fc7 (12 -> 12): skipped
    source = keras.Model(inputs, keras.layers.Dense(12, name="fc2")(source.get_layer("fc1").output))
    assert vgg.transfer_vgg_weights(source, model) == ["fc6", "fc7"]
    window = np.random.default_rng(0).random((1, 7, 7, 6), dtype=np.float32)
    conv = keras.layers.Conv2D(12, 7)
    conv.build((None, 7, 7, 6))
    conv.set_weights(model.get_layer("fc6").get_weights())
    dense = keras.ops.convert_to_numpy(source.get_layer("fc1")(window.reshape(1, -1)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(conv(window))[0, 0, 0], dense[0], rtol=1e-5)
    np.testing.assert_array_equal(model.get_layer("fc7").get_weights()[0][0, 0],
                                  source.get_layer("fc2").get_weights()[0])


def test_canonical_fcn8s_parameter_count():
    """FCN-8s on PASCAL VOC (21 classes): 134 M (Long et al. 2015, Table 1; voc-fcn8s/net.py)."""
    model = build_fcn8s(21, (64, 64, 3))
    vgg16_convs = 14_714_688  # keras.applications.VGG16(include_top=False).count_params()
    expected = (vgg16_convs + (7 * 7 * 512 * 4096 + 4096) + (4096 * 4096 + 4096)  # fc6, fc7
                + (4096 * 21 + 21) + (512 * 21 + 21) + (256 * 21 + 21)  # score_fr, score_pool4, score_pool3
                + 2 * (4 * 4 * 21 * 21) + 16 * 16 * 21 * 21)  # upscore2, upscore_pool4, upscore8 (no bias)
    assert model.count_params() == expected == 134_489_759
    assert round(model.count_params() / 1e6) == 134
    assert model.get_layer("fc6").kernel.shape == (7, 7, 512, 4096)


def test_invalid_arguments():
    with pytest.raises(ModelConfigError, match="backbone must be one of vgg16, vgg19"):
        build_fcn8s(2, (64, 64, 3), backbone="resnet50")
    with pytest.raises(ModelConfigError, match="encoder_widths"):
        build_fcn16s(2, (64, 64, 3), encoder_widths=(4, 8))
    with pytest.raises(ModelConfigError, match="fc_channels"):
        build_fcn32s(2, (64, 64, 3), fc_channels=0)
    with pytest.raises(ModelConfigError, match="weights must be"):
        build_fcn8s(2, (64, 64, 3), weights=3, **TINY)
    with pytest.raises(ModelConfigError, match="unknown argument"):
        build_fcn8s(2, (64, 64, 3), context="basic")
