"""A cohort folder made from the demo study: copies of one view, each with its own SOP Instance UID
(and two in a second series), plus files damaged in the ways a header check lets through (a garbage
JPEG 2000 stream, the transfer syntax relabelled JPEG-LS or RLE, encapsulation with no fragments)
and one truncated file. Used by the cohort tests and the cohort benchmark."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"

#: The damaged kinds, each a function of a pydicom Dataset (compressed JPEG 2000) -> bytes or a Dataset.
BROKEN_KINDS = ("garbage-j2k", "relabelled-jpegls", "relabelled-rle", "no-fragments", "truncated")


def _uid(i: int, kind: str) -> str:
    return f"1.2.826.0.1.3680043.10.1999.{kind}.{i}"


def make_cohort(folder: Path, copies: int = 20, broken: int = 1, view: str = "MG_LCC.dcm", seed: int = 0) -> dict:
    """Write ``copies`` good files and ``broken`` files of each damaged kind into ``folder``; returns
    {"good": [paths], "broken": {kind: [paths]}}."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless, RLELossless

    folder.mkdir(parents=True, exist_ok=True)
    source = pydicom.dcmread(DEMO / view)
    rng = np.random.default_rng(seed)
    good, damaged = [], {k: [] for k in BROKEN_KINDS}
    series2 = _uid(2, "3")
    for i in range(copies):
        ds = copy.deepcopy(source)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _uid(i + 1, "1")
        if i % 10 == 9:  # a second series of the same study holds some of the copies
            ds.SeriesInstanceUID = series2
        path = folder / f"copy_{i + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        good.append(path)
    for j in range(broken):
        for kind in BROKEN_KINDS:
            ds = copy.deepcopy(source)
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _uid(j + 1, f"2{BROKEN_KINDS.index(kind)}")
            path = folder / f"broken_{kind}_{j + 1}.dcm"
            if kind == "garbage-j2k":
                ds.PixelData = encapsulate([rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes()])
            elif kind == "relabelled-jpegls":
                ds.file_meta.TransferSyntaxUID = JPEGLSLossless
            elif kind == "relabelled-rle":
                ds.file_meta.TransferSyntaxUID = RLELossless
            elif kind == "no-fragments":
                ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"  # an empty Basic Offset Table, no fragment
                ds["PixelData"].is_undefined_length = True
            ds.save_as(path, enforce_file_format=True)
            if kind == "truncated":
                path.write_bytes(path.read_bytes()[:2000])
            damaged[kind].append(path)
    return {"good": good, "broken": damaged}
