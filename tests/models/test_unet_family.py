"""U-Net and residual U-Net: shapes for any band count, save/load, learning, canonical sizes, errors."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from geoseg.errors import ModelConfigError  # noqa: E402
from geoseg.models import get_model, input_multiple  # noqa: E402
from geoseg.models.resunet import build_resunet  # noqa: E402
from geoseg.models.unet import build_unet  # noqa: E402

TINY = {"unet": {"encoder_filters": 4, "dropout": 0.0}, "resunet": {"encoder_filters": 4}}


def _probabilities(model, bands: int, size: int = 64, n: int = 2) -> np.ndarray:
    x = np.random.default_rng(bands).random((n, size, size, bands), dtype=np.float32)
    return keras.ops.convert_to_numpy(model(x, training=False))


def _fit_lowers_loss(model, bands: int, size: int = 32) -> tuple[float, float]:
    """8 x 8 blocks of one class, told by band 1 (+1 on a [0, 0.2) noise floor): learnable in a few steps."""
    rng = np.random.default_rng(0)
    y = np.kron(rng.integers(0, 2, (8, size // 8, size // 8)), np.ones((8, 8), dtype=int)).astype("int32")
    x = rng.random((8, size, size, bands), dtype=np.float32) * 0.2
    x[..., 0] += y
    loss = keras.losses.SparseCategoricalCrossentropy()
    # batch statistics (training=True): BN moving averages barely move in a dozen steps; dropout is 0
    before = float(loss(y, model(x, training=True)))
    # eager: 10 steps of these small nets cost less than tracing a training graph
    model.compile(keras.optimizers.Adam(1e-2), loss, run_eagerly=True)
    model.fit(x, y, batch_size=4, epochs=5, verbose=0)
    return before, float(loss(y, model(x, training=True)))


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("bands", [1, 4, 13])
def test_forward_shape_and_probabilities(name, bands):
    model = get_model(name, 3, (64, 64, bands), **TINY[name])
    p = _probabilities(model, bands)
    assert p.shape == (2, 64, 64, 3)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-5)
    assert p.min() >= 0


@pytest.mark.parametrize("name", list(TINY))
def test_keras_round_trip_identical(name, tmp_path):
    options = {**TINY[name], "batch_norm": True} if name == "unet" else TINY[name]
    model = get_model(name, 2, (32, 32, 4), **options)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(_probabilities(loaded, 4, 32), _probabilities(model, 4, 32))


@pytest.mark.parametrize("name", list(TINY))
def test_short_fit_lowers_loss(name):
    keras.utils.set_random_seed(1)
    # depth 2: the same blocks with fewer layers to trace (graph tracing dominates a short fit)
    before, after = _fit_lowers_loss(get_model(name, 2, (32, 32, 4), encoder_depth=2, **TINY[name]), 4)
    assert after < 0.8 * before, (before, after)


def test_logits_and_unet_options():
    logits = build_unet(3, (32, 32, 2), activation=None, encoder_depth=2, encoder_filters=4,
                        decoder_upsampling="bilinear", batch_norm=True)
    out = _probabilities(logits, 2, 32)
    assert out.shape == (2, 32, 32, 3)
    assert not np.allclose(out.sum(axis=-1), 1.0)  # raw scores, not probabilities
    assert logits.layers[-1].name == "logits" and logits.get_layer("classifier").filters == 3
    assert get_model("unet", 2, (16, 16, 1), encoder_depth=1, encoder_filters=2).layers[-1].name == "probs"
    assert logits.get_layer("decoder1_up_resize") is not None
    assert logits.get_layer("encoder2_conv2_bn") is not None
    assert "encoder3_pool" not in [layer.name for layer in logits.layers]  # depth 2: two poolings
    # bridge width = base * 2**depth; channels halve per decoder level
    assert logits.get_layer("bridge_conv2").output.shape[-1] == 16
    assert logits.get_layer("decoder1_conv2").output.shape[-1] == 4
    dropout = build_unet(2, (16, 16, 1), encoder_depth=1, encoder_filters=2, dropout=0.5)
    assert dropout.get_layer("bridge_dropout").rate == 0.5


def test_resunet_blocks_are_pre_activation_residual():
    model = build_resunet(2, (32, 32, 3), encoder_filters=4, decoder_upsampling="transpose")
    names = [layer.name for layer in model.layers]
    # pre-activation: BN and ReLU come before the first conv of every unit but the first
    assert names.index("encoder2_bn1") < names.index("encoder2_relu1") < names.index("encoder2_conv1")
    assert "encoder1_bn1" not in names
    assert model.get_layer("encoder2_conv1").strides == (2, 2)  # down-sampling by stride, no pooling
    assert model.get_layer("bridge_add").output.shape[1:] == (4, 4, 32)
    assert isinstance(model.get_layer("decoder3_up"), keras.layers.Conv2DTranspose)


def test_canonical_parameter_counts():
    # U-Net, Fig. 1 of Ronneberger et al.: 1 band in, 2 classes, 64 base filters, 23 convs.
    convs = [(1, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512),
             (512, 1024), (1024, 1024), (1024, 512), (512, 512), (512, 256), (256, 256), (256, 128),
             (128, 128), (128, 64), (64, 64)]
    ups = [(1024, 512), (512, 256), (256, 128), (128, 64)]
    expected = sum(9 * a * b + b for a, b in convs) + sum(4 * a * b + b for a, b in ups) + (64 * 2 + 2)
    unet = build_unet(2, (64, 64, 1))
    assert unet.count_params() == expected == 31_030_658
    del unet
    # Res U-Net (Zhang et al. 2018): 3 bands, 1 output, filters 64-128-256, bridge 512
    resunet = build_resunet(1, (64, 64, 3), activation="sigmoid")
    total = resunet.count_params()
    shortcuts = sum(layer.count_params() for layer in resunet.layers if "shortcut" in layer.name)
    assert total == 8_233_025
    # the paper's 7.8 M matches the count without the 1x1 projection shortcuts
    assert abs(total - shortcuts - 7.8e6) < 0.01 * 7.8e6


def test_input_multiple_follows_depth():
    assert input_multiple("unet") == 16 and input_multiple("resunet") == 8
    assert input_multiple("unet", encoder_depth=2) == 4
    assert get_model("unet", 2, (12, 20, 3), encoder_depth=2, encoder_filters=2).output_shape == (None, 12, 20, 2)
    with pytest.raises(ModelConfigError, match="multiple of 8"):
        get_model("resunet", 2, (36, 36, 3))


def test_invalid_arguments():
    with pytest.raises(ModelConfigError, match="multiples of 16"):
        build_unet(2, (60, 64, 3))
    with pytest.raises(ModelConfigError, match="multiples of 8"):
        build_resunet(2, (36, 36, 3))
    with pytest.raises(ModelConfigError, match="own encoder"):
        build_unet(2, (64, 64, 3), backbone="resnet50")
    with pytest.raises(ModelConfigError, match="ImageNet"):
        build_resunet(2, (64, 64, 3), weights="imagenet")
    with pytest.raises(ModelConfigError, match="unknown argument.*decoder_filters"):
        build_unet(2, (64, 64, 3), decoder_filters=3)
    with pytest.raises(ModelConfigError, match="output_stride"):
        build_unet(2, (64, 64, 3), output_stride=5)
    with pytest.raises(ModelConfigError, match="decoder_upsampling"):
        build_unet(2, (64, 64, 3), decoder_upsampling="cubic")
    with pytest.raises(ModelConfigError, match="num_classes"):
        build_resunet(0, (64, 64, 3))
    with pytest.raises(ModelConfigError, match="input_shape"):
        build_unet(2, (64, 64))
