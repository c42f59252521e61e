"""Confusion matrix and metrics: against scikit-learn, a hand-computed 3x3 case, conventions."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest
from sklearn import metrics as skm

from geoseg.errors import InvalidParameterError, LabelValueError
from geoseg.evaluation import ConfusionMatrix, average_metrics, compute_metrics, confusion_matrix

#: Hand example, rows = truth, columns = prediction (N = 20).
HAND = np.array([[5, 1, 0],
                 [2, 3, 1],
                 [0, 1, 7]])


def hand_pixels() -> tuple[np.ndarray, np.ndarray]:
    """A 4x5 truth/prediction pair whose confusion matrix is HAND."""
    pairs = [(t, p) for t in range(3) for p in range(3) for _ in range(HAND[t, p])]
    rng = np.random.default_rng(3)
    rng.shuffle(pairs)
    arr = np.array(pairs, dtype=np.uint8)
    return arr[:, 0].reshape(4, 5), arr[:, 1].reshape(4, 5)


def test_hand_computed_3x3_every_metric():
    truth, pred = hand_pixels()
    cm = confusion_matrix(truth, pred, 3)
    np.testing.assert_array_equal(cm, HAND)
    m = compute_metrics(cm)
    # TP = (5, 3, 7); truth rows = (6, 6, 8); predicted columns = (7, 5, 8)
    np.testing.assert_allclose(m.precision, [5 / 7, 3 / 5, 7 / 8])
    np.testing.assert_allclose(m.recall, [5 / 6, 3 / 6, 7 / 8])
    np.testing.assert_allclose(m.f1, [10 / 13, 6 / 11, 14 / 16])  # 2TP / (2TP + FP + FN)
    np.testing.assert_allclose(m.iou, [5 / 8, 3 / 8, 7 / 9])  # TP / (TP + FP + FN)
    np.testing.assert_array_equal(m.support, [6, 6, 8])
    np.testing.assert_array_equal(m.predicted, [7, 5, 8])
    assert m.pixels == 20
    assert m.overall_accuracy == pytest.approx(15 / 20)
    pe = F(6 * 7 + 6 * 5 + 8 * 8, 400)  # 0.34
    assert m.kappa == pytest.approx(float((F(3, 4) - pe) / (1 - pe)))  # 0.41 / 0.66
    assert m.mean_iou == pytest.approx(16 / 27)
    assert m.mean_f1 == pytest.approx((10 / 13 + 6 / 11 + 7 / 8) / 3)
    assert m.mean_precision == pytest.approx((5 / 7 + 3 / 5 + 7 / 8) / 3)
    assert m.mean_recall == pytest.approx((5 / 6 + 1 / 2 + 7 / 8) / 3)
    assert m.fw_iou == pytest.approx(11 / 18)  # (6*5/8 + 6*3/8 + 8*7/9) / 20


@pytest.mark.parametrize("seed,classes", [(0, 2), (1, 5), (2, 12)])
def test_agrees_with_sklearn_on_random_inputs(seed, classes):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, (37, 53)).astype(np.uint8)
    noisy = rng.integers(0, classes, truth.shape).astype(np.uint8)
    pred = np.where(rng.random(truth.shape) < 0.6, truth, noisy)
    t, p = truth.ravel(), pred.ravel()
    labels = list(range(classes))
    cm = confusion_matrix(truth, pred, classes)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(t, p, labels=labels))
    m = compute_metrics(cm)
    np.testing.assert_allclose(m.f1, skm.f1_score(t, p, labels=labels, average=None, zero_division=0))
    np.testing.assert_allclose(m.iou, skm.jaccard_score(t, p, labels=labels, average=None, zero_division=0))
    np.testing.assert_allclose(m.precision, skm.precision_score(t, p, labels=labels, average=None, zero_division=0))
    np.testing.assert_allclose(m.recall, skm.recall_score(t, p, labels=labels, average=None, zero_division=0))
    assert m.mean_f1 == pytest.approx(skm.f1_score(t, p, labels=labels, average="macro"))
    assert m.mean_iou == pytest.approx(skm.jaccard_score(t, p, labels=labels, average="macro"))
    assert m.kappa == pytest.approx(skm.cohen_kappa_score(t, p, labels=labels))
    assert m.overall_accuracy == pytest.approx(skm.accuracy_score(t, p))


def test_streaming_blocks_equal_one_shot():
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 6, (97, 131)).astype(np.uint8)
    pred = rng.integers(0, 6, truth.shape).astype(np.uint8)
    truth[rng.random(truth.shape) < 0.1] = 255
    pred[rng.random(truth.shape) < 0.05] = 255
    streamed = ConfusionMatrix(6)
    for r in range(0, 97, 13):
        for c in range(0, 131, 29):
            streamed.update(truth[r:r + 13, c:c + 29], pred[r:r + 13, c:c + 29])
    one_shot = ConfusionMatrix(6).update(truth, pred)
    np.testing.assert_array_equal(streamed.matrix, one_shot.matrix)
    assert streamed.excluded == one_shot.excluded == int(((truth == 255) | (pred == 255)).sum())
    # merging two halves equals the whole as well
    a = ConfusionMatrix(6).update(truth[:50], pred[:50])
    b = ConfusionMatrix(6).update(truth[50:], pred[50:])
    np.testing.assert_array_equal(a.merge(b).matrix, one_shot.matrix)


@pytest.mark.parametrize("dtype", ["uint8", "int32"])  # the uint8 fast path and the general path
def test_ignore_index_and_background(dtype):
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 4, (40, 40)).astype(dtype)
    pred = rng.integers(0, 4, truth.shape).astype(dtype)
    truth[:5] = 255
    pred[:, :3] = 255
    keep = (truth != 255) & (pred != 255)
    ref = skm.confusion_matrix(truth[keep], pred[keep], labels=range(4))
    np.testing.assert_array_equal(confusion_matrix(truth, pred, 4), ref)

    cm = confusion_matrix(truth, pred, 4, ignore_background=True)
    keep_fg = keep & (truth != 0)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(truth[keep_fg], pred[keep_fg], labels=range(4)))
    assert cm[0].sum() == 0 and cm[:, 0].sum() > 0  # background predictions still count as errors
    m = compute_metrics(cm, exclude=(0,))
    assert m.iou[0] == 0.0  # predicted but never true: a false-positive-only class
    assert m.mean_iou == pytest.approx(np.mean(m.iou[1:]))
    # a custom ignore index and a caller mask
    valid = np.ones(truth.shape, bool)
    valid[-1] = False
    t2 = np.where(truth == 255, 9, truth)
    cm2 = confusion_matrix(t2, np.where(pred == 255, 9, pred), 4, ignore_index=9, valid=valid)
    keep2 = keep & valid
    np.testing.assert_array_equal(cm2, skm.confusion_matrix(truth[keep2], pred[keep2], labels=range(4)))


def test_absent_class_is_nan_and_left_out_of_means():
    cm = np.array([[4, 1, 0], [0, 5, 0], [0, 0, 0]])  # class 2 absent from truth and prediction
    m = compute_metrics(cm)
    assert np.isnan(m.iou[2]) and np.isnan(m.f1[2]) and np.isnan(m.precision[2]) and np.isnan(m.recall[2])
    assert m.mean_iou == pytest.approx((4 / 5 + 5 / 6) / 2)
    cm[2, 0] = 3  # now present in truth only, never predicted: 0, and counted in the means
    m = compute_metrics(cm)
    assert m.iou[2] == 0 and m.precision[2] == 0 and m.recall[2] == 0
    assert m.mean_iou == pytest.approx((4 / 8 + 5 / 6 + 0) / 3)
    empty = compute_metrics(np.zeros((3, 3), int))
    assert empty.pixels == 0 and np.isnan(empty.overall_accuracy) and np.isnan(empty.mean_iou)
    assert np.isnan(compute_metrics(np.array([[9, 0], [0, 0]])).kappa)  # p_e = 1: undefined, as sklearn


def test_average_metrics_ignores_nan_per_image():
    a = compute_metrics(np.array([[4, 0], [0, 0]]))  # class 1 absent
    b = compute_metrics(np.array([[2, 2], [0, 4]]))
    avg = average_metrics([a, b])
    assert avg.iou[0] == pytest.approx((1.0 + 0.5) / 2)
    assert avg.iou[1] == pytest.approx(b.iou[1])  # only image b defines class 1
    assert avg.overall_accuracy == pytest.approx((1.0 + 0.75) / 2)
    assert avg.pixels == 12
    np.testing.assert_array_equal(avg.support, [8, 4])


@pytest.mark.parametrize("dtype", ["uint8", "int16"])
def test_out_of_range_values_say_which_and_where(dtype):
    truth = np.zeros((6, 8), dtype)
    truth[4, 5] = 7
    truth[5, 1] = 3
    truth[0, 0] = 255  # ignore value is fine
    with pytest.raises(LabelValueError) as info:
        ConfusionMatrix(3).update(truth, np.zeros_like(truth), origin=(100, 200))
    assert "3, 7" in str(info.value) and "row 104, col 205" in str(info.value)
    assert info.value.side == "truth" and info.value.position == (104, 205)
    pred = np.full((2, 2), -1, np.int16)
    with pytest.raises(LabelValueError, match="prediction holds value"):
        ConfusionMatrix(3).update(np.zeros((2, 2), np.uint8), pred)
    with pytest.raises(InvalidParameterError, match="ignore-index 1 is a class value"):
        ConfusionMatrix(3, ignore_index=1)
