"""Seeded mutations of DICOM files: what an attacker (or a broken archive) hands the viewer.

A case is fully determined by ``(run seed, case index)``: :func:`make_case` draws a seed file and a
mutation from a ``random.Random`` seeded with both, so the parent process only sends indices and
a worker rebuilds the exact bytes. Mutations are raw (byte flips, truncations, junk, element
length fields) or structural (a header value set through pydicom and the file written again:
huge declared sizes, wrong transfer syntax, NaN / odd window and rescale values, broken LUTs,
offset tables and fragments, overlay planes, legacy DBT slices with a bad position).
"""
from __future__ import annotations

import io
import os
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_REAL = Path(os.environ.get("MAMMOLENS_SHARED_DATA", REPO.parent / "shared" / "data")) / "dicom-real"

# pydicom's files that are not images (or not useful seeds) are still fine seeds: they must give a
# sentence too. Only the dump/json/icc/gz helpers are left out.
_SKIP_SUFFIXES = {".dump", ".json", ".icc", ".gz", ".txt"}


@dataclass
class Seed:
    name: str
    data: bytes
    weight: float = 1.0


@dataclass
class Case:
    index: int
    seed: str
    mutation: str
    files: dict[str, bytes]  # relative name -> content (one file, or a folder of several)
    planted: list[str] = field(default_factory=list)  # distinctive values a message must not echo

    @property
    def is_folder(self) -> bool:
        return len(self.files) > 1


def seed_files(include_real: bool = True) -> list[Seed]:
    """The demo study, pydicom's test files and (when present) ../shared/data/dicom-real."""
    import pydicom

    seeds: list[Seed] = []
    for path in sorted((REPO / "resources" / "demo").glob("*.dcm")):
        # the 8 MB DBT decodes a frame fast; it still weighs like one file
        seeds.append(Seed(f"demo/{path.name}", path.read_bytes(), 3.0))
    test_files = Path(pydicom.__file__).parent / "data" / "test_files"
    for path in sorted(test_files.iterdir()):
        if path.is_file() and path.suffix not in _SKIP_SUFFIXES and path.stat().st_size < 4_000_000:
            seeds.append(Seed(f"pydicom/{path.name}", path.read_bytes(), 1.0))
    if include_real and SHARED_REAL.is_dir():
        for path in sorted(SHARED_REAL.glob("*.dcm")):
            # full-field J2K decodes take ~0.5 s: a few percent of the cases
            seeds.append(Seed(f"real/{path.name}", path.read_bytes(), 0.6))
    return seeds


# ------------------------------------------------------------------------------ raw mutations


def _flip(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    buf = bytearray(data)
    n = rng.choice((1, 2, 4, 16, 64))
    # bias towards the header, where most of the structure is
    limit = min(len(buf), rng.choice((2048, 8192, len(buf))))
    for _ in range(n):
        i = rng.randrange(limit)
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf), f"flip{n}"


def _truncate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    cut = rng.choice((rng.randrange(len(data)), len(data) - rng.randrange(1, 64), rng.randrange(min(len(data), 1024))))
    return data[:max(cut, 0)], "truncate"


def _junk(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    i = rng.randrange(len(data))
    n = rng.choice((1, 4, 16, 256))
    return data[:i] + rng.randbytes(n) + data[i + n * rng.randrange(2):], "junk"


def _tag_bytes(group: int, element: int) -> bytes:
    return struct.pack("<HH", group, element)


_LENGTH_TAGS = [(0x0028, 0x0010), (0x0028, 0x0011), (0x0028, 0x0008), (0x0028, 0x0100), (0x0028, 0x0101),
                (0x0028, 0x0002), (0x0028, 0x0004), (0x0028, 0x1050), (0x0028, 0x1051), (0x0028, 0x1052),
                (0x0028, 0x1053), (0x0002, 0x0010), (0x7FE0, 0x0010), (0xFFFE, 0xE000), (0x0008, 0x0016),
                (0x0028, 0x3010), (0x0028, 0x3002), (0x0028, 0x3006), (0x5200, 0x9230), (0x0002, 0x0000)]


def _element_length(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Find a known tag in the bytes and corrupt its length field (explicit or implicit VR)."""
    tags = rng.sample(_LENGTH_TAGS, len(_LENGTH_TAGS))
    for group, element in tags:
        at = data.find(_tag_bytes(group, element))
        if at < 0:
            continue
        buf = bytearray(data)
        vr = bytes(buf[at + 4:at + 6])
        huge = rng.choice((0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFF0, 1, 3, 0, 0xFFFF, len(data) * 4))
        if vr.isalpha() and vr.isupper():
            if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"OD", b"OL", b"UC", b"UR", b"OV"):
                buf[at + 8:at + 12] = struct.pack("<I", huge)
            else:
                buf[at + 6:at + 8] = struct.pack("<H", huge & 0xFFFF)
        else:
            buf[at + 4:at + 8] = struct.pack("<I", huge)
        return bytes(buf), f"length({group:04X},{element:04X})"
    return _flip(rng, data)


# ------------------------------------------------------------------------------ structural mutations

_INT_PIXEL = {
    "Rows": (0, 1, 3, 65535, 32768), "Columns": (0, 1, 3, 65535, 32768),
    "BitsAllocated": (0, 1, 7, 12, 24, 64, 65535), "BitsStored": (0, 1, 17, 33, 64, 65535),
    "HighBit": (0, 65535, 40), "PixelRepresentation": (2, 65535), "SamplesPerPixel": (0, 2, 3, 4, 65535),
    "PlanarConfiguration": (2, 65535), "PixelPaddingValue": (-32768, 65535),
}
_FRAMES = ("-1", "0", "100000000", "2147483647", "abc", "1.5", "", "3", "-2147483648")
_STRINGS = ("abc", " ", "", "0x10", "1\\2\\3", "1e309", "-1e309", "nan", "NaN", "inf", "-inf", "1e308",
            "-1e308", "0", "-0", "1e-320", "65536", "-1", "5e-324")
_PHOTOMETRIC = ("MONOCHROME2\\MONOCHROME1", "RGB", "YBR_FULL_422", "PALETTE COLOR", "", "XYZ", "MONOCHROME3",
                "YBR_RCT", "MONOCHROME1")
_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
             "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
             "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
             "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5", "1.2.3.4",
             "abc", "", "1.2.840.10008.1.2.4.100")


def _read(data: bytes):
    import pydicom

    return pydicom.dcmread(io.BytesIO(data), force=True)


def _write(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def _set(ds, keyword: str, value, vr: str | None = None) -> None:
    """Set a header value exactly as given: a string goes in as raw bytes (pydicom would refuse to
    convert "0x10" or "abc" to a DS), so the file carries what an attacker wrote."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import DataElement, RawDataElement
    from pydicom.tag import Tag

    tag = tag_for_keyword(keyword)
    vr = vr or dictionary_VR(tag).split(" or ")[0]
    if isinstance(value, str):
        raw = value.encode("latin-1")
        raw += b" " * (len(raw) % 2)
        ds[tag] = RawDataElement(Tag(tag), vr, len(raw), raw, 0, False, True)
    else:
        ds[tag] = DataElement(tag, vr, value)


def _structural(rng: random.Random, data: bytes) -> tuple[bytes, str, list[str]]:
    import pydicom

    ds = _read(data)
    planted: list[str] = []
    kind = rng.choice(("pixel_int", "pixel_int", "frames", "frames", "delete", "syntax", "photometric",
                       "window", "window", "rescale", "rescale", "modality_lut", "voi_lut", "lut_descriptor",
                       "offsets", "fragments", "ext_offsets", "overlay", "spacing", "padding", "functional",
                       "huge_combo"))
    if kind == "pixel_int":
        name = rng.choice(list(_INT_PIXEL))
        value = rng.choice(_INT_PIXEL[name])
        _set(ds, name, value, "SS" if value < 0 else "US")
        kind = f"{name}={value}"
    elif kind == "frames":
        value = rng.choice(_FRAMES)
        _set(ds, "NumberOfFrames", value, "IS")
        kind = f"NumberOfFrames={value!r}"
        planted.append(value)
    elif kind == "delete":
        name = rng.choice(("PlanarConfiguration", "PhotometricInterpretation", "SamplesPerPixel", "BitsStored",
                           "PixelRepresentation", "BitsAllocated", "Rows", "Columns", "TransferSyntaxUID",
                           "SOPClassUID", "WindowWidth", "LUTData"))
        if name == "TransferSyntaxUID":
            if "TransferSyntaxUID" in getattr(ds, "file_meta", {}):
                del ds.file_meta.TransferSyntaxUID
        elif name == "LUTData":
            for seq in ("VOILUTSequence", "ModalityLUTSequence"):
                for item in ds.get(seq, []) or []:
                    if "LUTData" in item:
                        del item.LUTData
        elif name in ds:
            delattr(ds, name)
        kind = f"delete {name}"
    elif kind == "syntax":
        value = rng.choice(_SYNTAXES)
        ds.file_meta.TransferSyntaxUID = value
        kind = f"syntax {value}"
        # keep the encoding the data was written in: only the declared syntax lies
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=False, implicit_vr=ds.original_encoding[0] if ds.original_encoding[0]
                   is not None else False, little_endian=ds.original_encoding[1] if ds.original_encoding[1]
                   is not None else True)
        return buf.getvalue(), kind, planted
    elif kind == "photometric":
        value = rng.choice(_PHOTOMETRIC)
        _set(ds, "PhotometricInterpretation", value, "CS")
        kind = f"photometric {value!r}"
    elif kind in ("window", "rescale"):
        names = ("WindowCenter", "WindowWidth") if kind == "window" else ("RescaleSlope", "RescaleIntercept")
        name = rng.choice(names)
        value = rng.choice(_STRINGS)
        _set(ds, name, value, "DS")
        if rng.random() < 0.3:
            other = names[1] if name == names[0] else names[0]
            _set(ds, other, rng.choice(("1", "100", "4096", "nan")), "DS")
        kind = f"{name}={value!r}"
        planted.append(value)
    elif kind in ("modality_lut", "voi_lut", "lut_descriptor"):
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        item = Dataset()
        entries = rng.choice((0, 1, 16, 4096, 65535))
        bits = rng.choice((8, 16, 0, 12, 65535, 64))
        first = rng.choice((0, -100, 65535))
        descriptor = rng.choice(([entries, first, bits], [entries, first], [entries], []))
        item.LUTDescriptor = descriptor
        if rng.random() < 0.7:
            n = rng.choice((0, 1, 2, entries, max(entries - 1, 0), 8))
            item.add_new(0x00283006, "OW" if rng.random() < 0.5 else "US",
                         bytes(2 * n) if rng.random() < 0.5 else [rng.randrange(65536) for _ in range(min(n, 4096))])
        if rng.random() < 0.5:
            item.ModalityLUTType = "HU"
        seq = "ModalityLUTSequence" if kind == "modality_lut" else "VOILUTSequence"
        if kind == "lut_descriptor" and rng.random() < 0.5:
            seq = rng.choice(("ModalityLUTSequence", "VOILUTSequence"))
        setattr(ds, seq, Sequence([item]))
        if seq == "VOILUTSequence" and rng.random() < 0.5:
            for name in ("WindowCenter", "WindowWidth"):
                if name in ds:
                    delattr(ds, name)
        kind = f"{seq} descriptor={descriptor}"
    elif kind in ("offsets", "fragments", "ext_offsets"):
        if "PixelData" not in ds or not ds.file_meta.get("TransferSyntaxUID") or \
                not pydicom.uid.UID(ds.file_meta.TransferSyntaxUID).is_compressed:
            return _element_length(rng, data) + ([],)
        pixel = bytearray(ds.PixelData)
        if kind == "offsets" and pixel[:4] == b"\xfe\xff\x00\xe0":
            n = rng.choice((4, 8, 64))
            offsets = b"".join(struct.pack("<I", rng.choice((0xFFFFFFFF, 0x7FFFFFF0, rng.randrange(1 << 32))))
                               for _ in range(n // 4))
            length = struct.unpack("<I", pixel[4:8])[0]
            pixel = pixel[:4] + struct.pack("<I", len(offsets)) + offsets + pixel[8 + length:]
            if rng.random() < 0.3:
                pixel[4:8] = struct.pack("<I", rng.choice((0xFFFFFFFF, 3, 0x7FFFFFF0)))
        elif kind == "fragments":
            at = pixel.find(b"\xfe\xff\x00\xe0", 8)
            if at > 0:
                pixel[at + 4:at + 8] = struct.pack("<I", rng.choice((0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFF0, 1, 0)))
        else:
            ds.ExtendedOffsetTable = struct.pack("<Q", rng.choice((1 << 63, (1 << 64) - 1, 1 << 40)))
            ds.ExtendedOffsetTableLengths = struct.pack("<Q", rng.choice((1 << 63, 0, 1 << 40)))
        ds.PixelData = bytes(pixel)
        kind = f"encapsulated {kind}"
    elif kind == "overlay":
        group = rng.choice((0x6000, 0x6002, 0x601E))
        rows = rng.choice((int(ds.get("Rows", 16) or 16), 65535, 0, 3))
        cols = rng.choice((int(ds.get("Columns", 16) or 16), 65535, 0, 5))
        ds.add_new((group, 0x0010), "US", rows)
        ds.add_new((group, 0x0011), "US", cols)
        ds.add_new((group, 0x0040), "CS", rng.choice(("G", "R", "")))
        ds.add_new((group, 0x0050), "SS", rng.choice(([1, 1], [-25, -25], [40000 % 32768, 1], [1])))
        ds.add_new((group, 0x0100), "US", rng.choice((1, 0, 16, 65535)))
        ds.add_new((group, 0x0102), "US", rng.choice((0, 15, 65535)))
        size = rng.choice(((rows * cols + 7) // 8, 0, 3, 100))
        ds.add_new((group, 0x3000), "OW", rng.randbytes(min(size, 1 << 20) + (min(size, 1 << 20) & 1)))
        kind = f"overlay {rows}x{cols}"
    elif kind == "spacing":
        value = rng.choice(("abc", "0\\0", "nan\\nan", "1e309\\1", "-1\\-1", "1", "0.1\\0.1\\0.1"))
        _set(ds, rng.choice(("PixelSpacing", "ImagerPixelSpacing")), value, "DS")
        kind = f"spacing {value!r}"
    elif kind == "padding":
        _set(ds, "PixelPaddingValue", rng.choice((0, 65535, 1)), "US")
        _set(ds, "PixelPaddingRangeLimit", rng.choice((0, 65535, 1)), "US")
        kind = "padding"
    elif kind == "functional":
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        if not per_frame:
            _set(ds, "NumberOfFrames", rng.choice(_FRAMES), "IS")
            kind = "frames (no functional groups)"
        else:
            choice = rng.random()
            if choice < 0.3:
                del per_frame[rng.randrange(len(per_frame)):]
                kind = "per-frame groups cut short"
            elif choice < 0.6:
                item = per_frame[rng.randrange(len(per_frame))]
                for sub in item.get("PlanePositionSequence", []) or []:
                    _set(sub, "ImagePositionPatient", rng.choice(("abc\\1\\2", "1\\2", "nan\\nan\\nan", "")), "DS")
                kind = "per-frame position"
            else:
                item = per_frame[rng.randrange(len(per_frame))]
                for sub in item.get("FrameVOILUTSequence", []) or []:
                    _set(sub, rng.choice(("WindowCenter", "WindowWidth")), rng.choice(_STRINGS), "DS")
                for sub in item.get("PixelValueTransformationSequence", []) or []:
                    _set(sub, rng.choice(("RescaleSlope", "RescaleIntercept")), rng.choice(_STRINGS), "DS")
                kind = "per-frame VOI / rescale"
    else:  # huge_combo: every dimension large, bytes unchanged
        _set(ds, "Rows", 65535, "US")
        _set(ds, "Columns", 65535, "US")
        if rng.random() < 0.5:
            _set(ds, "NumberOfFrames", rng.choice(("1000", "100000000")), "IS")
        if rng.random() < 0.5:
            _set(ds, "SamplesPerPixel", 3, "US")
            _set(ds, "BitsAllocated", 16, "US")
        kind = "huge dimensions"
    return _write(ds), kind, planted


class _lenient:
    """pydicom accepts and writes any value while a case is built (restored afterwards)."""

    def __enter__(self):
        from pydicom import config

        self.saved = (config.settings.reading_validation_mode, config.settings.writing_validation_mode)
        config.settings.reading_validation_mode = config.IGNORE
        config.settings.writing_validation_mode = config.IGNORE
        return self

    def __exit__(self, *exc):
        from pydicom import config

        config.settings.reading_validation_mode, config.settings.writing_validation_mode = self.saved
        return False


def _legacy_dbt(rng: random.Random, data: bytes) -> tuple[dict[str, bytes], str, list[str]]:
    """A folder of single-frame tomosynthesis slices built from one seed, one slice broken."""
    ds = _read(data)
    if "PixelData" not in ds or "Rows" not in ds:
        raise ValueError("not an image")
    n = rng.choice((3, 4, 6))
    bad = rng.randrange(n)
    how = rng.choice(("position", "position", "truncate", "flip", "rows"))
    files = {}
    for k in range(n):
        ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMO"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, float(k)]
        ds.SeriesInstanceUID = "1.2.3.4.5"
        ds.StudyInstanceUID = "1.2.3.4"
        ds.InstanceNumber = k + 1
        if "SOPInstanceUID" in ds or True:
            ds.SOPInstanceUID = f"1.2.3.4.5.{k + 1}"
        if k == bad and how == "position":
            _set(ds, "ImagePositionPatient", rng.choice(("abc\\1\\2", "1\\2", "nan\\0\\0", "", "1e309\\0\\0")), "DS")
        if k == bad and how == "rows":
            _set(ds, "Rows", 65535, "US")
        blob = _write(ds)
        if k == bad and how == "truncate":
            blob = blob[:rng.randrange(len(blob))]
        elif k == bad and how == "flip":
            blob = _flip(rng, blob)[0]
        files[f"slice{k + 1:03d}.dcm"] = blob
        for name in ("Rows",):  # restore a changed value for the next slice
            if k == bad and how == "rows":
                ds = _read(data)
    return files, f"legacy DBT ({n} slices, one {how})", ["abc"] if how == "position" else []


def _folder(rng: random.Random, good: bytes, bad: bytes) -> dict[str, bytes]:
    return {"good.dcm": good, "DOE_JANE_MRN12345.dcm": bad}


_RAW = (_flip, _truncate, _junk, _element_length)


def make_case(seeds: list[Seed], run_seed: int, index: int) -> Case:
    """The deterministic case ``index`` of run ``run_seed``."""
    with _lenient():
        return _make_case(seeds, run_seed, index)


def _make_case(seeds: list[Seed], run_seed: int, index: int) -> Case:
    rng = random.Random(run_seed * 1_000_003 + index)
    seed = rng.choices(seeds, weights=[s.weight for s in seeds])[0]
    data = seed.data
    planted: list[str] = []
    roll = rng.random()
    try:
        if roll < 0.05 and data[128:132] == b"DICM":
            files, mutation, planted = _legacy_dbt(rng, data)
            return Case(index, seed.name, mutation, files, planted)
        if roll < 0.45:
            out, mutation = rng.choice(_RAW)(rng, data)
        else:
            out, mutation, planted = _structural(rng, data)
            if rng.random() < 0.15:  # a second, raw mutation on top
                out, extra = rng.choice(_RAW)(rng, out)
                mutation += f" + {extra}"
    except Exception as exc:  # the seed does not parse or cannot be written back: mutate raw instead
        out, mutation = rng.choice(_RAW)(rng, data)
        mutation += f" (structural failed: {type(exc).__name__})"
    if rng.random() < 0.08:
        demo = next((s for s in seeds if s.name == "demo/MG_RCC.dcm"), seeds[0])
        return Case(index, seed.name, mutation + " in a folder", _folder(rng, demo.data, out), planted)
    return Case(index, seed.name, mutation, {"case.dcm": out}, planted)


def is_sentence(message: str, planted: list[str] = ()) -> tuple[bool, str]:
    """Whether an error message is one clean sentence: why not, otherwise."""
    if "\n" in message:
        return False, "several lines"
    if len(message) > 400:
        return False, "longer than 400 characters"
    if " object at 0x" in message or "Traceback" in message:
        return False, "an object repr"
    if not message.rstrip().endswith((".", ")")):
        return False, "no full stop"
    for value in planted:
        if len(value) >= 3 and not value.replace(".", "").isdigit() and value in message:
            return False, "echoes a header value"
    if "DOE_JANE" in message:
        return False, "names a file from the disk"
    return True, ""


