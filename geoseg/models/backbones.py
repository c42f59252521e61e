"""Encoders from a name-keyed table, built on ``keras.applications`` and dilated on demand.

Each entry gives the ``keras.applications`` constructor, the names of the layers whose outputs
are the skip features at strides 2, 4, 8, 16 and 32 (stride = input size / feature size, in
pixels), the input scaling its ImageNet weights expect, and the smallest input it accepts.

Dilation (DeepLab's "atrous" backbone): for an output stride ``os`` < 32 the functional config
of the network is rewritten so that every downsampling layer that would take the features past
``os`` gets stride 1, and every later convolution gets its dilation rate multiplied by the
stride removed upstream of it (a strided convolution that loses its stride keeps the rate that
was in effect before it). Dilation changes strides, not weight shapes, so the layer names and
weights of the undilated network still apply (see :func:`geoseg.models.pretrained.transfer_weights`).
Pooling layers cannot be dilated; a de-strided pooling layer keeps its window with ``same`` padding.

The models do not include input preprocessing: geoseg normalizes pixels in the data pipeline
(:mod:`geoseg.io.normalization`). ``preprocessing`` documents what ImageNet weights were trained on:
``caffe`` (BGR, mean subtracted, 0-255), ``torch`` (0-1, ImageNet mean/std), ``tf`` (-1..1).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

from geoseg.errors import ModelConfigError


@dataclass(frozen=True)
class BackboneSpec:
    """One row of the backbone table.

    Attributes:
        constructor: attribute name in ``keras.applications``.
        skips: stride (pixels) -> name of the last layer at that stride.
        preprocessing: input scaling of the ImageNet weights (``caffe``, ``torch`` or ``tf``).
        min_size: smallest input height/width in pixels.
        kwargs: extra constructor arguments.
    """

    constructor: str
    skips: dict[int, str]
    preprocessing: str
    min_size: int = 32
    kwargs: dict[str, Any] = field(default_factory=dict)


def _resnet_v2(blocks3: int, blocks4: int) -> dict[int, str]:
    # ResNetV2 strides in the *last* block of a stack, so the stride-s feature is the
    # output of the block before it.
    return {2: "conv1_conv", 4: "conv2_block2_out", 8: f"conv3_block{blocks3 - 1}_out",
            16: f"conv4_block{blocks4 - 1}_out", 32: "post_relu"}


def _efficientnet_v2(blocks2: str) -> dict[int, str]:
    return {2: "stem_activation", 4: f"block2{blocks2}_add", 8: "block4a_expand_activation",
            16: "block6a_expand_activation", 32: "top_activation"}


def _densenet() -> dict[int, str]:
    # the transition's 1x1 conv is the last layer before its 2x2 average pooling
    return {2: "conv1_relu", 4: "pool2_conv", 8: "pool3_conv", 16: "pool4_conv", 32: "relu"}


_RESNET_V1 = {2: "conv1_relu", 4: "conv2_block3_out", 8: "conv3_block4_out", 32: "conv5_block3_out"}

BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec("ResNet50", {**_RESNET_V1, 16: "conv4_block6_out"}, "caffe"),
    "resnet101": BackboneSpec("ResNet101", {**_RESNET_V1, 16: "conv4_block23_out"}, "caffe"),
    "resnet50v2": BackboneSpec("ResNet50V2", _resnet_v2(4, 6), "tf"),
    "resnet101v2": BackboneSpec("ResNet101V2", _resnet_v2(4, 23), "tf"),
    "resnet152v2": BackboneSpec("ResNet152V2", _resnet_v2(8, 36), "tf"),
    "xception": BackboneSpec("Xception", {2: "block1_conv2_act", 4: "block3_sepconv2_bn", 8: "block4_sepconv2_bn",
                                          16: "block13_sepconv2_bn", 32: "block14_sepconv2_act"}, "tf", min_size=71),
    "vgg16": BackboneSpec("VGG16", {2: "block2_conv2", 4: "block3_conv3", 8: "block4_conv3", 16: "block5_conv3",
                                    32: "block5_pool"}, "caffe"),
    "vgg19": BackboneSpec("VGG19", {2: "block2_conv2", 4: "block3_conv4", 8: "block4_conv4", 16: "block5_conv4",
                                    32: "block5_pool"}, "caffe"),
    "mobilenetv2": BackboneSpec("MobileNetV2", {2: "block_1_expand_relu", 4: "block_3_expand_relu",
                                                8: "block_6_expand_relu", 16: "block_13_expand_relu",
                                                32: "out_relu"}, "tf"),
    "efficientnetv2b0": BackboneSpec("EfficientNetV2B0", _efficientnet_v2("b"), "tf",
                                     kwargs={"include_preprocessing": False}),
    "efficientnetv2b1": BackboneSpec("EfficientNetV2B1", _efficientnet_v2("c"), "tf",
                                     kwargs={"include_preprocessing": False}),
    "efficientnetv2b2": BackboneSpec("EfficientNetV2B2", _efficientnet_v2("c"), "tf",
                                     kwargs={"include_preprocessing": False}),
    "efficientnetv2b3": BackboneSpec("EfficientNetV2B3", _efficientnet_v2("c"), "tf",
                                     kwargs={"include_preprocessing": False}),
    "densenet121": BackboneSpec("DenseNet121", _densenet(), "torch"),
    "densenet169": BackboneSpec("DenseNet169", _densenet(), "torch"),
    "densenet201": BackboneSpec("DenseNet201", _densenet(), "torch"),
}

_STRIDED = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D"}
_CONVS = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D"}


def get_spec(name: str) -> BackboneSpec:
    """Table row of a backbone name.

    Raises:
        ModelConfigError: unknown name (the message lists the valid ones).
    """
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise ModelConfigError(f"unknown backbone {name!r}; expected one of: {', '.join(BACKBONES)}") from None


def build_backbone(name: str, input_shape: tuple, output_stride: int = 32, weights: str | None = None,
                   input_name: str = "image", **kwargs: Any):
    """Build an encoder without its classification top.

    Args:
        name: a key of :data:`BACKBONES`.
        input_shape: ``(H, W, bands)``; H and W may be None; any band count.
        output_stride: 8, 16 or 32 (pixels of input per feature pixel at the deepest layer).
        weights: None, ``"imagenet"`` (downloaded by keras, band-adapted) or a local
            ``.weights.h5`` / ``.keras`` file of the RGB backbone (band-adapted).
        input_name: name of the input layer.
        **kwargs: extra constructor arguments (e.g. ``alpha`` for MobileNetV2).

    Returns:
        A functional ``keras.Model`` (N, H, W, bands) -> deepest features, whose layers keep the
        ``keras.applications`` names, so :func:`skip_outputs` finds the skip features.
    """
    import keras

    spec = get_spec(name)
    if output_stride not in (8, 16, 32):
        raise ModelConfigError(f"output_stride must be 8, 16 or 32 for backbone {name!r}, got {output_stride}")
    shape = tuple(input_shape)
    small = [s for s in shape[:2] if s is not None and s < spec.min_size]
    if small:
        raise ModelConfigError(f"backbone {name!r} needs inputs of at least {spec.min_size} px, got {min(small)}")
    ctor = getattr(keras.applications, spec.constructor)
    args = {**spec.kwargs, **kwargs}
    inp = keras.Input(shape=shape, name=input_name)
    with warnings.catch_warnings():
        # keras.applications warns about band counts other than 1 or 3, which geoseg supports
        warnings.filterwarnings("ignore", message=".*input channels.*")
        model = ctor(include_top=False, weights=None, input_tensor=inp, input_shape=shape, **args)
    if output_stride < 32:
        model = dilate(model, output_stride)
    if weights is not None:
        load_backbone_weights(model, name, weights, **args)
    return model


def skip_outputs(model, name: str) -> dict[int, Any]:
    """Feature tensors of a backbone built by :func:`build_backbone`, keyed by nominal stride.

    With a dilated backbone, strides beyond its output stride name the same resolution as the
    output stride (e.g. at output stride 8 the "16" and "32" features are at 1/8).
    """
    return {s: model.get_layer(layer).output for s, layer in get_spec(name).skips.items()}


def dilate(model, output_stride: int):
    """Rebuild a functional model with strides beyond ``output_stride`` turned into dilation.

    Args:
        model: a functional ``keras.Model`` (a ``keras.applications`` network).
        output_stride: the largest downsampling factor to keep (8 or 16).

    Returns:
        A new functional model with the same layer names and weight shapes.
    """
    import keras

    config = copy.deepcopy(model.get_config())
    layers = {entry["name"]: entry for entry in config["layers"]}
    nominal: dict[str, int] = {}
    actual: dict[str, int] = {}
    for entry in config["layers"]:
        inbound = _inbound_layers(entry)
        n = max((nominal[i] for i in inbound), default=1)
        a = max((actual[i] for i in inbound), default=1)
        cls, cfg = entry["class_name"], entry["config"]
        if cls in _STRIDED:
            stride = int(_pair(cfg.get("strides") or cfg.get("pool_size"))[0])
            rate = n // a
            kernel = _pair(cfg.get("kernel_size", cfg.get("pool_size")))
            changed = False
            if stride > 1 and n * stride > output_stride:
                cfg["strides"] = [1, 1]
                n *= stride
                changed = True
            elif stride > 1:
                n *= stride
                a *= stride
            if cls in _CONVS and max(kernel) > 1 and rate > 1:
                base = _pair(cfg.get("dilation_rate", 1))
                cfg["dilation_rate"] = [int(base[0]) * rate, int(base[1]) * rate]
                changed = True
            if changed and cfg.get("padding") == "valid" and max(kernel) > 1:
                cfg["padding"] = "same"
                # the explicit padding layer in front was sized for the strided, undilated window
                for src in inbound:
                    if layers[src]["class_name"] == "ZeroPadding2D":
                        layers[src]["config"]["padding"] = [[0, 0], [0, 0]]
        nominal[entry["name"]] = n
        actual[entry["name"]] = a
    return keras.Model.from_config(config)


def load_backbone_weights(model, name: str, weights: str, **kwargs: Any) -> list[str]:
    """Copy RGB backbone weights into ``model`` (any band count, any output stride).

    Args:
        model: a backbone from :func:`build_backbone` (or a model containing its layers).
        name: backbone table key.
        weights: ``"imagenet"`` or the path of a ``.weights.h5`` / ``.keras`` file of the RGB
            backbone (``keras.applications`` layer names).

    Returns:
        Names of the layers copied.

    Raises:
        ModelConfigError: weights cannot be downloaded or do not fit.
        InputNotFoundError: no such weights file.
    """
    import keras

    from geoseg.errors import InputNotFoundError
    from geoseg.models.pretrained import transfer_weights

    spec = get_spec(name)
    ctor = getattr(keras.applications, spec.constructor)
    args = {**spec.kwargs, **kwargs}
    if weights == "imagenet":
        if "include_preprocessing" in args:  # the published weights come with keras' own preprocessing
            args["include_preprocessing"] = True
        try:
            with warnings.catch_warnings():  # "weights for (224, 224) loaded as default": expected
                warnings.filterwarnings("ignore", message=".*input_shape. is undefined or non-square")
                source = ctor(include_top=False, weights="imagenet", input_shape=(None, None, 3), **args)
        except Exception as exc:  # urllib/HTTP/SSL/OS errors all end here
            raise ModelConfigError(
                f"cannot download ImageNet weights for backbone {name!r} ({str(exc).splitlines()[0][:120]}); "
                "pass weights=PATH to a local .weights.h5/.keras file or weights=None") from None
    else:
        from pathlib import Path

        path = Path(weights)
        if not path.exists():
            raise InputNotFoundError(f"no such weights file: {path}")
        try:
            if path.name.endswith(".keras"):
                import geoseg.models  # noqa: F401  (custom layers)

                source = keras.saving.load_model(path, compile=False)
            else:
                source = ctor(include_top=False, weights=None, input_shape=(None, None, 3), **args)
                source.load_weights(path)
        except Exception as exc:
            raise ModelConfigError(
                f"weights {path} do not fit RGB backbone {name!r}: {str(exc).splitlines()[0][:160]}") from None
    copied = transfer_weights(source, model)
    if not copied:
        raise ModelConfigError(f"weights {weights} share no layer names with backbone {name!r}")
    return copied


def _inbound_layers(entry: dict) -> list[str]:
    """Names of the layers feeding a functional-config layer entry."""
    names: list[str] = []

    def walk(obj):
        if isinstance(obj, dict):
            if obj.get("class_name") == "__keras_tensor__":
                names.append(obj["config"]["keras_history"][0])
                return
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(entry.get("inbound_nodes", []))
    return names


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[-1])
    return int(value), int(value)
