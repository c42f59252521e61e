"""Input and output: rasters, windows, vectors, label alignment, classes and palettes,
normalization, GeoTIFF profiles, atomic outputs and model bundles.

Everything above this package (tiling, training, inference, evaluation) reads and writes
through it; nothing here imports TensorFlow except :func:`geoseg.io.bundle.load_bundle`
when it loads a model.
"""
