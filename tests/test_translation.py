"""HealthyGAN inference: the paper's formula on a hand-made case, maps on the original grid."""
from __future__ import annotations

import numpy as np
import pytest

from inference.bundle import Calibration
from inference.methods.translation import (
    TranslationEngine,
    difference_score,
    healthy_image,
)


class FakeBundle:
    name, version, method = "fake", "1", "translation"

    class input:  # noqa: N801 (mimics InputSpec)
        resolution = 8
        value_range = (0.0, 1.0)

    calibration = Calibration(threshold=0.05, score="test", data="hand-made")


class FakeSession:
    """Returns B_int = 1 everywhere and M = 1 on the top-left quarter, 0 elsewhere."""

    inputs = {"image": (None, 1, 8, 8)}
    device_label = "CPU"

    seen = []

    def run_batched(self, feeds, batch_size):
        x = feeds["image"]
        self.seen.append((float(x.min()), float(x.max())))
        mask = np.zeros_like(x)
        mask[:, :, :4, :4] = 1.0
        return {"intermediate": np.ones_like(x), "mask": mask}


def test_equation_1_and_score_by_hand():
    x = np.full((2, 2), 0.25)
    inter = np.full((2, 2), 0.75)
    m = np.array([[1.0, 0.5], [0.0, 0.0]])
    b = healthy_image(x, inter, m)  # B' = B_int*M + x*(1-M)
    assert np.allclose(b, [[0.75, 0.5], [0.25, 0.25]])
    diff = np.abs(x - b)
    breast = np.array([[True, True], [True, False]])
    assert difference_score(diff, breast) == pytest.approx((0.5 + 0.25 + 0.0) / 3)


def test_translation_result_on_the_original_grid():
    model = TranslationEngine(FakeBundle(), sessions={"generator": FakeSession()})
    display = np.zeros((16, 12), np.float32)
    display[:, :9] = 0.4  # a left breast touching the chest wall (column 0)
    result = model.run(display, "L")
    diff = result.difference if hasattr(result, "difference") else result.maps["difference"]
    assert diff.shape == (16, 12)
    # M = 1 on the model's top-left quarter: there B' = 1 and |x - B'| = 0.6 inside the breast
    assert diff[:7, :7].min() == pytest.approx(0.6, abs=1e-5)
    assert diff[10:, :].max() == 0.0 and diff[:, 10:].max() == 0.0
    assert result.decision == "abnormal" and result.threshold == 0.05 and result.provider == "CPU"
    # score = mean over the breast in model space: the quarter (M = 1) inside the breast over the breast
    # (the breast covers model columns 0-3: 8 x 4 pixels, of which the 4 x 4 quarter has M = 1)
    assert result.score == pytest.approx(0.6 * (4 * 4) / (8 * 4), rel=1e-5)
    right = model.run(display[:, ::-1].copy(), "R")
    assert np.allclose(right.maps["difference"], diff[:, ::-1], atol=1e-6), "a right breast maps back mirrored"


def test_bundle_value_range_is_applied_both_ways():
    """A bundle declaring [-1, 1] is fed [-1, 1] and its B_int is read back from [-1, 1]."""

    class SignedBundle(FakeBundle):
        class input:  # noqa: N801
            resolution = 8
            value_range = (-1.0, 1.0)

    session = FakeSession()
    session.seen = []
    engine = TranslationEngine(SignedBundle(), sessions={"generator": session})
    x = np.zeros((1, 8, 8), np.float32)
    x[0, :, :4] = 0.5
    inter, mask = engine.forward(x)
    assert session.seen == [(-1.0, 0.0)], "[0, 1] images reach the network as [-1, 1]"
    assert np.allclose(inter, 1.0), "B_int = 1 in [-1, 1] is white, 1 in [0, 1]"
    # with the declared range ignored, B_int of 1.0 would still read 1.0 but x = 0.5 would be fed as 0.5
    zero = TranslationEngine(FakeBundle(), sessions={"generator": FakeSession()})
    zero.sessions["generator"].seen = []
    zero.forward(x)
    assert zero.sessions["generator"].seen == [(0.0, 0.5)]


def test_result_records_provider_and_gpu_fallback_reason():
    class FallbackSession(FakeSession):
        device_label = "CPU"
        fallback_reason = "CUDAExecutionProvider was requested but could not be enabled; running on CPU."

    engine = TranslationEngine(FakeBundle(), sessions={"generator": FallbackSession()})
    display = np.zeros((16, 12), np.float32)
    display[:, :9] = 0.4
    result = engine.run(display, "L")
    assert result.provider == "CPU" and "running on CPU" in result.fallback_reason
    assert result.to_json_dict()["fallback_reason"] == result.fallback_reason
