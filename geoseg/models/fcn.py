"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell, CVPR 2015).

VGG16 (or VGG19) convolutions, ``fc6`` as a 7x7 conv and ``fc7`` as a 1x1 conv (4096 channels,
ReLU, dropout 0.5), a 1x1 ``score_fr`` to C classes, and learnable transposed convolutions
initialized to bilinear interpolation (kernel 2s, stride s, no bias):

- FCN-32s: ``score_fr`` -> ``upscore`` (64x64, stride 32).
- FCN-16s: ``upscore2`` (4x4, stride 2) + ``score_pool4`` -> ``upscore16`` (32x32, stride 16).
- FCN-8s: as 16s, then ``upscore_pool4`` (4x4, stride 2) + ``score_pool3`` -> ``upscore8`` (16x16, stride 8).

Score layers start at zero, as in the paper. Alignment: the Caffe reference pads conv1_1 by 100
pixels and crops every fused map by a computed offset; here every conv uses "same" padding, so
for H and W multiples of 32 each map is exactly H/2**k and every "same" transposed conv of kernel
2s and stride s crops s/2 pixels per side, which places output samples at the half-pixel centres of
bilinear resizing. Other sizes are zero-padded at the bottom/right to the next multiple of 32
(``PadToMultiple``) and the output cropped back (``CropToReference``), so output size = input size
for any (H, W); padding changes the context at the bottom/right border only.

Deviations from the reference nets: the released Caffe models freeze the upsampling layers
(``lr_mult: 0``); the paper learns the 2x ones. Here all upsampling layers are trainable by default
(``trainable_upsampling=False`` freezes them). The "at-once" FCN-8s scales pool3/pool4 by 1e-4/1e-2;
the staged training described in the paper does not, nor do we.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from geoseg.errors import ModelConfigError
from geoseg.models.vgg import VGG_WIDTHS, check_backbone, check_widths, fc_convs, load_vgg_model_weights, vgg_encoder
from geoseg.models.vgg_layers import (
    BilinearKernel,
    CropToReference,
    PadToMultiple,
    builder,
    check_build_args,
    check_positive_int,
    check_rate,
    output_head,
)

#: pixels: the total stride of VGG16's five poolings
FCN_STRIDE = 32


def input_multiple(name: str, output_stride: int | None = None, **kwargs) -> int:
    """FCNs take any H and W (padded to a multiple of 32 inside the model): 1 pixel."""
    return 1


def _upsample(x, num_classes: int, factor: int, name: str, trainable: bool):
    """Transposed conv of kernel 2*factor and stride factor, bilinear at init, no bias."""
    return keras.layers.Conv2DTranspose(num_classes, 2 * factor, strides=factor, padding="same", use_bias=False,
                                        kernel_initializer=BilinearKernel(), trainable=trainable, name=name)(x)


def _score(x, num_classes: int, name: str):
    return keras.layers.Conv2D(num_classes, 1, kernel_initializer="zeros", name=name)(x)


def build_fcn(variant: int, num_classes: int, input_shape: Sequence, backbone: str | None = None, weights=None,
              output_stride: int | None = 16, activation: str | None = "softmax", *,
              encoder_widths: Sequence[int] = VGG_WIDTHS, fc_channels: int = 4096, dropout: float = 0.5,
              trainable_upsampling: bool = True) -> keras.Model:
    """Build FCN-``variant``s (32, 16 or 8) for inputs (H, W, bands), output (N, H, W, num_classes).

    Args:
        variant: 32, 16 or 8: the stride of the coarsest fused prediction.
        num_classes: output classes C.
        input_shape: (H, W, bands) in pixels; any H and W (multiples of 32 avoid padding).
        backbone: "vgg16" (default, the paper) or "vgg19".
        weights: None, "imagenet" (encoder; fc6/fc7 too at canonical widths) or a path to this model's weights.
        output_stride: ignored (the architecture fixes it); must be None, 8, 16 or 32.
        activation: "softmax", "sigmoid" or None for logits.
        encoder_widths: channels of the five VGG blocks (default 64, 128, 256, 512, 512).
        fc_channels: channels of fc6 and fc7 (4096 in the paper).
        dropout: dropout rate after fc6 and fc7.
        trainable_upsampling: learn the bilinear-initialized upsampling layers.
    """
    if variant not in (8, 16, 32):
        raise ModelConfigError(f"FCN variant must be 8, 16 or 32, found {variant!r}")
    name = f"fcn{variant}s"
    shape = check_build_args(name, num_classes, input_shape, None, output_stride, activation)
    vgg = check_backbone(name, backbone)
    widths = check_widths(name, encoder_widths)
    fc_channels = check_positive_int(name, "fc_channels", fc_channels)
    dropout = check_rate(name, "dropout", dropout)
    inputs = keras.Input(shape, name="image")
    h, w = shape[:2]
    padded = h is None or w is None or h % FCN_STRIDE or w % FCN_STRIDE
    x = PadToMultiple(FCN_STRIDE, name="pad_to_stride")(inputs) if padded else inputs
    feats = vgg_encoder(x, vgg, widths)
    x = fc_convs(feats["block5_pool"], fc_channels, dropout)
    x = _score(x, num_classes, "score_fr")
    if variant == 32:
        x = _upsample(x, num_classes, 32, "upscore", trainable_upsampling)
    else:
        x = _upsample(x, num_classes, 2, "upscore2", trainable_upsampling)
        x = keras.layers.Add(name="fuse_pool4")([x, _score(feats["block4_pool"], num_classes, "score_pool4")])
        if variant == 16:
            x = _upsample(x, num_classes, 16, "upscore16", trainable_upsampling)
        else:
            x = _upsample(x, num_classes, 2, "upscore_pool4", trainable_upsampling)
            x = keras.layers.Add(name="fuse_pool3")([x, _score(feats["block3_pool"], num_classes, "score_pool3")])
            x = _upsample(x, num_classes, 8, "upscore8", trainable_upsampling)
    if padded:
        x = CropToReference(name="crop_to_input")([x, inputs])
    model = keras.Model(inputs, output_head(x, activation), name=name)
    canonical_fc = fc_channels == 4096 and widths[3:] == (512, 512)
    load_vgg_model_weights(model, weights, vgg, name, fc=canonical_fc)
    return model



@builder
def build_fcn32s(num_classes: int, input_shape: Sequence, backbone: str | None = None, weights=None,
                 output_stride: int | None = 16, activation: str | None = "softmax", *,
                 encoder_widths: Sequence[int] = VGG_WIDTHS, fc_channels: int = 4096, dropout: float = 0.5,
                 trainable_upsampling: bool = True) -> keras.Model:
    """FCN-32s: one 32x upsampling of ``score_fr``. Arguments as :func:`build_fcn`."""
    return build_fcn(32, num_classes, input_shape, backbone, weights, output_stride, activation,
                     encoder_widths=encoder_widths, fc_channels=fc_channels, dropout=dropout,
                     trainable_upsampling=trainable_upsampling)


@builder
def build_fcn16s(num_classes: int, input_shape: Sequence, backbone: str | None = None, weights=None,
                 output_stride: int | None = 16, activation: str | None = "softmax", *,
                 encoder_widths: Sequence[int] = VGG_WIDTHS, fc_channels: int = 4096, dropout: float = 0.5,
                 trainable_upsampling: bool = True) -> keras.Model:
    """FCN-16s: 2x ``score_fr`` fused with ``score_pool4``, then 16x. Arguments as :func:`build_fcn`."""
    return build_fcn(16, num_classes, input_shape, backbone, weights, output_stride, activation,
                     encoder_widths=encoder_widths, fc_channels=fc_channels, dropout=dropout,
                     trainable_upsampling=trainable_upsampling)


@builder
def build_fcn8s(num_classes: int, input_shape: Sequence, backbone: str | None = None, weights=None,
                output_stride: int | None = 16, activation: str | None = "softmax", *,
                encoder_widths: Sequence[int] = VGG_WIDTHS, fc_channels: int = 4096, dropout: float = 0.5,
                trainable_upsampling: bool = True) -> keras.Model:
    """FCN-8s: FCN-16s fusion, 2x, fused with ``score_pool3``, then 8x. Arguments as :func:`build_fcn`."""
    return build_fcn(8, num_classes, input_shape, backbone, weights, output_stride, activation,
                     encoder_widths=encoder_widths, fc_channels=fc_channels, dropout=dropout,
                     trainable_upsampling=trainable_upsampling)
