"""Streaming metrics against a numpy confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.training.metrics import (
    ClassIoU,
    MeanF1,
    MeanIoU,
    OverallAccuracy,
    confusion_matrix_np,
    scores_from_confusion,
    segmentation_metrics,
)


def _batches(k=4, n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y = rng.integers(0, k - 1, (2, 8, 8)).astype(np.uint8)  # class k-1 never present
        y[:, :2, :2] = 255
        p = rng.random((2, 8, 8, k)).astype(np.float32)
        out.append((y, p))
    return out


def test_streaming_metrics_match_numpy():
    k = 4
    batches = _batches(k)
    metrics = [MeanIoU(k), OverallAccuracy(k), MeanF1(k), ClassIoU(k, 1), ClassIoU(k, 3)]
    cm = np.zeros((k, k), np.int64)
    for y, p in batches:
        for m in metrics:
            m.update_state(y, p)
        cm += confusion_matrix_np(y, p.argmax(-1), k)
    ref = scores_from_confusion(cm)
    # hand check of the reference on the matrix itself
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    assert ref["iou"][1] == pytest.approx(tp[1] / union[1])
    assert cm.sum() == 3 * 2 * (64 - 4)  # ignored pixels are not counted
    assert float(metrics[0].result()) == pytest.approx(ref["miou"], rel=1e-6)
    assert float(metrics[1].result()) == pytest.approx(ref["oa"], rel=1e-6)
    assert float(metrics[2].result()) == pytest.approx(ref["f1"], rel=1e-6)
    assert float(metrics[3].result()) == pytest.approx(ref["iou"][1], rel=1e-6)
    # class 3 is predicted but never present: IoU 0, still counted in the mean
    assert float(metrics[4].result()) == 0.0
    metrics[0].reset_state()
    assert float(metrics[0].result()) == 0.0


def test_absent_class_is_nan_and_excluded():
    y = np.zeros((1, 4, 4), np.uint8)
    p = np.zeros((1, 4, 4, 3), np.float32)
    p[..., 0] = 1
    m, c2 = MeanIoU(3), ClassIoU(3, 2)
    m.update_state(y, p)
    c2.update_state(y, p)
    assert float(m.result()) == 1.0 and np.isnan(float(c2.result()))


def test_binary_model_threshold():
    y = np.array([[[0, 1], [1, 255]]], np.uint8)
    p = np.array([[[[0.2], [0.7]], [[0.4], [0.9]]]], np.float32)
    m = OverallAccuracy(2)
    m.update_state(y, p)
    assert float(m.result()) == pytest.approx(2 / 3)


def test_metric_set_names():
    names = [m.name for m in segmentation_metrics(3, class_names=["background", "Building 1", "water"])]
    assert names == ["miou", "oa", "f1", "iou_background", "iou_building_1", "iou_water"]
