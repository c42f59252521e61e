"""PSPNet (Zhao et al. 2017, "Pyramid Scene Parsing Network", arXiv:1612.01105).

Dilated ResNet at output stride 8; the pyramid pooling module average-pools the final features
(C channels) into 1x1, 2x2, 3x3 and 6x6 bins, reduces each level to C/4 channels with a 1x1
conv + BN + ReLU, upsamples bilinearly and concatenates with the features; a 3x3 conv (512) +
BN + ReLU, dropout 0.1 and a 1x1 classifier follow, then bilinear upsampling to the input.
The auxiliary training loss of the paper (on the stride-16 features) is not part of the model.
"""

from __future__ import annotations

from typing import Any

import keras

from geoseg.models.backbones import build_backbone, skip_outputs
from geoseg.models.blocks import conv_bn_relu, segmentation_head
from geoseg.models.layers import AdaptiveAveragePooling2D, ResizeLike


def pyramid_pooling(x, bins: tuple[int, ...] = (1, 2, 3, 6), reduction: int = 4, name: str = "ppm"):
    """Pyramid pooling module on (N, h, w, C) -> (N, h, w, C + len(bins) * C // reduction)."""
    channels = int(x.shape[-1]) // reduction
    levels = [x]
    for i, b in enumerate(bins):
        y = AdaptiveAveragePooling2D(b, name=f"{name}_pool{i}")(x)
        y = conv_bn_relu(y, channels, 1, name=f"{name}_level{i}")
        levels.append(ResizeLike(name=f"{name}_resize{i}")([y, x]))
    return keras.layers.Concatenate(name=f"{name}_concat")(levels)


def build_pspnet(num_classes: int, input_shape: tuple, backbone: str | None = None, weights: str | None = None,
                 output_stride: int = 8, activation: str | None = "softmax", *,
                 encoder_kwargs: dict[str, Any] | None = None, decoder_bins: tuple[int, ...] = (1, 2, 3, 6),
                 decoder_reduction: int = 4, decoder_filters: int = 512, decoder_dropout: float = 0.1) -> keras.Model:
    """PSPNet: (N, H, W, bands) -> (N, H, W, num_classes).

    Args:
        num_classes: output classes.
        input_shape: ``(H, W, bands)``; H and W multiples of ``output_stride``.
        backbone: backbone table key (default ``resnet101``, the paper's VOC/Cityscapes model).
        weights: None or ``"imagenet"`` for the backbone.
        output_stride: 8 (paper) or 16.
        activation: ``"softmax"``, ``"sigmoid"`` or None for logits.
        encoder_kwargs: extra ``keras.applications`` arguments.
        decoder_bins: pyramid levels (bins per side).
        decoder_reduction: channel reduction of each level (C / 4 in the paper).
        decoder_filters: channels of the 3x3 conv after the pyramid (512).
        decoder_dropout: dropout before the classifier (0.1).
    """
    backbone = backbone or "resnet101"
    enc = build_backbone(backbone, input_shape, output_stride, weights, **(encoder_kwargs or {}))
    x = pyramid_pooling(skip_outputs(enc, backbone)[32], tuple(decoder_bins), decoder_reduction)
    x = conv_bn_relu(x, decoder_filters, 3, name="psp_fuse")
    out = segmentation_head(x, enc.inputs[0], num_classes, activation, dropout=decoder_dropout)
    return keras.Model(enc.inputs[0], out, name="pspnet")
