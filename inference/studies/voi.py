"""VOI presets and the display chain, delegated to pydicom's own LUT functions.

pydicom's ``apply_windowing`` scales its output to the stored bit range of the dataset it is
given. To get a display value in [0, 1] that depends only on the window (as PS3.3 C.11.2.1.2
defines it), the window is applied through a minimal dataset whose output range is
0..65535 and the result divided by 65535. VOI LUT Sequence items are applied with
``apply_voi`` and divided by the item's output range (2^bits - 1, bits from LUT Descriptor).
"""
from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

from inference.studies.image import VoiPreset

_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
_OUT_BITS = 16


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def presets_from(attrs: Dataset) -> list[VoiPreset]:
    """Window presets (with explanations) then VOI LUT Sequence items, in file order."""
    presets: list[VoiPreset] = []
    centers = [float(c) for c in _as_list(attrs.get("WindowCenter"))]
    widths = [float(w) for w in _as_list(attrs.get("WindowWidth"))]
    explanations = [str(e) for e in _as_list(attrs.get("WindowCenterWidthExplanation"))]
    function = str(attrs.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function not in _FUNCTIONS:
        function = "LINEAR"
    for i, (c, w) in enumerate(zip(centers, widths)):
        if w <= 0 or (function == "LINEAR" and w < 1):
            continue  # invalid per PS3.3 C.11.2.1.2; pydicom would refuse it
        name = explanations[i] if i < len(explanations) and explanations[i] else f"Window {i + 1}"
        presets.append(VoiPreset(name, "window", c, w, function, i))
    for i, item in enumerate(attrs.get("VOILUTSequence", []) or []):
        name = str(item.get("LUTExplanation", "") or f"VOI LUT {i + 1}")
        presets.append(VoiPreset(name, "lut", index=i))
    return presets


def modality(values: np.ndarray, attrs: Dataset) -> np.ndarray:
    return np.asarray(apply_modality_lut(values, attrs), dtype=np.float64)


def window_dataset(center: float, width: float, function: str) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = _OUT_BITS
    ds.PixelRepresentation = 0
    ds.WindowCenter = center
    ds.WindowWidth = width
    ds.VOILUTFunction = function
    return ds


def apply_preset(modality_values: np.ndarray, attrs: Dataset | None, preset: VoiPreset) -> np.ndarray:
    """Map modality values to [0, 1] with a window or VOI LUT preset (no MONOCHROME1 inversion)."""
    if preset.kind == "window":
        ds = window_dataset(preset.center, preset.width, preset.function)
        out = apply_windowing(np.asarray(modality_values, dtype=np.float64), ds)
        return np.clip(out / float(2**_OUT_BITS - 1), 0.0, 1.0)
    if preset.kind == "lut":
        if attrs is None or "VOILUTSequence" not in attrs:
            raise ValueError("this image has no VOI LUT Sequence")
        item = attrs.VOILUTSequence[preset.index]
        bits = int(item.LUTDescriptor[2])
        # apply_voi indexes the LUT with integer inputs; modality values here are integral
        # for every VOI-LUT image we know (MG stores integers with slope 1)
        out = apply_voi(np.rint(modality_values).astype(np.int64), attrs, preset.index)
        return np.clip(out.astype(np.float64) / float(2**bits - 1), 0.0, 1.0)
    raise ValueError(f"unknown VOI preset kind {preset.kind!r}")
