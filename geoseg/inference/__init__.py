"""Whole-scene prediction: sliding windows, blending weights, streaming accumulation, writers.

Importing this package does not import TensorFlow; the model is loaded when a prediction runs.

Modules, imports going one way (top to bottom):
    api          predict_scene / predict_scenes / plan_jobs: validate, then dispatch
    distributed  strips of scenes as dask tasks (workers return encoded rows)
    engine       one scene in this process (reader -> model -> accumulator -> writer threads)
    per_image    ``--mode per_image``
    checks       scene vs bundle: bands, dtype, value range
    options      PredictOptions, PredictionResult, SceneJob
    forward, reader, accumulator, blending, writers, progress: the stages

Public API:
    predict_scene(bundle_or_path, scene_path, out_dir, **options) -> PredictionResult
    predict_scenes(bundle_or_path, scenes, out_dir, workers=1, scheduler=None, **options)
    PredictOptions, PredictionResult, weight_window, BLENDS, MODES
"""

from geoseg.inference.api import predict_scene, predict_scenes
from geoseg.inference.blending import BLENDS, weight_window
from geoseg.inference.options import MODES, PredictionResult, PredictOptions

__all__ = ["BLENDS", "MODES", "PredictOptions", "PredictionResult", "predict_scene", "predict_scenes",
           "weight_window"]
