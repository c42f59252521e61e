"""Dilated convolution network (Yu & Koltun, ICLR 2016, "Multi-scale context aggregation by dilated convolutions").

Front-end: VGG16 with pool4 and pool5 removed, the conv5 layers dilated by 2, ``fc6`` as a 7x7
conv dilated by 4 (4096 channels), ``fc7`` 1x1 (4096), both with ReLU and dropout 0.5, and a 1x1
``final`` conv to C classes (Gaussian init, std 0.001): scores at 1/8 of the input resolution.

Context module on those C channels, every layer identity-initialized (so at init it passes its
input through) and followed by ReLU except the last (layer names of the reference ``network.py``):

- ``basic``: 3x3 convs dilated 1, 1, 2, 4, 8, 16 (``ctx_conv1_1`` ... ``ctx_conv5_1``), a 3x3
  ``ctx_fc1`` and a 1x1 ``ctx_final``;
- ``large``: the deeper module used for 1024 x 1024 Cityscapes crops (Dilation10): dilations
  1, 1, 2, 4, 8, 16, 32, 64, then ``ctx_fc1`` (3x3) and ``ctx_final`` (1x1).

Then 8x upsampling by a fixed bilinear 16x16 transposed convolution with stride 8, per channel
and non-trainable (the reference ``Deconvolution(group=C, lr_mult=0)``). All convs use "same"
(zero) padding so output size = input size; the reference instead reflect-pads the input by 186
pixels and uses valid convolutions. H and W must be multiples of 8.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from geoseg.models.vgg import VGG_WIDTHS, check_backbone, check_widths, fc_convs, load_vgg_model_weights, vgg_encoder
from geoseg.models.vgg_layers import (
    ConvIdentity,
    FixedBilinearUpsampling2D,
    builder,
    check_build_args,
    check_choice,
    check_positive_int,
    check_rate,
    output_head,
)

#: pixels: the front-end keeps three 2x2 poolings
DILATEDNET_STRIDE = 8
#: dilation rates of the 3x3 context layers before ctx_fc1
CONTEXT_DILATIONS: dict[str, tuple[int, ...]] = {
    "basic": (1, 1, 2, 4, 8, 16),
    "large": (1, 1, 2, 4, 8, 16, 32, 64),
}


def context_module(x, num_classes: int, kind: str = "basic"):
    """Apply the identity-initialized context module to class scores ``x`` (N, h, w, C).

    With non-negative inputs (the ReLUs are then identities) the freshly built module returns ``x``.
    """
    names = ["ctx_conv1_1", "ctx_conv1_2"] + [f"ctx_conv{i}_1" for i in range(2, len(CONTEXT_DILATIONS[kind]))]
    for name, rate in zip(names, CONTEXT_DILATIONS[kind]):
        x = keras.layers.Conv2D(num_classes, 3, padding="same", dilation_rate=rate, activation="relu",
                                kernel_initializer=ConvIdentity(), name=name)(x)
    x = keras.layers.Conv2D(num_classes, 3, padding="same", activation="relu", kernel_initializer=ConvIdentity(),
                            name="ctx_fc1")(x)
    return keras.layers.Conv2D(num_classes, 1, kernel_initializer=ConvIdentity(), name="ctx_final")(x)


@builder
def build_dilatednet(num_classes: int, input_shape: Sequence, backbone: str | None = None, weights=None,
                     output_stride: int | None = 16, activation: str | None = "softmax", *,
                     context: str | None = "basic", encoder_widths: Sequence[int] = VGG_WIDTHS,
                     fc_channels: int = 4096, dropout: float = 0.5) -> keras.Model:
    """Build the dilated network for inputs (H, W, bands), output (N, H, W, num_classes).

    Args:
        num_classes: output classes C.
        input_shape: (H, W, bands) in pixels, H and W multiples of 8 (or None).
        backbone: "vgg16" (default, the paper) or "vgg19" for the front-end.
        weights: None, "imagenet" (VGG convs; fc6/fc7 too at canonical widths) or a path to this model's weights.
        output_stride: ignored (the front-end always works at 1/8); must be None, 8, 16 or 32.
        activation: "softmax", "sigmoid" or None for logits.
        context: "basic", "large" (1024 x 1024 inputs) or None (front-end only).
        encoder_widths: channels of the five VGG blocks (default 64, 128, 256, 512, 512).
        fc_channels: channels of fc6 and fc7 (4096 in the paper).
        dropout: dropout rate after fc6 and fc7.
    """
    name = "dilatednet"
    shape = check_build_args(name, num_classes, input_shape, DILATEDNET_STRIDE, output_stride, activation)
    vgg = check_backbone(name, backbone)
    widths = check_widths(name, encoder_widths)
    fc_channels = check_positive_int(name, "fc_channels", fc_channels)
    dropout = check_rate(name, "dropout", dropout)
    check_choice(name, "context", context, ("basic", "large", None))
    inputs = keras.Input(shape, name="image")
    feats = vgg_encoder(inputs, vgg, widths, pools=3, block5_dilation=2)
    x = fc_convs(feats["output"], fc_channels, dropout, fc6_dilation=4)
    x = keras.layers.Conv2D(num_classes, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
                            name="final")(x)
    if context is not None:
        x = context_module(x, num_classes, context)
    x = FixedBilinearUpsampling2D(DILATEDNET_STRIDE, name="ctx_upsample")(x)
    model = keras.Model(inputs, output_head(x, activation), name=name)
    load_vgg_model_weights(model, weights, vgg, name, fc=fc_channels == 4096 and widths[3:] == (512, 512))
    return model

