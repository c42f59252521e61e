"""Custom layers and initializers of the VGG / U-Net families, plus their shared build checks.

Every layer and initializer here is registered under the ``geoseg`` package so ``.keras`` files
load once this module has been imported (``import geoseg.models`` does it). All layers work on
``(N, H, W, C)`` tensors with dynamic batch and spatial sizes.

- :class:`MaxPoolingWithArgmax2D` / :class:`MaxUnpooling2D`: SegNet's pooling indices. An index is
  the position of the maximum inside its non-overlapping ``p x p`` window (``dy * p + dx``), which
  holds the same information as TensorFlow's flat argmax but stays valid for any batch size and
  any spatial size, and needs no scatter.
- :class:`BilinearKernel`: bilinear interpolation kernel for transposed convolutions (FCN).
- :class:`ConvIdentity`: identity initialization of a convolution (dilated context module).
- :class:`FixedBilinearUpsampling2D`: non-trainable per-channel bilinear transposed conv.
- :class:`ReflectionPadding2D`: mirror padding without repeating the edge (Caffe/OpenCV ``REFLECT_101``).
- :class:`PadToMultiple` / :class:`CropToReference`: run a fixed-stride network on any size.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from geoseg.errors import ModelConfigError

_PACKAGE = "geoseg"


def bilinear_kernel_1d(size: int) -> np.ndarray:
    """1-D bilinear weights of a ``size``-tap upsampling filter (Long et al., FCN ``upsample_filt``).

    For ``size = 2 * factor`` and stride ``factor`` with ``size - factor`` pixels of "same" padding,
    the transposed convolution samples at half-pixel centres, like ``align_corners=False``.
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1.0 - np.abs(np.arange(size) - center) / factor


def bilinear_kernel_2d(size: int) -> np.ndarray:
    """2-D bilinear weights ``(size, size)``: outer product of :func:`bilinear_kernel_1d`."""
    k = bilinear_kernel_1d(size)
    return np.outer(k, k)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BilinearKernel(keras.initializers.Initializer):
    """Bilinear kernel for ``Conv2DTranspose`` (shape ``(k, k, out, in)``): channel i -> channel i.

    Cross-channel weights start at zero, so at init the layer upsamples each channel on its own.
    """

    def __call__(self, shape, dtype=None):
        kh, kw, cout, cin = shape
        if kh != kw:
            raise ValueError(f"BilinearKernel needs a square kernel, got {kh}x{kw}")
        k = np.zeros(shape, dtype="float32")
        diag = np.arange(min(cin, cout))
        k[:, :, diag, diag] = bilinear_kernel_2d(kh)[:, :, None]
        return ops.convert_to_tensor(k, dtype=dtype or "float32")

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvIdentity(keras.initializers.Initializer):
    """Identity initialization of a ``Conv2D`` kernel ``(kh, kw, in, out)`` (Yu & Koltun 2016, eq. 4).

    The centre tap maps channel i to channel i, every other weight is zero, so with a zero bias the
    convolution (any dilation, "same" padding) returns its input unchanged.
    """

    def __call__(self, shape, dtype=None):
        kh, kw, cin, cout = shape
        k = np.zeros(shape, dtype="float32")
        diag = np.arange(min(cin, cout))
        k[kh // 2, kw // 2, diag, diag] = 1.0
        return ops.convert_to_tensor(k, dtype=dtype or "float32")

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """Max pooling over non-overlapping ``p x p`` windows that also returns where each maximum was.

    Input ``(N, H, W, C)`` with H and W multiples of ``pool_size``; outputs
    ``[pooled (N, H/p, W/p, C), indices (N, H/p, W/p, C) int32]`` where an index is
    ``dy * p + dx`` inside the window (the first maximum on ties).
    """

    def __init__(self, pool_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)

    def call(self, x):
        p = self.pool_size
        pooled = ops.max_pool(x, p, strides=p, padding="valid")  # native op, native gradient
        shape = ops.shape(x)
        h, w, c = shape[1], shape[2], shape[3]
        windows = ops.reshape(ops.stop_gradient(x), (-1, h // p, p, w // p, p, c))
        windows = ops.transpose(windows, (0, 1, 3, 5, 2, 4))  # N, H/p, W/p, C, dy, dx
        windows = ops.reshape(windows, (-1, h // p, w // p, c, p * p))
        # argmax of the 0/1 "is the maximum" mask: the first maximum, as ops.argmax on the values, but
        # without the float sign-bit test (a Bitcast) that keras.ops.argmax adds and ONNX cannot express
        is_max = ops.cast(ops.equal(windows, ops.max(windows, axis=-1, keepdims=True)), "int32")
        indices = ops.cast(ops.argmax(is_max, axis=-1), "int32")
        return pooled, indices

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        p = self.pool_size
        out = (n, None if h is None else h // p, None if w is None else w // p, c)
        return out, out

    def compute_output_spec(self, x):
        shape = self.compute_output_shape(x.shape)[0]
        return (keras.KerasTensor(shape, dtype=x.dtype), keras.KerasTensor(shape, dtype="int32"))

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaxUnpooling2D(keras.layers.Layer):
    """Inverse of :class:`MaxPoolingWithArgmax2D`: each value goes back to its argmax position.

    Inputs ``[x (N, h, w, C), indices (N, h, w, C) int]``; output ``(N, h*p, w*p, C)`` with zeros
    everywhere except at the recorded positions (Badrinarayanan et al., SegNet decoder).
    """

    def __init__(self, pool_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)

    def call(self, inputs):
        x, indices = inputs
        p = self.pool_size
        shape = ops.shape(x)
        h, w, c = shape[1], shape[2], shape[3]
        # a 0/1 mask of the argmax positions (no gradient path) times the nearest-upsampled values
        mask = ops.one_hot(indices, p * p, dtype=x.dtype)  # N, h, w, C, dy*p+dx
        mask = ops.transpose(ops.reshape(mask, (-1, h, w, c, p, p)), (0, 1, 4, 2, 5, 3))  # N, h, dy, w, dx, C
        mask = ops.reshape(mask, (-1, h * p, w * p, c))
        return ops.repeat(ops.repeat(x, p, axis=1), p, axis=2) * mask

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape[0]
        p = self.pool_size
        return (n, None if h is None else h * p, None if w is None else w * p, c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FixedBilinearUpsampling2D(keras.layers.Layer):
    """Upsample each channel by ``factor`` with a fixed bilinear ``2f x 2f`` transposed convolution.

    The Caffe ``Deconvolution(group=C, lr_mult=0, bilinear filler)`` of Yu & Koltun: one shared
    ``(2f, 2f)`` kernel held as a non-trainable weight, applied per channel with "same" padding so
    ``(N, h, w, C) -> (N, h*f, w*f, C)``, aligned like ``align_corners=False`` bilinear resizing.
    """

    #: the kernel is fixed by construction: pretrained files never overwrite it (geoseg.models.pretrained)
    fixed_weights = True

    def __init__(self, factor: int = 8, **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.factor = int(factor)

    def build(self, input_shape):
        size = 2 * self.factor
        kernel = bilinear_kernel_2d(size).reshape(size, size, 1, 1)
        self.kernel = self.add_weight(name="kernel", shape=(size, size, 1, 1), trainable=False,
                                      initializer=keras.initializers.Constant(kernel))

    def call(self, x):
        f = self.factor
        shape = ops.shape(x)
        h, w, c = shape[1], shape[2], shape[3]
        planes = ops.reshape(ops.transpose(x, (0, 3, 1, 2)), (-1, h, w, 1))  # every channel alone
        up = ops.conv_transpose(planes, ops.cast(self.kernel, x.dtype), strides=f, padding="same")
        up = ops.reshape(up, (-1, c, h * f, w * f))
        return ops.transpose(up, (0, 2, 3, 1))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        f = self.factor
        return (n, None if h is None else h * f, None if w is None else w * f, c)

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "factor": self.factor}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReflectionPadding2D(keras.layers.Layer):
    """Pad ``(N, H, W, C)`` by ``padding`` pixels on every side, mirrored about the edge pixel.

    The edge row/column is not repeated (``cv2.BORDER_REFLECT_101``, numpy/TF "reflect"), the
    padding the Dilation test code applies before its valid-convolution networks. Needs
    ``padding < H`` and ``padding < W``.
    """

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        p = 2 * self.padding
        return (n, None if h is None else h + p, None if w is None else w + p, c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PadToMultiple(keras.layers.Layer):
    """Zero-pad the bottom and right of ``(N, H, W, C)`` up to the next multiple of ``multiple``.

    Padding only after the last row/column keeps pixel (0, 0) where it was, so
    :class:`CropToReference` undoes it exactly.
    """

    def __init__(self, multiple: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, x):
        m = self.multiple
        shape = ops.shape(x)
        pad_h = (m - shape[1] % m) % m
        pad_w = (m - shape[2] % m) % m
        return ops.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        m = self.multiple
        return (n, None if h is None else -(-h // m) * m, None if w is None else -(-w // m) * m, c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CropToReference(keras.layers.Layer):
    """Crop ``x`` (N, H', W', C) to the top-left ``(H, W)`` of ``reference`` (N, H, W, *)."""

    def call(self, inputs):
        x, reference = inputs
        ref = ops.shape(reference)
        shape = ops.shape(x)
        return ops.slice(x, [0, 0, 0, 0], [shape[0], ref[1], ref[2], shape[3]])

    def compute_output_shape(self, input_shape):
        xs, rs = input_shape
        return (xs[0], rs[1], rs[2], xs[3])


# --- build checks shared by unet, resunet, fcn, segnet and dilatednet -------------------------

ACTIVATIONS = ("softmax", "sigmoid", None)


def check_build_args(model: str, num_classes: int, input_shape: Sequence, multiple: int | None,
                     output_stride: int | None, activation: str | None) -> tuple:
    """Validate the common builder arguments and return ``input_shape`` as a tuple (H, W, bands).

    Args:
        model: model name, used in messages.
        num_classes: classes C >= 1 of the (N, H, W, C) output.
        input_shape: (H, W, bands) in pixels; H or W may be None (checked when the model is called).
        multiple: H and W must be multiples of this (the network's total stride), or None for any size.
        output_stride: ignored by these fixed-stride architectures, but must be None, 8, 16 or 32.
        activation: "softmax", "sigmoid" or None (logits).

    Raises:
        ModelConfigError: any argument the model cannot honour.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ModelConfigError(f"{model}: num_classes must be an integer >= 1, found {num_classes!r}")
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or not all(d is None or (isinstance(d, (int, np.integer)) and d > 0) for d in shape):
        raise ModelConfigError(f"{model}: input_shape must be (H, W, bands) with positive integers, "
                               f"found {input_shape!r}")
    if shape[2] is None:
        raise ModelConfigError(f"{model}: the band count (input_shape[2]) must be known, found None")
    if multiple:
        bad = [d for d in shape[:2] if d is not None and d % multiple]
        if bad:
            raise ModelConfigError(f"{model}: input height and width must be multiples of {multiple} "
                                   f"(the network stride), found {shape[0]} x {shape[1]}")
    if output_stride not in (None, 8, 16, 32):
        raise ModelConfigError(f"{model}: output_stride must be 8, 16 or 32 (it is ignored: the "
                               f"architecture has a fixed stride), found {output_stride!r}")
    if activation not in ACTIVATIONS:
        raise ModelConfigError(f"{model}: activation must be 'softmax', 'sigmoid' or None, found {activation!r}")
    return tuple(int(d) if d is not None else None for d in shape)


def check_no_backbone(model: str, backbone) -> None:
    """Models with their own encoder take no ``backbone`` (ModelConfigError otherwise)."""
    if backbone is not None:
        raise ModelConfigError(f"{model}: has its own encoder and takes no backbone, found backbone={backbone!r} "
                               f"(use mobile_unet, deeplabv3plus, ... for a pretrained encoder)")


def builder(func):
    """Decorate a model builder so unknown keyword arguments raise ModelConfigError naming the valid ones.

    ``get_model(name, ..., **kwargs)`` forwards user options (CLI, YAML) to the builder; a typo
    then gets a one-line message instead of a TypeError.
    """
    valid = [p.name for p in inspect.signature(func).parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    model = func.__name__.removeprefix("build_")

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ModelConfigError(f"{model}: unknown argument(s) {', '.join(unknown)}; "
                                   f"valid: {', '.join(valid)}")
        return func(*args, **kwargs)

    return wrapper


def output_head(x, activation: str | None):
    """The zoo's output layers: ``"logits"`` (float32, mixed precision safe), then ``"probs"``.

    ``"probs"`` (softmax or sigmoid, float32) is absent with ``activation=None``.
    """
    x = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
    if activation is None:
        return x
    return keras.layers.Activation(activation, dtype="float32", name="probs")(x)

def check_positive_int(model: str, option: str, value) -> int:
    """An integer option that must be >= 1 (widths, depths, channel counts)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ModelConfigError(f"{model}: {option} must be an integer >= 1, found {value!r}")
    return int(value)


def check_rate(model: str, option: str, value) -> float:
    """A dropout rate in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value < 1:
        raise ModelConfigError(f"{model}: {option} must be a rate in [0, 1), found {value!r}")
    return float(value)


def check_choice(model: str, option: str, value, choices: Sequence) -> None:
    """An option restricted to a few values."""
    if value not in choices:
        raise ModelConfigError(f"{model}: {option} must be one of {', '.join(map(repr, choices))}, found {value!r}")
