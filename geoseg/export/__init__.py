"""Bundles for the rest of the GIS and ML world: ONNX, TensorFlow SavedModel, STAC MLM items.

Importing this package imports nothing heavy; each format's module imports TensorFlow, tf2onnx
or onnx when it runs.

Modules:
    graph        the exported graph: raw band values -> normalization -> model (Keras wrapper)
    onnx         ``export_onnx``: one ``.onnx`` file with geoseg and QGIS Deepness metadata, checked
    savedmodel   ``export_savedmodel``: a SavedModel whose ``serving_default`` takes raw values, checked
    stac         ``stac_item`` / ``export_stac``: a STAC Item with the MLM extension
    resolution   ground resolution of the training scenes (Deepness' ``resolution`` key)

The ONNX metadata keys and the onnxruntime model used by ``geoseg predict --model FILE.onnx``
live a floor down, in :mod:`geoseg.io.onnx_model`, so prediction never imports this package.
"""
