"""Deep Residual U-Net (Zhang, Liu & Wang, IEEE GRSL 2018, "Road extraction by deep residual U-Net").

A U-Net whose units are pre-activation residual blocks (He et al. 2016): BN -> ReLU -> 3x3 conv
-> BN -> ReLU -> 3x3 conv, added to a shortcut (1x1 conv + BN where the shape changes). Encoder:
level 1 starts with a plain conv (its input is the image, so no pre-activation) and adds a
shortcut; levels 2..depth and the bridge down-sample with stride 2 in their first conv (no
pooling). Decoder: 2x up-sampling of the deeper map, concatenation with the encoder level,
residual block. A 1x1 conv gives C classes. Paper configuration: ``encoder_depth=3`` (64, 128, 256
channels, bridge 512), ~8 M parameters.

"same" padding everywhere: H and W must be multiples of ``2**encoder_depth``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from geoseg.models.unet import check_unet_args, load_own_weights
from geoseg.models.vgg_layers import (
    builder,
    output_head,
)

UPSAMPLING = ("bilinear", "nearest", "transpose")


def input_multiple(name: str, output_stride: int | None = None, encoder_depth: int = 3, **kwargs) -> int:
    """Pixels that H and W must be a multiple of: one per stride-2 unit, ``2**encoder_depth``."""
    if isinstance(encoder_depth, int) and encoder_depth >= 1:
        return 2**encoder_depth
    return 1  # the builder reports the bad depth


def residual_block(x, filters: int, strides: int, name: str, first: bool = False):
    """Pre-activation residual unit ``{name}_conv1``, ``{name}_conv2``, ``{name}_shortcut``, ``{name}_add``.

    ``first``: the unit that sees the image; its first conv is not pre-activated (Zhang et al., Fig. 3).
    """
    shortcut = x
    if not first:
        x = keras.layers.BatchNormalization(name=f"{name}_bn1")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu1")(x)
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", name=f"{name}_conv1")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn2")(x)
    x = keras.layers.Activation("relu", name=f"{name}_relu2")(x)
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(x)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, name=f"{name}_shortcut")(shortcut)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_shortcut_bn")(shortcut)
    return keras.layers.Add(name=f"{name}_add")([x, shortcut])


@builder
def build_resunet(num_classes: int, input_shape: Sequence, backbone: str | None = None, weights=None,
                  output_stride: int | None = 16, activation: str | None = "softmax", *,
                  encoder_depth: int = 3, encoder_filters: int = 64, decoder_upsampling: str = "bilinear",
                  dropout: float = 0.0) -> keras.Model:
    """Build a residual U-Net for inputs (H, W, bands), output (N, H, W, num_classes).

    Args:
        num_classes: output classes C.
        input_shape: (H, W, bands) in pixels, H and W multiples of ``2**encoder_depth`` (or None).
        backbone: must be None (the model has its own encoder).
        weights: None or a path to this model's ``.keras`` / ``.weights.h5`` file.
        output_stride: ignored (full-resolution output); must be None, 8, 16 or 32.
        activation: "softmax", "sigmoid" or None for logits.
        encoder_depth: number of stride-2 down-samplings (3 in the paper).
        encoder_filters: channels of level 1 (64 in the paper), doubled per level.
        decoder_upsampling: "bilinear" (default), "nearest" or "transpose" (2x2 transposed conv).
        dropout: dropout rate after the bridge (0 disables it; the paper uses none).
    """
    name = "resunet"
    depth, filters, dropout, shape = check_unet_args(
        name, num_classes, input_shape, backbone, output_stride, activation, encoder_depth, encoder_filters,
        dropout, decoder_upsampling, UPSAMPLING)

    inputs = keras.Input(shape, name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = residual_block(x, filters * 2**level, 1 if level == 0 else 2, f"encoder{level + 1}", first=level == 0)
        skips.append(x)
    x = residual_block(x, filters * 2**depth, 2, "bridge")
    if dropout:
        x = keras.layers.Dropout(dropout, name="bridge_dropout")(x)
    for level in range(depth, 0, -1):
        width = filters * 2 ** (level - 1)
        if decoder_upsampling == "transpose":
            x = keras.layers.Conv2DTranspose(x.shape[-1], 2, strides=2, name=f"decoder{level}_up")(x)
        else:
            x = keras.layers.UpSampling2D(2, interpolation=decoder_upsampling, name=f"decoder{level}_up")(x)
        x = keras.layers.Concatenate(name=f"decoder{level}_concat")([x, skips[level - 1]])
        x = residual_block(x, width, 1, f"decoder{level}")
    x = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    model = keras.Model(inputs, output_head(x, activation), name=name)
    load_own_weights(model, weights, name)
    return model
