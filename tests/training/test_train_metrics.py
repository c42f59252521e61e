"""The training metric: one streaming confusion matrix, scores equal to the evaluation core's."""

from __future__ import annotations

import csv
import math
import warnings

import keras
import numpy as np
import pytest

from geoseg.evaluation.confusion import confusion_matrix
from geoseg.evaluation.metrics import compute_metrics
from geoseg.training.metrics import SegmentationMetrics, class_metric_names, class_slug, segmentation_metrics


def _batches(k=5, n=3, seed=0):
    """Random batches where class k-1 is absent from truth AND prediction, and class k-2 is
    predicted but never in the truth."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y = rng.integers(0, k - 2, (2, 8, 8)).astype(np.uint8)
        y[:, :2, :2] = 255
        p = rng.random((2, 8, 8, k)).astype(np.float32)
        p[..., k - 1] = -1.0  # never the argmax
        out.append((y, p))
    return out


def _assert_same(result, ref, keys):
    assert float(result["miou"]) == pytest.approx(ref.mean_iou, rel=1e-6)
    assert float(result["oa"]) == pytest.approx(ref.overall_accuracy, rel=1e-6)
    assert float(result["f1"]) == pytest.approx(ref.mean_f1, rel=1e-6)
    for c, key in enumerate(keys):
        got = float(result[key])
        if math.isnan(ref.iou[c]):
            assert math.isnan(got), key
        else:
            assert got == pytest.approx(ref.iou[c], rel=1e-6), key


def test_streaming_result_equals_evaluation_core():
    k = 5
    metric = SegmentationMetrics(k)
    cm = np.zeros((k, k), np.int64)
    for y, p in _batches(k):
        metric.update_state(y, p)
        cm += confusion_matrix(y, p.argmax(-1).astype(np.uint8), k)
    np.testing.assert_array_equal(metric.cm.numpy(), cm)  # the one accumulated matrix
    assert cm.sum() == 3 * 2 * (64 - 4)  # ignored pixels are not counted
    ref = compute_metrics(cm)
    result = metric.result()
    assert set(result) == {"miou", "oa", "f1", *metric.class_keys}
    _assert_same(result, ref, metric.class_keys)
    # the documented NaN semantics, on the matrix itself
    assert math.isnan(float(result[metric.class_keys[k - 1]]))  # absent from both sides
    assert float(result[metric.class_keys[k - 2]]) == 0.0  # predicted only: 0, in the means
    present = list(range(k - 1))
    tp = np.diag(cm)[present]
    iou = tp / ((cm.sum(0) + cm.sum(1))[present] - tp)
    assert float(result["miou"]) == pytest.approx(iou.mean(), rel=1e-6)


def test_empty_and_reset_are_nan():
    metric = SegmentationMetrics(3)
    assert all(math.isnan(float(v)) for v in metric.result().values())
    for y, p in _batches(3, n=1):
        metric.update_state(y, p)
    assert not math.isnan(float(metric.result()["miou"]))
    metric.reset_state()
    assert all(math.isnan(float(v)) for v in metric.result().values())


def test_sample_weight_masks_pixels():
    y, p = _batches(4, n=1)[0]
    weight = np.zeros(y.shape, np.float32)
    weight[:, 4:] = 1.0
    metric = SegmentationMetrics(4)
    metric.update_state(y, p, sample_weight=weight)
    ref = compute_metrics(confusion_matrix(y[:, 4:], p[:, 4:].argmax(-1).astype(np.uint8), 4))
    _assert_same(metric.result(), ref, metric.class_keys)


def test_binary_sigmoid_model_scored_as_two_classes():
    y = np.array([[[0, 1], [1, 255]]], np.uint8)
    p = np.array([[[[0.2], [0.7]], [[0.4], [0.9]]]], np.float32)
    metric = SegmentationMetrics(1)  # 1 channel -> 2 classes
    metric.update_state(y, p)
    result = metric.result()
    assert metric.num_classes == 2
    assert float(result["oa"]) == pytest.approx(2 / 3)
    ref = compute_metrics(confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2))
    _assert_same(result, ref, metric.class_keys)


def test_metric_names():
    (metric,) = segmentation_metrics(3, class_names=["background", "Building 1", "water"])
    assert list(metric.result()) == ["miou", "oa", "f1", "iou_background", "iou_building_1", "iou_water"]
    assert class_slug(" Forêt / wood ") == "forêt___wood" and class_slug("--") == "class"
    assert class_metric_names(3, ["Building 1", "building_1"]) == ["iou_building_1", "iou_building_1_1", "iou_2"]


def _tiny_model(k=3):
    inp = keras.Input((8, 8, 3))
    out = keras.layers.Conv2D(k, 1, activation="softmax")(inp)
    return keras.Model(inp, out)


def _data(k=3, n=8, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 3)).astype(np.float32)
    y = (x[..., 0] * k).astype(np.uint8).clip(0, k - 1)
    y[:, 0, 0] = 255
    return x, y


def test_keras_logs_flat_keys_for_callbacks(tmp_path):
    """fit history, CSVLogger, EarlyStopping and ModelCheckpoint all see ``val_miou``."""
    x, y = _data()
    model = _tiny_model()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=255),
                  metrics=segmentation_metrics(3, class_names=["a", "b", "c"]))
    log = tmp_path / "history.csv"
    stop = keras.callbacks.EarlyStopping(monitor="val_miou", mode="max", patience=5)
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), monitor="val_miou", mode="max",
                                           save_best_only=True, save_weights_only=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = model.fit(x, y, validation_data=(x, y), epochs=2, batch_size=4, verbose=0,
                         callbacks=[keras.callbacks.CSVLogger(str(log)), stop, ckpt])
    # Keras warns "... conditioned on metric `val_miou` which is not available" when a key is missing
    assert not [w for w in caught if "val_miou" in str(w.message)]
    expected = {"loss", "miou", "oa", "f1", "iou_a", "iou_b", "iou_c"}
    assert expected | {f"val_{k}" for k in expected} == set(hist.history)
    with log.open() as fh:
        header = next(csv.reader(fh))
    assert "val_miou" in header and "iou_b" in header
    assert (tmp_path / "best.weights.h5").exists()
    assert stop.best == pytest.approx(max(hist.history["val_miou"]))
    scores = model.evaluate(x, y, return_dict=True, verbose=0)
    ref = compute_metrics(confusion_matrix(y, model.predict(x, verbose=0).argmax(-1).astype(np.uint8), 3))
    _assert_same(scores, ref, ["iou_a", "iou_b", "iou_c"])


def test_compiled_model_keras_round_trip(tmp_path):
    metric = SegmentationMetrics(4, 7, ["a", "b", "c", "d"], name="seg")
    clone = SegmentationMetrics.from_config(metric.get_config())
    assert (clone.num_classes, clone.ignore_index, clone.class_names, clone.name) == (4, 7, ["a", "b", "c", "d"], "seg")

    x, y = _data()
    model = _tiny_model()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=255),
                  metrics=segmentation_metrics(3))
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    before = model.evaluate(x, y, return_dict=True, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    after = loaded.evaluate(x, y, return_dict=True, verbose=0)
    assert set(after) == set(before)
    for key in ("miou", "oa", "f1", "iou_0", "iou_1", "iou_2"):
        assert after[key] == pytest.approx(before[key], rel=1e-6, nan_ok=True)
