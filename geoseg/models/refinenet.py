"""RefineNet (Lin et al. 2017, "RefineNet: Multi-Path Refinement Networks", arXiv:1611.06612).

4-cascaded RefineNet on an undilated ResNet: the features at 1/32, 1/16, 1/8 and 1/4 are first
adapted by a 3x3 conv (512 channels at 1/32, 256 elsewhere). RefineNet-4 refines the 1/32 path
alone; RefineNet-k (k = 3, 2, 1) takes the output of RefineNet-(k+1) and the 1/2^(k+1) path.
Each block: two residual conv units (RCU: ReLU, 3x3 conv, ReLU, 3x3 conv, + input) per input
path; multi-resolution fusion (a 3x3 conv per path to the smallest width, bilinear upsampling to
the largest resolution, sum); chained residual pooling (ReLU, then a chain of 5x5 max-pool
stride 1 + 3x3 conv blocks, each output added to the running sum; 2 blocks as in the paper's
Fig. 2(d)); one output RCU. Two RCUs, a 1x1 classifier and bilinear upsampling x4 finish.
Like the paper, the refinement path has no batch norm.
"""

from __future__ import annotations

from typing import Any

import keras

from geoseg.errors import ModelConfigError
from geoseg.models.backbones import build_backbone, skip_outputs
from geoseg.models.blocks import segmentation_head
from geoseg.models.layers import ResizeLike


def rcu(x, name: str):
    """Residual conv unit, same width in and out."""
    f = int(x.shape[-1])
    y = keras.layers.ReLU(name=f"{name}_relu1")(x)
    y = keras.layers.Conv2D(f, 3, padding="same", name=f"{name}_conv1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu2")(y)
    y = keras.layers.Conv2D(f, 3, padding="same", name=f"{name}_conv2")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def chained_residual_pooling(x, blocks: int, name: str):
    """ReLU, then ``blocks`` x (5x5 max-pool stride 1, 3x3 conv) chained, each added to the sum."""
    f = int(x.shape[-1])
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    total, path = x, x
    for i in range(blocks):
        path = keras.layers.MaxPooling2D(5, strides=1, padding="same", name=f"{name}_pool{i}")(path)
        path = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(path)
        total = keras.layers.Add(name=f"{name}_add{i}")([total, path])
    return total


def refine_block(inputs: list, filters: int, crp_blocks: int, name: str):
    """One RefineNet block; ``inputs`` ordered low resolution first, the last is the finest."""
    paths = []
    for i, x in enumerate(inputs):
        for j in range(2):
            x = rcu(x, f"{name}_in{i}_rcu{j}")
        paths.append(x)
    if len(paths) > 1:
        target = paths[-1]
        fused = []
        for i, x in enumerate(paths):
            x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_mrf{i}")(x)
            if i < len(paths) - 1:
                x = ResizeLike(name=f"{name}_mrf{i}_resize")([x, target])
            fused.append(x)
        x = keras.layers.Add(name=f"{name}_mrf_add")(fused)
    else:
        x = paths[0]
    x = chained_residual_pooling(x, crp_blocks, f"{name}_crp")
    return rcu(x, f"{name}_out_rcu")


def build_refinenet(num_classes: int, input_shape: tuple, backbone: str | None = None, weights: str | None = None,
                    output_stride: int = 32, activation: str | None = "softmax", *,
                    encoder_kwargs: dict[str, Any] | None = None, decoder_filters: int = 256,
                    decoder_top_filters: int = 512, decoder_crp_blocks: int = 2,
                    decoder_dropout: float = 0.5) -> keras.Model:
    """4-cascaded RefineNet: (N, H, W, bands) -> (N, H, W, num_classes).

    Args:
        num_classes: output classes.
        input_shape: ``(H, W, bands)``; H and W multiples of 32.
        backbone: backbone table key (default ``resnet101``: RefineNet-101).
        weights: None or ``"imagenet"`` for the backbone.
        output_stride: must be 32 (RefineNet refines undilated multi-resolution features).
        activation: ``"softmax"``, ``"sigmoid"`` or None for logits.
        encoder_kwargs: extra ``keras.applications`` arguments.
        decoder_filters: width of the 1/16..1/4 paths (256).
        decoder_top_filters: width of the 1/32 path (512).
        decoder_crp_blocks: pooling blocks in each chained residual pooling.
        decoder_dropout: dropout before the classifier.
    """
    if output_stride != 32:
        raise ModelConfigError(f"refinenet refines undilated features at 1/4..1/32: output_stride must be 32, "
                               f"got {output_stride}")
    backbone = backbone or "resnet101"
    enc = build_backbone(backbone, input_shape, 32, weights, **(encoder_kwargs or {}))
    feats = skip_outputs(enc, backbone)
    adapted = {}
    for s in (32, 16, 8, 4):
        width = decoder_top_filters if s == 32 else decoder_filters
        adapted[s] = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"adapt{s}")(feats[s])
    x = refine_block([adapted[32]], decoder_top_filters, decoder_crp_blocks, "refine4")
    for k, s in ((3, 16), (2, 8), (1, 4)):
        x = refine_block([x, adapted[s]], decoder_filters, decoder_crp_blocks, f"refine{k}")
    x = rcu(x, "final_rcu0")
    x = rcu(x, "final_rcu1")
    out = segmentation_head(x, enc.inputs[0], num_classes, activation, dropout=decoder_dropout)
    return keras.Model(enc.inputs[0], out, name="refinenet")
