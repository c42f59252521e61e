"""Name -> builder table of the model zoo. Builders are imported lazily (by dotted path)."""

from __future__ import annotations

import importlib

#: model name -> "module:function". Each builder has the signature
#: ``build(num_classes, input_shape, backbone=None, weights=None, output_stride=16, activation="softmax", **kwargs)``
MODELS: dict[str, str] = {
    "unet": "geoseg.models.unet:build_unet",
    "resunet": "geoseg.models.resunet:build_resunet",
    "mobile_unet": "geoseg.models.mobile_unet:build_mobile_unet",
    "deeplabv3": "geoseg.models.deeplab:build_deeplabv3",
    "deeplabv3plus": "geoseg.models.deeplab:build_deeplabv3plus",
    "fcn32s": "geoseg.models.fcn:build_fcn32s",
    "fcn16s": "geoseg.models.fcn:build_fcn16s",
    "fcn8s": "geoseg.models.fcn:build_fcn8s",
    "segnet": "geoseg.models.segnet:build_segnet",
    "pspnet": "geoseg.models.pspnet:build_pspnet",
    "refinenet": "geoseg.models.refinenet:build_refinenet",
    "denseaspp": "geoseg.models.denseaspp:build_denseaspp",
    "dilatednet": "geoseg.models.dilatednet:build_dilatednet",
}

#: model name -> what input height and width must be a multiple of (pixels): an int, or
#: ``"output_stride"`` where it follows the ``output_stride`` argument. A builder module may refine it
#: with a function ``input_multiple(name: str, output_stride: int | None, **kwargs) -> int``
#: (e.g. a U-Net whose depth is a keyword). Names missing here default to 32.
INPUT_MULTIPLE: dict[str, int | str] = {
    "unet": 16,
    "resunet": 16,
    "mobile_unet": 32,
    "deeplabv3": "output_stride",
    "deeplabv3plus": "output_stride",
    "fcn32s": 32,
    "fcn16s": 32,
    "fcn8s": 32,
    "segnet": 32,
    "pspnet": "output_stride",
    "refinenet": 32,
    "denseaspp": "output_stride",
    "dilatednet": 8,
}


def resolve(name: str):
    """Import and return the builder function of a model name."""
    module, func = MODELS[name].split(":")
    return getattr(importlib.import_module(module), func)
