"""Synthetic lesion patches for augmentation: generate with a synthesis bundle, export as a set (headless).

What ``mammolens synthesize`` and the viewer's synthesis pane share:

* :func:`load_generator` / :func:`bundle_classes`: the engine and the classes of a bundle (the pane
  fills its class list from the bundle, never from a fixed vocabulary);
* :func:`generate_patches`: class, count, seed (and truncation) -> :class:`Patch` objects (pixels in
  [0, 1] plus what made them), identical for the same seed and bundle;
* :func:`export_patches`: the patches a user picked -> PNG (8- and/or 16-bit) and DICOM Secondary
  Capture files plus one CSV (``synthetic.csv``: file, class, seed, index, bundle, version, ...)
  in a folder. The folder can be appended to: names that exist get a numeric suffix, never
  overwritten, and the CSV gains rows. Files are written into a staging folder first and then
  linked into place (a link never replaces an existing name), the CSV last and atomically, so a
  failed export leaves neither half its files nor a CSV naming missing ones.

DICOM: Secondary Capture Image Storage built with highdicom, conversion type SYN (synthetic),
16-bit MONOCHROME2; class, seed, index, truncation and the model (name, version) are in the
header (SeriesDescription, ImageComments, DerivationDescription); patient name, ID, birth date
and sex are left empty and PatientIdentityRemoved is YES: a synthetic patch has no patient.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from inference.errors import MammolensError

CSV_NAME = "synthetic.csv"
CSV_COLUMNS = ("file", "class", "seed", "index", "truncation", "bundle", "version", "format")
FORMATS = ("png8", "png16", "dicom")
_SUFFIX = {"png8": ".png", "png16": "_16bit.png", "dicom": ".dcm"}


class ExportError(MammolensError):
    """An export the folder or the request cannot take (one sentence)."""


@dataclass(frozen=True)
class Patch:
    """One generated patch and what made it (a pane shows ``pixels``, exports carry the rest)."""

    pixels: np.ndarray  # float32 (R, R) in [0, 1]
    label: str
    seed: int
    index: int  # its row in the seed's noise: (seed, index) names the patch for good
    truncation: float
    bundle: str
    version: str


def load_generator(model: str | os.PathLike | None = None, device: str = "auto", extra_dirs=(), *,
                   check: tuple | None = None):
    """The synthesis engine of a bundle (folder or name; default: the first synthesis bundle found).

    ``check``: ``(labels, count, seed, truncation)`` validated against the bundle's classes before
    any ONNX Runtime session opens (so a bad request costs nothing and says one sentence).
    """
    from inference.bundle import resolve_bundle
    from inference.methods import get
    from inference.methods.synthesis import check_request

    bundle = resolve_bundle(model, "synthesis", extra_dirs=extra_dirs)
    if check is not None:
        labels, count, seed, truncation = check
        for label in labels or bundle_classes(bundle):
            check_request(bundle_classes(bundle), label, count, seed, truncation)
    return get("synthesis").load(bundle, device)


def bundle_classes(bundle) -> list[str]:
    """The classes a synthesis bundle generates (its ``parameters.classes``)."""
    from inference.methods.synthesis import bundle_classes as classes

    return classes(bundle)


def generate_patches(engine, label: str, count: int, seed: int, truncation: float = 1.0, *, progress=None,
                     cancel=None) -> list[Patch]:
    """``count`` patches of ``label`` from ``seed`` (GenerationError with one sentence on bad input)."""
    pixels = engine.generate(label, count, seed, truncation, progress=progress, cancel=cancel)
    return [Patch(p, label, int(seed), i, float(truncation), engine.bundle.name, engine.bundle.version)
            for i, p in enumerate(pixels)]


def to_uint(pixels: np.ndarray, bits: int) -> np.ndarray:
    """[0, 1] -> unsigned integers of ``bits`` (8 or 16), rounded."""
    top = (1 << bits) - 1
    return np.round(np.clip(pixels, 0.0, 1.0) * top).astype(np.uint8 if bits == 8 else np.uint16)


def dicom_bytes(patch: Patch, *, study_uid: str, series_uid: str, series_number: int = 1,
                instance_number: int = 1) -> bytes:
    """A DICOM Secondary Capture of one patch (highdicom), without any patient identifier."""
    import highdicom as hd
    from pydicom.filebase import DicomBytesIO

    sc = hd.sc.SCImage(
        pixel_array=to_uint(patch.pixels, 16), photometric_interpretation="MONOCHROME2", bits_allocated=16,
        coordinate_system="PATIENT", patient_orientation=("A", "F"),
        study_instance_uid=study_uid, series_instance_uid=series_uid, series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=instance_number, manufacturer="mammolens",
    )
    sc.ConversionType = "SYN"  # synthetic image
    sc.PatientIdentityRemoved = "YES"
    sc.BurnedInAnnotation = "NO"
    sc.SeriesDescription = f"mammolens synthetic {patch.label} patches"[:64]
    text = (f"mammolens synthesis: class={patch.label} seed={patch.seed} index={patch.index} "
            f"truncation={patch.truncation:g} model={patch.bundle} version={patch.version}")
    sc.ImageComments = text
    sc.DerivationDescription = text[:1024]
    out = DicomBytesIO()
    sc.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _file_bytes(patch: Patch, fmt: str, uids: dict, number: int) -> bytes:
    from inference.images import png_bytes

    if fmt == "png8":
        return png_bytes(to_uint(patch.pixels, 8))
    if fmt == "png16":
        return png_bytes(to_uint(patch.pixels, 16))
    return dicom_bytes(patch, study_uid=uids["study"], series_uid=uids["series"], instance_number=number)


def _free_name(folder: Path, stem: str, suffix: str, taken: set[str]) -> str:
    name, k = stem + suffix, 2
    while name in taken or (folder / name).exists():
        name, k = f"{stem}-{k}{suffix}", k + 1
    taken.add(name)
    return name


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise ExportError(f"{path.name} in {path.parent.name} is not a mammolens synthesis CSV "
                              f"(columns {', '.join(CSV_COLUMNS)}); choose another folder.")
        return list(reader)


@dataclass
class ExportSummary:
    folder: Path
    files: list[Path]
    csv: Path
    rows: list[dict]


def export_patches(patches: Sequence[Patch], folder: str | os.PathLike,
                   formats: Iterable[str] = ("png8", "dicom")) -> ExportSummary:
    """Write ``patches`` (the picked ones) into ``folder`` as a set, appending to what is there."""
    import highdicom as hd

    from inference.files import atomic_write_text, safe_file_name

    formats = tuple(dict.fromkeys(formats))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ExportError(f"Unknown export format {', '.join(bad) or '(none)'}: choose from {', '.join(FORMATS)}.")
    if not patches:
        raise ExportError("No patches to export: pick at least one.")
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{folder.name} exists and is not a folder.")
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / CSV_NAME
    rows = _read_rows(csv_path)
    staging = Path(tempfile.mkdtemp(prefix=".synthesis-", dir=folder))
    placed: list[Path] = []
    try:
        uids = {"study": hd.UID(), "series": hd.UID()}
        taken: set[str] = set()
        staged: list[tuple[Path, str]] = []
        new_rows = []
        for number, patch in enumerate(patches, start=1):
            stem = safe_file_name(f"{patch.label}_seed{patch.seed}_{patch.index:04d}")
            for fmt in formats:
                name = _free_name(folder, stem, _SUFFIX[fmt], taken)
                (staging / name).write_bytes(_file_bytes(patch, fmt, uids, number))
                staged.append((staging / name, name))
                new_rows.append({"file": name, "class": patch.label, "seed": patch.seed, "index": patch.index,
                                 "truncation": f"{patch.truncation:g}", "bundle": patch.bundle,
                                 "version": patch.version, "format": fmt})
        for source, name in staged:
            os.link(source, folder / name)  # never replaces an existing name (FileExistsError)
            placed.append(folder / name)
        text = io.StringIO()
        writer = csv.DictWriter(text, CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows + new_rows)
        atomic_write_text(csv_path, text.getvalue())
    except BaseException as exc:
        for path in placed:
            path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ExportError(f"Cannot write the patches into {folder.name} ({exc.strerror or exc}).") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportSummary(folder, placed, csv_path, new_rows)


def contact_sheet(patches: Sequence[Patch], columns: int = 8) -> np.ndarray:
    """A uint8 grid of patches, row-major, for a README picture or a quick look."""
    r = patches[0].pixels.shape[0]
    rows = -(-len(patches) // columns)
    grid = np.zeros((rows * r, columns * r), dtype=np.float32)
    for i, p in enumerate(patches):
        grid[(i // columns) * r : (i // columns + 1) * r, (i % columns) * r : (i % columns + 1) * r] = p.pixels
    return to_uint(grid, 8)
