"""Open one DICOM file as an :class:`~inference.studies.image.Image` with lazy frames, through pydicom.

Headers are read with large values deferred, so opening never reads the pixel data; a frame is
decoded by ``pydicom.pixels.pixel_array(path, index=i)`` only when asked for. Enhanced
multi-frame objects (Breast Tomosynthesis Image Storage) carry their VOI, rescale, spacing and
positions in the shared / per-frame functional groups; they are flattened per frame into a
small Dataset that pydicom's LUT functions take as they take a classic header.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import struct
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from inference.errors import (
    LoadError,
    MissingCodecError,
    NoPixelDataError,
    NotDicomError,
    TruncatedFileError,
    UnsupportedImageError,
    UnsupportedTransferSyntaxError,
)
from inference.studies import codecs, voi
from inference.studies.image import (
    FrameSource,
    Image,
    VoiPreset,
    overlay_planes_of,
    patient_orientation_of,
)
from inference.studies.limits import MAX_FRAMES, frame_cost, memory_budget

log = logging.getLogger("mammolens.studies")


class NoFileNames(logging.Filter):
    """Replaces file paths in a log record by ``<file>``: paths on a user's disk can carry names."""

    _PATH = re.compile(r"(?:[A-Za-z]:\\|/)[^\s'\",)]+")

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._PATH.sub("<file>", str(record.msg))
        if record.args:
            record.args = tuple(self._PATH.sub("<file>", a) if isinstance(a, str) else a
                                for a in (record.args if isinstance(record.args, tuple) else (record.args,)))
        return True


def route_pydicom_warnings() -> None:
    """pydicom reports every reading problem both as a warning (printed on stderr, often with the
    file's path) and on its ``pydicom`` logger: keep the logger, without paths, and drop the warning."""
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
    for name in ("pydicom", "mammolens.studies"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoFileNames) for f in logger.filters):
            logger.addFilter(NoFileNames())


route_pydicom_warnings()
codecs.register()  # imagecodecs: 12-bit lossy JPEG, and the faster JPEG 2000 decode

#: What a decoder may raise that still is the file's fault: everything but a user's interrupt, an
#: exit, and running out of memory (which the budget checks exist to prevent). pyo3's
#: PanicException (pylibjpeg-rle, ...) is a BaseException, so ``except Exception`` misses it.
_NOT_THE_FILE = (KeyboardInterrupt, SystemExit, MemoryError, GeneratorExit)

_WORDS = {"Rows": "Rows", "Columns": "Columns", "BitsAllocated": "Bits Allocated", "BitsStored": "Bits Stored",
          "HighBit": "High Bit", "PixelRepresentation": "Pixel Representation",
          "SamplesPerPixel": "Samples per Pixel", "PlanarConfiguration": "Planar Configuration",
          "PhotometricInterpretation": "Photometric Interpretation", "NumberOfFrames": "Number of Frames"}

BREAST_TOMOSYNTHESIS = "1.2.840.10008.5.1.4.1.1.13.1.3"
DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian

#: Which pylibjpeg / pyjpegls package decodes which compressed transfer syntax.
CODEC_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg",  # JPEG Extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": "pyjpegls",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "pyjpegls",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",  # RLE Lossless (pydicom also has its own)
}

# SNOMED-CT / SNOMED-RT view codes and their ViewPosition abbreviations.
_VIEW_CODES = {
    "399162004": "CC", "R-10242": "CC",
    "399368009": "MLO", "R-10226": "MLO",
    "399260004": "ML", "R-10224": "ML",
    "399352003": "LM", "R-10228": "LM",
    "399099002": "LMO", "R-10230": "LMO",
    "399196006": "SIO", "R-102D0": "SIO",
    "399101009": "XCCL", "R-1024A": "XCCL",
    "399192003": "XCCM", "R-1024B": "XCCM",
    "441555000": "FB", "R-102CF": "FB",
}
_VIEW_MEANINGS = (
    ("medio-lateral oblique", "MLO"), ("mediolateral oblique", "MLO"),
    ("latero-medial oblique", "LMO"), ("exaggerated laterally", "XCCL"),
    ("exaggerated medially", "XCCM"), ("cranio-caudal", "CC"), ("craniocaudal", "CC"),
    ("medio-lateral", "ML"), ("mediolateral", "ML"), ("latero-medial", "LM"),
)

# Header fields worth showing a researcher; none identifies a person.
HEADER_FIELDS = (
    "Modality", "SOPClassUID", "Manufacturer", "ManufacturerModelName", "PresentationIntentType",
    "ImageType", "PhotometricInterpretation", "Rows", "Columns", "NumberOfFrames",
    "BitsAllocated", "BitsStored", "PixelRepresentation", "ImageLaterality", "Laterality",
    "ViewPosition", "PixelSpacing", "ImagerPixelSpacing", "WindowCenter", "WindowWidth",
    "WindowCenterWidthExplanation", "VOILUTFunction", "RescaleSlope", "RescaleIntercept",
    "PixelPaddingValue", "KVP", "Exposure", "BodyPartThickness", "CompressionForce",
    "DetectorType", "AnodeTargetMaterial", "FilterMaterial", "BreastImplantPresent",
)
# Identifiers kept for grouping only; shown only when the user asks for them.
IDENTITY_FIELDS = (
    "PatientID", "PatientName", "PatientBirthDate", "AccessionNumber", "StudyInstanceUID",
    "SeriesInstanceUID", "SOPInstanceUID", "StudyDate", "StudyDescription",
    "SeriesDescription", "SeriesNumber", "InstanceNumber", "Modality",
)

_COLOUR_PHOTOMETRIC = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
_FLAT_PIXEL_ATTRS = ("PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit",
                     "PixelRepresentation", "SamplesPerPixel")
_FLAT_VOI_ATTRS = ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction",
                   "VOILUTSequence")
_FLAT_MODALITY_ATTRS = ("RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence")


def read_header(path: str | os.PathLike) -> Dataset:
    """Parse a DICOM header without reading pixel values; typed error with one sentence."""
    path = Path(path)
    try:
        try:
            ds = pydicom.dcmread(path, defer_size=4096)
        except InvalidDicomError:
            # Datasets written without the 128-byte preamble and file meta are still common in
            # research archives; accept them only when they hold an image.
            ds = pydicom.dcmread(path, defer_size=4096, force=True)
            if "PixelData" not in ds or "Rows" not in ds:
                raise
    except InvalidDicomError as exc:
        raise NotDicomError(path, "is not a DICOM file (no DICM preamble and no readable header).") from exc
    except (EOFError, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise LoadError(path, f"cannot be read ({exc.strerror or type(exc).__name__}).") from exc
        raise TruncatedFileError(path, "is truncated: the DICOM header ends before its last element.") from exc
    except Exception as exc:  # pydicom raises many types on garbage
        raise NotDicomError(path, f"is not a readable DICOM file ({type(exc).__name__}).") from exc
    if "SOPClassUID" not in ds and "PixelData" not in ds and not getattr(ds, "file_meta", None):
        raise NotDicomError(path, "is not a DICOM file (no DICOM elements found).")
    return ds


def codec_problem(transfer_syntax: UID, path: Path) -> LoadError | None:
    """The error to raise when the syntax cannot be decoded here, else None."""
    if not transfer_syntax.is_compressed:
        return None
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(transfer_syntax)
    except NotImplementedError:
        return UnsupportedTransferSyntaxError(
            path, f"uses transfer syntax {transfer_syntax} ({transfer_syntax.name}), which mammolens cannot decode."
        )
    if decoder.is_available:
        return None
    package = CODEC_PACKAGES.get(str(transfer_syntax), "pylibjpeg")
    return MissingCodecError(
        path, f"is compressed as {transfer_syntax.name} and needs the decoder package '{package}' "
        f"(pip install {package}).", package
    )


def _first(seq_owner: Dataset | None, seq_name: str) -> Dataset | None:
    if seq_owner is None:
        return None
    seq = seq_owner.get(seq_name)
    return seq[0] if seq else None


def _functional_item(ds: Dataset, frame: int, seq_name: str) -> Dataset | None:
    """Item of a functional group for one frame: per-frame wins over shared (PS3.3 C.7.6.16)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame < len(per_frame):
        item = _first(per_frame[frame], seq_name)
        if item is not None:
            return item
    return _first(_first(ds, "SharedFunctionalGroupsSequence"), seq_name)


def _flatten(ds: Dataset, frame: int | None) -> Dataset:
    """A small Dataset with the pixel, modality-LUT and VOI attributes that apply to ``frame``."""
    out = Dataset()
    for name in _FLAT_PIXEL_ATTRS + _FLAT_MODALITY_ATTRS + _FLAT_VOI_ATTRS + ("PixelPaddingValue",
                                                                             "PixelPaddingRangeLimit"):
        if name in ds:
            out[name] = ds[name]
    if frame is not None:
        for group, names in (("PixelValueTransformationSequence", _FLAT_MODALITY_ATTRS),
                             ("FrameVOILUTSequence", _FLAT_VOI_ATTRS)):
            item = _functional_item(ds, frame, group)
            if item is not None:
                for name in names:
                    if name in item:
                        out[name] = item[name]
    return out


def _spacing(ds: Dataset, attrs_frame0: Dataset) -> tuple[tuple[float, float] | None, str]:
    measures = _functional_item(ds, 0, "PixelMeasuresSequence")
    candidates = (
        (measures, "PixelSpacing", "pixel measures"),
        (ds, "PixelSpacing", "PixelSpacing"),
        (ds, "ImagerPixelSpacing", "ImagerPixelSpacing, at the detector"),
        (ds, "NominalScannedPixelSpacing", "NominalScannedPixelSpacing, film digitiser"),
    )
    for owner, name, label in candidates:
        if owner is not None and name in owner and owner[name].value:
            try:
                value = [float(v) for v in owner[name].value]
            except (TypeError, ValueError):
                continue
            if len(value) == 2 and value[0] > 0 and value[1] > 0:
                return (value[0], value[1]), label
    return None, ""


def laterality_of(ds: Dataset) -> tuple[str, str]:
    for name in ("ImageLaterality", "Laterality"):
        value = str(ds.get(name, "") or "").upper()
        if value in ("L", "R"):
            return value, name
    anatomy = _functional_item(ds, 0, "FrameAnatomySequence")
    if anatomy is not None and str(anatomy.get("FrameLaterality", "")).upper() in ("L", "R"):
        return str(anatomy.FrameLaterality).upper(), "FrameLaterality"
    return "", ""


def view_of(ds: Dataset) -> str:
    value = str(ds.get("ViewPosition", "") or "").upper().strip()
    if value:
        return value
    for item in ds.get("ViewCodeSequence", []) or []:
        code = str(item.get("CodeValue", "") or "")
        if code in _VIEW_CODES:
            return _VIEW_CODES[code]
        meaning = str(item.get("CodeMeaning", "") or "").lower()
        for text, abbreviation in _VIEW_MEANINGS:
            if text in meaning:
                return abbreviation
    return ""


def _slice_positions(ds: Dataset, n_frames: int) -> list[float] | None:
    """Frame positions in mm along the stack normal, from the Plane Position functional group; None
    when any is missing or unreadable (the frames then keep the file's order)."""
    try:
        return _positions(ds, n_frames)
    except Exception as exc:  # noqa: BLE001 - malformed positions or orientation
        log.info("frame positions unreadable (%s); frames keep the file's order", type(exc).__name__)
        return None


def _positions(ds: Dataset, n_frames: int) -> list[float] | None:
    orientation = _functional_item(ds, 0, "PlaneOrientationSequence")
    normal = None
    if orientation is not None and "ImageOrientationPatient" in orientation:
        iop = np.array([float(v) for v in orientation.ImageOrientationPatient])
        normal = np.cross(iop[:3], iop[3:])
    positions = []
    for k in range(n_frames):
        item = _functional_item(ds, k, "PlanePositionSequence")
        if item is None or "ImagePositionPatient" not in item:
            return None
        ipp = np.array([float(v) for v in item.ImagePositionPatient])
        positions.append(float(ipp @ normal) if normal is not None and np.any(normal) else float(ipp[2]))
    return positions


def _padding_range(ds: Dataset) -> tuple[int, int] | None:
    if "PixelPaddingValue" not in ds:
        return None
    a = int(ds.PixelPaddingValue)
    b = int(ds.get("PixelPaddingRangeLimit", a))
    return (min(a, b), max(a, b))


def _frame_reader(path: Path, photometric: str, samples: int) -> Callable[[int], np.ndarray]:
    from pydicom.pixels import pixel_array

    def read(index: int) -> np.ndarray:
        try:
            try:
                arr = pixel_array(str(path), index=index)
            except (ValueError, AttributeError, KeyError):
                # pixel_array(path) parses the file its own, stricter way; some valid files
                # (odd offset tables) only decode through a full dataset
                arr = pixel_array(pydicom.dcmread(path, force=True, defer_size=4096), index=index)
        except _NOT_THE_FILE:
            raise
        except BaseException as exc:  # noqa: BLE001 - decoder panics (pyo3) are BaseExceptions
            raise _decode_error(path, index, exc) from None
        if samples > 1:
            # Colour secondary captures: pydicom converts YBR to RGB; show luminance (Rec. 601)
            arr = np.asarray(arr, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return arr

    return read


def _reduced_frame(path: Path, index: int, n_frames: int, max_side: int):
    """A JPEG 2000 frame at a reduced resolution level, ``(stored values, factor)``, or None."""
    from pydicom.encaps import get_frame

    from inference.studies.codecs import reduced_jpeg2000

    try:
        ds = pydicom.dcmread(path, force=True)
        src = get_frame(ds.PixelData, index, number_of_frames=n_frames)
    except Exception:  # noqa: BLE001 - no preview: the full decode says what is wrong
        return None
    return reduced_jpeg2000(src, max_side)


def _decode_error(path: Path, index: int, exc: BaseException) -> LoadError:
    """The file's sentence for a failed decode; the library's own words go to the log only."""
    log.info("decoding frame %d of a file failed: %s: %s", index + 1, type(exc).__name__,
             " ".join(str(exc).split())[:2000])
    if isinstance(exc, (EOFError, OSError)) or "truncat" in str(exc).lower() or "end of" in str(exc).lower():
        return TruncatedFileError(path, f"frame {index + 1} cannot be decoded: its pixel data ends early.")
    return LoadError(path, f"frame {index + 1} cannot be decoded: its pixel data is corrupt or does not match "
                           f"what its header declares.")


def _check_pixels(ds: Dataset, path: Path) -> None:
    """Raise the right typed error when the pixel data is absent, truncated or undecodable."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        # pydicom stops quietly when an encapsulated Pixel Data element is cut short: the tag is
        # in the file but not in the dataset
        with open(path, "rb") as handle:
            if b"\xe0\x7f\x10\x00" in handle.read():
                raise TruncatedFileError(path, "is truncated: its pixel data ends early.")
        if "Image Storage" in UID(str(ds.get("SOPClassUID", ""))).name or "Rows" in ds:
            raise TruncatedFileError(path, "is truncated: it is an image object but the file ends before "
                                           "its pixel data.")
        raise NoPixelDataError(path, "has no pixel data (it is not an image object).")
    if ts is not None:
        if not UID(ts).is_transfer_syntax:
            raise UnsupportedTransferSyntaxError(
                path, f"uses transfer syntax {ts}, which is not one DICOM defines; mammolens cannot decode it.")
        problem = codec_problem(UID(ts), path)
        if problem is not None:
            raise problem
    _check_geometry(ds, path, ts)


def _attr_int(ds: Dataset, name: str, path: Path, default: int | None = None) -> int:
    """An integer header value, or the file's sentence when it is absent (without a default) or not one."""
    if name not in ds or ds[name].value in (None, ""):
        if default is None:
            raise LoadError(path, f"has pixel data but no {_WORDS.get(name, name)} value.")
        return default
    value = ds[name].value
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        raise LoadError(path, f"has several {_WORDS.get(name, name)} values where one is allowed.")
    try:
        number = float(value)
        if not math.isfinite(number) or number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise LoadError(path, f"has a {_WORDS.get(name, name)} value that is not a whole number.") from None


def _pixel_data_offset(ds: Dataset) -> int | None:
    """Where the Pixel Data value starts in the file (None when it was read into memory)."""
    try:
        raw = ds.get_item("PixelData", keep_deferred=True)
    except Exception:  # noqa: BLE001 - an undecodable element: the decode reports it
        return None
    tell = getattr(raw, "value_tell", None)
    return int(tell) if tell is not None else None


def _pixel_data_length(ds: Dataset) -> int | None:
    """The Pixel Data element's declared length (None when undefined: encapsulated)."""
    try:
        raw = ds.get_item("PixelData", keep_deferred=True)
    except Exception:  # noqa: BLE001
        return None
    length = getattr(raw, "length", None)
    return None if length is None or length == 0xFFFFFFFF else int(length)


def _pixel_bytes_available(ds: Dataset, path: Path) -> int | None:
    """How many bytes the file holds from the start of the Pixel Data value (it is never read here)."""
    tell = _pixel_data_offset(ds)
    if tell is None:
        try:
            value = ds.get_item("PixelData", keep_deferred=True).value
        except Exception:  # noqa: BLE001
            return None
        return len(value) if isinstance(value, (bytes, bytearray)) else None
    return max(os.path.getsize(path) - tell, 0)


def _check_fragments(ds: Dataset, path: Path, available: int, ts=None, frames: int = 1) -> None:
    """Every item of encapsulated pixel data must fit in the bytes that follow it: a file reader asked
    for a 4 GB fragment allocates 4 GB before it finds the file ends. There must be at least one
    fragment per frame, and the first fragment must start as its transfer syntax's codestream does
    (:func:`_check_codestream`: a few bytes read, nothing decoded)."""
    tell = _pixel_data_offset(ds)
    if tell is None:
        return
    fragments, head, delimited = 0, b"", False
    with open(path, "rb") as handle:
        handle.seek(tell)
        left = available
        first = True
        while left >= 8:
            header = handle.read(8)
            if len(header) < 8:
                break
            group, element, length = struct.unpack("<HHI", header)
            left -= 8
            if (group, element) == (0xFFFE, 0xE0DD):
                delimited = True
                break
            if (group, element) != (0xFFFE, 0xE000):
                raise LoadError(path, "has encapsulated pixel data whose items are not where their lengths "
                                      "say they are.")
            if length > left:
                raise TruncatedFileError(path, "has a pixel data fragment longer than the bytes left in the file "
                                               "(truncated or corrupt).")
            if first and length:
                # the Basic Offset Table: pydicom reads from one offset to the next in one go
                table = np.frombuffer(handle.read(length - length % 4), "<u4").astype(np.int64)
                handle.seek(length % 4, os.SEEK_CUR)
                if length % 4 or table[0] != 0 or np.any(np.diff(table) < 0) or np.any(table >= left - length):
                    raise LoadError(path, "has a Basic Offset Table that points outside its pixel data.")
            elif not first:
                fragments += 1
                if fragments == 1:
                    head = handle.read(min(length, _CODESTREAM_HEAD))
                    handle.seek(length - len(head), os.SEEK_CUR)
                else:
                    handle.seek(length, os.SEEK_CUR)
            else:
                handle.seek(length, os.SEEK_CUR)
            first = False
            left -= length
    if fragments < frames and not delimited:
        raise TruncatedFileError(path, f"is truncated: its pixel data ends after {fragments} of at least {frames} "
                                       f"fragment(s).")
    if fragments == 0:
        raise LoadError(path, "has encapsulated pixel data with no fragments: the file holds no image.")
    if fragments < frames:
        raise LoadError(path, f"declares {frames} frames but its encapsulated pixel data holds only {fragments} "
                              f"fragment(s).")
    if ts is not None:
        _check_codestream(ds, path, str(ts), head)


#: How much of the first fragment the codestream check reads.
_CODESTREAM_HEAD = 4096
_J2K_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
                 "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                 "1.2.840.10008.1.2.4.203"}
_JPEG_LS_SYNTAXES = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
_JPEG_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                  "1.2.840.10008.1.2.4.70"}
_RLE_SYNTAX = "1.2.840.10008.1.2.5"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}


def _jpeg_frame_header(head: bytes) -> tuple[int, int, int] | None:
    """(SOF marker, rows, columns) of the first frame header of a JPEG / JPEG-LS stream's first bytes;
    None when the stream does not start with SOI or the header lies beyond them. Raises ValueError
    when the bytes are not JPEG markers."""
    if head[:2] != b"\xff\xd8":
        raise ValueError("no SOI marker")
    at = 2
    while at + 4 <= len(head):
        if head[at] != 0xFF:
            raise ValueError("not a marker")
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            at += 2
            continue
        length = struct.unpack(">H", head[at + 2:at + 4])[0]
        if length < 2:
            raise ValueError("bad segment length")
        if marker in _SOF_MARKERS:
            if at + 9 > len(head):
                return None
            rows, cols = struct.unpack(">HH", head[at + 5:at + 9])
            return marker, rows, cols
        if marker in (0xDA, 0xD9):  # a scan or the end before any frame header
            raise ValueError("no frame header before the scan")
        at += 2 + length
    return None


def _check_codestream(ds: Dataset, path: Path, ts: str, head: bytes) -> None:
    """The first fragment must be a codestream of the declared transfer syntax and image size: a
    garbage JPEG 2000 stream, or a file whose transfer syntax was relabelled (JPEG-LS, RLE, ...),
    is refused here from a few bytes instead of failing when its pixels are first decoded."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    name = UID(ts).name

    def refuse(what: str) -> LoadError:
        return LoadError(path, f"declares {name} but its first pixel data fragment {what}; the pixels cannot be "
                               f"decoded.")

    if ts in _J2K_SYNTAXES:
        if head.startswith(_JP2_SIGNATURE):
            return  # a JP2 file inside the fragment: its boxes are left to the decoder
        if head[:4] != b"\xff\x4f\xff\x51" or len(head) < 24:
            raise refuse("is not a JPEG 2000 codestream")
        x, y, x0, y0 = struct.unpack(">IIII", head[8:24])
        if (x - x0, y - y0) != (cols, rows):
            raise refuse(f"is a JPEG 2000 codestream of {x - x0} x {y - y0} pixels, not {cols} x {rows}")
    elif ts in _JPEG_LS_SYNTAXES or ts in _JPEG_SYNTAXES:
        kind = "JPEG-LS" if ts in _JPEG_LS_SYNTAXES else "JPEG"
        try:
            found = _jpeg_frame_header(head)
        except ValueError:
            raise refuse(f"is not a {kind} stream") from None
        if found is not None:
            marker, r, c = found
            if (marker == 0xF7) != (kind == "JPEG-LS"):
                raise refuse(f"is a {'JPEG-LS' if marker == 0xF7 else 'JPEG'} stream, not {kind}")
            if (r and r != rows) or c != cols:
                raise refuse(f"is a {kind} stream of {c} x {r} pixels, not {cols} x {rows}")
    elif ts == _RLE_SYNTAX:
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        expected = samples * max(1, (int(ds.get("BitsAllocated", 8) or 8) + 7) // 8)
        ok = len(head) >= 64
        if ok:
            n, *offsets = struct.unpack("<16I", head[:64])
            used = offsets[:n] if 1 <= n <= 15 else []
            ok = (n == expected and used and used[0] == 64 and all(b > a for a, b in zip(used, used[1:]))
                  and not any(offsets[n:]))
        if not ok:
            raise refuse("is not an RLE stream of this image's samples")


def _check_geometry(ds: Dataset, path: Path, ts) -> None:
    """Declared sizes against the bytes present and the memory budget, before anything is decoded."""
    rows, cols = _attr_int(ds, "Rows", path), _attr_int(ds, "Columns", path)
    if rows <= 0 or cols <= 0:
        raise LoadError(path, "declares an image with no rows or no columns.")
    bits = _attr_int(ds, "BitsAllocated", path)
    if bits not in (1, 8, 16, 32, 64):
        raise UnsupportedImageError(path, "declares a Bits Allocated value DICOM does not allow for images.")
    stored = _attr_int(ds, "BitsStored", path, default=bits)
    if not 1 <= stored <= bits:
        raise LoadError(path, "declares more stored bits per pixel than it allocates (or none).")
    if _attr_int(ds, "PixelRepresentation", path, default=0) not in (0, 1):
        raise LoadError(path, "has a Pixel Representation that is neither unsigned (0) nor signed (1).")
    samples = _attr_int(ds, "SamplesPerPixel", path, default=1)
    if samples not in (1, 3):
        raise UnsupportedImageError(path, "has a number of samples per pixel other than 1 (greyscale) or 3 (colour).")
    if samples == 3 and _attr_int(ds, "PlanarConfiguration", path, default=0) not in (0, 1):
        raise LoadError(path, "has a Planar Configuration that is neither 0 nor 1.")
    frames = number_of_frames(ds, path)
    budget = memory_budget()
    cost = frame_cost(rows, cols, samples, max(1, bits // 8))
    if cost > budget:
        raise LoadError(path, f"declares frames of {cols} x {rows} pixels, which need {cost / 2**20:.0f} MB to show: "
                              f"more than the memory budget of {budget / 2**20:.0f} MB.")
    if ts is not None and str(ts) == DEFLATED:
        return  # offsets refer to the inflated stream, not the file: nothing to compare with here
    available = _pixel_bytes_available(ds, path)
    if available is None or "PixelData" not in ds:
        return
    compressed = ts is not None and UID(ts).is_transfer_syntax and UID(ts).is_compressed
    declared = _pixel_data_length(ds)
    if declared is not None and declared > available:
        # a reader asked for the declared length allocates it before it finds the file ends
        raise TruncatedFileError(path, "is truncated: its Pixel Data element declares more bytes than the file holds.")
    if compressed:
        # every frame is at least one fragment item (8-byte tag and length) plus its data
        if frames * 8 > available:
            raise TruncatedFileError(path, f"declares {frames} frames but its pixel data is too small to hold them.")
        _check_offset_tables(ds, path, available)
        _check_fragments(ds, path, available, ts, frames)
    else:
        expected = (rows * cols * frames * samples * bits + 7) // 8
        if available < expected:
            raise TruncatedFileError(path, f"is truncated: its pixel data holds {available} of the {expected} "
                                           f"bytes the header announces.")


def number_of_frames(ds: Dataset, path: Path) -> int:
    """Number of Frames, refused when absent-but-invalid, not positive or absurd."""
    frames = _attr_int(ds, "NumberOfFrames", path, default=1)
    if frames <= 0:
        raise LoadError(path, "declares no frames (Number of Frames is zero or negative).")
    if frames > MAX_FRAMES:
        raise LoadError(path, f"declares more than {MAX_FRAMES} frames, which no mammogram or tomosynthesis "
                              f"volume has.")
    return frames


def _check_offset_tables(ds: Dataset, path: Path, available: int) -> None:
    """An Extended Offset Table must point inside the pixel data (pydicom trusts it)."""
    if "ExtendedOffsetTable" not in ds:
        return
    try:
        table = bytes(ds.ExtendedOffsetTable)
        lengths = bytes(ds.get("ExtendedOffsetTableLengths", b"") or b"")
    except Exception:  # noqa: BLE001 - unreadable value
        table, lengths = b"x", b""
    bad = len(table) % 8 or len(lengths) % 8 or (lengths and len(lengths) != len(table))
    if not bad:
        offsets = np.frombuffer(table, "<u8")
        sizes = np.frombuffer(lengths, "<u8") if lengths else np.zeros_like(offsets)
        bad = bool(np.any(offsets >= available) or np.any(sizes > available)
                   or np.any(offsets.astype(np.float64) + sizes > available))
    if bad:
        raise LoadError(path, "has an Extended Offset Table that points outside its pixel data.")


def open_dicom(path: str | os.PathLike, ds: Dataset | None = None) -> Image:
    """Open one DICOM image file lazily (no frame is decoded here)."""
    path = Path(path)
    ds = read_header(path) if ds is None else ds
    try:
        return _open_dicom(path, ds)
    except LoadError:
        raise
    except Exception as exc:  # malformed values (bad VRs, non-numeric strings) anywhere in the header
        raise LoadError(path, f"has a malformed DICOM header ({type(exc).__name__}: {exc}).") from exc


def _open_dicom(path: Path, ds: Dataset) -> Image:
    _check_pixels(ds, path)
    raw_photometric = ds.get("PhotometricInterpretation", "MONOCHROME2")
    if not isinstance(raw_photometric, str):
        raise LoadError(path, "has several Photometric Interpretation values where one is allowed.")
    photometric = (raw_photometric or "MONOCHROME2").strip().upper()
    samples = _attr_int(ds, "SamplesPerPixel", path, default=1)
    if photometric == "PALETTE COLOR":
        raise UnsupportedImageError(path, "is a palette-colour image, not a greyscale mammogram.")
    if samples == 1 and photometric not in ("MONOCHROME1", "MONOCHROME2"):
        known = photometric if photometric in _COLOUR_PHOTOMETRIC else "an unknown one"
        raise UnsupportedImageError(path, f"has photometric interpretation {known}, not a greyscale image.")
    if samples == 3 and photometric not in _COLOUR_PHOTOMETRIC:
        raise LoadError(path, "has three samples per pixel but no colour photometric interpretation.")
    n_frames = number_of_frames(ds, path)
    enhanced = "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds
    sop = str(ds.get("SOPClassUID", ""))
    attrs_cache: dict[int, Dataset] = {}

    def attributes(index: int) -> Dataset:
        key = index if enhanced else 0
        if key not in attrs_cache:
            flat = _flatten(ds, key if enhanced else None)
            if samples > 1:  # luminance of RGB: treat as plain 8-bit greyscale
                for name in _FLAT_VOI_ATTRS + _FLAT_MODALITY_ATTRS:
                    if name in flat:
                        del flat[name]
                flat.PhotometricInterpretation = "MONOCHROME2"
            try:
                attrs_cache[key] = voi.checked(flat)
            except voi.AttributeProblem as exc:
                raise LoadError(path, str(exc)) from None
        return attrs_cache[key]

    # Frames keep the file's order when their positions are monotonic (either direction, as the
    # vendor wrote them); otherwise they are shown sorted by position along the stack normal.
    positions = _slice_positions(ds, n_frames) if enhanced and n_frames > 1 else None
    if positions is not None and not np.all(np.isfinite(positions)):
        positions = None
    order = list(range(n_frames))
    if positions is not None:
        steps = np.diff(positions)
        if not (np.all(steps > 0) or np.all(steps < 0)):
            order = sorted(order, key=lambda k: positions[k])
            positions = [positions[k] for k in order]
    file_reader = _frame_reader(path, photometric, samples)

    def read(index: int) -> np.ndarray:
        return file_reader(order[index])

    def ordered_attributes(index: int) -> Dataset:
        return attributes(order[index])

    preview = None
    if samples == 1 and "TransferSyntaxUID" in getattr(ds, "file_meta", {}) \
            and ds.file_meta.TransferSyntaxUID in (pydicom.uid.JPEG2000Lossless, pydicom.uid.JPEG2000):

        def preview(index: int, max_side: int = 1024):
            return _reduced_frame(path, order[index], n_frames, max_side)

    attrs0 = attributes(0)
    presets: list[VoiPreset] = voi.presets_from(attrs0) if samples == 1 else []
    if not presets:
        presets = [VoiPreset("Full range", "range")]
    spacing, spacing_source = _spacing(ds, attrs0)
    laterality, lat_source = laterality_of(ds)
    ts = UID(ds.file_meta.TransferSyntaxUID) if "TransferSyntaxUID" in getattr(ds, "file_meta", {}) else None
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    header = {name: str(ds[name].value) for name in HEADER_FIELDS if name in ds and ds[name].value not in (None, "")}
    if "SOPClassUID" in header:
        header["SOPClassUID"] = UID(header["SOPClassUID"]).name
    identity = {name: str(ds.get(name, "") or "") for name in IDENTITY_FIELDS}
    overlays = overlay_planes_of(ds, int(ds.Rows), int(ds.Columns))
    return Image(
        path=path,
        rows=int(ds.Rows),
        cols=int(ds.Columns),
        patient_orientation=patient_orientation_of(ds),
        overlay_planes=overlays,
        n_frames=n_frames,
        source=FrameSource(read=read, attributes=ordered_attributes, preview=preview),
        laterality=laterality,
        laterality_source=lat_source,
        view=view_of(ds),
        pixel_spacing=spacing,
        spacing_source=spacing_source,
        photometric="MONOCHROME2" if samples > 1 else photometric,
        modality=str(ds.get("Modality", "") or ""),
        sop_class=UID(sop).name if sop else "",
        transfer_syntax=ts.name if ts is not None else "unknown",
        bits_stored=_attr_int(ds, "BitsStored", path, default=_attr_int(ds, "BitsAllocated", path)),
        presets=presets,
        padding=_padding_range(ds),
        slice_positions=positions,
        is_tomosynthesis=sop == BREAST_TOMOSYNTHESIS or any("TOMO" in t for t in image_type),
        header=header,
        identity=identity,
    )


def slice_position(ds: Dataset, fallback: int = 0) -> float:
    """A legacy slice's position along the stack normal (Image Position / Orientation Patient), then
    its Slice Location, then its Instance Number; raises ValueError when the one it has is unreadable."""
    def numbers(name: str, count: int) -> np.ndarray:
        value = ds[name].value
        values = np.array([float(v) for v in (value if isinstance(value, (list, tuple)) or
                                               type(value).__name__ == "MultiValue" else [value])])
        if values.shape != (count,) or not np.all(np.isfinite(values)):
            raise ValueError(f"{name} does not hold {count} finite numbers")
        return values

    if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
        iop = numbers("ImageOrientationPatient", 6)
        return float(numbers("ImagePositionPatient", 3) @ np.cross(iop[:3], iop[3:]))
    if "SliceLocation" in ds:
        return float(numbers("SliceLocation", 1)[0])
    if ds.get("InstanceNumber") not in (None, ""):
        return float(numbers("InstanceNumber", 1)[0])
    return float(fallback)


def stack_slices(images: list[Image], headers: list[Dataset]) -> Image:
    """Legacy DBT: single-frame slice files of one series, as one lazily read volume.

    Slices are ordered by their position along the stack normal (Image Position / Orientation
    Patient), then Slice Location, then Instance Number; each slice keeps its own attributes.
    """

    order = sorted(range(len(images)), key=lambda i: slice_position(headers[i], i))
    images = [images[i] for i in order]
    positions = [slice_position(headers[i], i) for i in order]
    first = images[0]

    def read(index: int) -> np.ndarray:
        return images[index].source.read(0)

    def attributes(index: int):
        return images[index].source.attributes(0)

    volume = dataclasses.replace(
        first,
        path=first.path.parent,
        n_frames=len(images),
        source=FrameSource(read=read, attributes=attributes),
        slice_positions=positions,
        is_tomosynthesis=True,
        header=dict(first.header, NumberOfFrames=str(len(images)), LegacySlices="single-frame files"),
        identity=dict(first.identity),
    )
    volume.slice_files = [im.path for im in images]  # type: ignore[attr-defined]
    volume.slice_uids = [im.identity.get("SOPInstanceUID", "") for im in images]  # type: ignore[attr-defined]
    return volume
