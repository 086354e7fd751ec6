"""The one labels-file format (CSV) that every importer writes and every consumer reads.

One row per lesion; a normal image has exactly one row with ``label == "normal"`` and no
geometry. A foreign object (metal biopsy clip, skin marker) has its own row with
``label == "foreign_object"``, its box and its kind in ``detail``; it is never a lesion, so an
image whose only rows are foreign objects is a normal image (it needs no ``normal`` row).
Columns (all text, empty when unknown):

=============  ==============================================================================
path           image file, relative to the CSV's folder (or absolute)
patient        pseudonymous patient key (never a real name); splits are made per patient
laterality     ``L`` or ``R``
view           ``CC``, ``MLO``, ... (DICOM ViewPosition vocabulary)
split          ``train``, ``val``, ``test`` or empty
label          ``normal``, one lesion class of :data:`LESION_CLASSES` or ``foreign_object``
detail         finer class as the source says it (MIAS ``CIRC``/``SPIC``..., phantom shape;
               foreign objects: ``biopsy_clip``, ``skin_marker_bb``, ``skin_marker_line``)
severity       ``benign``, ``malignant`` or empty
x0 y0 x1 y1    lesion (or foreign object) box in pixels of the original image, origin top-left, x1/y1 exclusive
cx cy r        lesion centre and radius in pixels (origin top-left)
slice_start    DBT: first slice (0-based, inclusive) the lesion spans
slice_end      DBT: last slice (0-based, inclusive)
contrast       optional: the lesion's contrast scale when written by a conspicuity-controlled
               simulator (the phantom's ``--lesion-contrast``; 1 is its realistic lesion)
size_scale     optional: the lesion's size scale likewise (``--lesion-size``)
=============  ==============================================================================

The two optional columns are written only when some row has a value in them, so a labels file
without conspicuity scales keeps the first seventeen columns exactly.

Box and centre+radius may both be given; :meth:`LabelRow.box` derives the box from the circle
when only the circle is known. A lesion row with neither (MIAS calcifications "widely
distributed") still marks the image abnormal.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Iterable

from inference.errors import MammolensError
from inference.files import atomic_write_text

LESION_CLASSES = ("mass", "calcification", "architectural_distortion", "asymmetry")
FOREIGN_OBJECT = "foreign_object"
FOREIGN_OBJECT_KINDS = ("biopsy_clip", "skin_marker_bb", "skin_marker_line")
LABELS = ("normal",) + LESION_CLASSES + (FOREIGN_OBJECT,)
SPLITS = ("", "train", "val", "test")
COLUMNS = (
    "path", "patient", "laterality", "view", "split", "label", "detail", "severity",
    "x0", "y0", "x1", "y1", "cx", "cy", "r", "slice_start", "slice_end",
)
OPTIONAL_COLUMNS = ("contrast", "size_scale")  # written only when some row has them


class LabelsError(MammolensError, ValueError):
    """A labels file that cannot be used; the message is one sentence naming the line."""


@dataclass(frozen=True)
class LabelRow:
    path: str
    patient: str = ""
    laterality: str = ""
    view: str = ""
    split: str = ""
    label: str = "normal"
    detail: str = ""
    severity: str = ""
    x0: float | None = None
    y0: float | None = None
    x1: float | None = None
    y1: float | None = None
    cx: float | None = None
    cy: float | None = None
    r: float | None = None
    slice_start: int | None = None
    slice_end: int | None = None
    contrast: float | None = None
    size_scale: float | None = None

    @property
    def is_lesion(self) -> bool:
        """A lesion row: neither ``normal`` nor a foreign object."""
        return self.label not in ("normal", FOREIGN_OBJECT)

    @property
    def is_foreign_object(self) -> bool:
        return self.label == FOREIGN_OBJECT

    def box(self) -> tuple[float, float, float, float] | None:
        """Lesion box (x0, y0, x1, y1) from the box columns, else from centre and radius."""
        if None not in (self.x0, self.y0, self.x1, self.y1):
            return (self.x0, self.y0, self.x1, self.y1)  # type: ignore[return-value]
        if None not in (self.cx, self.cy, self.r):
            return (self.cx - self.r, self.cy - self.r, self.cx + self.r, self.cy + self.r)  # type: ignore[operator]
        return None

    def resolve(self, base: str | os.PathLike) -> Path:
        """The image path, resolved against the labels file's folder."""
        p = Path(self.path)
        return p if p.is_absolute() else Path(base) / p

    def validate(self) -> None:
        if not self.path:
            raise LabelsError("the path column is empty")
        if self.label not in LABELS:
            raise LabelsError(f"label {self.label!r} is not one of {', '.join(LABELS)}")
        if self.laterality not in ("", "L", "R"):
            raise LabelsError(f"laterality {self.laterality!r} is not L or R")
        if self.split not in SPLITS:
            raise LabelsError(f"split {self.split!r} is not train, val or test")
        if self.label == "normal" and self.box() is not None:
            raise LabelsError("a normal row carries lesion geometry")
        if self.label == FOREIGN_OBJECT and self.box() is None:
            raise LabelsError("a foreign_object row has no box")
        b = self.box()
        if b is not None and not (b[2] > b[0] and b[3] > b[1]):
            raise LabelsError(f"the lesion box {b} is empty")
        if (self.slice_start is None) != (self.slice_end is None):
            raise LabelsError("slice_start and slice_end must be given together")
        if self.slice_start is not None and self.slice_end < self.slice_start:  # type: ignore[operator]
            raise LabelsError("slice_end is before slice_start")
        for name in OPTIONAL_COLUMNS:
            value = getattr(self, name)
            if value is not None and not (value >= 0.0 and value < float("inf")):
                raise LabelsError(f"{name} {value!r} is not a number >= 0")


_INT_COLUMNS = {"slice_start", "slice_end"}
_FLOAT_COLUMNS = {"x0", "y0", "x1", "y1", "cx", "cy", "r", "contrast", "size_scale"}


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}" if value == int(value) else f"{value:.3f}"
    return str(value)


def _parse(name: str, text: str):
    text = text.strip()
    if name in _INT_COLUMNS:
        return int(text) if text else None
    if name in _FLOAT_COLUMNS:
        return float(text) if text else None
    return text


def dumps(rows: Iterable[LabelRow]) -> str:
    rows = list(rows)
    columns = COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if any(getattr(r, c) is not None for r in rows))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        row.validate()
        values = asdict(row)
        writer.writerow([_format(values[c]) for c in columns])
    return out.getvalue()


def write_labels(path: str | os.PathLike, rows: Iterable[LabelRow]) -> Path:
    """Write rows atomically; absolute paths are stored relative to the CSV's folder."""
    path = Path(path)
    base = path.parent.resolve()
    rel = []
    for row in rows:
        p = Path(row.path)
        if p.is_absolute():
            try:
                p = Path(os.path.relpath(p.resolve(), base))
            except ValueError:  # another drive on Windows: keep it absolute
                pass
        rel.append(replace(row, path=p.as_posix()))
    atomic_write_text(path, dumps(rel))
    return path


def read_labels(path: str | os.PathLike) -> list[LabelRow]:
    """Read and validate a labels file; errors name the file and line in one sentence."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise LabelsError(f"Cannot read labels file {path.name}: {exc.strerror or exc}.") from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("path", "label") if c not in (reader.fieldnames or [])]
    if missing:
        raise LabelsError(f"{path.name} is not a mammolens labels file: column {missing[0]!r} is missing.")
    names = {f.name for f in fields(LabelRow)}
    rows = []
    for lineno, record in enumerate(reader, start=2):
        try:
            values = {k: _parse(k, v or "") for k, v in record.items() if k in names}
            row = LabelRow(**values)
            row.validate()
        except (ValueError, TypeError) as exc:
            raise LabelsError(f"{path.name} line {lineno}: {exc}.") from exc
        rows.append(row)
    return rows


def rows_by_image(rows: Iterable[LabelRow]) -> dict[str, list[LabelRow]]:
    """Group rows per image path, keeping file order."""
    grouped: dict[str, list[LabelRow]] = {}
    for row in rows:
        grouped.setdefault(row.path, []).append(row)
    return grouped


def image_label(rows: list[LabelRow]) -> str:
    """One label per image: ``normal`` or the first lesion class present (foreign objects are not lesions)."""
    lesions = [r.label for r in rows if r.is_lesion]
    return lesions[0] if lesions else "normal"


def split_by_patient(rows: list[LabelRow], fractions=(0.7, 0.15, 0.15), seed: int = 0) -> list[LabelRow]:
    """Assign train / val / test per patient, never splitting one patient's images.

    Patients are shuffled with ``seed`` and cut by the fractions; within each split the rows keep
    their order. Deterministic for a seed and the set of patient keys.
    """
    import numpy as np

    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise LabelsError("split fractions must be three non-negative numbers (train, val, test)")
    patients = sorted({r.patient or r.path for r in rows})
    order = np.random.default_rng(seed).permutation(len(patients))
    total = float(sum(fractions))
    n_train = int(round(len(patients) * fractions[0] / total))
    n_val = int(round(len(patients) * fractions[1] / total))
    split_of = {}
    for rank, idx in enumerate(order):
        split_of[patients[idx]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return [replace(r, split=split_of[r.patient or r.path]) for r in rows]


def labels_subset(labels: str | os.PathLike, out: str | os.PathLike, per_class: dict[str, int],
                  seed: int = 0) -> Path:
    """A labels file at ``out`` with the train split of ``labels`` and, for each split in ``per_class``,
    at most that many normal and as many abnormal images of it (drawn with ``seed``); image paths
    are rewritten to stay valid from ``out``'s folder, and a phantom's ``phantom.json`` goes along.

    A card of a method that takes seconds to minutes an image on a CPU (inpainting at stride 8,
    projection) is measured on such a subset, the way paper 000 measured on 50 cancers and 50
    normals; the full train split stays for what trains on it (the ceiling, the observer).
    """
    import numpy as np

    labels, out = Path(labels), Path(out)
    rel = Path(os.path.relpath(labels.parent.resolve(), out.parent.resolve()))
    grouped = rows_by_image(read_labels(labels))
    rng = np.random.default_rng(seed)
    keep: list[str] = [p for p, rows in grouped.items() if rows[0].split == "train"]
    for split, n in per_class.items():
        paths = [p for p, rows in grouped.items() if rows[0].split == split]
        for normal in (True, False):
            pool = [p for p in paths if (image_label(grouped[p]) == "normal") == normal]
            keep += [pool[i] for i in sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False))]
    rows = [replace(r, path=str(rel / r.path)) for p in keep for r in grouped[p]]
    out.parent.mkdir(parents=True, exist_ok=True)
    manifest = labels.parent / "phantom.json"  # the phantom's recipe: the card's checks write more of it
    if manifest.is_file() and manifest.resolve() != (out.parent / manifest.name).resolve():
        atomic_write_text(out.parent / manifest.name, manifest.read_text(encoding="utf-8"))
    return write_labels(out, rows)
