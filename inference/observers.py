"""Model observers: a channelized Hotelling observer (CHO) with Laguerre-Gauss channels.

The model observer of virtual clinical trials of breast imaging (the FDA's VICTRE study; Barrett &
Myers, *Foundations of Image Science*, ch. 13-14; Gallas & Barrett 2003): the task is "signal
known exactly in location": is there a lesion at this place? A region of interest (ROI) of
``size`` x ``size`` pixels centred on the place is reduced to ``C`` channel outputs
``v = U^T g`` by rotationally symmetric Laguerre-Gauss channels

    u_j(r) = sqrt(2) / a * exp(-pi r^2 / a^2) * L_j(2 pi r^2 / a^2),   j = 0 .. C-1,

(``a`` the channel width in pixels, ``L_j`` the Laguerre polynomials; orthonormal in the
continuum), and the Hotelling template on the channel outputs is ``w = K^-1 dS``, with ``dS`` the
mean signal-present minus signal-absent channel output and ``K`` the mean of the two classes'
channel covariances, both estimated on a training set. Its test statistic is ``t = w^T v``. For
Gaussian channel outputs the observer's detectability is ``d' = sqrt(dS^T K^-1 dS)`` and its AUC
``Phi(d' / sqrt 2)`` (:func:`hotelling_detectability`, :func:`auc_from_detectability`); on held-
out images the AUC is measured from the statistics (:func:`cho_auc`).

On this project's data the ROIs come from prepared (model-space) images, the images a method sees:
signal-present ROIs are centred on the lesion boxes, signal-absent ones on lesion positions laid
on normal images of the same view whose breast holds them (:func:`known_location_rois`), so the
two classes see the same places of the breast. numpy only (no torch, no Qt).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np


def laguerre_gauss_channels(size: int, width: float, n_channels: int = 6,
                            centre: tuple[float, float] | None = None) -> np.ndarray:
    """``n_channels`` Laguerre-Gauss channels of width ``width`` (pixels) on a ``size`` x ``size`` grid.

    Returns an array ``(n_channels, size, size)``; pixel ``(i, j)`` is sampled at its centre and
    the channels are centred at ``centre`` (row, col), by default the grid's centre. Sampled on a
    grid large against ``width`` they are orthonormal (sum of u_j u_k over pixels = delta_jk).
    """
    size, n_channels, width = int(size), int(n_channels), float(width)
    if size < 3 or n_channels < 1 or not (width > 0 and math.isfinite(width)):
        raise ValueError(f"Laguerre-Gauss channels need a size of at least 3, one channel or more and a width > 0; "
                         f"got size {size}, {n_channels} channels, width {width!r}.")
    cy, cx = ((size - 1) / 2.0, (size - 1) / 2.0) if centre is None else centre
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    r2 = (yy - cy) ** 2 + (xx - cx) ** 2
    x = 2.0 * math.pi * r2 / width**2
    gauss = math.sqrt(2.0) / width * np.exp(-x / 2.0)
    out = np.empty((n_channels, size, size))
    prev, cur = np.zeros_like(x), np.ones_like(x)  # L_{-1} (unused), L_0
    for j in range(n_channels):
        if j == 1:
            prev, cur = cur, 1.0 - x
        elif j > 1:
            prev, cur = cur, ((2 * j - 1 - x) * cur - (j - 1) * prev) / j
        out[j] = gauss * cur
    return out


def hotelling_detectability(delta_mean, covariance) -> float:
    """``d' = sqrt(dS^T K^-1 dS)``: the Hotelling observer's detectability (exact for Gaussian data)."""
    d = np.asarray(delta_mean, dtype=np.float64).ravel()
    k = np.asarray(covariance, dtype=np.float64)
    if k.shape != (d.size, d.size):
        raise ValueError(f"the covariance must be {d.size} x {d.size}, got {k.shape}.")
    return float(math.sqrt(max(float(d @ np.linalg.solve(k, d)), 0.0)))


def auc_from_detectability(d_prime: float) -> float:
    """``Phi(d' / sqrt 2)``: the AUC of an observer whose statistic is Gaussian with detectability ``d'``."""
    return float(NormalDist().cdf(float(d_prime) / math.sqrt(2.0)))


def detectability_from_auc(auc: float) -> float:
    """The inverse of :func:`auc_from_detectability`: ``d_A = sqrt 2 * Phi^-1(AUC)``."""
    a = min(max(float(auc), 1e-12), 1 - 1e-12)
    return float(math.sqrt(2.0) * NormalDist().inv_cdf(a))


@dataclass
class HotellingObserver:
    """A trained channelized Hotelling observer: ``score(rois) = w^T U^T g``."""

    channels: np.ndarray  # (C, size, size)
    template: np.ndarray  # (C,) w = K^-1 dS
    delta_mean: np.ndarray  # (C,) mean present - mean absent channel output (training set)
    covariance: np.ndarray  # (C, C) mean of the two classes' covariances (training set)
    n_present: int
    n_absent: int

    @property
    def size(self) -> int:
        return int(self.channels.shape[-1])

    @property
    def training_detectability(self) -> float:
        """d' on the training set (optimistic: the template was fitted there)."""
        return hotelling_detectability(self.delta_mean, self.covariance)

    def channel_outputs(self, rois) -> np.ndarray:
        g = _check_rois(rois, self.size)
        return g.reshape(len(g), -1) @ self.channels.reshape(len(self.channels), -1).T

    def score(self, rois) -> np.ndarray:
        """The test statistic of each ROI (higher = more likely signal-present)."""
        return self.channel_outputs(rois) @ self.template


def _check_rois(rois, size: int | None = None) -> np.ndarray:
    g = np.asarray(rois, dtype=np.float64)
    if g.ndim != 3 or g.shape[1] != g.shape[2] or (size is not None and g.shape[1] != size):
        want = f"{size} x {size}" if size is not None else "square"
        raise ValueError(f"ROIs must be an array (N, S, S) of {want} regions, got shape {g.shape}.")
    if g.shape[0] == 0:
        raise ValueError("there are no ROIs.")
    if not np.all(np.isfinite(g)):
        raise ValueError("the ROIs hold non-finite values.")
    return g


def train_cho(present, absent, channels, *, ridge: float = 1e-6) -> HotellingObserver:
    """Fit the Hotelling template on signal-present and signal-absent training ROIs.

    ``channels`` is a :func:`laguerre_gauss_channels` array (or any ``(C, S, S)`` channel set).
    ``ridge`` adds ``ridge * trace(K) / C`` to the diagonal, so a handful of training ROIs or a
    channel that sees nothing varying still gives a template (it changes nothing measurable
    otherwise).
    """
    u = np.asarray(channels, dtype=np.float64)
    if u.ndim != 3:
        raise ValueError(f"channels must be an array (C, S, S), got shape {u.shape}.")
    gp, ga = _check_rois(present, u.shape[-1]), _check_rois(absent, u.shape[-1])
    if len(gp) < 2 or len(ga) < 2:
        raise ValueError(f"the CHO needs at least 2 signal-present and 2 signal-absent training ROIs, got "
                         f"{len(gp)} and {len(ga)}.")
    flat = u.reshape(len(u), -1).T
    vp, va = gp.reshape(len(gp), -1) @ flat, ga.reshape(len(ga), -1) @ flat
    delta = vp.mean(0) - va.mean(0)
    k = 0.5 * (np.atleast_2d(np.cov(vp, rowvar=False)) + np.atleast_2d(np.cov(va, rowvar=False)))
    k = k + np.eye(len(k)) * float(ridge) * max(float(np.trace(k)) / len(k), 1e-300)
    w = np.linalg.solve(k, delta)
    return HotellingObserver(u, w, delta, k, len(gp), len(ga))


def cho_auc(observer: HotellingObserver, present, absent) -> dict:
    """The observer's AUC on held-out ROIs, with DeLong's 95 % interval and ``d_A`` from it.

    Also ``d_prime``: the separation of the statistics, (mean t+ - mean t-) / sqrt of their mean
    variance, which equals ``d_A`` for Gaussian statistics.
    """
    from inference.metrics import auc_confidence_interval, roc_auc

    tp, ta = observer.score(present), observer.score(absent)
    y = np.r_[np.ones(tp.size, bool), np.zeros(ta.size, bool)]
    s = np.r_[tp, ta]
    auc = roc_auc(y, s)
    pooled = math.sqrt(max(0.5 * (tp.var(ddof=1) + ta.var(ddof=1)), 1e-300)) if min(tp.size, ta.size) > 1 else \
        float("nan")
    return {"auc": auc, "auc_ci": list(auc_confidence_interval(y, s)), "d_a": detectability_from_auc(auc),
            "d_prime": float((tp.mean() - ta.mean()) / pooled), "n_present": int(tp.size), "n_absent": int(ta.size)}


# ---------------------------------------------------------------------------------------------
# ROIs at known lesion locations on prepared images


def roi_at(image: np.ndarray, centre: tuple[float, float], size: int) -> np.ndarray:
    """The ``size`` x ``size`` region of ``image`` centred on ``centre`` = (row, col), pixel coordinates
    with pixel ``i`` spanning [i, i + 1); parts outside the image are filled with the nearest edge."""
    size = int(size)
    r0 = int(round(centre[0] - size / 2.0))
    c0 = int(round(centre[1] - size / 2.0))
    rows = np.clip(np.arange(r0, r0 + size), 0, image.shape[0] - 1)
    cols = np.clip(np.arange(c0, c0 + size), 0, image.shape[1] - 1)
    return np.asarray(image, dtype=np.float64)[np.ix_(rows, cols)]


def _box_centre(box) -> tuple[float, float]:
    x0, y0, x1, y1 = box
    return (0.5 * (y0 + y1), 0.5 * (x0 + x1))  # (row, col)


def known_location_rois(images, masks, labels: Sequence[str], boxes, views: Sequence[str] | None = None, *,
                        size: int, seed: int = 0, min_inside: float = 0.75):
    """Signal-present and signal-absent ROIs of one set of prepared images, one ROI per image.

    A lesion image gives the ROI centred on its (first) lesion box. A normal image gives the ROI
    centred on a lesion position of the same set and view (another image's box centre), drawn at
    random (seeded) among those whose ROI has at least ``min_inside`` of its pixels on this
    breast, so both classes are sampled at the places lesions occupy; a normal breast that holds
    none of them is left out. Returns ``(present, absent, present_index, absent_index, classes)``:
    the ROI arrays, the image indices they came from and the lesion class of each present ROI.
    """
    n = len(images)
    views = list(views) if views is not None else [""] * n
    rng = np.random.default_rng(seed)
    present, absent, p_idx, a_idx, classes = [], [], [], [], []
    centres: dict[str, list[tuple[float, float]]] = {}
    for i in range(n):
        if labels[i] != "normal" and boxes[i]:
            c = _box_centre(boxes[i][0])
            present.append(roi_at(images[i], c, size))
            p_idx.append(i)
            classes.append(labels[i])
            centres.setdefault(views[i], []).append(c)
    pooled = [c for cs in centres.values() for c in cs]
    for i in range(n):
        if labels[i] != "normal":
            continue
        pool = centres.get(views[i]) or pooled
        if not pool:
            break
        order = rng.permutation(len(pool))
        mask = np.asarray(masks[i], dtype=np.float64)
        for j in order:
            if roi_at(mask, pool[j], size).mean() >= min_inside:
                absent.append(roi_at(images[i], pool[j], size))
                a_idx.append(i)
                break
    empty = np.zeros((0, size, size))
    return (np.stack(present) if present else empty, np.stack(absent) if absent else empty, p_idx, a_idx, classes)


def twin_rois(images, twin_images, labels: Sequence[str], boxes, *, size: int):
    """Signal-present ROIs on the lesion images and signal-absent ROIs at the same places of their
    lesion-free twins (the same phantom seed written without the lesion).

    Background known statistically at exactly the lesion's place: the two classes differ by the
    lesion and nothing else, so at zero lesion contrast the observer is at chance by construction.
    (Absent ROIs from other breasts see another tissue mix than the places lesions are drawn at:
    on this phantom that alone gave the CHO an AUC of 0.67 with no lesion at all.) Returns
    ``(present, absent, classes)``.
    """
    present, absent, classes = [], [], []
    for i in range(len(images)):
        if labels[i] != "normal" and boxes[i]:
            c = _box_centre(boxes[i][0])
            present.append(roi_at(images[i], c, size))
            absent.append(roi_at(twin_images[i], c, size))
            classes.append(labels[i])
    empty = np.zeros((0, size, size))
    return (np.stack(present) if present else empty, np.stack(absent) if absent else empty, classes)


def cho_on_sets(train, test, *, size: int | None = None, width: float | None = None, n_channels: int = 6,
                seed: int = 0, train_twins=None, test_twins=None) -> dict:
    """Train a CHO on one set of prepared images and measure its AUC on another.

    ``train`` and ``test`` carry ``images``, ``masks``, ``labels``, ``boxes`` and ``views`` (as
    ``training.datasets.PreparedImages`` does). ``width`` defaults to the median lesion-box side of
    the training set (:func:`inference.metrics.median_box_side`), ``size`` to the even number nearest
    ``4 * width`` (at least 16, at most half the image). Returns :func:`cho_auc`'s numbers plus
    ``per_class`` (each lesion class's present ROIs against all absent ones: ``n``, ``auc``) and the
    settings used. With ``train_twins`` / ``test_twins`` (the same images written without their
    lesions, in the same order) the signal-absent ROIs are the lesions' places on the twins
    (:func:`twin_rois`); without, places laid on normal images (:func:`known_location_rois`).
    """
    from inference.metrics import median_box_side, roc_auc

    if width is None:
        width = median_box_side(train.boxes)
    if size is None:  # at most half the image, so signal-absent ROIs still fit in normal breasts
        size = int(min(max(16, 2 * round(2 * width)), min(train.images.shape[1:]) // 2))
    channels = laguerre_gauss_channels(size, width, n_channels)
    if train_twins is not None and test_twins is not None:
        tp, ta, _ = twin_rois(train.images, train_twins.images, train.labels, train.boxes, size=size)
        vp, va, classes = twin_rois(test.images, test_twins.images, test.labels, test.boxes, size=size)
    else:
        tp, ta, _, _, _ = known_location_rois(train.images, train.masks, train.labels, train.boxes, train.views,
                                              size=size, seed=seed)
        vp, va, _, _, classes = known_location_rois(test.images, test.masks, test.labels, test.boxes, test.views,
                                                    size=size, seed=seed + 1)
    observer = train_cho(tp, ta, channels)
    if len(vp) < 2 or len(va) < 2:
        raise ValueError(f"the CHO needs at least 2 lesion and 2 normal test images whose breast holds a "
                         f"{size} px ROI at a lesion place; got {len(vp)} and {len(va)}.")
    out = cho_auc(observer, vp, va)
    scores_p, scores_a = observer.score(vp), observer.score(va)
    per_class = {}
    for cls in sorted(set(classes)):
        own = scores_p[np.array([c == cls for c in classes])]
        y = np.r_[np.ones(own.size, bool), np.zeros(scores_a.size, bool)]
        per_class[cls] = {"n": int(own.size), "auc": roc_auc(y, np.r_[own, scores_a])}
    out.update(per_class=per_class, roi_size=size, channel_width=float(width), channels=n_channels,
               absent_rois="lesion-free twins" if test_twins is not None else "lesion places on normal breasts",
               n_train_present=observer.n_present, n_train_absent=observer.n_absent,
               training_detectability=observer.training_detectability)
    return out
