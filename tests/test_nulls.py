"""Nulls that mean something: the model-free baselines, the random-box null, the paired AUC test
and the strict foreign-object verdict."""
from __future__ import annotations


import numpy as np
import pytest
from scipy import ndimage

from inference.baselines import (
    biharmonic_box,
    biharmonic_error_map,
    local_contrast_maps,
    local_contrast_residual,
)
from inference.metrics import (
    auc_confidence_interval,
    box_percentile,
    box_ratio,
    compare_with_baseline,
    footprint_percentile,
    foreign_object_verdict,
    median_box_side,
    paired_auc_test,
    percentile_test,
    random_box_null,
    roc_auc,
)


def _breast(size=64):
    yy, xx = np.mgrid[0:size, 0:size]
    return (yy - size / 2) ** 2 + xx**2 < (0.9 * size) ** 2


# ---------------------------------------------------------------------------------------------
# paired AUC comparison


def _delong_brute(y, a, b):
    """DeLong's covariance from the explicit comparison matrices (the textbook formula)."""
    def comps(s):
        x, z = s[y], s[~y]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        return psi.mean(1), psi.mean(0)

    (a10, a01), (b10, b01) = comps(a), comps(b)
    m, n = a10.size, a01.size
    var = (np.var(a10 - b10, ddof=1) / m) + (np.var(a01 - b01, ddof=1) / n)
    return a10.mean() - b10.mean(), var


def test_paired_auc_test_matches_the_explicit_delong_covariance():
    rng = np.random.default_rng(0)
    y = rng.random(80) < 0.4
    a = y * 1.0 + rng.normal(0, 1, 80)
    b = y * 0.3 + 0.5 * a + rng.normal(0, 1, 80)
    out = paired_auc_test(y, a, b)
    diff, var = _delong_brute(y, a, b)
    assert out["difference"] == pytest.approx(diff) and out["auc_a"] == pytest.approx(roc_auc(y, a))
    half = (out["difference_ci"][1] - out["difference_ci"][0]) / 2
    assert half == pytest.approx(1.959964 * np.sqrt(var), rel=1e-5)
    same = paired_auc_test(y, a, a)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    # a strong score against pure noise: the difference is significant
    strong = paired_auc_test(y, y * 3.0 + rng.normal(0, 1, 80), rng.normal(0, 1, 80))
    assert strong["difference"] > 0.3 and strong["p_value"] < 1e-3
    both = compare_with_baseline(y, a, b, [1.2, 1.5, 1.1], [1.0, 1.0, 1.0])
    assert both["auc"] == out and both["ratios"]["n"] == 3


# ---------------------------------------------------------------------------------------------
# random-box null in the same breast


def _brute_percentile(values, breast, fp, exclude, min_inside):
    rows, cols = np.nonzero(fp)
    kernel = fp[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    kh, kw = kernel.shape
    own = values[fp & breast].mean()
    null = []
    for r in range(values.shape[0] - kh + 1):
        for c in range(values.shape[1] - kw + 1):
            placed = np.zeros_like(fp)
            placed[r:r + kh, c:c + kw] = kernel
            on = placed & breast
            if on.sum() < min_inside * kernel.sum() - 0.5 or (placed & exclude).any() or not on.any():
                continue
            null.append(values[on].mean())
    null = np.array(null)
    return (np.sum(null < own - 1e-9) + 0.5 * np.sum(np.abs(null - own) <= 1e-9)) / null.size, null.size


def test_footprint_percentile_equals_the_enumeration_of_every_placement():
    rng = np.random.default_rng(1)
    breast = _breast(32)
    values = rng.gamma(1.0, 1.0, (32, 32))  # heavy-tailed, as maps are
    fp = np.zeros((32, 32), bool)
    fp[10:14, 5:11] = True
    fp[12, 11] = True  # not a rectangle
    other = np.zeros_like(fp)
    other[20:25, 3:8] = True
    out = footprint_percentile(values, breast, fp, exclude=other, min_inside=0.9)
    want, count = _brute_percentile(values, breast, fp, other | fp, 0.9)
    assert out["placements"] == count and out["percentile"] == pytest.approx(want)
    sampled = footprint_percentile(values, breast, fp, exclude=other, n=50, seed=3)
    assert sampled["placements"] == 50 and 0 <= sampled["percentile"] <= 1


def test_box_percentile_ranks_a_hot_box_first_and_a_plain_box_near_the_middle():
    rng = np.random.default_rng(2)
    breast = _breast()
    values = ndimage.gaussian_filter(rng.normal(1.0, 0.3, (64, 64)), 1.0)
    box = (10, 20, 18, 28)
    hot = values.copy()
    hot[20:28, 10:18] += 1.0
    assert box_percentile(hot, breast, box)["percentile"] == 1.0
    plain = [box_percentile(ndimage.gaussian_filter(rng.normal(1.0, 0.3, (64, 64)), 1.0), breast, box)["percentile"]
             for _ in range(30)]
    assert 0.3 < np.median(plain) < 0.7
    test = percentile_test(plain, ["mass"] * 15 + ["asymmetry"] * 15)
    assert test["p_value"] > 0.05 and test["per_class"]["mass"]["n"] == 15
    high = percentile_test([0.9, 0.95, 0.8, 0.99, 0.85, 0.97, 0.92, 0.88, np.nan])
    assert high["n"] == 8 and high["p_value"] < 0.01 and high["share_above_0.5"] == 1.0
    # a box off the breast has no mean; a box too large for the breast has no placement
    assert np.isnan(box_percentile(values, np.zeros_like(breast), box)["percentile"])
    assert box_percentile(values, breast, (0, 0, 64, 64))["placements"] == 0


def test_random_box_null_of_a_set_finds_maps_that_follow_the_lesions_per_class():
    rng = np.random.default_rng(6)
    breast = _breast()
    labels, boxes, maps = [], [], []
    for i in range(24):
        m = rng.gamma(1.0, 1.0, (64, 64))
        if i % 3 == 2:
            labels.append("normal")
            boxes.append([])
        else:
            r, c = rng.integers(10, 40, 2)
            box = (float(c), float(r), c + 8.0, r + 8.0)
            if i % 3 == 0:  # the "mass" images: the map lights up on the lesion
                m[r:r + 8, c:c + 8] += 2.0
            labels.append("mass" if i % 3 == 0 else "asymmetry")
            boxes.append([box])
        m[:2, :2] = np.nan  # a sliding-window map has no data in places
        maps.append(m)
    out = random_box_null(np.stack(maps), np.stack([breast] * 24), labels, boxes)
    assert out["n"] == 16 and len(out["percentiles"]) == 16
    assert out["per_class"]["mass"]["median"] == 1.0 and out["per_class"]["mass"]["p_value"] < 0.01
    assert out["per_class"]["asymmetry"]["p_value"] > 0.05


def test_a_map_that_follows_dense_tissue_beats_the_normals_null_but_not_the_same_breast_null():
    """Why the same-breast null is stronger: lesions sit in dense tissue, and so does a tissue map's mass."""
    rng = np.random.default_rng(4)
    breast = _breast()
    density = ndimage.gaussian_filter(rng.normal(0, 1, (64, 64)), 6.0)
    density = (density - density.min()) / np.ptp(density)
    values = density**3 + 0.01 * rng.random((64, 64))  # a map that lights up dense tissue, no lesion
    r, c = np.unravel_index(np.argmax(np.where(breast, density, -1)), density.shape)
    box = (max(0, c - 3), max(0, r - 3), c + 4, r + 4)  # a "lesion" in the densest tissue
    assert box_ratio(values, breast, box) > 2  # beats "outside the box"
    assert box_percentile(values, breast, box)["percentile"] > 0.9  # and its own breast: it IS the hottest
    # same-size boxes elsewhere in dense tissue rank as high: the null is what a lesion must beat
    dense = np.argwhere(breast & (density > 0.7))
    ranks = [box_percentile(values, breast, (cc - 3, rr - 3, cc + 4, rr + 4))["percentile"] for rr, cc in dense[::25]]
    assert np.median(ranks) > 0.7


# ---------------------------------------------------------------------------------------------
# strict foreign-object verdict


def test_an_object_colder_than_its_breast_does_not_light_up_even_at_twice_its_twin():
    rng = np.random.default_rng(5)
    n = 30
    twin = rng.uniform(0.3, 0.45, n)
    cold = foreign_object_verdict(twin * 2.1, twin, rng.uniform(0.1, 0.5, n),
                                  {"mean": (np.ones(n) + 0.01, np.ones(n))})
    assert cold["ratio_median"] < 1 and cold["above_twin"] and not cold["hotter_than_breast"]
    assert not cold["lights_up"] and not cold["passed"]
    hot_twin = rng.uniform(0.9, 1.1, n)
    hot = foreign_object_verdict(hot_twin * 3, hot_twin, rng.uniform(0.95, 1.0, n),
                                 {"mean": (np.linspace(1.01, 1.2, n), np.ones(n)), "focal": (np.ones(n), np.ones(n))})
    assert hot["hotter_than_breast"] and hot["above_twin"] and hot["lights_up"]
    assert hot["scores"]["mean"]["raised"] and not hot["scores"]["focal"]["raised"] and hot["passed"]
    # hot but not above its twin (a map that is simply bright there anyway) does not pass either
    same = foreign_object_verdict(hot_twin * 3, hot_twin * 2.5, rng.uniform(0.95, 1.0, n))
    assert same["hotter_than_breast"] and not same["above_twin"] and not same["passed"]


# ---------------------------------------------------------------------------------------------
# model-free baseline maps


def test_local_contrast_residual_finds_a_blob_and_leaves_the_skin_line_dark():
    breast = _breast()
    image = np.where(breast, 0.5, 0.0)
    yy, xx = np.mgrid[0:64, 0:64]
    image = image + 0.1 * np.exp(-((yy - 30) ** 2 + (xx - 20) ** 2) / (2 * 2.0**2))
    residual = local_contrast_residual(image, breast, scale=6.0)
    assert residual[~breast].max() == 0
    assert np.unravel_index(np.argmax(residual), residual.shape) == (30, 20)
    edge = breast & ~ndimage.binary_erosion(breast, iterations=2)
    assert residual[edge].max() < 0.05 * residual.max()  # normalised over the breast: no rim
    assert box_ratio(residual, breast, (16, 26, 25, 35)) > 5
    maps = local_contrast_maps(np.stack([image, image]), np.stack([breast, breast]), 6.0)
    assert maps.shape == (2, 64, 64) and np.array_equal(maps[0], residual)
    with pytest.raises(ValueError, match="lesion scale"):
        local_contrast_residual(image, breast, 0)


def test_biharmonic_error_map_is_zero_on_smooth_tissue_and_high_on_a_spot_in_its_windows():
    from inference.methods.inpainting import WindowErrors, heatmap
    from inference.windows import window_origins

    breast = _breast()
    yy, xx = np.mgrid[0:64, 0:64]
    smooth = np.where(breast, 0.3 + 0.002 * xx + 0.001 * yy, 0.0)
    flat = biharmonic_error_map(smooth, breast, fov=16, hole=8, stride=4)
    origins = window_origins(breast, 16, 4, 0.5)
    reach = heatmap(WindowErrors(origins, np.ones(len(origins)), np.ones(len(origins))), (64, 64), 16, 4, "mse")
    np.testing.assert_array_equal(np.isnan(flat), np.isnan(reach))  # the engine's windows and drawing rule
    everywhere = np.ones_like(breast)
    ramp = 0.3 + 0.002 * xx + 0.001 * yy  # smooth tissue with no skin line in the windows
    assert np.nanmax(biharmonic_error_map(ramp, everywhere, fov=16, hole=8, stride=4)) < 1e-8
    spot = smooth.copy()
    spot[30:34, 20:24] += 0.3
    errors = biharmonic_error_map(spot, breast, fov=16, hole=8, stride=4)
    assert box_ratio(np.nan_to_num(errors), breast & np.isfinite(errors), (18, 28, 26, 36)) > 10
    box = biharmonic_box(smooth, (20, 20, 28, 28))
    np.testing.assert_allclose(box, smooth[20:28, 20:28], atol=1e-4)


def test_each_method_names_its_baseline():
    """Each map method's card names its model-free baseline (one section, from its own package)."""
    from inference.methods import get
    from training.evaluation.sections import Baseline
    from training.healthygan.card import local_contrast_at

    boxes = [[(0, 0, 10, 10)], [], [(5, 5, 9, 9)], [(0, 0, 6, 6)]]
    assert median_box_side(boxes) == 6.0
    for method in ("translation", "inpainting"):
        assert sum(isinstance(s, Baseline) for s in get(method).card_sections()) == 1, method
    translation = local_contrast_at(boxes)
    assert translation["name"] == "local-contrast residual" and translation["scale_px"] == 3.0
    image, breast = np.full((1, 32, 32), 0.5), np.ones((1, 32, 32), bool)
    assert translation["maps"](image, breast).shape == (1, 32, 32)
    with pytest.raises(ValueError, match="needs lesion boxes"):
        local_contrast_at([[], []])
    lo, hi = auc_confidence_interval([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8])
    assert lo <= hi
