"""DeepLab v3 (Chen et al. 2017, arXiv:1706.05587) and v3+ (Chen et al. 2018, arXiv:1802.02611).

v3: atrous backbone at output stride 16 (or 8), then ASPP: a 1x1 conv, three 3x3 atrous convs at
rates 6/12/18 (doubled at output stride 8) and an image-pooling branch, 256 channels each with
batch norm, concatenated and projected by a 1x1 conv (256); a 1x1 classifier; bilinear upsampling.

v3+: the ASPP output is upsampled 4x to the stride-4 low-level features, which are projected
to 48 channels first; after concatenation two 3x3 convs (256) refine, then the classifier and a
4x bilinear upsampling. ``decoder_separable=True`` uses depthwise separable convs in ASPP and
decoder, as in the paper's Xception model.
"""

from __future__ import annotations

from typing import Any

import keras

from geoseg.models.backbones import build_backbone, skip_outputs
from geoseg.models.blocks import conv_bn_relu, segmentation_head
from geoseg.models.layers import ResizeLike


def aspp(x, filters: int = 256, rates: tuple[int, ...] = (6, 12, 18), separable: bool = False,
         dropout: float = 0.1, name: str = "aspp"):
    """Atrous spatial pyramid pooling (DeepLab v3, Sec. 3.3) on features (N, h, w, C) -> (N, h, w, filters).

    Branches are named by position (``aspp_b0`` 1x1, ``aspp_b1..`` atrous, ``aspp_pool``) so that
    layer names, hence weights, do not depend on the rates.
    """
    branches = [conv_bn_relu(x, filters, 1, name=f"{name}_b0")]
    for i, rate in enumerate(rates, start=1):
        branches.append(conv_bn_relu(x, filters, 3, name=f"{name}_b{i}", dilation=rate, separable=separable))
    pool = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pool = conv_bn_relu(pool, filters, 1, name=f"{name}_pool_proj")
    branches.append(ResizeLike(name=f"{name}_pool_resize")([pool, x]))
    y = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    y = conv_bn_relu(y, filters, 1, name=f"{name}_project")
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_dropout")(y)
    return y


def _rates(rates: tuple[int, ...], output_stride: int) -> tuple[int, ...]:
    # rates are given for output stride 16; the atrous field of view scales with the feature size
    return tuple(max(1, int(r * 16 // output_stride)) for r in rates)


def build_deeplabv3(num_classes: int, input_shape: tuple, backbone: str | None = None, weights: str | None = None,
                    output_stride: int = 16, activation: str | None = "softmax", *,
                    encoder_kwargs: dict[str, Any] | None = None, decoder_filters: int = 256,
                    decoder_rates: tuple[int, ...] = (6, 12, 18), decoder_separable: bool = False,
                    decoder_dropout: float = 0.1) -> keras.Model:
    """DeepLab v3: (N, H, W, bands) -> (N, H, W, num_classes).

    Args:
        num_classes: output classes.
        input_shape: ``(H, W, bands)``; H and W multiples of ``output_stride``.
        backbone: backbone table key (default ``resnet101``, the paper's).
        weights: None or ``"imagenet"`` for the backbone.
        output_stride: 8 or 16 (32 is accepted: no dilation, rates halved).
        activation: ``"softmax"``, ``"sigmoid"`` or None for logits.
        encoder_kwargs: extra ``keras.applications`` arguments (e.g. ``{"alpha": 0.35}``).
        decoder_filters: ASPP channels (256 in the paper).
        decoder_rates: atrous rates at output stride 16 (doubled at 8).
        decoder_separable: depthwise separable 3x3 convs in ASPP.
        decoder_dropout: dropout after the ASPP projection.
    """
    backbone = backbone or "resnet101"
    enc = build_backbone(backbone, input_shape, output_stride, weights, **(encoder_kwargs or {}))
    feats = skip_outputs(enc, backbone)
    x = aspp(feats[32], decoder_filters, _rates(decoder_rates, output_stride), decoder_separable, decoder_dropout)
    out = segmentation_head(x, enc.inputs[0], num_classes, activation)
    return keras.Model(enc.inputs[0], out, name="deeplabv3")


def build_deeplabv3plus(num_classes: int, input_shape: tuple, backbone: str | None = None,
                        weights: str | None = None, output_stride: int = 16, activation: str | None = "softmax", *,
                        encoder_kwargs: dict[str, Any] | None = None, decoder_filters: int = 256,
                        decoder_rates: tuple[int, ...] = (6, 12, 18), decoder_separable: bool = False,
                        decoder_dropout: float = 0.1, decoder_low_level_filters: int = 48) -> keras.Model:
    """DeepLab v3+: v3 encoder plus the stride-4 decoder; (N, H, W, bands) -> (N, H, W, num_classes).

    Args: as :func:`build_deeplabv3` (default backbone ``xception``), plus
        decoder_low_level_filters: projection of the stride-4 features (48 in the paper).
    """
    backbone = backbone or "xception"
    enc = build_backbone(backbone, input_shape, output_stride, weights, **(encoder_kwargs or {}))
    feats = skip_outputs(enc, backbone)
    x = aspp(feats[32], decoder_filters, _rates(decoder_rates, output_stride), decoder_separable, decoder_dropout)
    low = conv_bn_relu(feats[4], decoder_low_level_filters, 1, name="decoder_low_level")
    x = ResizeLike(name="decoder_upsample")([x, low])
    x = keras.layers.Concatenate(name="decoder_concat")([x, low])
    x = conv_bn_relu(x, decoder_filters, 3, name="decoder_conv1", separable=decoder_separable)
    x = conv_bn_relu(x, decoder_filters, 3, name="decoder_conv2", separable=decoder_separable)
    out = segmentation_head(x, enc.inputs[0], num_classes, activation)
    return keras.Model(enc.inputs[0], out, name="deeplabv3plus")
