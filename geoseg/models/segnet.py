"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017).

Encoder: the 13 convolutions of VGG16 (16 of VGG19), each followed by batch norm and ReLU, with
2x2 max pooling that records its argmax indices (``MaxPoolingWithArgmax2D``). Decoder: for each
encoder block, from the deepest, ``MaxUnpooling2D`` puts every value back at the position of the
maximum it came from, then convolutions mirror the encoder block (3x3, batch norm, ReLU; the last
conv of a block maps to the width of the next shallower block). The last decoder conv
(``decoder1_conv1``) is a 3x3 conv to C classes without batch norm, then softmax, as in the
reference ``segnet_train.prototxt`` (``conv1_1_D``). No fully connected layers, which is how SegNet
keeps 29.4 M parameters against FCN's 134 M.

H and W must be multiples of 32 (five poolings whose indices must invert exactly).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from geoseg.models.vgg import VGG_BLOCKS, VGG_WIDTHS, check_backbone, check_widths, load_vgg_model_weights, vgg_encoder
from geoseg.models.vgg_layers import MaxUnpooling2D, builder, check_build_args, output_head

#: pixels: five 2x2 poolings
SEGNET_STRIDE = 32


def _conv_bn_relu(x, filters: int, name: str):
    x = keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal", name=name)(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


@builder
def build_segnet(num_classes: int, input_shape: Sequence, backbone: str | None = None, weights=None,
                 output_stride: int | None = 16, activation: str | None = "softmax", *,
                 encoder_widths: Sequence[int] = VGG_WIDTHS) -> keras.Model:
    """Build SegNet for inputs (H, W, bands), output (N, H, W, num_classes).

    Args:
        num_classes: output classes C.
        input_shape: (H, W, bands) in pixels, H and W multiples of 32 (or None).
        backbone: "vgg16" (default, the paper) or "vgg19"; the decoder mirrors it.
        weights: None, "imagenet" (encoder convolutions) or a path to this model's weights.
        output_stride: ignored (the architecture fixes it); must be None, 8, 16 or 32.
        activation: "softmax", "sigmoid" or None for logits.
        encoder_widths: channels of the five VGG blocks (default 64, 128, 256, 512, 512).
    """
    name = "segnet"
    shape = check_build_args(name, num_classes, input_shape, SEGNET_STRIDE, output_stride, activation)
    vgg = check_backbone(name, backbone)
    widths = check_widths(name, encoder_widths)
    inputs = keras.Input(shape, name="image")
    feats = vgg_encoder(inputs, vgg, widths, batch_norm=True, pool_indices=True)
    x = feats["output"]
    for b in range(5, 0, -1):
        x = MaxUnpooling2D(2, name=f"decoder{b}_unpool")([x, feats[f"block{b}_indices"]])
        n_convs = VGG_BLOCKS[vgg][b - 1]
        for i in range(n_convs, 0, -1):
            conv = f"decoder{b}_conv{i}"
            if i > 1:
                x = _conv_bn_relu(x, widths[b - 1], conv)
            elif b > 1:
                x = _conv_bn_relu(x, widths[b - 2], conv)
            else:
                x = keras.layers.Conv2D(num_classes, 3, padding="same", name=conv)(x)
    model = keras.Model(inputs, output_head(x, activation), name=name)
    load_vgg_model_weights(model, weights, vgg, name)
    return model
