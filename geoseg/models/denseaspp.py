"""DenseASPP (Yang et al. 2018, "DenseASPP for Semantic Segmentation in Street Scenes", CVPR).

A dilated DenseNet at output stride 8 (the authors' model adds a last transition, BN-ReLU-1x1
conv halving the channels, and a batch norm); then five atrous layers at rates 3, 6, 12, 18,
24, densely connected: each takes the concatenation of the features and of every previous atrous
output, and is [BN, ReLU,] 1x1 conv (``decoder_bottleneck`` channels), BN, ReLU, 3x3 atrous conv
(``decoder_growth`` channels), dropout. A 1x1 classifier on the final concatenation and bilinear
upsampling x8 follow. Defaults (128/64) are the authors' DenseASPP-121 configuration
(DeepMotionAIResearch/DenseASPP ``cfgs/DenseASPP121.py``); 161 uses 512/128.
"""

from __future__ import annotations

from typing import Any

import keras

from geoseg.models.backbones import build_backbone, skip_outputs
from geoseg.models.blocks import segmentation_head


def dense_aspp(x, rates: tuple[int, ...] = (3, 6, 12, 18, 24), bottleneck: int = 128, growth: int = 64,
               dropout: float = 0.1, name: str = "daspp"):
    """Densely connected atrous layers on (N, h, w, C) -> (N, h, w, C + len(rates) * growth)."""
    for i, rate in enumerate(rates):
        y = x
        if i > 0:  # the first layer reads features that were just batch-normalized
            y = keras.layers.BatchNormalization(name=f"{name}{i}_bn1")(y)
        y = keras.layers.ReLU(name=f"{name}{i}_relu1")(y)
        y = keras.layers.Conv2D(bottleneck, 1, name=f"{name}{i}_conv1")(y)
        y = keras.layers.BatchNormalization(name=f"{name}{i}_bn2")(y)
        y = keras.layers.ReLU(name=f"{name}{i}_relu2")(y)
        y = keras.layers.Conv2D(growth, 3, padding="same", dilation_rate=rate, name=f"{name}{i}_conv2")(y)
        if dropout:
            y = keras.layers.SpatialDropout2D(dropout, name=f"{name}{i}_dropout")(y)
        x = keras.layers.Concatenate(name=f"{name}{i}_concat")([y, x])
    return x


def build_denseaspp(num_classes: int, input_shape: tuple, backbone: str | None = None, weights: str | None = None,
                    output_stride: int = 8, activation: str | None = "softmax", *,
                    encoder_kwargs: dict[str, Any] | None = None,
                    decoder_rates: tuple[int, ...] = (3, 6, 12, 18, 24), decoder_bottleneck: int = 128,
                    decoder_growth: int = 64, decoder_transition: bool = True,
                    decoder_dropout: float = 0.1) -> keras.Model:
    """DenseASPP: (N, H, W, bands) -> (N, H, W, num_classes).

    Args:
        num_classes: output classes.
        input_shape: ``(H, W, bands)``; H and W multiples of ``output_stride``.
        backbone: backbone table key (default ``densenet121``).
        weights: None or ``"imagenet"`` for the backbone.
        output_stride: 8 (paper) or 16.
        activation: ``"softmax"``, ``"sigmoid"`` or None for logits.
        encoder_kwargs: extra ``keras.applications`` arguments.
        decoder_rates: atrous rates of the dense layers.
        decoder_bottleneck: 1x1 bottleneck channels (``d_feature0``).
        decoder_growth: channels added by each atrous layer (``d_feature1``).
        decoder_transition: add the authors' last transition (1x1 conv to C/2 + BN).
        decoder_dropout: dropout after each atrous layer and before the classifier.
    """
    backbone = backbone or "densenet121"
    enc = build_backbone(backbone, input_shape, output_stride, weights, **(encoder_kwargs or {}))
    x = skip_outputs(enc, backbone)[32]
    if decoder_transition:
        x = keras.layers.Conv2D(int(x.shape[-1]) // 2, 1, use_bias=False, name="daspp_transition_conv")(x)
        x = keras.layers.BatchNormalization(name="daspp_transition_bn")(x)
    x = dense_aspp(x, tuple(decoder_rates), decoder_bottleneck, decoder_growth, decoder_dropout)
    out = segmentation_head(x, enc.inputs[0], num_classes, activation, dropout=decoder_dropout)
    return keras.Model(enc.inputs[0], out, name="denseaspp")
