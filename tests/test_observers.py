"""The channelized Hotelling observer against its closed form and on known-location ROIs."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage

from inference.observers import (
    auc_from_detectability,
    cho_auc,
    cho_on_sets,
    detectability_from_auc,
    hotelling_detectability,
    known_location_rois,
    laguerre_gauss_channels,
    roi_at,
    train_cho,
)

SIZE = 24


def _blob(amplitude: float, sigma: float = 2.0, size: int = SIZE) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2.0
    return amplitude * np.exp(-(xx**2 + yy**2) / (2 * sigma**2))


def test_laguerre_gauss_channels_are_orthonormal_and_rotationally_symmetric():
    u = laguerre_gauss_channels(96, 10.0, 6)
    gram = u.reshape(6, -1) @ u.reshape(6, -1).T
    np.testing.assert_allclose(gram, np.eye(6), atol=2e-3)
    np.testing.assert_allclose(u, np.rot90(u, axes=(1, 2)), atol=1e-12)
    # u_0 is the Gaussian sqrt(2)/a exp(-pi r^2 / a^2) at the centre
    u1 = laguerre_gauss_channels(11, 4.0, 1)
    assert u1[0, 5, 5] == pytest.approx(math.sqrt(2) / 4.0)
    with pytest.raises(ValueError, match="width > 0"):
        laguerre_gauss_channels(16, 0.0, 3)


def test_cho_auc_matches_the_closed_form_for_gaussian_noise():
    rng = np.random.default_rng(0)
    sigma, amplitude, n = 1.0, 0.4, 1500
    signal = _blob(amplitude)
    u = laguerre_gauss_channels(SIZE, 5.0, 5)
    flat = u.reshape(len(u), -1)
    d_closed = hotelling_detectability(flat @ signal.ravel(), sigma**2 * flat @ flat.T)
    auc_closed = auc_from_detectability(d_closed)
    assert 0.7 < auc_closed < 0.9  # a task neither trivial nor hopeless
    # the CHO never beats the ideal observer of white noise (the matched filter): d <= |s| / sigma
    assert d_closed <= np.linalg.norm(signal) / sigma + 1e-9

    def rois(k, with_signal):
        g = rng.normal(0, sigma, (k, SIZE, SIZE))
        return g + signal if with_signal else g

    observer = train_cho(rois(n, True), rois(n, False), u)
    assert observer.training_detectability == pytest.approx(d_closed, rel=0.1)
    out = cho_auc(observer, rois(n, True), rois(n, False))
    assert out["auc"] == pytest.approx(auc_closed, abs=0.025)
    assert out["auc_ci"][0] < auc_closed < out["auc_ci"][1]
    assert out["d_prime"] == pytest.approx(d_closed, rel=0.1)
    assert detectability_from_auc(auc_from_detectability(1.3)) == pytest.approx(1.3)


def test_cho_is_at_chance_without_signal_and_near_one_for_a_strong_signal():
    rng = np.random.default_rng(1)
    u = laguerre_gauss_channels(SIZE, 5.0, 6)

    def rois(k, amplitude):
        return ndimage.gaussian_filter(rng.normal(0, 1, (k, SIZE, SIZE)), (0, 1.5, 1.5)) + _blob(amplitude)

    none = cho_auc(train_cho(rois(300, 0.0), rois(300, 0.0), u), rois(300, 0.0), rois(300, 0.0))
    assert none["auc_ci"][0] < 0.5 < none["auc_ci"][1] and abs(none["auc"] - 0.5) < 0.06
    strong = cho_auc(train_cho(rois(300, 1.5), rois(300, 0.0), u), rois(300, 1.5), rois(300, 0.0))
    assert strong["auc"] > 0.99


def test_train_cho_refuses_too_few_rois():
    u = laguerre_gauss_channels(SIZE, 5.0, 3)
    with pytest.raises(ValueError, match="at least 2 signal-present"):
        train_cho(np.zeros((1, SIZE, SIZE)), np.zeros((5, SIZE, SIZE)), u)
    with pytest.raises(ValueError, match="ROIs must be an array"):
        train_cho(np.zeros((4, SIZE, SIZE + 1)), np.zeros((5, SIZE, SIZE)), u)


def test_roi_at_is_centred_and_pads_with_the_edge():
    image = np.arange(100.0).reshape(10, 10)
    roi = roi_at(image, (5.0, 5.0), 4)  # pixels 3..6 in both directions
    np.testing.assert_array_equal(roi, image[3:7, 3:7])
    corner = roi_at(image, (0.0, 0.0), 4)
    assert corner.shape == (4, 4) and corner[0, 0] == image[0, 0]


def _synthetic_set(rng, n: int, amplitude: float):
    """Prepared-image-like sets: a breast disk of smooth texture, half the images with a lesion blob."""
    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    breast = (yy - 32) ** 2 + (xx - 10) ** 2 < 50**2
    images, masks, labels, boxes, views = [], [], [], [], []
    for i in range(n):
        img = 0.4 + 0.05 * ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 2.0)
        if i % 2:
            cy, cx = rng.integers(20, 44), rng.integers(15, 40)
            img = img + amplitude * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.5**2))
            labels.append("mass")
            boxes.append([(cx - 4.0, cy - 4.0, cx + 5.0, cy + 5.0)])
        else:
            labels.append("normal")
            boxes.append([])
        images.append(np.where(breast, img, 0.0))
        masks.append(breast)
        views.append("CC")
    return SimpleNamespace(images=np.stack(images), masks=np.stack(masks), labels=labels, boxes=boxes, views=views)


def test_known_location_rois_sample_normals_at_lesion_places():
    data = _synthetic_set(np.random.default_rng(2), 20, 0.1)
    present, absent, p_idx, a_idx, classes = known_location_rois(data.images, data.masks, data.labels, data.boxes,
                                                                 data.views, size=16)
    assert present.shape == (10, 16, 16) and absent.shape == (10, 16, 16)
    assert all(data.labels[i] == "mass" for i in p_idx) and all(data.labels[i] == "normal" for i in a_idx)
    assert classes == ["mass"] * 10


@pytest.mark.parametrize("amplitude, lo, hi", [(0.0, 0.3, 0.7), (0.08, 0.95, 1.0)])
def test_cho_on_prepared_sets_is_chance_without_lesions_and_high_with_them(amplitude, lo, hi):
    rng = np.random.default_rng(3)
    train, test = _synthetic_set(rng, 160, amplitude), _synthetic_set(rng, 120, amplitude)
    out = cho_on_sets(train, test, n_channels=5)
    assert lo <= out["auc"] <= hi
    if amplitude == 0.0:
        assert out["auc_ci"][0] < 0.5 < out["auc_ci"][1]
    assert out["roi_size"] >= 16 and out["channel_width"] == pytest.approx(9.0)
    assert out["per_class"]["mass"]["n"] == 60
    wide = cho_on_sets(train, test, n_channels=3, width=40.0)  # lesions as large as the image: ROI capped
    assert wide["roi_size"] == 32 and wide["n_absent"] >= 30


def test_twin_rois_keep_the_null_at_chance_where_lesions_sit_in_denser_tissue():
    """Lesions drawn where the tissue is denser: absent ROIs from other breasts differ by the tissue
    alone (the old null read far above chance with no lesion); the lesion-free twins do not."""
    from inference.observers import twin_rois

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:64, 0:64]

    def dense_at_lesions(n):
        data = _synthetic_set(rng, n, 0.0)  # zero lesion contrast: lesion images carry no lesion
        for i, boxes in enumerate(data.boxes):
            if boxes:  # the simulator places lesions in dense tissue: a brighter patch there
                x0, y0, x1, y1 = boxes[0]
                cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
                data.images[i] += 0.05 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 6.0**2)) * data.masks[i]
        return data

    train, test = dense_at_lesions(160), dense_at_lesions(120)
    biased = cho_on_sets(train, test, n_channels=5)
    assert biased["auc"] > 0.7 and biased["absent_rois"] == "lesion places on normal breasts"
    # the twins: the same images written without the lesion (here: no lesion at all, so identical)
    twinned = cho_on_sets(train, test, n_channels=5, train_twins=train, test_twins=test)
    assert twinned["auc"] == pytest.approx(0.5) and twinned["absent_rois"] == "lesion-free twins"
    present, absent, classes = twin_rois(test.images, test.images, test.labels, test.boxes, size=16)
    assert present.shape == absent.shape == (60, 16, 16) and classes == ["mass"] * 60
    lesioned = _synthetic_set(np.random.default_rng(9), 160, 0.08), _synthetic_set(np.random.default_rng(9), 160, 0.0)
    strong = cho_on_sets(lesioned[0], lesioned[0], n_channels=5, train_twins=lesioned[1], test_twins=lesioned[1])
    assert strong["auc"] > 0.95
