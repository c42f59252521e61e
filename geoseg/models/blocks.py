"""Small functional building blocks shared by the zoo: conv + BN + ReLU, the segmentation head."""

from __future__ import annotations

import keras

from geoseg.models.layers import ResizeLike


def conv_bn_relu(x, filters: int, kernel: int, name: str, dilation: int = 1, separable: bool = False,
                 relu: bool = True):
    """``kernel`` x ``kernel`` convolution (no bias), batch norm, ReLU; "same" padding, stride 1.

    With ``separable`` the convolution is DeepLab's depthwise separable form: depthwise (dilated)
    conv, BN, ReLU, then 1x1 pointwise conv, BN, ReLU.
    """
    if separable and kernel > 1:
        x = keras.layers.DepthwiseConv2D(kernel, padding="same", dilation_rate=dilation, use_bias=False,
                                         name=f"{name}_depthwise")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_depthwise_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_depthwise_relu")(x)
        kernel, dilation = 1, 1
    x = keras.layers.Conv2D(filters, kernel, padding="same", dilation_rate=dilation, use_bias=False,
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def segmentation_head(x, image, num_classes: int, activation: str | None, dropout: float = 0.0):
    """1x1 classifier ``"classifier"``, bilinear resize to the input ``"logits"``, ``"probs"``.

    Args:
        x: features (N, h, w, F) at any stride.
        image: the model input (N, H, W, bands), the size reference.
        num_classes: output channels.
        activation: ``"softmax"``, ``"sigmoid"`` or None (logits out).
        dropout: dropout rate before the classifier (0 = none).

    Returns:
        (N, H, W, num_classes) in float32 (also under mixed precision).
    """
    if dropout:
        x = keras.layers.Dropout(dropout, name="classifier_dropout")(x)
    x = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    x = ResizeLike(name="logits", dtype="float32")([x, image])
    if activation is None:
        return x
    return keras.layers.Activation(activation, name="probs", dtype="float32")(x)
