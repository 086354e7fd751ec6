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
  made-up 0 or 1.
"""
from __future__ import annotations

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
    ``equal_sens_spec_threshold``, ``threshold`` (the one used: given, else Youden's) and
    ``confusion`` (:func:`confusion_at` at it). With ``classes`` (one class name per sample,
    ``"normal"`` for the negatives, e.g. the labels-file ``label`` column) also ``per_class``:
    for each lesion class, that class's abnormal samples against all normals: ``n`` (samples of
    the class), ``n_normal``, ``auc``, and ``tp``, ``fn``, ``sensitivity`` at the same threshold.
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
        out[name] = {
            "n": int(own.size),
            "n_normal": int(normal_scores.size),
            "auc": roc_auc(truth, both),
            "tp": tp,
            "fn": int(own.size - tp),
            "sensitivity": _ratio(tp, own.size),
        }
    return out
