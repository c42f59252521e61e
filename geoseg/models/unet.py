"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015).

Contracting path: ``encoder_depth`` levels (4 in the paper) of two 3x3 convs + ReLU followed by
2x2 max pooling, the channels doubling from ``encoder_filters`` (64) per level; a bridge of two
3x3 convs at ``encoder_filters * 2**depth`` (1024) channels, with dropout at the end of the
contracting path (the paper's "drop-out layers at the end of the contracting path"). Expanding
path: per level a 2x2 up-convolution halving the channels, concatenation with the encoder level,
two 3x3 convs + ReLU; a final 1x1 conv to C classes.

Deviation: the paper uses valid (unpadded) convs, so its output is smaller than its input (572 ->
388) and skip connections are cropped; here convs use "same" padding, so output size = input size
and H, W must be multiples of ``2**encoder_depth``. Options: batch norm after every conv
(``batch_norm``, not in the paper), up-sampling by ``"transpose"`` (learned 2x2 transposed conv,
the paper) or ``"bilinear"`` (bilinear resize followed by the 2x2 conv that halves the channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from geoseg.errors import ModelConfigError
from geoseg.models.pretrained import load_weights_file
from geoseg.models.vgg_layers import (
    builder,
    check_build_args,
    check_choice,
    check_no_backbone,
    check_positive_int,
    check_rate,
    output_head,
)

UPSAMPLING = ("transpose", "bilinear")
#: "Gaussian with a standard deviation of sqrt(2/N)" (Ronneberger et al., section 3): He-normal
HE = "he_normal"


def input_multiple(name: str, output_stride: int | None = None, encoder_depth: int = 4, **kwargs) -> int:
    """Pixels that H and W must be a multiple of: one per pooling, ``2**encoder_depth``."""
    if isinstance(encoder_depth, int) and encoder_depth >= 1:
        return 2**encoder_depth
    return 1  # the builder reports the bad depth


def load_own_weights(model, weights, name: str) -> None:
    """``weights`` of a model without a pretrained encoder: None or a path to this model's weights."""
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        raise ModelConfigError(f"{name}: has no ImageNet-pretrained encoder; use weights=None or a weights file "
                               f"(mobile_unet offers an ImageNet encoder)")
    load_weights_file(model, weights)


def conv_block(x, filters: int, name: str, batch_norm: bool):
    """Two 3x3 "same" convs, each followed by (batch norm and) ReLU: ``{name}_conv1``, ``{name}_conv2``."""
    for i in (1, 2):
        conv = f"{name}_conv{i}"
        if batch_norm:
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=HE, name=conv)(x)
            x = keras.layers.BatchNormalization(name=f"{conv}_bn")(x)
            x = keras.layers.Activation("relu", name=f"{conv}_relu")(x)
        else:
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=HE, name=conv)(x)
    return x


def up_conv(x, filters: int, name: str, mode: str):
    """2x up-sampling that outputs ``filters`` channels (the paper's 2x2 "up-convolution")."""
    if mode == "transpose":
        return keras.layers.Conv2DTranspose(filters, 2, strides=2, name=name)(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
    return keras.layers.Conv2D(filters, 2, padding="same", name=name)(x)


def check_unet_args(name: str, num_classes: int, input_shape: Sequence, backbone: str | None,
                    output_stride: int | None, activation: str | None, encoder_depth: int, encoder_filters: int,
                    dropout: float, decoder_upsampling: str, upsampling_choices: Sequence[str]):
    """Validate the arguments the U-Net family shares; returns ``(depth, filters, dropout, input_shape)``.

    Raises:
        ModelConfigError: a value out of range, a backbone given, or H/W not a multiple of ``2**depth``.
    """
    depth = check_positive_int(name, "encoder_depth", encoder_depth)
    filters = check_positive_int(name, "encoder_filters", encoder_filters)
    dropout = check_rate(name, "dropout", dropout)
    check_choice(name, "decoder_upsampling", decoder_upsampling, upsampling_choices)
    shape = check_build_args(name, num_classes, input_shape, 2**depth, output_stride, activation)
    check_no_backbone(name, backbone)
    return depth, filters, dropout, shape


@builder
def build_unet(num_classes: int, input_shape: Sequence, backbone: str | None = None, weights=None,
               output_stride: int | None = 16, activation: str | None = "softmax", *,
               encoder_depth: int = 4, encoder_filters: int = 64, batch_norm: bool = False,
               decoder_upsampling: str = "transpose", dropout: float = 0.5) -> keras.Model:
    """Build a U-Net for inputs (H, W, bands), output (N, H, W, num_classes).

    Args:
        num_classes: output classes C.
        input_shape: (H, W, bands) in pixels, H and W multiples of ``2**encoder_depth`` (or None).
        backbone: must be None (U-Net has its own encoder).
        weights: None or a path to this model's ``.keras`` / ``.weights.h5`` file.
        output_stride: ignored (full-resolution output); must be None, 8, 16 or 32.
        activation: "softmax", "sigmoid" or None for logits.
        encoder_depth: number of 2x2 poolings (4 in the paper).
        encoder_filters: channels of the first level (64 in the paper), doubled per level.
        batch_norm: batch norm after every 3x3 conv.
        decoder_upsampling: "transpose" (paper) or "bilinear".
        dropout: dropout rate at the end of the contracting path (0 disables it).
    """
    name = "unet"
    depth, filters, dropout, shape = check_unet_args(
        name, num_classes, input_shape, backbone, output_stride, activation, encoder_depth, encoder_filters,
        dropout, decoder_upsampling, UPSAMPLING)

    inputs = keras.Input(shape, name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = conv_block(x, filters * 2**level, f"encoder{level + 1}", batch_norm)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"encoder{level + 1}_pool")(x)
    x = conv_block(x, filters * 2**depth, "bridge", batch_norm)
    if dropout:
        x = keras.layers.Dropout(dropout, name="bridge_dropout")(x)
    for level in range(depth, 0, -1):
        width = filters * 2 ** (level - 1)
        x = up_conv(x, width, f"decoder{level}_up", decoder_upsampling)
        x = keras.layers.Concatenate(name=f"decoder{level}_concat")([skips[level - 1], x])
        x = conv_block(x, width, f"decoder{level}", batch_norm)
    x = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    model = keras.Model(inputs, output_head(x, activation), name=name)
    load_own_weights(model, weights, name)
    return model
