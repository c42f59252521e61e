"""geoseg: semantic segmentation of remote-sensing scenes.

Importing geoseg is cheap: TensorFlow and Keras are imported only by the modules that
need them (models, training, inference), never here.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
