"""VOI presets and the display chain, delegated to pydicom's own LUT functions.

pydicom's ``apply_windowing`` scales its output to the stored bit range of the dataset it is
given. To get a display value in [0, 1] that depends only on the window (as PS3.3 C.11.2.1.2
defines it), the window is applied through a minimal dataset whose output range is
0..65535 and the result divided by 65535. VOI LUT Sequence items are applied with
``apply_voi`` and divided by the item's output range (2^bits - 1, bits from LUT Descriptor).
"""
from __future__ import annotations

import math

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

from inference.errors import MammolensError
from inference.studies.image import VoiPreset

_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
_OUT_BITS = 16


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


class AttributeProblem(MammolensError, ValueError):
    """A display attribute that cannot be used; the message is the second half of the file's sentence."""


#: Rescale values beyond this overflow float32 modality values for any stored bit depth.
_RESCALE_LIMIT = 1e20
#: Bits per LUT entry pydicom's LUT functions apply (DICOM: 8 to 16).
_LUT_BITS = tuple(range(1, 17))


def _number(value) -> float | None:
    """One finite number from a DS/IS/float value, else None."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _lut_ok(item: Dataset) -> bool:
    """A LUT item pydicom can apply: a 3-value descriptor with 1 to 16 bits and at least that much data."""
    try:
        descriptor = [int(v) for v in _as_list(item.get("LUTDescriptor"))]
        if len(descriptor) != 3 or descriptor[2] not in _LUT_BITS or "LUTData" not in item:
            return False
        entries = descriptor[0] or 65536
        data = item.LUTData
        count = len(data) // 2 if isinstance(data, (bytes, bytearray)) else len(_as_list(data))
        return 0 < entries <= 65536 and count >= entries
    except Exception:  # noqa: BLE001 - any unreadable value makes the LUT unusable
        return False


def checked(attrs: Dataset) -> Dataset:
    """``attrs`` made safe for pydicom's LUT functions, in place.

    Rescale and Modality LUT values that cannot be applied raise :class:`AttributeProblem` (the
    stored values cannot be turned into modality values); window values that are not finite
    numbers and VOI LUT items that cannot be applied are dropped, so the image falls back to the
    next preset or a window computed from its pixels instead of showing black.
    """
    for name, words in (("RescaleSlope", "Rescale Slope"), ("RescaleIntercept", "Rescale Intercept")):
        if name not in attrs:
            continue
        raw = attrs[name].value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            del attrs[name]
            continue
        value = _number(raw)
        if value is None:
            raise AttributeProblem(f"has a {words} that is not one finite number.")
        if abs(value) > _RESCALE_LIMIT:
            raise AttributeProblem(f"has a {words} too large to compute with.")
        if name == "RescaleSlope" and value == 0:
            raise AttributeProblem("has a Rescale Slope of zero, which maps every pixel to one value.")
        attrs[name].value = value
    if ("RescaleSlope" in attrs) != ("RescaleIntercept" in attrs):
        attrs.RescaleSlope = float(attrs.get("RescaleSlope", 1.0))
        attrs.RescaleIntercept = float(attrs.get("RescaleIntercept", 0.0))
    if "ModalityLUTSequence" in attrs:
        seq = attrs.ModalityLUTSequence
        if not seq:
            del attrs.ModalityLUTSequence
        elif not _lut_ok(seq[0]):
            raise AttributeProblem("has a Modality LUT whose descriptor or data is missing or invalid.")
    centers = [_number(v) for v in _as_list(attrs.get("WindowCenter"))]
    widths = [_number(v) for v in _as_list(attrs.get("WindowWidth"))]
    pairs = [(c, w) for c, w in zip(centers, widths) if c is not None and w is not None]
    for name in ("WindowCenter", "WindowWidth"):
        if name in attrs:
            del attrs[name]
    if pairs and len(pairs) == min(len(centers), len(widths)):
        attrs.WindowCenter = [c for c, _ in pairs] if len(pairs) > 1 else pairs[0][0]
        attrs.WindowWidth = [w for _, w in pairs] if len(pairs) > 1 else pairs[0][1]
    elif pairs:  # some pairs broken: keep the good ones, explanations no longer line up
        attrs.WindowCenter = [c for c, _ in pairs]
        attrs.WindowWidth = [w for _, w in pairs]
        if "WindowCenterWidthExplanation" in attrs:
            del attrs.WindowCenterWidthExplanation
    if "VOILUTSequence" in attrs:
        from pydicom.sequence import Sequence

        good = [item for item in attrs.VOILUTSequence if _lut_ok(item)]
        if good:
            attrs.VOILUTSequence = Sequence(good)
        else:
            del attrs.VOILUTSequence
    return attrs


def presets_from(attrs: Dataset) -> list[VoiPreset]:
    """Window presets (with explanations) then VOI LUT Sequence items, in file order."""
    presets: list[VoiPreset] = []
    centers = [_number(c) for c in _as_list(attrs.get("WindowCenter"))]
    widths = [_number(w) for w in _as_list(attrs.get("WindowWidth"))]
    explanations = [str(e) for e in _as_list(attrs.get("WindowCenterWidthExplanation"))]
    function = str(attrs.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function not in _FUNCTIONS:
        function = "LINEAR"
    for i, (c, w) in enumerate(zip(centers, widths)):
        if c is None or w is None or w <= 0 or (function == "LINEAR" and w < 1):
            continue  # invalid per PS3.3 C.11.2.1.2; pydicom would refuse it
        name = explanations[i] if i < len(explanations) and explanations[i] else f"Window {i + 1}"
        presets.append(VoiPreset(name, "window", c, w, function, i))
    for i, item in enumerate(attrs.get("VOILUTSequence", []) or []):
        if _lut_ok(item):
            name = str(item.get("LUTExplanation", "") or f"VOI LUT {i + 1}")
            presets.append(VoiPreset(name, "lut", index=i))
    return presets


def modality(values: np.ndarray, attrs: Dataset) -> np.ndarray:
    try:
        return np.asarray(apply_modality_lut(values, attrs), dtype=np.float64)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever pydicom refuses in a checked header
        raise AttributeProblem("has a Modality LUT or rescale that cannot be applied.") from exc


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
        values = np.clip(np.rint(modality_values), -(2.0**62), 2.0**62).astype(np.int64)
        try:
            out = apply_voi(values, attrs, preset.index)
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001
            raise AttributeProblem("has a VOI LUT that cannot be applied.") from exc
        return np.clip(out.astype(np.float64) / float(2**bits - 1), 0.0, 1.0)
    raise ValueError(f"unknown VOI preset kind {preset.kind!r}")
