"""VGG16/VGG19 encoder from plain Keras layers, named like ``keras.applications`` VGG16/VGG19.

Layer names are ``block{b}_conv{i}`` and ``block{b}_pool`` (b = 1..5), exactly those of
``keras.applications.VGG16``/``VGG19``, so ImageNet weights load by name through
:func:`geoseg.models.pretrained.transfer_weights` (the first convolution adapted to any band
count). Options cover what segmentation models change: batch norm after every conv (SegNet),
pooling that also returns argmax indices (SegNet), dropped pools with dilated ``conv5``
(dilatednet). The classifier's ``fc1``/``fc2`` Dense layers convert to FCN's ``fc6`` (7x7 conv)
and ``fc7`` (1x1 conv) with :func:`dense_to_conv_kernel`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import keras
import numpy as np

from geoseg.errors import ModelConfigError
from geoseg.models.pretrained import load_weights_file, transfer_weights
from geoseg.models.vgg_layers import MaxPoolingWithArgmax2D

log = logging.getLogger(__name__)

#: convolutions per block
VGG_BLOCKS: dict[str, tuple[int, ...]] = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
#: output channels per block (Simonyan & Zisserman 2015)
VGG_WIDTHS: tuple[int, ...] = (64, 128, 256, 512, 512)
#: ReLU convs start from He-normal weights (He et al. 2015) rather than Keras' Glorot default, so
#: the 15-layer stack also trains from scratch (multispectral inputs rarely have pretrained weights)
HE = "he_normal"


def check_backbone(model: str, backbone: str | None) -> str:
    """Resolve the VGG variant of a VGG-based model: None -> "vgg16"."""
    name = "vgg16" if backbone is None else str(backbone).lower()
    if name not in VGG_BLOCKS:
        raise ModelConfigError(f"{model}: backbone must be one of {', '.join(VGG_BLOCKS)}, found {backbone!r}")
    return name


def check_widths(model: str, widths: Sequence[int]) -> tuple[int, ...]:
    """``encoder_widths``: five positive channel counts, one per VGG block."""
    w = tuple(widths)
    if len(w) != 5 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in w):
        raise ModelConfigError(f"{model}: encoder_widths must be 5 positive integers (one per VGG block), "
                               f"found {widths!r}")
    return tuple(int(v) for v in w)


def vgg_encoder(x, backbone: str = "vgg16", widths: Sequence[int] = VGG_WIDTHS, batch_norm: bool = False,
                pool_indices: bool = False, pools: int = 5, block5_dilation: int = 1, padding: str = "same") -> dict:
    """Apply the VGG convolutional stack to ``x`` (N, H, W, bands).

    Args:
        x: input tensor.
        backbone: "vgg16" (13 convs) or "vgg19" (16 convs).
        widths: channels of blocks 1-5.
        batch_norm: conv (linear) -> ``BatchNormalization`` -> ReLU instead of conv with ReLU.
        pool_indices: pool with :class:`MaxPoolingWithArgmax2D` and return the indices.
        pools: how many of the five 2x2 poolings to keep (3 drops pool4 and pool5: stride 8).
        block5_dilation: dilation rate of the conv5 layers.
        padding: "same" (output size = input size / 2**pools) or "valid" (the Caffe nets of the
            Dilation paper: every 3x3 conv trims 2 * dilation pixels).

    Returns:
        A dict with ``block{b}_conv`` (last conv of block b, before pooling), ``block{b}_pool``
        (stride 2**b), ``block{b}_indices`` (with ``pool_indices``) and ``output`` (the last tensor).
    """
    feats = {}
    for b, (n_convs, width) in enumerate(zip(VGG_BLOCKS[backbone], widths), start=1):
        dilation = block5_dilation if b == 5 else 1
        for i in range(1, n_convs + 1):
            name = f"block{b}_conv{i}"
            if batch_norm:
                x = keras.layers.Conv2D(width, 3, padding=padding, dilation_rate=dilation, kernel_initializer=HE,
                                        name=name)(x)
                x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
                x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
            else:
                x = keras.layers.Conv2D(width, 3, padding=padding, dilation_rate=dilation, activation="relu",
                                        kernel_initializer=HE, name=name)(x)
        feats[f"block{b}_conv"] = x
        if b <= pools:
            if pool_indices:
                x, feats[f"block{b}_indices"] = MaxPoolingWithArgmax2D(2, name=f"block{b}_pool")(x)
            else:
                x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{b}_pool")(x)
            feats[f"block{b}_pool"] = x
    feats["output"] = x
    return feats


def fc_convs(x, fc_channels: int, dropout: float, fc6_dilation: int = 1, padding: str = "same"):
    """``fc6`` (7x7 conv, ReLU, dropout) and ``fc7`` (1x1 conv, ReLU, dropout): VGG's classifier as convs.

    ``padding="valid"`` trims ``6 * fc6_dilation`` pixels (the Caffe Dilation nets).
    """
    x = keras.layers.Conv2D(fc_channels, 7, padding=padding, dilation_rate=fc6_dilation, activation="relu",
                            kernel_initializer=HE, name="fc6")(x)
    x = keras.layers.Dropout(dropout, name="drop6")(x)
    x = keras.layers.Conv2D(fc_channels, 1, activation="relu", kernel_initializer=HE, name="fc7")(x)
    return keras.layers.Dropout(dropout, name="drop7")(x)


def dense_to_conv_kernel(kernel: np.ndarray, conv_shape: Sequence[int]) -> np.ndarray:
    """Reshape a Dense kernel ``(kh*kw*cin, F)`` to the conv kernel ``(kh, kw, cin, F)`` it equals.

    ``Flatten`` on (N, kh, kw, cin) orders features row, column, channel, which is the C order of
    the conv kernel's first three axes, so a valid conv over a kh x kw window computes the Dense output.
    """
    return np.asarray(kernel).reshape(tuple(conv_shape))


def imagenet_vgg(backbone: str, include_top: bool):
    """``keras.applications`` VGG16/VGG19 with ImageNet weights (from the Keras cache, else downloaded).

    Raises:
        ModelConfigError: the weights can be neither found in ``~/.keras/models`` nor downloaded.
    """
    app = keras.applications.VGG16 if backbone == "vgg16" else keras.applications.VGG19
    shape = (224, 224, 3) if include_top else (None, None, 3)
    try:
        return app(include_top=include_top, weights="imagenet", input_shape=shape)
    except Exception as exc:  # network errors, corrupt cache files: many types
        raise ModelConfigError(f"cannot load ImageNet weights of {backbone} (put the keras.applications file in "
                               f"~/.keras/models/ when offline): {str(exc).splitlines()[0][:160]}") from None


def transfer_vgg_weights(source, model) -> list[str]:
    """Copy VGG weights from ``source`` into ``model`` by layer name; ``fc1``/``fc2`` become ``fc6``/``fc7``.

    The first convolution is adapted to the model's band count (see :mod:`geoseg.models.pretrained`).
    Dense layers are converted only where the shapes agree (canonical widths, 4096 fc channels).
    Returns the names of the target layers that received weights.
    """
    copied = transfer_weights(source, model)
    names = {layer.name for layer in source.layers}
    for src_name, dst_name in (("fc1", "fc6"), ("fc2", "fc7")):
        if src_name not in names or dst_name not in {layer.name for layer in model.layers}:
            continue
        dense, conv = source.get_layer(src_name), model.get_layer(dst_name)
        kernel, bias = dense.get_weights()
        conv_kernel = conv.get_weights()[0]
        if kernel.size != conv_kernel.size or bias.shape != conv.get_weights()[1].shape:
            log.debug("%s -> %s: shapes differ, not converted", src_name, dst_name)
            continue
        conv.set_weights([dense_to_conv_kernel(kernel, conv_kernel.shape), bias])
        copied.append(dst_name)
    return copied


def load_vgg_model_weights(model, weights, backbone: str, name: str, fc: bool = False) -> None:
    """Apply the ``weights`` argument of a VGG-based builder to ``model``.

    Args:
        model: the freshly built model.
        weights: None (random init), "imagenet" (keras.applications VGG weights into the encoder, and
            into fc6/fc7 when ``fc``), or a path to a ``.keras`` / ``.weights.h5`` file of this model.
        backbone: "vgg16" or "vgg19".
        name: model name for messages.
        fc: also convert the ImageNet classifier (``fc1``/``fc2``) into ``fc6``/``fc7``.

    Raises:
        ModelConfigError: unknown weights value, or weights that do not fit.
        InputNotFoundError: a weights path that does not exist.
    """
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        copied = transfer_vgg_weights(imagenet_vgg(backbone, include_top=fc), model)
        if not copied:
            raise ModelConfigError(f"{name}: no ImageNet {backbone} layer fits the model (encoder_widths changed?)")
        log.info("%s: ImageNet %s weights loaded into %d layers", name, backbone, len(copied))
        return
    if isinstance(weights, (str, os.PathLike)):
        load_weights_file(model, weights)
        return
    raise ModelConfigError(f"{name}: weights must be None, 'imagenet' or a file path, found {weights!r}")
