"""Evaluation metrics of the papers, written out from their formulas (no scikit-learn).

Conventions, fixed once for the whole project:

* a label is 1 (abnormal, positive) or 0 (normal); a higher score means more abnormal;
* a decision at threshold ``t`` is ``score >= t`` -> abnormal (the same rule as
  :func:`inference.result.decide`, so a calibrated threshold means the same thing everywhere);
* :func:`roc_curve` keeps every distinct score as a threshold (it does not drop collinear points
  as scikit-learn does by default), starting at ``+inf`` where nothing is called abnormal;
* :func:`roc_auc` is the Mann-Whitney U statistic with ties counted 0.5, which equals the
  trapezoid area under :func:`roc_curve` exactly (ties between a positive and a negative become
  a diagonal segment of the curve, i.e. half credit);
* Park et al. (paper 000) pick the cut-off by Youden's J = sensitivity + specificity - 1;
  HealthyGAN's code (paper 003) picks the point where sensitivity equals specificity,
  ``argmin |tpr - (1 - fpr)|`` (its ``fnr - fpr`` equal-error point); both are offered;
* a ratio whose denominator is zero (precision with no positive calls) is NaN, never a
  made-up 0 or 1;
* :func:`auc_confidence_interval` is DeLong's (1988) interval, the one pROC and most reader
  studies report, computed with Sun & Xu's (2014) midrank algorithm;
* maps are 2-D arrays with a boolean breast mask of the same shape; only breast pixels count
  (the background is zero in every method's map and would dilute any mean); a lesion box is
  ``(x0, y0, x1, y1)`` in the map's pixel grid (x is the column, y the row, x1/y1 exclusive, as
  in the labels file), rounded outward and clipped to the map;
* "the top 1 %" of a map is ``max(1, ceil(top_fraction * breast pixels))`` pixels; pixels tied
  with the cut share the remaining places equally (as ties count 0.5 in the AUC), so a flat map
  scores exactly chance in :func:`hit_rate` whatever the pixel order.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Sequence

import numpy as np

NORMAL_CLASS = "normal"


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D sequences, got shapes {y.shape} and {s.shape}.")
    if y.shape != s.shape:
        raise ValueError(f"labels and scores must have the same length, got {y.size} labels and {s.size} scores.")
    if y.size == 0:
        raise ValueError("labels and scores are empty.")
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number) or not np.all((y == 0) | (y == 1)):
            raise ValueError("labels must be 0 (normal) or 1 (abnormal), or booleans.")
        y = y == 1
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise ValueError(f"scores must be finite numbers, but sample {int(bad[0])} has score {s[bad[0]]}.")
    return y, s


def _check_both(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y, s = _check(labels, scores)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(f"ROC analysis needs both normal and abnormal samples, got {y.size - n_pos} normal "
                         f"and {n_pos} abnormal.")
    return y, s


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score, thresholds descending from +inf.

    Point ``i`` is the decision ``score >= thresholds[i]``; point 0 (``+inf``) calls nothing
    abnormal (0, 0) and the last point (the lowest score) calls everything abnormal (1, 1).
    """
    y, s = _check_both(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # last index of each run of equal scores: every sample up to it is called abnormal
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    n_pos, n_neg = tps[-1], fps[-1]
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, s_sorted[last]]
    return fpr, tpr, thresholds


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1]
    ends = np.r_[starts[1:], ordered.size]  # exclusive
    mean_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(labels, scores) -> float:
    """P(score of a random abnormal > score of a random normal), ties counted 0.5 (Mann-Whitney U)."""
    y, s = _check_both(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    ranks = _midranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _delong(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """Empirical AUC and DeLong's variance of it, by Sun & Xu's midrank algorithm.

    DeLong's structural components are, for each abnormal score X_i, the share of normals it
    beats, V10_i = mean_j psi(X_i, Y_j), and for each normal score Y_j the share of abnormals that
    beat it, V01_j = mean_i psi(X_i, Y_j), with psi = 1, 0.5, 0 for >, =, <. Both average to the
    AUC, and var(AUC) = S10 / m + S01 / n with S10, S01 their sample variances (m abnormals, n
    normals). Sun & Xu get them without the m x n comparison matrix: with T_z the midranks among
    all scores and T_x, T_y those within each group, V10_i = (T_z(X_i) - T_x(X_i)) / n and
    V01_j = 1 - (T_z(Y_j) - T_y(Y_j)) / m (ties count 0.5 through the midranks). A group of one
    has no sample variance: the variance is then NaN rather than a made-up zero.
    """
    x, yy = s[y], s[~y]
    m, n = x.size, yy.size
    t_z = _midranks(np.r_[x, yy])
    v10 = (t_z[:m] - _midranks(x)) / n
    v01 = 1.0 - (t_z[m:] - _midranks(yy)) / m
    auc = float(v10.mean())
    if m < 2 or n < 2:
        return auc, float("nan")
    return auc, float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


def auc_confidence_interval(labels, scores, level: float = 0.95) -> tuple[float, float]:
    """DeLong's normal interval ``AUC -/+ z * sqrt(var)`` for the AUC, clipped to [0, 1].

    DeLong, DeLong & Clarke-Pearson (1988), computed by Sun & Xu's (2014) fast algorithm; it is
    the interval pROC reports and needs no resampling, so it is the same number on every run.
    On a few dozen images an AUC of 0.6 is often indistinguishable from chance; the interval
    says so. It is (NaN, NaN) with a single normal or a single abnormal sample, and it collapses
    to a point when the structural components do not vary (perfect separation, or all scores
    equal): that is the method's known limit on tiny or separable sets, not certainty.
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}.")
    y, s = _check_both(labels, scores)
    auc, var = _delong(y, s)
    if not math.isfinite(var):
        return float("nan"), float("nan")
    half = NormalDist().inv_cdf(0.5 + float(level) / 2.0) * math.sqrt(var)
    return max(0.0, auc - half), min(1.0, auc + half)


def youden_threshold(labels, scores) -> tuple[float, float]:
    """The threshold maximising J = tpr - fpr (paper 000), and J.

    Only real scores are candidates (not the +inf start). Among equal J the highest threshold
    wins, i.e. the one with fewer false positives.
    """
    fpr, tpr, thresholds = roc_curve(labels, scores)
    j = tpr[1:] - fpr[1:]
    best = int(np.argmax(j))
    return float(thresholds[1:][best]), float(j[best])


def equal_sens_spec_threshold(labels, scores) -> float:
    """The threshold where sensitivity is closest to specificity: argmin |tpr - (1 - fpr)| (paper 003).

    HealthyGAN's evaluation code takes ``thresholds[nanargmin(|fnr - fpr|)]`` on scikit-learn's
    curve, which is the same quantity. Ties resolve to the highest threshold.
    """
    fpr, tpr, thresholds = roc_curve(labels, scores)
    gap = np.abs(tpr[1:] - (1.0 - fpr[1:]))
    return float(thresholds[1:][int(np.argmin(gap))])


def confusion_at(labels, scores, threshold: float) -> dict:
    """Counts and rates of the decision ``score >= threshold``; undefined ratios are NaN.

    Works with one class only (e.g. a normals-only check set): the rates needing the absent
    class come out NaN.
    """
    y, s = _check(labels, scores)
    called = s >= float(threshold)
    tp = int(np.sum(called & y))
    fp = int(np.sum(called & ~y))
    fn = int(np.sum(~called & y))
    tn = int(np.sum(~called & ~y))
    return {
        "threshold": float(threshold),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "sensitivity": _ratio(tp, tp + fn),  # recall, true-positive rate
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),  # positive predictive value
        "npv": _ratio(tn, tn + fn),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def evaluate(labels, scores, *, threshold: float | None = None, classes: Sequence[str] | None = None) -> dict:
    """Everything the papers report for one score over one data set.

    Returns ``n_normal``, ``n_abnormal``, ``auc``, ``youden_threshold``, ``youden_j``,
    ``equal_sens_spec_threshold``, ``threshold`` (the one used: given, else Youden's),
    ``confusion`` (:func:`confusion_at` at it) and ``auc_ci`` (``[lo, hi]``, the 95 % DeLong
    interval of :func:`auc_confidence_interval`: an AUC without it says nothing on a small set).
    With ``classes`` (one class name per sample, ``"normal"`` for the negatives, e.g. the
    labels-file ``label`` column) also ``per_class``: for each lesion class, that class's
    abnormal samples against all normals: ``n`` (samples of the class), ``n_normal``, ``auc``,
    ``tp``, ``fn``, ``sensitivity`` at the same threshold, and the AUC's interval as two numbers
    ``auc_ci_low`` and ``auc_ci_high`` (NaN for a class with one sample). They are two numbers,
    not a list, because a class block is carried into a bundle's calibration
    (:meth:`inference.bundle.Calibration.from_evaluation`), whose per-class values are numbers.
    """
    y, s = _check_both(labels, scores)
    auc = roc_auc(y, s)
    youden_t, youden_j = youden_threshold(y, s)
    equal_t = equal_sens_spec_threshold(y, s)
    used = youden_t if threshold is None else float(threshold)
    if not np.isfinite(used):
        raise ValueError(f"threshold must be a finite number, not {threshold!r}.")
    result = {
        "n": int(y.size),
        "n_normal": int((~y).sum()),
        "n_abnormal": int(y.sum()),
        "auc": auc,
        "youden_threshold": youden_t,
        "youden_j": youden_j,
        "equal_sens_spec_threshold": equal_t,
        "threshold": used,
        "confusion": confusion_at(y, s, used),
        "auc_ci": list(auc_confidence_interval(y, s)),
    }
    if classes is not None:
        result["per_class"] = _per_class(y, s, classes, used)
    return result


def _per_class(y: np.ndarray, s: np.ndarray, classes: Sequence[str], threshold: float) -> dict:
    names = np.asarray([str(c).strip().lower() for c in classes], dtype=object)
    if names.shape != y.shape:
        raise ValueError(f"classes must name one class per sample, got {names.size} for {y.size} samples.")
    is_normal = names == NORMAL_CLASS
    mismatch = np.flatnonzero(is_normal == y)  # normal class but abnormal label, or the reverse
    if mismatch.size:
        i = int(mismatch[0])
        raise ValueError(f"sample {i} has class {classes[i]!r} but label {'abnormal' if y[i] else 'normal'}.")
    normal_scores = s[is_normal]
    out = {}
    for name in sorted(set(names[~is_normal])):
        own = s[names == name]
        both = np.r_[normal_scores, own]
        truth = np.r_[np.zeros(normal_scores.size, bool), np.ones(own.size, bool)]
        tp = int(np.sum(own >= threshold))
        lo, hi = auc_confidence_interval(truth, both)
        out[name] = {
            "n": int(own.size),
            "n_normal": int(normal_scores.size),
            "auc": roc_auc(truth, both),
            "tp": tp,
            "fn": int(own.size - tp),
            "sensitivity": _ratio(tp, own.size),
            "auc_ci_low": lo,
            "auc_ci_high": hi,
        }
    return out


# ---------------------------------------------------------------------------------------------
# maps: focal score and localisation against lesion boxes


def _check_map(values, breast_mask) -> tuple[np.ndarray, np.ndarray]:
    """The map as float64 and the mask as bool, both 2-D of one shape, the map finite in the breast."""
    v = np.asarray(values, dtype=np.float64)
    mask = np.asarray(breast_mask)
    if v.ndim != 2:
        raise ValueError(f"the map must be a 2-D array, got shape {v.shape}.")
    if mask.shape != v.shape:
        raise ValueError(f"the breast mask must have the map's shape {v.shape}, got {mask.shape}.")
    mask = mask.astype(bool, copy=False)
    bad = int(np.count_nonzero(~np.isfinite(v[mask])))
    if bad:
        raise ValueError(f"the map has {bad} non-finite values inside the breast.")
    return v, mask


def _box_union(shape: tuple[int, int], boxes) -> np.ndarray:
    """Boolean mask of the union of boxes (x0, y0, x1, y1), rounded outward and clipped to ``shape``.

    Rounding outward keeps a lesion's edge pixels inside its box when the box was scaled from
    the original image to the map's grid; clipping lets a box touch the image border.
    """
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim == 1 and b.size == 4:
        b = b[None, :]  # one box
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be (x0, y0, x1, y1) rows, got an array of shape {b.shape}.")
    union = np.zeros(shape, dtype=bool)
    h, w = shape
    for i, (x0, y0, x1, y1) in enumerate(b):
        if not np.all(np.isfinite((x0, y0, x1, y1))):
            raise ValueError(f"box {i} has a non-finite coordinate: {tuple(float(c) for c in (x0, y0, x1, y1))}.")
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box {i} is empty: x1 must exceed x0 and y1 y0, got "
                             f"{tuple(float(c) for c in (x0, y0, x1, y1))}.")
        r0, r1 = max(0, math.floor(y0)), min(h, math.ceil(y1))
        c0, c1 = max(0, math.floor(x0)), min(w, math.ceil(x1))
        if r1 > r0 and c1 > c0:
            union[r0:r1, c0:c1] = True
    return union


def _top(values: np.ndarray, top_fraction: float) -> tuple[int, float, np.ndarray, np.ndarray, int]:
    """The top ``top_fraction`` of ``values`` (1-D, not empty): k, the cut value, the pixels above
    it, the pixels at it, and how many of the k places the tied pixels share."""
    if not 0.0 < float(top_fraction) <= 1.0:
        raise ValueError(f"top_fraction must be in (0, 1], not {top_fraction!r}.")
    n = values.size
    # round() first so that 0.01 * 700 = 7.000000000000001 is 7 pixels, not 8
    k = min(n, max(1, math.ceil(round(float(top_fraction) * n, 6))))
    cut = float(np.partition(values, n - k)[n - k])  # the k-th largest value
    above = values > cut
    tied = values == cut
    return k, cut, above, tied, k - int(np.count_nonzero(above))


def focal_score(difference_map, breast_mask, top_fraction: float = 0.01) -> float:
    """Mean of the highest ``top_fraction`` of the map's breast pixels (at least one pixel).

    A small lesion changes a few hundred of a million breast pixels, which the papers' whole-
    breast mean barely registers; the mean of the hottest 1 % follows the strongest focal
    change, so every evaluation reports it next to the paper's score.
    """
    v, mask = _check_map(difference_map, breast_mask)
    inside = v[mask]
    if inside.size == 0:
        raise ValueError("the breast mask is empty, so there is no breast pixel to score.")
    k, cut, above, _, shared = _top(inside, top_fraction)
    return float((inside[above].sum() + shared * cut) / k)


def box_ratio(values, breast_mask, boxes) -> float:
    """Mean of the map over breast pixels inside the boxes / mean over breast pixels outside them.

    Paper 002's Table 2 localisation ratio. On its own it proves little (a map that is merely
    brighter where lesions tend to sit scores above 1 too), so the caller also lays the same
    boxes on normal images of the same view and compares with :func:`paired_test`. NaN when the
    boxes cover no breast pixel or all of them, or when the outside mean is 0.
    """
    v, mask = _check_map(values, breast_mask)
    union = _box_union(v.shape, boxes)
    inside, outside = v[mask & union], v[mask & ~union]
    if inside.size == 0 or outside.size == 0:
        return float("nan")
    return _ratio(inside.mean(), outside.mean())


def hit_rate(values, breast_mask, boxes, top_fraction: float = 0.01) -> tuple[float, float]:
    """(hit, chance): the share of the map's top ``top_fraction`` breast pixels inside the boxes,
    and the boxes' share of the breast.

    A map without signal puts its hottest pixels inside the boxes at the chance rate, so hit
    against chance tells "no signal" from noise on a handful of images, sooner than an AUC.
    Pixels tied with the cut count by the share of them inside the boxes (see the module notes).
    """
    v, mask = _check_map(values, breast_mask)
    inside = v[mask]
    if inside.size == 0:
        raise ValueError("the breast mask is empty, so there is no breast pixel to rank.")
    in_box = _box_union(v.shape, boxes)[mask]
    k, _, above, tied, shared = _top(inside, top_fraction)
    hits = np.count_nonzero(above & in_box) + shared * np.count_nonzero(tied & in_box) / np.count_nonzero(tied)
    return float(hits / k), float(np.count_nonzero(in_box) / inside.size)


# ---------------------------------------------------------------------------------------------
# paired comparison


def paired_test(a, b) -> dict:
    """Two-sided Wilcoxon signed-rank test of paired values ``a`` against ``b``.

    For localisation: ``a[i]`` is lesion i's :func:`box_ratio`, ``b[i]`` the same box's ratio on
    a normal image of the same view (the null), so only a map that follows the lesions, not the
    places lesions tend to be, differs. Pairs where either value is NaN (or infinite) are left
    out, as a ratio is NaN when a box misses the breast. Returns ``n`` (pairs kept), ``median_a``,
    ``median_b``, ``median_of_differences`` (median of a - b), and scipy's ``statistic`` and
    ``p_value`` (``scipy.stats.wilcoxon`` with its defaults: zero differences are dropped, the
    exact distribution for small n); with no pair left everything but ``n = 0`` is NaN. All
    differences zero gives statistic 0 and p 1 (no evidence), as scipy does, without its warning.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"a and b must be 1-D sequences of the same length, got shapes {x.shape} and {y.shape}.")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    nan = float("nan")
    out = {"n": int(x.size), "median_a": nan, "median_b": nan, "median_of_differences": nan,
           "statistic": nan, "p_value": nan}
    if x.size < 1:
        return out
    d = x - y
    out.update(median_a=float(np.median(x)), median_b=float(np.median(y)), median_of_differences=float(np.median(d)))
    if not np.any(d):
        out.update(statistic=0.0, p_value=1.0)
        return out
    from scipy.stats import (
        wilcoxon,  # lazily: importing scipy.stats costs a noticeable part of a second
    )

    result = wilcoxon(x, y, alternative="two-sided")
    out.update(statistic=float(result.statistic), p_value=float(result.pvalue))
    return out


# ---------------------------------------------------------------------------------------------
# nulls that mean something: paired AUC comparison, the random-box null, the strict object check


def paired_auc_test(labels, scores_a, scores_b, level: float = 0.95) -> dict:
    """DeLong's paired comparison of two scores' AUCs on the same samples (a method vs its baseline).

    The two AUCs are correlated (same images), so the variance of their difference is
    var(A) + var(B) - 2 cov(A, B), all three from DeLong's structural components (Sun & Xu's
    midrank algorithm, as in :func:`auc_confidence_interval`); the p value is two-sided from the
    normal approximation, as pROC's ``roc.test(method = "delong")`` reports it. Returns ``auc_a``,
    ``auc_b``, ``difference`` (a - b), its interval ``difference_ci`` at ``level`` and ``p_value``;
    the interval and p are NaN with a single normal or abnormal sample, p is 1 when the difference
    and its variance are both zero (identical rankings).
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}.")
    y, a = _check_both(labels, scores_a)
    _, b = _check_both(labels, scores_b)
    comps = []
    for s in (a, b):
        x, yy = s[y], s[~y]
        m, n = x.size, yy.size
        t_z = _midranks(np.r_[x, yy])
        comps.append(((t_z[:m] - _midranks(x)) / n, 1.0 - (t_z[m:] - _midranks(yy)) / m))
    (v10a, v01a), (v10b, v01b) = comps
    auc_a, auc_b = float(v10a.mean()), float(v10b.mean())
    diff = auc_a - auc_b
    nan = float("nan")
    out = {"auc_a": auc_a, "auc_b": auc_b, "difference": diff, "difference_ci": [nan, nan], "p_value": nan}
    m, n = v10a.size, v01a.size
    if m < 2 or n < 2:
        return out
    s10 = np.cov(np.vstack([v10a, v10b]), ddof=1)
    s01 = np.cov(np.vstack([v01a, v01b]), ddof=1)
    var = float((s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n)
    if var <= 1e-15:
        out.update(difference_ci=[diff, diff], p_value=1.0 if abs(diff) < 1e-12 else 0.0)
        return out
    sd = math.sqrt(var)
    z = NormalDist().inv_cdf(0.5 + float(level) / 2.0)
    out.update(difference_ci=[diff - z * sd, diff + z * sd], p_value=float(2 * NormalDist().cdf(-abs(diff) / sd)))
    return out


def compare_with_baseline(labels, method_scores, baseline_scores, method_ratios=None, baseline_ratios=None) -> dict:
    """Does the method beat its model-free baseline on the same images and boxes?

    ``auc``: :func:`paired_auc_test` of the two image scores (a = method, b = baseline);
    ``ratios`` (when both ratio lists are given, one per lesion box, the same boxes):
    :func:`paired_test` of the method's box ratios against the baseline's (Wilcoxon).
    """
    out = {"auc": paired_auc_test(labels, method_scores, baseline_scores)}
    if method_ratios is not None and baseline_ratios is not None:
        out["ratios"] = paired_test(method_ratios, baseline_ratios)
    return out


def footprint_percentile(values, breast_mask, footprint, *, exclude=None, n: int | None = None, seed: int = 0,
                         min_inside: float = 0.9) -> dict:
    """Where the map's mean on ``footprint`` ranks among the same footprint placed elsewhere in the breast.

    ``footprint`` is a boolean mask of the map's shape (a lesion box, a foreign object's pixels).
    Every shift of it that keeps at least ``min_inside`` of its pixels on breast tissue and
    touches no pixel of ``exclude`` (default: the footprint itself; pass the union of all lesion
    boxes of the image) is a placement of the null; each placement's statistic is the mean of the
    map over its breast pixels, like the footprint's own. ``n=None`` takes every placement (the
    exact null of this breast); ``n`` draws that many at random (seeded) instead. Returns
    ``percentile`` (the share of placements below the footprint's mean, ties 0.5: 0.5 is chance,
    1 the hottest spot of the breast), ``value`` (the footprint's mean), ``null_median`` and
    ``placements``; the percentile is NaN when no placement fits.
    """
    from scipy.signal import fftconvolve

    v, mask = _check_map(values, breast_mask)
    fp = np.asarray(footprint, dtype=bool)
    if fp.shape != v.shape:
        raise ValueError(f"the footprint must have the map's shape {v.shape}, got {fp.shape}.")
    own = fp & mask
    nan = float("nan")
    if not own.any():
        return {"percentile": nan, "value": nan, "null_median": nan, "placements": 0}
    value = float(v[own].mean())
    rows, cols = np.nonzero(fp)
    r0, c0 = rows.min(), cols.min()
    kernel = fp[r0:rows.max() + 1, c0:cols.max() + 1].astype(np.float64)
    kh, kw = kernel.shape
    area = float(kernel.sum())
    excl = fp if exclude is None else (np.asarray(exclude, dtype=bool) | fp)

    def under(field):  # sum of ``field`` under the footprint for every top-left corner (valid shifts)
        return fftconvolve(field.astype(np.float64), kernel[::-1, ::-1], mode="valid")

    breast_count = np.rint(under(mask))  # counts: integers up to the FFT's rounding
    sums = under(np.where(mask, v, 0.0))
    touching = np.rint(under(excl))
    ok = (breast_count >= float(min_inside) * area - 0.5) & (touching < 0.5) & (breast_count > 0.5)
    idx = np.flatnonzero(ok)
    if n is not None and idx.size > int(n):
        idx = np.random.default_rng(seed).choice(idx, size=int(n), replace=False)
    if idx.size == 0:
        return {"percentile": nan, "value": value, "null_median": nan, "placements": 0}
    null = sums.ravel()[idx] / breast_count.ravel()[idx]
    tol = 1e-9 * max(1.0, abs(value))  # FFT sums carry rounding error: equal within it counts as a tie
    below = np.count_nonzero(null < value - tol)
    tied = np.count_nonzero(np.abs(null - value) <= tol)
    return {"percentile": float((below + 0.5 * tied) / idx.size), "value": value,
            "null_median": float(np.median(null)), "placements": int(idx.size)}


def box_percentile(values, breast_mask, box, *, other_boxes=(), n: int | None = None, seed: int = 0,
                   min_inside: float = 0.9) -> dict:
    """The random-box null in the same breast: :func:`footprint_percentile` of one lesion box.

    The box (x0, y0, x1, y1), rounded outward as in :func:`box_ratio`, is laid at every position
    (or ``n`` random ones) on tissue of the same breast that overlaps neither it nor
    ``other_boxes`` (the image's other lesions). A map that merely follows dense tissue or the
    heavy tail of its values ranks a lesion box near 0.5; one that finds lesions ranks it near 1.
    """
    v = np.asarray(values)
    own = _box_union(v.shape, box)
    others = _box_union(v.shape, other_boxes) if len(other_boxes) else None
    return footprint_percentile(values, breast_mask, own, exclude=others, n=n, seed=seed, min_inside=min_inside)


def percentile_test(percentiles, classes: Sequence[str] | None = None) -> dict:
    """Across images: are the boxes' percentiles above chance (0.5)? Overall and per class.

    A two-sided one-sample Wilcoxon signed-rank test of ``percentile - 0.5`` (NaN percentiles,
    boxes with no placement, are left out). Returns ``n``, ``median``, ``mean``, ``p_value`` and
    ``share_above_0.5``; with ``classes`` (one per percentile) also ``per_class`` with the same
    fields per lesion class.
    """
    p = np.asarray(percentiles, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"percentiles must be a 1-D sequence, got shape {p.shape}.")
    if classes is not None and len(classes) != p.size:
        raise ValueError(f"classes must name one class per percentile, got {len(classes)} for {p.size}.")

    def block(x) -> dict:
        x = x[np.isfinite(x)]
        nan = float("nan")
        if x.size == 0:
            return {"n": 0, "median": nan, "mean": nan, "p_value": nan, "share_above_0.5": nan}
        test = paired_test(x, np.full(x.size, 0.5))
        return {"n": int(x.size), "median": float(np.median(x)), "mean": float(x.mean()),
                "p_value": test["p_value"], "share_above_0.5": float(np.mean(x > 0.5))}

    out = block(p)
    if classes is not None:
        names = np.asarray([str(c) for c in classes], dtype=object)
        out["per_class"] = {c: block(p[names == c]) for c in sorted(set(names))}
    return out


def foreign_object_verdict(ratios, twin_ratios, percentiles, scores: dict | None = None, *, factor: float = 2.0,
                           alpha: float = 0.05) -> dict:
    """The strict plumbing check: a foreign object must be *hot*, not merely less cold than on its twin.

    Per object image: ``ratios[i]`` = mean map on the object's footprint / mean on the rest of
    the breast, ``twin_ratios[i]`` the same pixels on the object-free twin's map, ``percentiles[i]``
    the footprint's :func:`footprint_percentile` among same-size footprints in the same breast.
    ``scores`` maps a score name to ``(with_object, twin)`` image scores. The map lights up when
    the object is hotter than the rest of the breast (median ratio > 1 and percentiles above 0.5,
    :func:`percentile_test` p < ``alpha``) AND at least ``factor`` x its twin (median ratio >=
    factor x the twin's median, paired Wilcoxon p < ``alpha``). A score is raised when its paired
    median difference is > 0 with p < ``alpha``. ``passed`` = lights up and some score raised.
    An object at 0.8x the breast around it (1.6x over a twin at 0.4x) does not light up.
    """
    pair = paired_test(ratios, twin_ratios)
    spot = percentile_test(percentiles)
    hotter = bool(np.isfinite(pair["median_a"]) and pair["median_a"] > 1.0 and spot["median"] > 0.5
                  and np.isfinite(spot["p_value"]) and spot["p_value"] < alpha)
    above_twin = bool(np.isfinite(pair["median_a"]) and pair["median_a"] >= factor * pair["median_b"]
                      and np.isfinite(pair["p_value"]) and pair["p_value"] < alpha)
    raised = {}
    for name, (with_object, twin) in (scores or {}).items():
        test = paired_test(with_object, twin)
        raised[name] = {**test, "raised": bool(test["median_of_differences"] > 0 and test["p_value"] < alpha)}
    lights_up = hotter and above_twin
    return {"n": pair["n"], "ratio_median": pair["median_a"], "twin_ratio_median": pair["median_b"],
            "ratio_vs_twin_p_value": pair["p_value"], "percentile_median": spot["median"],
            "percentile_p_value": spot["p_value"], "hotter_than_breast": hotter, "above_twin": above_twin,
            "lights_up": lights_up, "scores": raised,
            "passed": bool(lights_up and any(r["raised"] for r in raised.values()))}


def median_box_side(boxes) -> float:
    """The median side (square root of the area) of lesion boxes, one list of (x0, y0, x1, y1) per image.

    The lesion scale of a data set in its pixel grid: it sizes the local-contrast baseline and the
    channelized Hotelling observer's channels.
    """
    sides = [math.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0)) for bs in boxes for (x0, y0, x1, y1) in bs]
    if not sides:
        raise ValueError("there is no lesion box to take the lesion scale from.")
    return float(np.median(sides))


def random_box_null(maps, masks, labels: Sequence[str], boxes, *, n: int | None = None, seed: int = 0) -> dict:
    """The random-box null of a whole set: each lesion image's first box ranked in its own breast.

    ``maps`` (N, H, W) in model space (NaN where the method has no data), ``masks`` the breast
    masks, ``labels`` the image classes (``"normal"`` images are skipped) and ``boxes`` the lesion
    boxes per image. Each lesion image contributes :func:`box_percentile` of its first box (its
    other boxes excluded from the placements) on its reached breast pixels; the result is
    :func:`percentile_test` of those percentiles, overall and per class, plus ``percentiles``.
    """
    out, classes = [], []
    for m, b, label, bs in zip(maps, masks, labels, boxes):
        if label == NORMAL_CLASS or not bs:
            continue
        m = np.asarray(m, dtype=np.float64)
        reached = np.asarray(b, dtype=bool) & np.isfinite(m)
        out.append(box_percentile(np.nan_to_num(m), reached, bs[0], other_boxes=bs[1:], n=n, seed=seed)["percentile"])
        classes.append(str(label))
    result = percentile_test(out, classes)
    result["percentiles"] = out
    return result
