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


def resolve(name: str):
    """Import and return the builder function of a model name."""
    module, func = MODELS[name].split(":")
    return getattr(importlib.import_module(module), func)
