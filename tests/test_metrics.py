"""Evaluation metrics against values computed by hand, and the decision rule shared with Result."""
from __future__ import annotations

import math

import numpy as np
import pytest

from inference.metrics import (confusion_at, equal_sens_spec_threshold, evaluate, roc_auc, roc_curve,
                               youden_threshold)
from inference.result import Result, decide

# Worked example (one tie between a normal and an abnormal, at 0.4):
#   normals   (label 0): 0.1, 0.2, 0.4, 0.6
#   abnormals (label 1): 0.4 (mass), 0.7 (calcification), 0.9 (mass)
LABELS = [0, 0, 0, 0, 1, 1, 1]
SCORES = [0.1, 0.2, 0.4, 0.6, 0.4, 0.7, 0.9]
CLASSES = ["normal"] * 4 + ["mass", "calcification", "mass"]
# ROC, decision score >= t (P = 3, N = 4):
#   t     tp fp  tpr  fpr   J = tpr - fpr   |tpr - (1 - fpr)|
#   inf    0  0  0    0
#   0.9    1  0  1/3  0     1/3             2/3
#   0.7    2  0  2/3  0     2/3   <- Youden 1/3
#   0.6    2  1  2/3  1/4   5/12            1/12  <- equal sens/spec
#   0.4    3  2  1    1/2   1/2             1/2
#   0.2    3  3  1    3/4   1/4             3/4
#   0.1    3  4  1    1     0               1
# AUC by pairs: 0.9 beats 4 normals, 0.7 beats 4, 0.4 beats 0.1 and 0.2 and ties 0.4 (0.5):
#   (4 + 4 + 2.5) / (3 * 4) = 10.5 / 12 = 0.875
# Trapezoids over the curve: 1/4*2/3 + 1/4*(2/3+1)/2 + 1/4*1 + 1/4*1 = (4 + 5 + 6 + 6)/24 = 0.875
# At t = 0.7: tp 2 (0.7, 0.9), fn 1, fp 0, tn 4 ->
#   sensitivity 2/3, specificity 1, precision 1, npv 4/5, accuracy 6/7, F1 = 2*2/(2*2+0+1) = 4/5
# At t = 0.4: tp 3, fn 0, fp 2 (0.4, 0.6), tn 2 ->
#   sensitivity 1, specificity 1/2, precision 3/5, npv 1, accuracy 5/7, F1 = 6/(6+2+0) = 3/4
# Per class at t = 0.7 against the 4 normals:
#   mass (0.4, 0.9): AUC (2.5 + 4)/8 = 0.8125, tp 1, fn 1, sensitivity 1/2
#   calcification (0.7): AUC 4/4 = 1, tp 1, sensitivity 1


def test_roc_curve_by_hand():
    fpr, tpr, thresholds = roc_curve(LABELS, SCORES)
    np.testing.assert_allclose(thresholds, [np.inf, 0.9, 0.7, 0.6, 0.4, 0.2, 0.1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0, 1 / 4, 1 / 2, 3 / 4, 1])


def test_auc_youden_equal_point_by_hand():
    assert roc_auc(LABELS, SCORES) == pytest.approx(0.875)
    fpr, tpr, _ = roc_curve(LABELS, SCORES)
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.875)
    threshold, j = youden_threshold(LABELS, SCORES)
    assert threshold == pytest.approx(0.7) and j == pytest.approx(2 / 3)
    assert equal_sens_spec_threshold(LABELS, SCORES) == pytest.approx(0.6)


def test_confusion_by_hand():
    c = confusion_at(LABELS, SCORES, 0.7)
    assert (c["tp"], c["fp"], c["tn"], c["fn"]) == (2, 0, 4, 1)
    assert c["sensitivity"] == pytest.approx(2 / 3) and c["specificity"] == 1.0
    assert c["precision"] == 1.0 and c["npv"] == pytest.approx(4 / 5)
    assert c["accuracy"] == pytest.approx(6 / 7) and c["f1"] == pytest.approx(4 / 5)
    c = confusion_at(LABELS, SCORES, 0.4)  # the tie at 0.4 is called abnormal: score >= threshold
    assert (c["tp"], c["fp"], c["tn"], c["fn"]) == (3, 2, 2, 0)
    assert c["specificity"] == 0.5 and c["precision"] == pytest.approx(3 / 5)
    assert c["npv"] == 1.0 and c["accuracy"] == pytest.approx(5 / 7) and c["f1"] == pytest.approx(3 / 4)


def test_evaluate_with_classes_by_hand():
    ev = evaluate(LABELS, SCORES, classes=CLASSES)
    assert ev["n_normal"] == 4 and ev["n_abnormal"] == 3
    assert ev["auc"] == pytest.approx(0.875)
    assert ev["threshold"] == ev["youden_threshold"] == pytest.approx(0.7)
    assert ev["equal_sens_spec_threshold"] == pytest.approx(0.6)
    assert ev["confusion"]["f1"] == pytest.approx(4 / 5)
    mass, calc = ev["per_class"]["mass"], ev["per_class"]["calcification"]
    assert mass == {"n": 2, "n_normal": 4, "auc": pytest.approx(0.8125), "tp": 1, "fn": 1, "sensitivity": 0.5}
    assert calc["auc"] == 1.0 and calc["sensitivity"] == 1.0 and calc["n"] == 1
    at = evaluate(LABELS, SCORES, threshold=0.4)
    assert at["threshold"] == 0.4 and at["confusion"]["tp"] == 3 and "per_class" not in at


def test_auc_is_mann_whitney_and_the_trapezoid_area():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        scores = rng.integers(0, 6, n) / 5.0  # many ties
        pos, neg = scores[labels == 1], scores[labels == 0]
        pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        auc = roc_auc(labels, scores)
        assert auc == pytest.approx(pairs / (pos.size * neg.size))
        fpr, tpr, thresholds = roc_curve(labels, scores)
        assert auc == pytest.approx(np.trapezoid(tpr, fpr))
        assert np.all(np.diff(thresholds) < 0) and fpr[-1] == tpr[-1] == 1.0


def test_perfect_and_inverted_scores():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == (0.8, 1.0)
    assert roc_auc([True, False], [0.5, 0.5]) == 0.5


def test_undefined_ratios_are_nan():
    c = confusion_at([0, 0, 1], [0.1, 0.2, 0.3], 0.9)  # nothing called abnormal
    assert math.isnan(c["precision"]) and c["f1"] == 0.0 and c["sensitivity"] == 0.0
    c = confusion_at([0, 0], [0.1, 0.2], 0.15)  # normals only: sensitivity undefined
    assert math.isnan(c["sensitivity"]) and c["specificity"] == 0.5


@pytest.mark.parametrize("labels,scores,message", [
    ([0, 0, 0], [0.1, 0.2, 0.3], "ROC analysis needs both normal and abnormal samples, got 3 normal and 0 abnormal."),
    ([1, 1], [0.1, 0.2], "got 0 normal and 2 abnormal."),
    ([0, 1], [0.1], "labels and scores must have the same length, got 2 labels and 1 scores."),
    ([0, 1], [0.1, float("nan")], "scores must be finite numbers, but sample 1 has score nan."),
    ([0, 2], [0.1, 0.2], "labels must be 0 (normal) or 1 (abnormal), or booleans."),
    ([], [], "labels and scores are empty."),
])
def test_degenerate_inputs_are_one_sentence(labels, scores, message):
    with pytest.raises(ValueError) as info:
        evaluate(labels, scores)
    assert str(info.value).endswith(message)


def test_classes_must_agree_with_labels():
    with pytest.raises(ValueError, match="sample 4 has class 'normal' but label abnormal"):
        evaluate(LABELS, SCORES, classes=["normal"] * 7)


def test_decision_rule_matches_the_metrics():
    from inference.bundle import Calibration

    assert decide(0.7, Calibration(threshold=0.7)) == (0.7, "abnormal")  # >= like confusion_at
    assert decide(0.69, 0.7) == (0.7, "normal")
    assert decide(0.5, None) == (None, None)
    assert decide(float("nan"), 0.7) == (0.7, None)


def test_result_json_has_no_pixels():
    result = Result(method="translation", bundle_name="hg", bundle_version="1.0", provider="CPU",
                    maps={"difference": np.zeros((30, 20), np.float32), "mask": np.zeros((30, 20), np.float32)},
                    score=np.float32(0.5), threshold=0.25, decision="abnormal",
                    timings={"model": np.float64(0.1)}, frame=3, parameters={"n": np.int64(2), "shape": (1, 2)})
    out = result.to_json_dict()
    assert out["maps"] == {"difference": [30, 20], "mask": [30, 20]}
    assert out["score"] == 0.5 and out["timings"] == {"model": 0.1} and out["parameters"] == {"n": 2, "shape": [1, 2]}
    import json

    json.dumps(out)  # plain JSON
    assert result.difference.shape == (30, 20)


def test_result_for_bundle_decides_by_its_calibration(tmp_path):
    from tests.test_bundle import make_translation_bundle

    bundle = make_translation_bundle(tmp_path / "hg")  # calibration threshold 0.25
    result = Result.for_bundle(bundle, provider="CPU", maps={"difference": np.zeros((4, 4))}, score=0.3)
    assert (result.method, result.bundle_name, result.bundle_version) == ("translation", "healthygan-phantom", "1.0")
    assert result.threshold == 0.25 and result.decision == "abnormal"
