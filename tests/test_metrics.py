"""Evaluation metrics against values computed by hand, and the decision rule shared with Result."""
from __future__ import annotations

import math

import numpy as np
import pytest

from inference.metrics import (
    auc_confidence_interval,
    box_ratio,
    confusion_at,
    equal_sens_spec_threshold,
    evaluate,
    focal_score,
    hit_rate,
    paired_test,
    roc_auc,
    roc_curve,
    youden_threshold,
)
from inference.result import Result, decide

# Worked example (one tie between a normal and an abnormal, at 0.4):
#   normals   (label 0): 0.1, 0.2, 0.4, 0.6
#   abnormals (label 1): 0.4 (mass), 0.7 (calcification), 0.9 (mass)
LABELS = [0, 0, 0, 0, 1, 1, 1]
SCORES = [0.1, 0.2, 0.4, 0.6, 0.4, 0.7, 0.9]
CLASSES = ["normal"] * 4 + ["mass", "calcification", "mass"]
Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
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
# DeLong's structural components, psi(X, Y) = 1, 0.5, 0 for X >, =, < Y (m = 3 abnormals X, n = 4 normals Y):
#   V10(X) = share of normals each abnormal beats: 0.4 -> (1 + 1 + 0.5 + 0)/4 = 5/8, 0.7 -> 1, 0.9 -> 1
#   V01(Y) = share of abnormals beating each normal: 0.1 -> 1, 0.2 -> 1, 0.4 -> (0.5 + 1 + 1)/3 = 5/6, 0.6 -> 2/3
#   both average to 7/8 = the AUC;
#   S10 = ((5/8 - 7/8)^2 + 2 (1/8)^2) / 2 = (1/16 + 1/32) / 2 = 3/64
#   S01 = (2 (1/8)^2 + (-1/24)^2 + (-5/24)^2) / 3 = (18 + 1 + 25)/576 / 3 = 11/432
#   var(AUC) = S10/3 + S01/4 = 1/64 + 11/1728 = 38/1728 = 19/864, se = 0.14829...
#   95 %: 0.875 -/+ 1.959964 * 0.14829 = (0.58435, 1.16565) -> clipped (0.58435, 1)
# mass only (X = 0.4, 0.9): V10 = 5/8, 1; V01 = 1, 1, 3/4, 1/2; AUC 13/16;
#   S10 = 2 (3/16)^2 / 1 = 9/128, S01 = (2 (3/16)^2 + (1/16)^2 + (5/16)^2) / 3 = 44/256 / 3 = 11/192
#   var = 9/256 + 11/768 = 38/768, 95 % low = 0.8125 - 1.959964 * sqrt(38/768) = 0.37653; high clipped to 1
# calcification (one sample): no sample variance of V10, the interval is NaN


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
    assert ev["auc_ci"] == [pytest.approx(0.875 - Z95 * math.sqrt(19 / 864)), 1.0]
    mass, calc = ev["per_class"]["mass"], ev["per_class"]["calcification"]
    assert mass == {"n": 2, "n_normal": 4, "auc": pytest.approx(0.8125), "tp": 1, "fn": 1, "sensitivity": 0.5,
                    "auc_ci_low": pytest.approx(0.8125 - Z95 * math.sqrt(38 / 768)), "auc_ci_high": 1.0}
    assert calc["auc"] == 1.0 and calc["sensitivity"] == 1.0 and calc["n"] == 1
    assert math.isnan(calc["auc_ci_low"]) and math.isnan(calc["auc_ci_high"])
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


# -------------------------------------------------------------------------------------------------
# DeLong's interval for the AUC


def _delong_by_pairs(labels, scores, level=0.95):
    """DeLong's interval from the definition: the m x n matrix of psi, no midranks."""
    from scipy.stats import norm

    labels, scores = np.asarray(labels), np.asarray(scores, float)
    x, y = scores[labels == 1], scores[labels == 0]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    auc = psi.mean()
    se = math.sqrt(v10.var(ddof=1) / x.size + v01.var(ddof=1) / y.size)
    z = norm.ppf(0.5 + level / 2)
    return max(0.0, auc - z * se), min(1.0, auc + z * se)


def test_delong_interval_by_hand():
    lo, hi = auc_confidence_interval(LABELS, SCORES)
    assert lo == pytest.approx(0.875 - Z95 * math.sqrt(19 / 864), abs=1e-12) and hi == 1.0
    assert lo == pytest.approx(0.58435, abs=1e-5)
    # the components written out above, from the pairs
    assert (lo, hi) == pytest.approx(_delong_by_pairs(LABELS, SCORES), abs=1e-12)
    # a lower level gives a narrower interval around the same AUC
    lo90, hi90 = auc_confidence_interval(LABELS, SCORES, level=0.90)
    assert lo90 == pytest.approx(0.875 - 1.6448536269514722 * math.sqrt(19 / 864), abs=1e-12) and lo90 > lo


def test_delong_midranks_match_the_pairwise_definition():
    rng = np.random.default_rng(11)
    for level in (0.95, 0.8, 0.99):
        for _ in range(20):
            n = int(rng.integers(4, 80))
            labels = rng.integers(0, 2, n)
            labels[:4] = [0, 0, 1, 1]
            scores = rng.integers(0, 6, n) / 5.0 + 0.2 * labels  # many ties, some signal
            assert auc_confidence_interval(labels, scores, level) == pytest.approx(
                _delong_by_pairs(labels, scores, level), abs=1e-12)


def test_delong_interval_contains_the_auc_and_narrows_with_n():
    rng = np.random.default_rng(3)
    widths = []
    for n in (20, 80, 320, 1280):
        labels = np.r_[np.zeros(n, int), np.ones(n, int)]
        scores = np.r_[rng.normal(0, 1, n), rng.normal(1, 1, n)]  # binormal, true AUC Phi(1/sqrt 2) = 0.76
        lo, hi = auc_confidence_interval(labels, scores)
        assert lo < roc_auc(labels, scores) < hi
        widths.append(hi - lo)
    assert widths == sorted(widths, reverse=True)
    assert widths[-1] < 0.6 * widths[-2]  # about 1/sqrt(n): halves for four times the data
    # the same data four times over: the same AUC, an interval about half as wide
    lo1, hi1 = auc_confidence_interval(LABELS, SCORES)
    lo4, hi4 = auc_confidence_interval(LABELS * 4, SCORES * 4)
    assert roc_auc(LABELS * 4, SCORES * 4) == pytest.approx(0.875)
    assert lo1 < lo4 < 0.875 and hi4 <= hi1


def test_delong_degenerate_sets():
    assert auc_confidence_interval([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == (1.0, 1.0)  # separable: no variance
    assert auc_confidence_interval([0, 0, 1, 1], [0.5] * 4) == (0.5, 0.5)  # all tied
    lo, hi = auc_confidence_interval([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.9])  # one abnormal: no sample variance
    assert math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        auc_confidence_interval(LABELS, SCORES, level=95)
    with pytest.raises(ValueError, match="needs both normal and abnormal samples"):
        auc_confidence_interval([1, 1], [0.1, 0.2])


# -------------------------------------------------------------------------------------------------
# maps against boxes
#
# A 4 x 5 map (rows y, columns x); column 0 and row 3 are background, so the breast is the 12
# pixels of rows 0-2, columns 1-4 (sum 43):
#          x=0  1  2  3  4
#   y=0     0   1  2  3  9
#   y=1     0   4  8  2  1
#   y=2     0   6  5  1  1
#   y=3     0   0  0  0  0
# Breast values descending: 9, 8, 6, 5, 4, 3, 2, 2, 1, 1, 1, 1.
MAP = np.array([[0, 1, 2, 3, 9], [0, 4, 8, 2, 1], [0, 6, 5, 1, 1], [0, 0, 0, 0, 0]], np.float32)
BREAST = np.zeros((4, 5), bool)
BREAST[:3, 1:] = True
BOX = (1, 1, 3, 3)  # x 1-2, y 1-2: values 4, 8, 6, 5 (sum 23)


def test_focal_score_by_hand():
    assert focal_score(MAP, BREAST) == 9.0  # 1 % of 12 pixels: at least one, the 9
    assert focal_score(MAP, BREAST, top_fraction=0.25) == pytest.approx(23 / 3)  # 9, 8, 6
    assert focal_score(MAP, BREAST, top_fraction=0.2) == pytest.approx(23 / 3)  # 2.4 pixels -> 3
    assert focal_score(MAP, BREAST, top_fraction=7 / 12) == pytest.approx(37 / 7)  # 9 8 6 5 4 3 and a 2
    assert focal_score(MAP, BREAST, top_fraction=1.0) == pytest.approx(43 / 12)  # the breast mean
    assert focal_score(MAP, np.ones_like(BREAST), top_fraction=1.0) == pytest.approx(43 / 20)  # background counts
    # 1 % of 700 pixels is 7 pixels (0.01 * 700 is 7.000000000000001 in floating point): 693..699
    assert focal_score(np.arange(700.0).reshape(7, 100), np.ones((7, 100), bool)) == pytest.approx(696.0)
    # 1 % of 150 pixels is 1.5 -> 2 pixels
    assert focal_score(np.arange(150.0).reshape(10, 15), np.ones((10, 15))) == pytest.approx(148.5)


def test_box_ratio_by_hand():
    assert box_ratio(MAP, BREAST, [BOX]) == pytest.approx((23 / 4) / (20 / 8))  # 5.75 / 2.5 = 2.3
    assert box_ratio(MAP, BREAST, BOX) == pytest.approx(2.3)  # one box without the list
    # floats round outward: x 1.2-2.5 -> columns 1-2, y 0.6-2.9 -> rows 0-2: 1 2 4 8 6 5
    assert box_ratio(MAP, BREAST, [(1.2, 0.6, 2.5, 2.9)]) == pytest.approx((26 / 6) / (17 / 6))
    # clipped to the map: columns 3-4 of row 0: 3, 9
    assert box_ratio(MAP, BREAST, [(3.5, -2, 10, 1)]) == pytest.approx(6 / 3.1)
    # union of overlapping boxes, each pixel once: 4 8 6 5 and the 2 at (x 2, y 0)
    assert box_ratio(MAP, BREAST, [BOX, (2, 0, 3, 2)]) == pytest.approx(5 / (18 / 7))
    # background pixels inside a box do not count: adding column 0 changes nothing
    assert box_ratio(MAP, BREAST, [(0, 1, 3, 4)]) == pytest.approx(2.3)
    assert math.isnan(box_ratio(MAP, BREAST, [(0, 0, 1, 4)]))  # the box holds background only
    assert math.isnan(box_ratio(MAP, BREAST, [(0, 0, 5, 4)]))  # nothing of the breast outside
    assert math.isnan(box_ratio(MAP, BREAST, []))  # no box
    only_inside = np.zeros_like(MAP)
    only_inside[1:3, 1:3] = MAP[1:3, 1:3]
    assert math.isnan(box_ratio(only_inside, BREAST, [BOX]))  # the outside mean is 0


def test_hit_rate_by_hand():
    # chance: the box covers 4 of the 12 breast pixels
    assert hit_rate(MAP, BREAST, [BOX]) == (0.0, pytest.approx(1 / 3))  # the top pixel, 9, lies outside
    assert hit_rate(MAP, BREAST, [BOX], top_fraction=0.25) == (pytest.approx(2 / 3), pytest.approx(1 / 3))  # 9 8 6
    # 7 pixels: 9 8 6 5 4 3 and one of the two 2s, both outside this box: 4 of 7
    assert hit_rate(MAP, BREAST, [BOX], top_fraction=7 / 12)[0] == pytest.approx(4 / 7)
    # with the 2 at (x 2, y 0) inside too, the tied place counts half: (4 + 1/2) / 7; chance 5/12
    hit, chance = hit_rate(MAP, BREAST, [BOX, (2, 0, 3, 2)], top_fraction=7 / 12)
    assert hit == pytest.approx(9 / 14) and chance == pytest.approx(5 / 12)
    assert hit_rate(MAP, BREAST, []) == (0.0, 0.0)
    # a flat map scores exactly chance, whatever the pixel order
    flat = np.ones((10, 10))
    for box in [(0, 0, 3, 5), (7, 5, 10, 10)]:
        hit, chance = hit_rate(flat, flat > 0, [box])
        assert hit == pytest.approx(0.15) and chance == pytest.approx(0.15)


@pytest.mark.parametrize("call,message", [
    (lambda: focal_score(np.zeros(5), np.ones(5, bool)), "the map must be a 2-D array, got shape (5,)."),
    (lambda: focal_score(MAP, BREAST[:3]), "the breast mask must have the map's shape (4, 5), got (3, 5)."),
    (lambda: focal_score(np.where(BREAST, np.nan, 0), BREAST), "the map has 12 non-finite values inside the breast."),
    (lambda: focal_score(MAP, np.zeros_like(BREAST)),
     "the breast mask is empty, so there is no breast pixel to score."),
    (lambda: focal_score(MAP, BREAST, top_fraction=0), "top_fraction must be in (0, 1], not 0."),
    (lambda: hit_rate(MAP, BREAST, [BOX], top_fraction=1.5), "top_fraction must be in (0, 1], not 1.5."),
    (lambda: hit_rate(MAP, np.zeros_like(BREAST), [BOX]),
     "the breast mask is empty, so there is no breast pixel to rank."),
    (lambda: box_ratio(MAP, BREAST, [(3, 1, 1, 3)]),
     "box 0 is empty: x1 must exceed x0 and y1 y0, got (3.0, 1.0, 1.0, 3.0)."),
    (lambda: box_ratio(MAP, BREAST, [BOX, (0, 0, np.nan, 1)]),
     "box 1 has a non-finite coordinate: (0.0, 0.0, nan, 1.0)."),
    (lambda: box_ratio(MAP, BREAST, [(0, 0, 1)]), "boxes must be (x0, y0, x1, y1) rows, got an array of shape (1, 3)."),
])
def test_map_inputs_fail_with_one_sentence(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


def test_nan_outside_the_breast_is_ignored():
    m = MAP.astype(np.float64)
    m[3, :] = np.nan
    assert focal_score(m, BREAST) == 9.0 and box_ratio(m, BREAST, [BOX]) == pytest.approx(2.3)


# -------------------------------------------------------------------------------------------------
# paired test


def test_paired_test_known_case():
    # differences 0.5, 1.5, 2.1, 3.2, -0.7 rank 1, 3, 4, 5, 2 by size: W- = 2, W+ = 13, statistic min = 2;
    # of the 2^5 = 32 sign patterns, W+ <= 2 for {}, {1}, {2} and W+ >= 13 for their mirrors: p = 6/32
    a = [1.5, 2.5, 3.1, 4.2, 0.3, np.nan, 7.0]
    b = [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, np.nan]  # the last two pairs are left out
    out = paired_test(a, b)
    assert out == {"n": 5, "median_a": 2.5, "median_b": 1.0, "median_of_differences": pytest.approx(1.5),
                   "statistic": 2.0, "p_value": pytest.approx(6 / 32)}
    # a zero difference is dropped by the test (scipy's default), not by n: all 4 others positive, p = 2/16
    out = paired_test([1.5, 2.5, 3.1, 4.2, 1.0], [1.0] * 5)
    assert out["n"] == 5 and out["statistic"] == 0.0 and out["p_value"] == pytest.approx(2 / 16)


def test_paired_test_matches_scipy():
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(8)
    for n in (3, 12, 60):  # exact and normal-approximation regimes
        a = rng.lognormal(0.2, 0.3, n)
        b = rng.lognormal(0.0, 0.3, n)
        a[0] = np.nan
        out = paired_test(a, b)
        ref = wilcoxon(a[1:], b[1:], alternative="two-sided")
        assert out["n"] == n - 1
        assert out["statistic"] == pytest.approx(ref.statistic) and out["p_value"] == pytest.approx(ref.pvalue)
        assert out["median_of_differences"] == pytest.approx(np.median(a[1:] - b[1:]))


def test_paired_test_without_pairs_or_differences():
    for a, b in [([], []), ([np.nan, 1.0], [2.0, np.nan])]:
        out = paired_test(a, b)
        assert out["n"] == 0
        assert all(math.isnan(out[k]) for k in ("median_a", "median_b", "median_of_differences", "statistic",
                                                "p_value"))
    out = paired_test([1.0, 2.0], [1.0, 2.0])
    assert out["n"] == 2 and out["statistic"] == 0.0 and out["p_value"] == 1.0
    with pytest.raises(ValueError, match="a and b must be 1-D sequences of the same length"):
        paired_test([1.0, 2.0], [1.0])
