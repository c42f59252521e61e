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
and non-trainable (the reference ``Deconvolution(group=C, lr_mult=0)``, pad 4: the same kernel
and alignment).

Variants (``variant=``):

- ``"same"`` (default): every conv uses "same" (zero) padding, output size = input size; H and W
  multiples of 8.
- ``"reference"``: the released Caffe network (``dilation10_cityscapes_deploy.prototxt``) exactly:
  valid front-end convs trim :func:`reference_margin` = 186 px per side (VGG16), the context
  module keeps its size (Caffe ``pad`` = dilation); input H = output H + 372, e.g. the published
  1396 x 1396 input -> 1024 x 1024 output. The caller reflect-pads the image by 186 px, as the
  original test code does; the output is smaller than the input, so this variant is for parity
  checks, not for ``geoseg train``/``predict``.
- ``"reference_padded"``: the same network after a built-in 186 px ``REFLECT_101`` padding
  (layer ``reflect_pad``): output size = input size (H, W multiples of 8, > 186), usable in
  geoseg; on a single tile it reproduces the original test code's output exactly.

The published weights (Keras 1 / Theano HDF5 of the Keras port, layers ``conv1_1`` ... ``ctx_final``)
load with ``weights=PATH`` through :func:`geoseg.models.pretrained.load_legacy_h5`. Their first
conv expects BGR, mean-subtracted 0..255 inputs (Cityscapes mean B, G, R = 72.39, 82.91, 73.16).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from geoseg.errors import ModelConfigError
from geoseg.models.vgg import (
    VGG_BLOCKS,
    VGG_WIDTHS,
    check_backbone,
    check_widths,
    fc_convs,
    load_vgg_model_weights,
    vgg_encoder,
)
from geoseg.models.vgg_layers import (
    ConvIdentity,
    FixedBilinearUpsampling2D,
    ReflectionPadding2D,
    builder,
    check_build_args,
    check_choice,
    check_positive_int,
    check_rate,
    output_head,
)

#: pixels: the front-end keeps three 2x2 poolings
DILATEDNET_STRIDE = 8
#: dilation of the 7x7 fc6 and of the conv5 layers
FC6_DILATION, BLOCK5_DILATION = 4, 2
#: see the module docstring
VARIANTS = ("same", "reference", "reference_padded")
#: dilation rates of the 3x3 context layers before ctx_fc1
CONTEXT_DILATIONS: dict[str, tuple[int, ...]] = {
    "basic": (1, 1, 2, 4, 8, 16),
    "large": (1, 1, 2, 4, 8, 16, 32, 64),
}


def reference_margin(backbone: str = "vgg16") -> int:
    """Pixels the valid-convolution front-end trims from each side of its input (186 for VGG16).

    A 3x3 conv with dilation d at 1/s of the input trims 2 * d * s input pixels in all; the 7x7 fc6
    (dilation 4, at 1/8) trims 6 * 4 * 8. VGG16: 4 + 8 + 24 + 48 + 96 + 192 = 372 = 2 * 186.
    """
    trimmed = 6 * FC6_DILATION * DILATEDNET_STRIDE
    for block, n_convs in enumerate(VGG_BLOCKS[backbone], start=1):
        scale = 2 ** min(block - 1, 3)  # pool4 is gone: block 5 stays at 1/8
        trimmed += n_convs * 2 * (BLOCK5_DILATION if block == 5 else 1) * scale
    return trimmed // 2


def input_multiple(name: str, output_stride: int | None = None, variant: str = "same", **kwargs) -> int:
    """Input size multiple for :func:`geoseg.models.input_multiple`: 8, or 1 for ``"reference"``.

    The ``"reference"`` input is 2 * margin + a multiple of 8 (not a multiple itself); the builder checks it.
    """
    return 1 if variant == "reference" else DILATEDNET_STRIDE


def _check_reference_shape(shape: tuple, variant: str, margin: int) -> None:
    """Sizes the valid front-end takes exactly (every pooling sees an even size)."""
    for size in shape[:2]:
        if size is None:
            continue
        if variant == "reference" and ((size - 2 * margin) % DILATEDNET_STRIDE or size - 2 * margin < 8):
            raise ModelConfigError(
                f"dilatednet variant 'reference': input height and width must be {2 * margin} + a positive "
                f"multiple of 8 pixels (the valid front-end trims {margin} px per side; the published Cityscapes "
                f"input is 1396 = {2 * margin} + 1024), found {shape[0]} x {shape[1]}")
        if variant == "reference_padded" and size <= margin:
            raise ModelConfigError(
                f"dilatednet variant 'reference_padded': input height and width must exceed the {margin} px "
                f"reflection padding, found {shape[0]} x {shape[1]}")


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
                     context: str | None = "auto", encoder_widths: Sequence[int] = VGG_WIDTHS,
                     fc_channels: int = 4096, dropout: float = 0.5, variant: str = "same") -> keras.Model:
    """Build the dilated network for inputs (H, W, bands), output (N, H, W, num_classes).

    Args:
        num_classes: output classes C.
        input_shape: (H, W, bands) in pixels, H and W multiples of 8 (or None); for
            ``variant="reference"`` 372 + a multiple of 8 (VGG16), giving an (H - 372, W - 372) output.
        backbone: "vgg16" (default, the paper) or "vgg19" for the front-end.
        weights: None, "imagenet" (VGG convs; fc6/fc7 too at canonical widths) or a path to this model's weights.
        output_stride: ignored (the front-end always works at 1/8); must be None, 8, 16 or 32.
        activation: "softmax", "sigmoid" or None for logits.
        context: "basic", "large" (Dilation10, 1024 x 1024 Cityscapes crops), None (front-end only) or
            "auto": "large" for the reference variants, else "basic".
        encoder_widths: channels of the five VGG blocks (default 64, 128, 256, 512, 512).
        fc_channels: channels of fc6 and fc7 (4096 in the paper).
        dropout: dropout rate after fc6 and fc7.
        variant: "same", "reference" or "reference_padded" (see the module docstring).
    """
    name = "dilatednet"
    check_choice(name, "variant", variant, VARIANTS)
    multiple = None if variant == "reference" else DILATEDNET_STRIDE
    shape = check_build_args(name, num_classes, input_shape, multiple, output_stride, activation)
    vgg = check_backbone(name, backbone)
    widths = check_widths(name, encoder_widths)
    fc_channels = check_positive_int(name, "fc_channels", fc_channels)
    dropout = check_rate(name, "dropout", dropout)
    check_choice(name, "context", context, ("auto", "basic", "large", None))
    if context == "auto":
        context = "basic" if variant == "same" else "large"
    margin = reference_margin(vgg)
    _check_reference_shape(shape, variant, margin)
    padding = "same" if variant == "same" else "valid"
    inputs = keras.Input(shape, name="image")
    x = ReflectionPadding2D(margin, name="reflect_pad")(inputs) if variant == "reference_padded" else inputs
    feats = vgg_encoder(x, vgg, widths, pools=3, block5_dilation=BLOCK5_DILATION, padding=padding)
    x = fc_convs(feats["output"], fc_channels, dropout, fc6_dilation=FC6_DILATION, padding=padding)
    x = keras.layers.Conv2D(num_classes, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
                            name="final")(x)
    if context is not None:
        x = context_module(x, num_classes, context)
    x = FixedBilinearUpsampling2D(DILATEDNET_STRIDE, name="ctx_upsample")(x)
    model = keras.Model(inputs, output_head(x, activation), name=name)
    load_vgg_model_weights(model, weights, vgg, name, fc=fc_channels == 4096 and widths[3:] == (512, 512))
    return model
