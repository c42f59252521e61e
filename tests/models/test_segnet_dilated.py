"""SegNet (pooling indices) and the dilated network (context module, fixed bilinear upsampling)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from geoseg.errors import ModelConfigError  # noqa: E402
from geoseg.models import get_model  # noqa: E402
from geoseg.models.dilatednet import build_dilatednet, context_module  # noqa: E402
from geoseg.models.segnet import build_segnet  # noqa: E402
from geoseg.models.vgg_layers import (  # noqa: E402
    BilinearKernel,
    ConvIdentity,
    CropToReference,
    FixedBilinearUpsampling2D,
    MaxPoolingWithArgmax2D,
    MaxUnpooling2D,
    PadToMultiple,
    bilinear_kernel_2d,
)

WIDTHS = (4, 8, 8, 16, 16)
TINY = {
    "segnet": {"encoder_widths": WIDTHS},
    "dilatednet": {"encoder_widths": WIDTHS, "fc_channels": 16, "dropout": 0.0},
}


def _run(model, x) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


def _images(n, size, bands, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size, bands), dtype=np.float32)


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("bands", [1, 4, 13])
def test_forward_shape_and_probabilities(name, bands):
    model = get_model(name, 3, (64, 64, bands), **TINY[name])
    p = _run(model, _images(2, 64, bands))
    assert p.shape == (2, 64, 64, 3)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", list(TINY))
def test_keras_round_trip_identical(name, tmp_path):
    model = get_model(name, 2, (None, None, 4), activation=None, **TINY[name])
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = _images(3, 32, 4)  # batch 3, a size other than the one used to trace
    np.testing.assert_array_equal(_run(loaded, x), _run(model, x))


@pytest.mark.parametrize("name", list(TINY))
def test_short_fit_lowers_loss(name):
    keras.utils.set_random_seed(1)
    model = get_model(name, 2, (32, 32, 4), **TINY[name])
    rng = np.random.default_rng(0)
    if name == "segnet":  # 8 x 8 blocks of one class
        y = np.kron(rng.integers(0, 2, (8, 4, 4)), np.ones((8, 8), dtype=int)).astype("int32")
    else:  # one class per image: the plain (no batch norm) tiny VGG front-end learns it in a few steps
        y = np.broadcast_to(rng.integers(0, 2, (8, 1, 1)), (8, 32, 32)).astype("int32")
    x = rng.random((8, 32, 32, 4), dtype=np.float32) * 0.2 + y[..., None] * np.array([1, 0, 0, 0], "float32")
    upsample_before = model.get_layer("ctx_upsample").get_weights() if name == "dilatednet" else None
    loss = keras.losses.SparseCategoricalCrossentropy()
    # batch statistics (training=True): BN moving averages barely move in a dozen steps; dropout is 0
    before = float(loss(y, model(x, training=True)))
    # eager steps beat graph tracing for the short dilatednet; SegNet's ~90 layers trace once instead
    model.compile(keras.optimizers.Adam(1e-2), loss, run_eagerly=name == "dilatednet", jit_compile=False)
    model.fit(x, y, batch_size=4, epochs=12, verbose=0)
    after = float(loss(y, model(x, training=True)))
    assert after < 0.8 * before, (before, after)
    if upsample_before is not None:  # the fixed bilinear upsampling did not move
        np.testing.assert_array_equal(model.get_layer("ctx_upsample").get_weights()[0], upsample_before[0])


# --- SegNet ---------------------------------------------------------------------------------


def test_unpooling_puts_values_exactly_at_argmax_positions():
    inputs = keras.Input((None, None, 3))
    pooled, indices = MaxPoolingWithArgmax2D(2)(inputs)
    unpooled = MaxUnpooling2D(2)([pooled, indices])
    model = keras.Model(inputs, [pooled, indices, unpooled])
    rng = np.random.default_rng(0)
    for shape in ((3, 6, 10, 3), (1, 4, 4, 3)):  # batch > 1 and dynamic sizes
        x = rng.permutation(np.prod(shape)).reshape(shape).astype("float32")  # distinct values
        p, idx, u = (keras.ops.convert_to_numpy(t) for t in model(x))
        n, h, w, c = shape
        windows = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)
        np.testing.assert_array_equal(p, windows.max(-1))
        np.testing.assert_array_equal(idx, windows.argmax(-1))
        expected = np.where(x == np.repeat(np.repeat(p, 2, axis=1), 2, axis=2), x, 0)
        np.testing.assert_array_equal(u, expected)
        assert np.count_nonzero(u) == p.size
    ties = np.ones((1, 2, 2, 1), "float32")  # ties: the first maximum (row-major) wins
    _, idx, u = (keras.ops.convert_to_numpy(t) for t in model(np.repeat(ties, 3, axis=-1)))
    assert idx.ravel().tolist() == [0, 0, 0]
    np.testing.assert_array_equal(u[0, :, :, 0], [[1, 0], [0, 0]])


def test_segnet_decoder_uses_encoder_indices():
    model = build_segnet(2, (32, 32, 3), **TINY["segnet"])
    for b in range(1, 6):
        unpool = model.get_layer(f"decoder{b}_unpool")
        assert unpool.input[1] is model.get_layer(f"block{b}_pool").output[1]
    names = [layer.name for layer in model.layers]
    assert sum(n.startswith("block") and n.endswith("_bn") for n in names) == 13  # 13 convs, each with BN
    assert sum(n.startswith("decoder") and n.endswith("_bn") for n in names) == 12  # all but the classifier
    vgg19 = build_segnet(2, (32, 32, 3), backbone="vgg19", **TINY["segnet"])
    assert vgg19.get_layer("decoder5_conv4") is not None  # the decoder mirrors VGG19's 4-conv blocks


def test_canonical_segnet_parameter_count():
    """SegNet on CamVid (11 classes): 29.4 M parameters (Badrinarayanan et al. 2017)."""
    model = build_segnet(11, (32, 32, 3))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 29_449_355
    encoder = sum(model.get_layer(f"block{b}_conv{i}").count_params()
                  for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1))
    assert encoder == 14_714_688  # the 13 VGG16 convolutions
    assert round(trainable / 1e5) == 294


# --- dilated network -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["basic", "large"])
def test_context_module_is_identity_at_init(kind):
    inputs = keras.Input((None, None, 5))
    module = keras.Model(inputs, context_module(inputs, 5, kind))
    x = _images(2, 24, 5)  # non-negative scores: every ReLU passes them
    np.testing.assert_allclose(_run(module, x), x, atol=1e-6)
    rates = [layer.dilation_rate[0] for layer in module.layers if layer.name.startswith("ctx_conv")]
    assert rates == ([1, 1, 2, 4, 8, 16] if kind == "basic" else [1, 1, 2, 4, 8, 16, 32, 64])
    assert module.get_layer("ctx_fc1").kernel_size == (3, 3)
    assert module.get_layer("ctx_final").kernel_size == (1, 1)


def test_dilated_front_end_structure():
    model = build_dilatednet(3, (64, 64, 2), **TINY["dilatednet"])
    names = [layer.name for layer in model.layers]
    assert "block4_pool" not in names and "block5_pool" not in names and "block3_pool" in names
    assert all(model.get_layer(f"block5_conv{i}").dilation_rate == (2, 2) for i in (1, 2, 3))
    assert model.get_layer("block4_conv1").dilation_rate == (1, 1)
    fc6 = model.get_layer("fc6")
    assert fc6.kernel_size == (7, 7) and fc6.dilation_rate == (4, 4)
    assert model.get_layer("final").output.shape == (None, 8, 8, 3)  # scores at 1/8
    up = model.get_layer("ctx_upsample")
    assert not up.trainable and up.trainable_weights == []
    np.testing.assert_array_equal(up.get_weights()[0][:, :, 0, 0], bilinear_kernel_2d(16))
    frontend = build_dilatednet(3, (64, 64, 2), context=None, **TINY["dilatednet"])
    assert not any(layer.name.startswith("ctx_conv") for layer in frontend.layers)


def test_fixed_bilinear_upsampling_interpolates_each_channel():
    layer = FixedBilinearUpsampling2D(8)
    ramp = np.stack([np.tile(np.arange(6, dtype="float32"), (6, 1)), np.full((6, 6), 3.0, "float32")], -1)[None]
    out = keras.ops.convert_to_numpy(layer(ramp))[0]
    assert out.shape == (48, 48, 2)
    centres = (np.arange(48) + 0.5) / 8 - 0.5
    np.testing.assert_allclose(out[8:40, 8:40, 0], np.broadcast_to(centres[8:40], (32, 32)), atol=1e-5)
    np.testing.assert_allclose(out[8:40, 8:40, 1], 3.0, atol=1e-5)  # channels stay separate


def test_custom_objects_config_round_trip():
    for obj in (MaxPoolingWithArgmax2D(3, name="p"), MaxUnpooling2D(3, name="u"), FixedBilinearUpsampling2D(4),
                PadToMultiple(16), CropToReference()):
        clone = type(obj).from_config(obj.get_config())
        assert clone.get_config() == obj.get_config()
    assert FixedBilinearUpsampling2D.from_config(FixedBilinearUpsampling2D(4).get_config()).trainable is False
    for init in (BilinearKernel(), ConvIdentity()):
        assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(init)).__class__ is type(init)


def test_canonical_dilatednet_parameter_counts():
    """Front-end on VOC (21 classes) = FCN's VGG16 + fc6/fc7 + 1x1 final: 134.3 M; context adds 28 k."""
    model = build_dilatednet(21, (64, 64, 3))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    context = sum(layer.count_params() for layer in model.layers if layer.name.startswith("ctx_") and layer.trainable)
    expected_front = 14_714_688 + (7 * 7 * 512 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 21 + 21)
    assert trainable - context == expected_front == 134_346_581
    assert context == 7 * (9 * 21 * 21 + 21) + (21 * 21 + 21) == 28_392
    assert model.count_params() - trainable == 16 * 16  # the fixed bilinear kernel


def test_custom_layers_run_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        for name in TINY:
            model = get_model(name, 3, (None, None, 2), **TINY[name])
            p = model(_images(2, 32, 2))
            assert p.dtype == "float32" and p.shape == (2, 32, 32, 3)
            np.testing.assert_allclose(keras.ops.convert_to_numpy(p).sum(-1), 1.0, atol=1e-3)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_invalid_arguments():
    with pytest.raises(ModelConfigError, match="multiples of 32"):
        build_segnet(2, (48, 64, 3))
    with pytest.raises(ModelConfigError, match="multiples of 8"):
        build_dilatednet(2, (60, 64, 3))
    with pytest.raises(ModelConfigError, match="context"):
        build_dilatednet(2, (64, 64, 3), context="huge")
    with pytest.raises(ModelConfigError, match="dropout"):
        build_dilatednet(2, (64, 64, 3), dropout=1.5)
    with pytest.raises(ModelConfigError, match="unknown argument.*fc_channels"):
        build_segnet(2, (64, 64, 3), fc_channels=8)
