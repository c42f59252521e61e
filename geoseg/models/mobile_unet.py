"""Mobile U-Net: a MobileNetV2 encoder (Sandler et al. 2018) with a U-Net decoder (Ronneberger et al. 2015).

The encoder's features at strides 16, 8, 4 and 2 (the expansion activations of the blocks that
downsample next) are the skips. Each decoder step: 2x2 transposed conv (up-convolution) to the
level's width, concatenation with the skip, two 3x3 conv + BN + ReLU (depthwise separable with
``decoder_separable``). A last up-step to full resolution without skip, then the 1x1 classifier.
"""

from __future__ import annotations

from typing import Any

import keras

from geoseg.errors import ModelConfigError
from geoseg.models.backbones import build_backbone, skip_outputs
from geoseg.models.blocks import conv_bn_relu, segmentation_head


def build_mobile_unet(num_classes: int, input_shape: tuple, backbone: str | None = None,
                      weights: str | None = None, output_stride: int = 32, activation: str | None = "softmax", *,
                      encoder_alpha: float = 1.0, encoder_kwargs: dict[str, Any] | None = None,
                      decoder_filters: tuple[int, ...] = (256, 128, 64, 32, 16),
                      decoder_separable: bool = False) -> keras.Model:
    """Mobile U-Net: (N, H, W, bands) -> (N, H, W, num_classes).

    Args:
        num_classes: output classes.
        input_shape: ``(H, W, bands)``; H and W multiples of 32.
        backbone: ``mobilenetv2`` (the only encoder; None means it).
        weights: None or ``"imagenet"`` (keras publishes alpha 0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
        output_stride: must be 32.
        activation: ``"softmax"``, ``"sigmoid"`` or None for logits.
        encoder_alpha: MobileNetV2 width multiplier.
        encoder_kwargs: extra ``keras.applications.MobileNetV2`` arguments.
        decoder_filters: widths of the 5 up-steps (1/16, 1/8, 1/4, 1/2, 1/1).
        decoder_separable: depthwise separable decoder convs.
    """
    backbone = backbone or "mobilenetv2"
    if backbone != "mobilenetv2":
        raise ModelConfigError("mobile_unet has a MobileNetV2 encoder: backbone must be 'mobilenetv2', "
                               f"got {backbone!r}")
    if output_stride != 32:
        raise ModelConfigError(f"mobile_unet decodes undilated features: output_stride must be 32, got {output_stride}")
    if len(decoder_filters) != 5:
        raise ModelConfigError(f"decoder_filters must list 5 widths (1/16 .. 1/1), got {list(decoder_filters)}")
    enc = build_backbone(backbone, input_shape, 32, weights, alpha=encoder_alpha, **(encoder_kwargs or {}))
    feats = skip_outputs(enc, backbone)
    x = feats[32]
    for i, (stride, filters) in enumerate(zip((16, 8, 4, 2, 1), decoder_filters)):
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"decoder{i}_up")(x)
        if stride > 1:
            x = keras.layers.Concatenate(name=f"decoder{i}_concat")([x, feats[stride]])
        x = conv_bn_relu(x, filters, 3, name=f"decoder{i}_a", separable=decoder_separable)
        x = conv_bn_relu(x, filters, 3, name=f"decoder{i}_b", separable=decoder_separable)
    out = segmentation_head(x, enc.inputs[0], num_classes, activation)
    return keras.Model(enc.inputs[0], out, name="mobile_unet")
