"""The real mammograms in ../shared/data: display values against the DICOM standard's formulas.

Expected values are computed here from PS3.3 C.11.2.1.2 (LINEAR), C.11.2.1.3.1 (SIGMOID) and
C.11.2.1.1 (VOI LUT), not from the code under test.
"""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from inference.studies.image import VoiPreset
from inference.studies.study import open_path
from tests.conftest import shared_file


def _padding(ds, stored):
    """PS3.3 C.7.5.1.1.2: stored values from Pixel Padding Value to Pixel Padding Range Limit."""
    lo, hi = sorted((int(ds.PixelPaddingValue), int(ds.get("PixelPaddingRangeLimit", ds.PixelPaddingValue))))
    return (stored >= lo) & (stored <= hi)


@pytest.fixture(scope="module")
def gh133():
    path = shared_file("dicom-real", "GH133.dcm")
    image = open_path(path).images()[0]
    ds = pydicom.dcmread(path)
    return image, ds, ds.pixel_array.astype(np.float64)


def test_gh133_geometry_and_presets(gh133):
    image, ds, _ = gh133
    assert (image.laterality, image.view) == ("R", "MLO")
    assert (image.rows, image.cols) == (3062, 2394)
    assert image.pixel_spacing == pytest.approx((0.0941, 0.0941), abs=1e-4)
    windows = [p for p in image.presets if p.kind == "window"]
    assert [(p.name, p.center, p.width, p.function) for p in windows] == [
        ("NORMAL", 2653, 900, "SIGMOID"), ("HARDER", 2713, 750, "SIGMOID"), ("SOFTER", 2569, 1050, "SIGMOID")]
    assert [p.name for p in image.presets if p.kind == "lut"] == ["NORMAL", "HARDER", "SOFTER"]
    assert image.default_preset() == windows[0], "the file's first window with its SIGMOID function is the default"


@pytest.mark.parametrize("index", [0, 1, 2])
def test_gh133_sigmoid_windows_follow_the_standard(gh133, index):
    image, ds, stored = gh133
    preset = [p for p in image.presets if p.kind == "window"][index]
    shown = image.display(0, preset).astype(np.float64)
    x = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    c, w = float(ds.WindowCenter[index]), float(ds.WindowWidth[index])
    expected = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))  # PS3.3 C.11.2.1.3.1, normalised
    expected[_padding(ds, stored)] = 0.0  # padding shows as background
    assert np.abs(shown - expected).max() < 1e-5
    assert int(ds.PixelPaddingRangeLimit) == 30  # this file pads 0..30, not only 0
    breast = ~_padding(ds, stored)
    assert 0.05 < shown[breast].mean() < 0.95, "the breast is neither black nor white"


def test_gh133_linear_and_linear_exact_formulas(gh133):
    image, ds, stored = gh133
    x = stored[::7, ::7]
    c, w = 2653.0, 900.0
    linear = image.display(0, VoiPreset("t", "window", c, w, "LINEAR"))[::7, ::7].astype(np.float64)
    exp = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1)  # C.11.2.1.2.1
    exp[x <= c - 0.5 - (w - 1) / 2] = 0.0
    exp[x > c - 0.5 + (w - 1) / 2] = 1.0
    exp[_padding(ds, x)] = 0.0
    assert np.abs(linear - exp).max() < 1e-5
    exact = image.display(0, VoiPreset("t", "window", c, w, "LINEAR_EXACT"))[::7, ::7].astype(np.float64)
    exp = np.clip((x - c) / w + 0.5, 0, 1)  # C.11.2.1.3.2
    exp[_padding(ds, x)] = 0.0
    assert np.abs(exact - exp).max() < 1e-5


def test_gh133_voi_lut_sequence(gh133):
    image, ds, stored = gh133
    for i, item in enumerate(ds.VOILUTSequence):
        preset = [p for p in image.presets if p.kind == "lut"][i]
        shown = image.display(0, preset)[::5, ::5].astype(np.float64)
        n, first, bits = (int(v) for v in item.LUTDescriptor)
        lut = np.asarray(item.LUTData, dtype=np.float64)
        idx = np.clip(stored[::5, ::5] - first, 0, n - 1).astype(int)  # C.11.2.1.1
        exp = lut[idx] / (2**bits - 1)
        exp[_padding(ds, stored[::5, ::5])] = 0.0
        assert np.abs(shown - exp).max() < 1e-6


def test_gh133_frame_is_lazy_and_cached(gh133):
    image, _, _ = gh133
    before = image.decoded_frames
    image.display(0)
    image.display(0)
    assert image.decoded_frames - before <= 1


def test_mg1_jpeg2000_decodes():
    path = shared_file("dicom-real", "MG1_J2KI.dcm")
    image = open_path(path).images()[0]
    assert image.transfer_syntax.startswith("JPEG 2000")
    assert (image.laterality, image.view) == ("L", "MLO")
    assert image.laterality_source == "Laterality"
    shown = image.display(0)
    assert shown.shape == (4664, 3064)
    # a film mammogram: the breast area is clearly brighter than the film background
    assert shown.std() > 0.1 and 0.1 < shown.mean() < 0.9
