"""Dilatednet parity with the released Dilation10 Cityscapes network (fyu/dilation) and its Keras 1 port.

The Caffe layer table below is ``models/dilation10_cityscapes_deploy.prototxt`` of fyu/dilation.
Keras 1 weight files are written here with h5py in the layout ``Model.save_weights`` used
(root attribute ``layer_names``, one group per layer with ``weight_names``, datasets
``<layer>_W`` / ``<layer>_b``), with Theano kernels: the Caffe kernel ``(out, in, kh, kw)``
flipped in both spatial axes (Theano convolves, Caffe correlates), as in DavideA/dilation-keras.
The forward pass is checked against a numpy implementation of Caffe's layers.
"""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from geoseg.errors import ModelConfigError  # noqa: E402
from geoseg.models import get_model  # noqa: E402
from geoseg.models.dilatednet import reference_margin  # noqa: E402
from geoseg.models.pretrained import load_legacy_h5  # noqa: E402
from geoseg.models.vgg_layers import bilinear_kernel_2d  # noqa: E402

#: Caffe layer -> (num_output, input channels, kernel, dilation, pad) of the Cityscapes deploy net
#: (input channels as a VGG block index "w<b>" for the reduced-width tests, or "fc"/"C").
CONTEXT_DILATIONS = (1, 1, 2, 4, 8, 16, 32, 64)
CTX_NAMES = ("ctx_conv1_1", "ctx_conv1_2") + tuple(f"ctx_conv{i}_1" for i in range(2, 8))


def caffe_layers(widths=(64, 128, 256, 512, 512), fc=4096, classes=19, bands=3):
    """(name, out, in, kernel, dilation, pad) for every learned layer, in network order."""
    rows, cin = [], bands
    for b, (n, w) in enumerate(zip((2, 2, 3, 3, 3), widths), start=1):
        for i in range(1, n + 1):
            rows.append((f"conv{b}_{i}", w, cin, 3, 2 if b == 5 else 1, 0))
            cin = w
    rows += [("fc6", fc, cin, 7, 4, 0), ("fc7", fc, fc, 1, 1, 0), ("final", classes, fc, 1, 1, 0)]
    rows += [(n, classes, classes, 3, d, d) for n, d in zip(CTX_NAMES, CONTEXT_DILATIONS)]
    rows += [("ctx_fc1", classes, classes, 3, 1, 1), ("ctx_final", classes, classes, 1, 1, 0)]
    return rows


def keras_name(caffe: str) -> str:
    if caffe.startswith("conv"):
        b, i = caffe[4:].split("_")
        return f"block{b}_conv{i}"
    return caffe


# --- numpy Caffe reference ----------------------------------------------------------------------

def caffe_conv(x, w, b, dilation, pad):
    """Caffe Convolution (cross-correlation) of x (C, H, W) with w (out, in, kh, kw)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    oh, ow = x.shape[1] - dilation * (k - 1), x.shape[2] - dilation * (k - 1)
    y = np.zeros((w.shape[0], oh, ow))
    for i in range(k):
        for j in range(k):
            y += np.einsum("oc,chw->ohw", w[:, :, i, j], x[:, i * dilation:i * dilation + oh,
                                                          j * dilation:j * dilation + ow])
    return y + b[:, None, None]


def caffe_deconv_bilinear(x, factor=8):
    """Caffe Deconvolution(kernel 2f, stride f, pad f/2, group C) with the bilinear filler."""
    k = 2 * factor
    f = np.ceil(k / 2)
    c = (2 * f - 1 - f % 2) / (2 * f)
    taps = 1 - np.abs(np.arange(k) / f - c)  # caffe BilinearFiller
    kernel = np.outer(taps, taps)
    ch, h, w = x.shape
    full = np.zeros((ch, (h - 1) * factor + k, (w - 1) * factor + k))
    for i in range(h):
        for j in range(w):
            full[:, i * factor:i * factor + k, j * factor:j * factor + k] += x[:, i, j, None, None] * kernel
    p = factor // 2
    return full[:, p:-p, p:-p]


def caffe_forward(x, blobs, layers):
    """Scores (C, H - 372, W - 372) of the deploy net on x (3, H, W), before the softmax."""
    for name, _, _, _, dilation, pad in layers:
        w, b = blobs[name]
        x = caffe_conv(x, w, b, dilation, pad)
        if name not in ("final", "ctx_final"):
            x = np.maximum(x, 0)
        if name in ("conv1_2", "conv2_2", "conv3_3"):  # 2x2 max pooling, stride 2 (sizes are even)
            c, h, wd = x.shape
            x = x.reshape(c, h // 2, 2, wd // 2, 2).max(axis=(2, 4))
    return caffe_deconv_bilinear(x)


def random_blobs(layers, seed=0):
    rng = np.random.default_rng(seed)
    blobs = {}
    for name, out, cin, k, _, _ in layers:
        w = rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (out, cin, k, k))
        blobs[name] = (w, rng.normal(0, 0.1, out))
    return blobs


def write_keras1_theano(path, blobs, classes):
    """A Keras 1 weights file of the Cityscapes port (Theano dim ordering and kernels)."""
    order = ["input_1"]
    for b, n in enumerate((2, 2, 3, 3, 3), start=1):
        order += [f"conv{b}_{i}" for i in range(1, n + 1)] + ([f"pool{b}"] if b <= 3 else [])
    order += ["fc6", "drop6", "fc7", "drop7", "final"]
    for i, name in enumerate(CTX_NAMES + ("ctx_fc1",), start=1):
        order += [f"zeropadding2d_{i}", name]
    order += ["ctx_final", "upsampling2d_1", "ctx_upsample"]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode("utf8") for n in order]
        for name in order:
            g = f.create_group(name)
            if name == "ctx_upsample":  # the port's nearest-upsampling + 16x16 conv stand-in, no bias
                names = [b"ctx_upsample_W"]
                g.create_dataset("ctx_upsample_W", data=np.full((classes, classes, 16, 16), 0.5, "float32"))
            elif name in blobs:
                w, b = blobs[name]
                names = [f"{name}_W".encode(), f"{name}_b".encode()]
                g.create_dataset(f"{name}_W", data=w[:, :, ::-1, ::-1].astype("float32"))
                g.create_dataset(f"{name}_b", data=b.astype("float32"))
            else:
                names = []
            g.attrs["weight_names"] = names


TINY = {"encoder_widths": (4, 4, 6, 6, 8), "fc_channels": 8, "dropout": 0.0}
CLASSES = 3


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    layers = caffe_layers(TINY["encoder_widths"], TINY["fc_channels"], CLASSES)
    blobs = random_blobs(layers)
    path = tmp_path_factory.mktemp("dilation") / "dilation_cityscapes.h5"
    write_keras1_theano(path, blobs, CLASSES)
    return path, layers, blobs


# --- the published configuration ---------------------------------------------------------------

def test_reference_has_the_published_parameters_and_caffe_shapes():
    model = get_model("dilatednet", 19, (None, None, 3), variant="reference")
    layers = caffe_layers()
    expected = sum(out * cin * k * k + out for _, out, cin, k, _, _ in layers)
    assert expected == 134_368_179
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected
    assert model.count_params() == expected + 16 * 16  # + the fixed bilinear kernel
    for name, out, cin, k, dilation, pad in layers:
        conv = model.get_layer(keras_name(name))
        assert tuple(conv.kernel.shape) == (k, k, cin, out), name
        assert conv.dilation_rate == (dilation, dilation), name
        assert conv.padding == ("same" if pad else "valid"), name  # Caffe pads only the context layers
    assert model.compute_output_shape((1, 1396, 1396, 3)) == (1, 1024, 1024, 19)
    assert reference_margin("vgg16") == 186


def test_reference_shape_arithmetic_and_size_checks():
    assert reference_margin("vgg19") == 214  # one more conv in blocks 3-5
    model = get_model("dilatednet", 19, (1396, 1396, 3), variant="reference", **TINY)
    assert model.output_shape == (None, 1024, 1024, 19)
    assert model.get_layer("fc6").output.shape[1:3] == (128, 128)  # 1024 / 8 before the context module
    padded = get_model("dilatednet", 19, (1024, 1024, 3), variant="reference_padded", **TINY)
    assert padded.get_layer("reflect_pad").output.shape[1:3] == (1396, 1396)
    assert padded.output_shape == (None, 1024, 1024, 19)
    with pytest.raises(ModelConfigError, match=r"372 \+ a positive multiple of 8 .* found 1024 x 1024"):
        get_model("dilatednet", 19, (1024, 1024, 3), variant="reference", **TINY)
    with pytest.raises(ModelConfigError, match="multiple of 8"):
        get_model("dilatednet", 19, (1396, 1396, 3), **TINY)  # the default "same" variant
    with pytest.raises(ModelConfigError, match="exceed the 186 px"):
        get_model("dilatednet", 19, (184, 184, 3), variant="reference_padded", **TINY)
    with pytest.raises(ModelConfigError, match="variant must be one of"):
        get_model("dilatednet", 19, (64, 64, 3), variant="caffe", **TINY)


# --- the Keras 1 (Theano) weights file ---------------------------------------------------------

def test_keras1_theano_file_loads_transposed_and_flipped(tiny_file, caplog):
    path, layers, blobs = tiny_file
    with caplog.at_level(logging.INFO, logger="geoseg.models.pretrained"):
        model = get_model("dilatednet", CLASSES, (None, None, 3), weights=path, variant="reference", **TINY)
    for name, *_ in layers:
        w, b = blobs[name]
        kernel, bias = model.get_layer(keras_name(name)).get_weights()
        # Caffe (out, in, kh, kw) -> Keras (kh, kw, in, out); the file's Theano flip undone
        np.testing.assert_allclose(kernel, w.transpose(2, 3, 1, 0), rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(bias, b, rtol=1e-6, err_msg=name)
    # the fixed Caffe bilinear deconvolution stays, the port's stand-in is not copied
    up = model.get_layer("ctx_upsample").get_weights()[0]
    np.testing.assert_array_equal(up[:, :, 0, 0], bilinear_kernel_2d(16).astype("float32"))
    assert "th kernels, flipped (Theano)" in caplog.text and "kept fixed: ctx_upsample" in caplog.text


def test_reference_forward_matches_caffe(tiny_file):
    path, layers, blobs = tiny_file
    model = get_model("dilatednet", CLASSES, (None, None, 3), weights=path, variant="reference",
                      activation=None, **TINY)
    x = np.random.default_rng(3).normal(0, 1, (388, 388, 3))
    got = model.predict(x[None].astype("float32"), verbose=0)[0]
    assert got.shape == (16, 16, CLASSES)
    want = caffe_forward(x.transpose(2, 0, 1), blobs, layers).transpose(1, 2, 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_reference_padded_equals_the_original_test_code_on_one_tile(tiny_file):
    path, layers, blobs = tiny_file
    model = get_model("dilatednet", CLASSES, (192, 192, 3), weights=path, variant="reference_padded",
                      activation=None, **TINY)
    x = np.random.default_rng(4).normal(0, 1, (192, 192, 3))
    got = model.predict(x[None].astype("float32"), verbose=0)[0]
    padded = np.pad(x, ((186, 186), (186, 186), (0, 0)), mode="reflect")  # cv2.BORDER_REFLECT_101
    want = caffe_forward(padded.transpose(2, 0, 1), blobs, layers).transpose(1, 2, 0)
    assert got.shape == want.shape == (192, 192, CLASSES)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_rgb_file_adapted_to_four_bands(tiny_file):
    path, _, blobs = tiny_file
    model = get_model("dilatednet", CLASSES, (64, 64, 4), weights=path, **TINY)  # the "same" variant
    kernel = model.get_layer("block1_conv1").get_weights()[0]
    rgb = blobs["conv1_1"][0].transpose(2, 3, 1, 0)
    np.testing.assert_allclose(kernel[:, :, :3], rgb * 3 / 4, rtol=1e-5)
    np.testing.assert_allclose(kernel[:, :, 3], rgb.mean(axis=2) * 3 / 4, rtol=1e-5)


def test_other_class_count_loads_the_front_end_and_warns(tiny_file, caplog):
    path, _, blobs = tiny_file
    model = get_model("dilatednet", 5, (64, 64, 3), context="large", **TINY)
    with caplog.at_level(logging.WARNING, logger="geoseg.models.pretrained"):
        copied = load_legacy_h5(model, path)
    assert "fc7" in copied and "final" not in copied and "ctx_final" not in copied
    np.testing.assert_allclose(model.get_layer("fc7").get_weights()[1], blobs["fc7"][1], rtol=1e-6)
    assert "not loaded: final (file" in caplog.text and "model layers left as initialized: final" in caplog.text


def test_keras2_tensorflow_file_is_neither_transposed_nor_flipped(tmp_path):
    model = get_model("dilatednet", 2, (64, 64, 3), context=None, **TINY)
    rng = np.random.default_rng(5)
    path = tmp_path / "k2.h5"
    names = [layer.name for layer in model.layers]
    saved = {}
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in names]
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.2.4"
        for layer in model.layers:
            g = f.create_group(layer.name)
            wn = []
            if layer.trainable_weights:
                for suffix, w in zip(("kernel", "bias"), layer.get_weights()):
                    saved[(layer.name, suffix)] = v = rng.normal(size=w.shape).astype("float32")
                    g.create_dataset(f"{layer.name}/{suffix}:0", data=v)
                    wn.append(f"{layer.name}/{suffix}:0".encode())
            g.attrs["weight_names"] = wn
    get_model("dilatednet", 2, (64, 64, 3), context=None, weights=path, **TINY)  # through get_model's checks
    load_legacy_h5(model, path)
    for (name, suffix), v in saved.items():
        np.testing.assert_array_equal(model.get_layer(name).get_weights()[int(suffix == "bias")], v)


def test_not_a_keras1_file_is_refused(tmp_path):
    model = get_model("dilatednet", 2, (64, 64, 3), context=None, **TINY)
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ModelConfigError, match="other.h5"):
        get_model("dilatednet", 2, (64, 64, 3), context=None, weights=path, **TINY)
    with pytest.raises(ModelConfigError, match="no 'layer_names' attribute"):
        load_legacy_h5(model, path)


def test_reference_padded_keras_round_trip(tmp_path):
    from geoseg.models.vgg_layers import ReflectionPadding2D

    layer = ReflectionPadding2D.from_config(ReflectionPadding2D(5, name="p").get_config())
    assert layer.padding == 5 and layer.compute_output_shape((1, 8, 9, 2)) == (1, 18, 19, 2)
    model = get_model("dilatednet", 2, (192, 192, 3), variant="reference_padded", **TINY)
    path = tmp_path / "m.keras"
    model.save(path)
    back = keras.saving.load_model(path, compile=False)
    x = np.random.default_rng(6).normal(size=(1, 192, 192, 3)).astype("float32")
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
