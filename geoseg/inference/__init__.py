"""Whole-scene prediction: sliding windows, blending weights, streaming accumulation, writers.

Importing this package does not import TensorFlow; the model is loaded when a prediction runs.

Public API:
    predict_scene(bundle_or_path, scene_path, out_dir, **options) -> PredictionResult
    predict_scenes(bundle_or_path, scenes, out_dir, workers=1, scheduler=None, **options)
    PredictOptions, PredictionResult, weight_window, BLENDS, MODES
"""

from geoseg.inference.blending import BLENDS, weight_window
from geoseg.inference.engine import MODES, PredictionResult, PredictOptions, predict_scene, predict_scenes

__all__ = ["BLENDS", "MODES", "PredictOptions", "PredictionResult", "predict_scene", "predict_scenes",
           "weight_window"]
