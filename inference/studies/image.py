"""The Qt-free image model: one 2D mammogram or one DBT volume, with lazy frames.

An :class:`Image` knows its geometry (laterality, view, pixel spacing, slice positions), its
display presets and how to read one frame of stored values; it never decodes more than the
frame asked for (plus a small LRU cache). The display mapping itself is pydicom's: Modality LUT
(``apply_modality_lut``), then VOI (``apply_windowing`` for window centre/width with the LINEAR,
LINEAR_EXACT or SIGMOID function, ``apply_voi`` for a VOI LUT Sequence item), then MONOCHROME1
inversion. For integer data the chain is evaluated once per distinct stored value and applied
as a lookup table, which is exact and about ten times faster than running it per pixel.
"""
from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

#: The hanging order of the four screening views; other views follow.
SCREENING_ORDER = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))


def view_sort_key(laterality: str, view: str) -> tuple:
    try:
        return (0, SCREENING_ORDER.index((laterality, view)), "", "")
    except ValueError:
        return (1, 0, view or "~", laterality or "~")


@dataclass(frozen=True)
class VoiPreset:
    """One way to map modality values to display.

    ``kind`` is ``window`` (centre/width with ``function``), ``lut`` (item ``index`` of the VOI
    LUT Sequence) or ``range`` (linear over the frame's own min..max, used when the file has no
    VOI at all, and for plain images).
    """

    name: str
    kind: str
    center: float | None = None
    width: float | None = None
    function: str = "LINEAR"
    index: int = 0

    @property
    def label(self) -> str:
        if self.kind == "window":
            return f"{self.name} (C {self.center:g} / W {self.width:g}, {self.function})"
        return self.name


@dataclass
class FrameSource:
    """How to get one frame's stored values and the attributes that describe them.

    ``read(i)`` returns the stored pixel values of frame ``i`` (no LUTs applied);
    ``attributes(i)`` returns a pydicom Dataset holding the Modality LUT / VOI / photometric
    attributes that apply to that frame (flattened from functional groups for enhanced
    objects), or ``None`` for plain images.
    """

    read: Callable[[int], np.ndarray]
    attributes: Callable[[int], object | None]
    #: ``preview(i, max_side)``: frame ``i``'s stored values at a reduced resolution and the factor
    #: each pixel stands for, ``(values, factor)``, when the codec can give them much faster than the
    #: full frame (JPEG 2000 resolution levels); None otherwise. For showing only.
    preview: Callable[..., tuple[np.ndarray, int] | None] | None = None


@dataclass(frozen=True)
class OverlayPlane:
    """One overlay plane (60xx group) as a boolean mask of the image's size, its origin applied and
    whatever lies outside the image clipped away."""

    group: int
    mask: np.ndarray = field(repr=False)  # bool, rows x cols of the image
    kind: str = "G"  # "G" graphics, "R" region of interest
    description: str = ""
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.description or f"Overlay {(self.group - 0x6000) // 2 + 1}"


_ORIENTATION_LETTERS = set("ARLPHF")


def patient_orientation_of(ds) -> tuple[str, str] | None:
    """Patient Orientation (0020,0020) as (row direction, column direction), e.g. ("A", "R"); None
    when absent or not two values made of the letters A, P, R, L, H, F."""
    value = ds.get("PatientOrientation") if ds is not None else None
    if value is None or isinstance(value, str) or len(value) != 2:
        return None
    out = tuple(str(v).strip().upper() for v in value)
    if not all(v and set(v) <= _ORIENTATION_LETTERS for v in out):
        return None
    return out  # type: ignore[return-value]


def overlay_planes_of(ds, rows: int, cols: int, budget: int | None = None) -> list[OverlayPlane]:
    """Every overlay plane with Overlay Data, clipped to the ``rows x cols`` image; planes whose
    declared size the data does not hold (or that would exceed the memory budget) are skipped."""
    import logging

    planes: list[OverlayPlane] = []
    if budget is None:
        from inference.studies.limits import memory_budget

        budget = memory_budget()
    for group in range(0x6000, 0x6020, 2):
        if (group, 0x3000) not in ds:
            continue
        try:
            o_rows, o_cols = int(ds[group, 0x0010].value), int(ds[group, 0x0011].value)
            origin = ds.get((group, 0x0050))
            r0, c0 = (int(origin.value[0]), int(origin.value[1])) if origin is not None and origin.value is not None \
                and len(origin.value) == 2 else (1, 1)
            data = ds[group, 0x3000].value
            if o_rows <= 0 or o_cols <= 0 or not isinstance(data, (bytes, bytearray)) \
                    or o_rows * o_cols > len(data) * 8 or o_rows * o_cols > budget:
                raise ValueError("declared size not held by the overlay data")
            bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[:o_rows * o_cols]
            plane = bits.reshape(o_rows, o_cols).astype(bool)
            mask = np.zeros((rows, cols), bool)
            top, left = r0 - 1, c0 - 1  # origin is 1-based; may be negative or past the image
            src_r, src_c = max(0, -top), max(0, -left)
            dst_r, dst_c = max(0, top), max(0, left)
            h, w = min(o_rows - src_r, rows - dst_r), min(o_cols - src_c, cols - dst_c)
            if h > 0 and w > 0:
                mask[dst_r:dst_r + h, dst_c:dst_c + w] = plane[src_r:src_r + h, src_c:src_c + w]
            kind = str(ds.get((group, 0x0040)).value or "G") if (group, 0x0040) in ds else "G"
            description = str(ds[group, 0x0022].value or "") if (group, 0x0022) in ds else ""
            label = str(ds[group, 0x1500].value or "") if (group, 0x1500) in ds else ""
            planes.append(OverlayPlane(group, mask, kind.strip().upper()[:1] or "G", description, label))
        except Exception as exc:  # noqa: BLE001 - a broken overlay never stops the image
            logging.getLogger("mammolens.studies").info("overlay plane %04X skipped (%s)", group, type(exc).__name__)
    return planes


@dataclass
class Image:
    path: Path
    rows: int
    cols: int
    n_frames: int
    source: FrameSource
    laterality: str = ""  # "L", "R" or "" when unknown
    view: str = ""  # "CC", "MLO", ... or ""
    laterality_source: str = ""  # which attribute (or "inferred") gave the laterality
    pixel_spacing: tuple[float, float] | None = None  # (row, col) in mm
    spacing_source: str = ""
    photometric: str = "MONOCHROME2"
    modality: str = ""
    sop_class: str = ""
    transfer_syntax: str = ""
    bits_stored: int = 8
    presets: list[VoiPreset] = field(default_factory=list)
    padding: tuple[int, int] | None = None  # stored-value range of Pixel Padding Value
    slice_positions: list[float] | None = None  # mm along the stack normal, DBT only
    is_tomosynthesis: bool = False
    header: dict[str, str] = field(default_factory=dict)  # non-identifying fields for display
    identity: dict[str, str] = field(default_factory=dict, repr=False)  # UIDs, patient keys
    cache_frames: int = 4
    #: Patient Orientation (row direction, column direction) when the file gives it, e.g. ("A", "R")
    patient_orientation: tuple[str, str] | None = None
    #: Overlay planes (60xx), each a boolean mask of the image's size (origin applied, clipped)
    overlay_planes: list[OverlayPlane] = field(default_factory=list, repr=False)
    #: SEG / Parametric Map layers found beside this image (inference.studies.derived), drawn over it
    layers: list = field(default_factory=list, repr=False, compare=False)
    #: Renames a LoadError raised while reading this image (a file found in a folder is named by
    #: position and key, not by its name on the disk); set by open_path
    relabel: Callable[[Exception], object] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._luts: dict[tuple, np.ndarray] = {}
        self._range_preset: VoiPreset | None = None
        self._lock = threading.Lock()
        self.decoded_frames = 0  # how many frames were decoded so far (lazy-loading proof)

    # ------------------------------------------------------------------ frames
    @property
    def is_volume(self) -> bool:
        return self.n_frames > 1

    @property
    def name(self) -> str:
        parts = [p for p in (self.laterality, self.view) if p]
        return "-".join(parts) if parts else self.path.stem

    def stored(self, index: int = 0) -> np.ndarray:
        """Stored values of one frame, decoded on first use and kept in a small LRU cache."""
        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame {index} is outside 0..{self.n_frames - 1}")
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
        with self._errors_labelled():
            frame = self.source.read(index)
        with self._lock:
            self.decoded_frames += 1
            self._cache[index] = frame
            while len(self._cache) > max(1, self.cache_frames):
                self._cache.popitem(last=False)
        return frame

    @contextlib.contextmanager
    def _errors_labelled(self):
        try:
            yield
        except Exception as exc:
            if self.relabel is not None and hasattr(exc, "pseudonymise"):
                self.relabel(exc)
            raise

    def cached_frames(self) -> list[int]:
        with self._lock:
            return list(self._cache)

    def modality_values(self, index: int = 0) -> np.ndarray:
        """Frame after the Modality LUT (Rescale or Modality LUT Sequence), as float32."""
        arr = self.stored(index)
        from inference.errors import LoadError
        from inference.studies import voi

        with self._errors_labelled():
            attrs = self.source.attributes(index)
            if attrs is None:
                return arr.astype(np.float32)
            try:
                return np.asarray(voi.modality(arr, attrs), dtype=np.float32)
            except voi.AttributeProblem as exc:
                raise LoadError(self.path, str(exc)) from None

    def padding_mask(self, index: int = 0) -> np.ndarray | None:
        """True where the stored value is Pixel Padding (outside the imaged area)."""
        if self.padding is None:
            return None
        arr = self.stored(index)
        lo, hi = self.padding
        return (arr >= lo) & (arr <= hi)

    # ------------------------------------------------------------------ display
    def default_preset(self) -> VoiPreset:
        return self.presets[0] if self.presets else VoiPreset("Full range", "range")

    def display(self, index: int = 0, preset: VoiPreset | None = None) -> np.ndarray:
        """Frame mapped to display values in [0, 1] (0 black), as float32.

        Modality LUT, then the VOI preset, then MONOCHROME1 inversion; padding pixels are black.
        """
        preset = preset or self.default_preset()
        if preset.kind == "range":
            preset = self.range_window(index)
        arr = self.stored(index)
        with self._errors_labelled():
            attrs = self.source.attributes(index)
            if np.issubdtype(arr.dtype, np.integer) and arr.itemsize <= 2:
                lo, lut = self._lut(attrs, preset, arr.dtype)
                out = apply_lut(lut, arr, lo)
            else:
                out = self._display_chain(arr, attrs, preset)
        mask = self.padding_mask(index)
        if mask is not None and mask.any():
            out[mask] = 0.0
        return out

    def preview_display(self, index: int = 0, preset: VoiPreset | None = None,
                        max_side: int = 1024) -> tuple[np.ndarray, int] | None:
        """``(display values, factor)`` of the frame at a reduced resolution (each pixel stands for
        ``factor x factor`` full-size ones) when its codec gives one quickly, through the same LUTs as
        :meth:`display`; None when it does not, or the frame is decoded already. For showing only:
        the methods always read :meth:`display`."""
        if self.source.preview is None or index in self.cached_frames():
            return None
        preset = preset or self.default_preset()
        reduced = self.source.preview(index, max_side)
        if reduced is None:
            return None
        arr, factor = reduced
        with self._errors_labelled():
            attrs = self.source.attributes(index)
            if preset.kind == "range":  # the full range of the reduced frame (its own, not kept)
                values = arr.astype(np.float32) if attrs is None else np.asarray(voi_modality(arr, attrs), np.float32)
                if self.padding is not None:
                    values = values[(arr < self.padding[0]) | (arr > self.padding[1])]
                lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
                preset = VoiPreset("Full range", "window", (lo + hi) / 2, max(hi - lo, 1e-6), "LINEAR_EXACT")
            lo, lut = self._lut(attrs, preset, arr.dtype)
            out = apply_lut(lut, arr, lo)
        if self.padding is not None:
            out[(arr >= self.padding[0]) & (arr <= self.padding[1])] = 0.0
        return out, factor

    def _lut(self, attrs, preset: VoiPreset, dtype) -> tuple[int, np.ndarray]:
        """Display LUT over every value the stored bits can hold, cached per attributes and preset.

        Values above the stored range (stray high bits) clip to the last entry.
        """
        bits = min(self.bits_stored or 16, 8 * np.dtype(dtype).itemsize)
        signed = np.issubdtype(dtype, np.signedinteger)
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        key = (_lut_signature(attrs), preset, lo, hi)
        lut = self._luts.get(key)
        if lut is None:
            domain = np.arange(lo, hi + 1, dtype=np.int32)
            lut = self._display_chain(domain, attrs, preset)
            if len(self._luts) > 32:
                self._luts.clear()
            self._luts[key] = lut
        return lo, lut

    def _display_chain(self, values, attrs, preset: VoiPreset) -> np.ndarray:
        from inference.errors import LoadError
        from inference.studies import voi  # local: keeps pydicom out of import time

        try:
            modality = values.astype(np.float64) if attrs is None else voi.modality(values, attrs)
            out = voi.apply_preset(modality, attrs, preset)
        except voi.AttributeProblem as exc:
            raise LoadError(self.path, str(exc)) from None
        if not np.all(np.isfinite(out)):
            raise LoadError(self.path, "has display values that are not finite numbers (its rescale or window "
                                       "values are out of range).")
        if self.photometric == "MONOCHROME1":
            out = 1.0 - out
        return out.astype(np.float32)

    def range_window(self, index: int = 0) -> VoiPreset:
        """The "Full range" preset as a LINEAR_EXACT window over the frame's modality values
        (padding excluded), fixed by the first frame it is computed on so slices share it."""
        if self._range_preset is None:
            values = self.modality_values(index)
            mask = self.padding_mask(index)
            if mask is not None and (~mask).any():
                values = values[~mask]
            finite = values[np.isfinite(values)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            self._range_preset = VoiPreset("Full range", "window", (lo + hi) / 2, max(hi - lo, 1e-6), "LINEAR_EXACT")
        return self._range_preset

    # ------------------------------------------------------------------ geometry
    def hanging_flips(self) -> tuple[bool, bool] | None:
        """(mirror left-right, flip top-bottom) that hang this view in the usual way, from Patient
        Orientation: chest wall towards the centre (a right breast's on the right edge, a left
        breast's on the left), head / lateral side up. None when the file gives no usable
        orientation or laterality (the caller then falls back to guessing from the pixels)."""
        if self.patient_orientation is None or self.laterality not in ("L", "R"):
            return None
        row, column = self.patient_orientation
        # moving right along a row towards the nipple (A) puts the chest wall on the left edge
        if "A" in row or "P" in row:
            chest_left = "A" in row
            mirror = chest_left if self.laterality == "R" else not chest_left
        else:
            return None
        if "H" in column or "F" in column:
            flip = "H" in column  # head should be up: moving down must go towards the feet
        elif self.laterality in column:
            flip = True  # moving down goes lateral: lateral should be up
        else:
            flip = False
        return mirror, flip

    def summary(self) -> str:
        """One line for listings: never contains an identifier."""
        shape = f"{self.cols} x {self.rows}"
        if self.is_volume:
            shape += f" x {self.n_frames} {'slices' if self.is_tomosynthesis else 'frames'}"
        spacing = (
            f", {self.pixel_spacing[1]:.3g} x {self.pixel_spacing[0]:.3g} mm ({self.spacing_source})"
            if self.pixel_spacing
            else ", spacing unknown"
        )
        # plain films (mini-MIAS) are told apart only by their file; DICOM file names can carry the
        # patient's name, so they are never listed
        named = f"  {self.path.name}" if self.sop_class == "plain image" else ""
        return (
            f"{self.name:<8} {self.modality or '-':<3} {shape}, {self.bits_stored} bits{spacing}, "
            f"{self.photometric}, {self.transfer_syntax}{named}"
        )


def apply_lut(lut: np.ndarray, arr: np.ndarray, lo: int = 0, rows: int = 128) -> np.ndarray:
    """``lut[arr - lo]`` (clipped to the table), a band of rows at a time: numpy turns the indices
    into a 64-bit copy first, which for a whole 4.6 Mpixel frame leaves the caches; by bands the
    same values come twice as fast."""
    out = np.empty(arr.shape, dtype=lut.dtype)
    if arr.ndim != 2:
        return np.take(lut, arr.astype(np.int32) - lo if lo else arr, mode="clip")
    for r in range(0, arr.shape[0], rows):
        band = arr[r : r + rows]
        np.take(lut, band.astype(np.int32) - lo if lo else band, mode="clip", out=out[r : r + rows])
    return out


def voi_modality(values, attrs):
    from inference.studies import voi  # local: keeps pydicom out of import time

    return voi.modality(values, attrs)


def _lut_signature(attrs) -> tuple:
    """What the display LUT depends on besides the preset: frames of a volume usually share it,
    so their flattened attribute datasets (one per frame) map to one cached LUT."""
    if attrs is None:
        return ()
    return tuple(str(attrs.get(name, "")) for name in ("RescaleSlope", "RescaleIntercept", "PhotometricInterpretation")) + (
        id(attrs.get("ModalityLUTSequence")), id(attrs.get("VOILUTSequence")))


def order_views(images: Sequence[Image]) -> list[Image]:
    return sorted(images, key=lambda im: view_sort_key(im.laterality, im.view))
