"""Evaluation: streaming confusion matrix and segmentation metrics over prediction/label pairs.

Pure numpy on the counting side; rasterio windows (and WarpedVRT / rasterize for labels on
another grid or in a vector file) on the reading side. Memory stays bounded by one window.

    >>> from geoseg.evaluation import evaluate
    >>> result = evaluate("pred/scene_label.tif", "labels/scene.tif", num_classes=5)
    >>> result.metrics.mean_iou, result.confusion  # confusion: rows = truth, columns = prediction
    >>> held_out = evaluate("pred/scene_label.tif", "labels/scene.tif", 5, dataset="dataset", split="val")
"""

from geoseg.evaluation.area import Area, AreaMask, read_area
from geoseg.evaluation.confusion import ConfusionMatrix, confusion_matrix
from geoseg.evaluation.evaluator import EvaluationResult, ImageResult, evaluate, resolve_classes
from geoseg.evaluation.holdout import split_areas
from geoseg.evaluation.metrics import Metrics, average_metrics, compute_metrics
from geoseg.evaluation.pairing import Pair, pair_inputs, pair_key
from geoseg.evaluation.reader import AlignedBlock, PairReader, block_windows
from geoseg.evaluation.report import format_table, to_dict, write_report

__all__ = [
    "AlignedBlock", "Area", "AreaMask", "ConfusionMatrix", "EvaluationResult", "ImageResult", "Metrics", "Pair",
    "PairReader",
    "average_metrics", "block_windows", "compute_metrics", "confusion_matrix", "evaluate", "format_table",
    "pair_inputs", "pair_key", "read_area", "resolve_classes", "split_areas", "to_dict", "write_report",
]
