"""Importers that write the labels CSV (:mod:`inference.labels`) from research datasets.

``mammolens dataset import mias DIR`` reads the mini-MIAS truth file; ``... phantom DIR`` reads
the manifest the phantom simulator writes beside its DICOM files.
"""
from __future__ import annotations

import re
from pathlib import Path

from inference.errors import LoadError
from inference.labels import LabelRow

#: MIAS class code -> (mammolens label, detail)
MIAS_CLASSES = {
    "CALC": ("calcification", "calcification"),
    "CIRC": ("mass", "circumscribed"),
    "SPIC": ("mass", "spiculated"),
    "MISC": ("mass", "ill-defined"),
    "ARCH": ("architectural_distortion", "architectural distortion"),
    "ASYM": ("asymmetry", "asymmetry"),
    "NORM": ("normal", ""),
}
MIAS_SIZE = 1024  # every mini-MIAS film is 1024 x 1024 at 200 micron
_MIAS_LINE = re.compile(r"^(mdb\d{3})\s+([FGD])\s+([A-Z]{4})(?:\s+([BM]))?(?:\s+(\d+)\s+(\d+)\s+(\d+))?")


def parse_mias_info(path: Path) -> list[dict]:
    """Entries of Info.txt: ref, tissue, class, severity, x, y, radius (origin bottom-left)."""
    entries = []
    for line in Path(path).read_text(encoding="latin-1").splitlines():
        m = _MIAS_LINE.match(line.strip())
        if not m:
            continue
        ref, tissue, code, severity, x, y, r = m.groups()
        entries.append({"ref": ref, "tissue": tissue, "class": code, "severity": severity or "",
                        "x": int(x) if x else None, "y": int(y) if y else None, "r": int(r) if r else None})
    return entries


def import_mias(folder: str | Path, *, splits=(0.7, 0.15, 0.15), seed: int = 0) -> list[LabelRow]:
    """Rows for every film of ``folder`` that Info.txt describes and that is present on disk.

    MIAS coordinates have their origin at the bottom-left corner: row = 1023 - y. Films come in
    left/right pairs of one patient (mdb001/mdb002, ...): even numbers are left breasts, odd
    numbers right; all are MLO views. A film with several lesions gets one row per lesion;
    calcifications "widely distributed" (no centre) get a lesion row without geometry.
    """
    from inference.labels import split_by_patient

    folder = Path(folder)
    info = folder / "Info.txt"
    if not info.is_file():
        raise LoadError(folder, "has no Info.txt: it is not a mini-MIAS folder.")
    rows = []
    for e in parse_mias_info(info):
        image = next((folder / f"{e['ref']}{ext}" for ext in (".png", ".pgm", ".tif")
                      if (folder / f"{e['ref']}{ext}").is_file()), None)
        if image is None:
            continue
        number = int(e["ref"][3:])
        label, detail = MIAS_CLASSES[e["class"]]
        geometry = {}
        if label != "normal" and e["x"] is not None:
            geometry = {"cx": float(e["x"]), "cy": float(MIAS_SIZE - 1 - e["y"]), "r": float(e["r"])}
        rows.append(LabelRow(
            path=str(image.resolve()),
            patient=f"mias{(number + 1) // 2:03d}",
            laterality="L" if number % 2 == 0 else "R",
            view="MLO",
            label=label,
            detail=detail,
            severity={"B": "benign", "M": "malignant"}.get(e["severity"], ""),
            **geometry,
        ))
    if not rows:
        raise LoadError(folder, "has an Info.txt but none of the films it lists.")
    return split_by_patient(rows, splits, seed) if splits else rows


def import_phantom(folder: str | Path) -> list[LabelRow]:
    """Rows from the manifest (phantom.json) that ``mammolens phantom`` writes."""
    from training.phantom import labels_from_manifest

    manifest = Path(folder) / "phantom.json"
    if not manifest.is_file():
        raise LoadError(Path(folder), "has no phantom.json: it was not written by `mammolens phantom`.")
    return labels_from_manifest(manifest)
