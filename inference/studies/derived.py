"""Segmentations and Parametric Maps found beside their source images: layers drawn over that source.

A DICOM SEG (a radiologist's from another tool, or mammolens' own ``analyze --dicom``) or a
Parametric Map is not an image to browse: :func:`~inference.studies.study.open_path` reads its
header, keeps it as a :class:`DerivedLayer` and attaches it to the image whose SOP Instance UID
its frames reference (Derivation Image Sequence), frame by frame for a multi-frame source.
Pixels are read lazily, one derived frame at a time, like an image's.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"
PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"
DERIVED_CLASSES = {SEGMENTATION: "SEG", PARAMETRIC_MAP: "Parametric Map"}

log = logging.getLogger("mammolens.studies")


@dataclass(eq=False)
class DerivedLayer:
    """One SEG or Parametric Map, as a layer of the source image it references."""

    path: Path
    kind: str  # "SEG" or "Parametric Map"
    label: str  # segment labels / the map's LUT label
    unit: str  # Parametric Map: the real-world unit (LUT explanation or unit meaning); SEG: ""
    source_uids: tuple[str, ...]  # the images its frames lie on (one, or a legacy DBT series' slices)
    rows: int
    cols: int
    refs: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # (SOP UID, 1-based frame) -> derived
    frames: dict[int, list[int]] = field(default_factory=dict)  # 0-based source frame -> 0-based derived frames
    slope: float = 1.0
    intercept: float = 0.0
    fractional: bool = False

    def __post_init__(self):
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def is_segmentation(self) -> bool:
        return self.kind == "SEG"

    @property
    def name(self) -> str:
        return f"{self.kind}: {self.label}" if self.label else self.kind

    def has_frame(self, source_frame: int) -> bool:
        return source_frame in self.frames

    def _read(self, index: int) -> np.ndarray:
        from pydicom.pixels import pixel_array

        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
        out = pixel_array(self.path, index=index)
        with self._lock:
            self._cache[index] = out
            while len(self._cache) > 4:
                self._cache.popitem(last=False)
        return out

    def values(self, source_frame: int) -> np.ndarray | None:
        """The layer on one source frame: a boolean mask (SEG, every segment together) or float32
        real-world values (Parametric Map); None where the layer has nothing for that frame."""
        indices = self.frames.get(source_frame)
        if not indices:
            return None
        if self.is_segmentation:
            mask = np.zeros((self.rows, self.cols), bool)
            for i in indices:
                mask |= self._read(i) > 0
            return mask
        stored = self._read(indices[0]).astype(np.float32)
        return stored * np.float32(self.slope) + np.float32(self.intercept) \
            if (self.slope, self.intercept) != (1.0, 0.0) else stored


def sop_class_of(header) -> str:
    """The SOP Class UID, or "" when the element is absent or cannot be read (a damaged file is then
    opened, and judged, as an image)."""
    try:
        return str(header.get("SOPClassUID", "") or "")
    except Exception:  # noqa: BLE001 - pydicom raises many kinds for a damaged element
        return ""


def is_derived(header) -> bool:
    return sop_class_of(header) in DERIVED_CLASSES


def _text(value) -> str:
    return " ".join(str(value or "").split())


def read_layer(path: Path, header) -> DerivedLayer:
    """A layer from a SEG / Parametric Map header (read without pixels); ValueError with one
    sentence when it does not say which image it lies on, or its header is broken."""
    try:
        return _read_layer(path, header)
    except ValueError:
        raise
    except (AttributeError, KeyError, IndexError, TypeError, OverflowError) as exc:
        kind = DERIVED_CLASSES[str(header.SOPClassUID)]
        raise ValueError(f"is a {kind} whose header cannot be read ({type(exc).__name__}).") from None


def _read_layer(path: Path, header) -> DerivedLayer:
    kind = DERIVED_CLASSES[str(header.SOPClassUID)]
    refs: dict[tuple[str, int], list[int]] = {}
    for index, item in enumerate(header.get("PerFrameFunctionalGroupsSequence", []) or []):
        for derivation in item.get("DerivationImageSequence", []) or []:
            for ref in derivation.get("SourceImageSequence", []) or []:
                number = ref.get("ReferencedFrameNumber")
                number = int(number[0] if isinstance(number, (list, tuple)) or type(number).__name__ == "MultiValue"
                             else number) if number not in (None, "") else 1
                refs.setdefault((str(ref.ReferencedSOPInstanceUID), number), []).append(index)
    if not refs:
        raise ValueError(f"is a {kind} that does not say which image each frame lies on "
                         "(no Derivation Image Sequence), so it cannot be drawn over its source.")
    label, unit, slope, intercept = "", "", 1.0, 0.0
    if kind == "SEG":
        label = ", ".join(_text(s.get("SegmentLabel")) for s in header.get("SegmentSequence", []) or [])
    else:
        try:
            shared = header.SharedFunctionalGroupsSequence[0]
            mapping = shared.RealWorldValueMappingSequence[0]
            label = _text(mapping.get("LUTLabel"))
            unit = _text(mapping.get("LUTExplanation")) or \
                _text(mapping.MeasurementUnitsCodeSequence[0].get("CodeMeaning"))
            slope = float(mapping.get("RealWorldValueSlope", 1.0) or 1.0)
            intercept = float(mapping.get("RealWorldValueIntercept", 0.0) or 0.0)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            pass
    return DerivedLayer(path=Path(path), kind=kind, label=label, unit=unit,
                        source_uids=tuple(sorted({uid for uid, _ in refs})), rows=int(header.Rows),
                        cols=int(header.Columns), refs=refs, slope=slope,
                        intercept=intercept, fractional=str(header.get("SegmentationType", "")) == "FRACTIONAL")


def attach_layers(images, layers: list[DerivedLayer]) -> list[DerivedLayer]:
    """Attach each layer to the image it lies on: the image with its SOP Instance UID (frames by
    number), or the legacy DBT volume whose slices have its UIDs (frames by slice); same size.
    Returns the layers whose source image is not among ``images``."""
    where: dict[str, tuple] = {}  # SOP Instance UID -> (image, slice index or None)
    for im in images:
        uids = getattr(im, "slice_uids", None)
        if uids:
            where.update({uid: (im, k) for k, uid in enumerate(uids) if uid})
        elif im.identity.get("SOPInstanceUID"):
            where[im.identity["SOPInstanceUID"]] = (im, None)
    orphans = []
    for layer in layers:
        targets = {id(where[uid][0]): where[uid][0] for uid in layer.source_uids if uid in where}
        if len(targets) != 1 or any(uid not in where for uid in layer.source_uids):
            orphans.append(layer)
            continue
        (image,) = targets.values()
        frames: dict[int, list[int]] = {}
        for (uid, number), indices in layer.refs.items():
            k = where[uid][1]
            frames.setdefault(number - 1 if k is None else k, []).extend(indices)
        if (image.rows, image.cols) != (layer.rows, layer.cols) or any(not 0 <= k < image.n_frames for k in frames):
            orphans.append(layer)
            continue
        layer.frames = frames
        image.layers.append(layer)
    return orphans
