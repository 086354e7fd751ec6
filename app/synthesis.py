"""Synthetic lesion patches for augmentation: generate with a synthesis bundle, export as a set.

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
    sc.save_as(out, enforce_file_format=True) if _save_takes_enforce() else sc.save_as(out)
    return out.getvalue()


def _save_takes_enforce() -> bool:
    import inspect

    from pydicom.dataset import Dataset

    return "enforce_file_format" in inspect.signature(Dataset.save_as).parameters


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


# ---------------------------------------------------------------------------------------------
# quality (paper 004 Tables 6-9) and the augmentation experiment, written into the bundle's card

QUALITY_CSV = "quality.csv"


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def evaluate_synthesis(labels: str | os.PathLike, *, model=None, split: str = "test", device: str = "auto",
                       card: bool = True, csv_path: str | os.PathLike | None = None, classifier_steps: int = 400,
                       n_fcd: int = 256, inception: str | os.PathLike | None = None, progress=None,
                       log=lambda *a: None) -> dict:
    """`mammolens evaluate --method synthesis`: the quality tables, the CSV, the card (keeps an
    augmentation result already in the card)."""
    from app.evaluation import _budget
    from inference.bundle import CARD_JSON
    from training.synthesis.quality import quality_report

    engine = load_generator(model, device)
    labels = Path(labels)
    quality = quality_report(engine, labels, split=split, n_fcd=n_fcd, classifier_steps=classifier_steps,
                             inception=inception, progress=progress, log=log)
    report = {"bundle": engine.bundle.name, "version": engine.bundle.version, "method": "synthesis",
              "labels": labels.name, "split": split, "provider": engine.provider, "synthesis": quality,
              "budget": _budget(engine.bundle)}
    old = _read_card(engine.bundle.path / CARD_JSON)
    if old.get("augmentation"):
        report["augmentation"] = old["augmentation"]
    report["key_line"] = synthesis_key_line(report)
    table = quality_csv(report)
    if csv_path is not None:
        from inference.files import atomic_write_text

        atomic_write_text(csv_path, table)
    if card:
        _write_synthesis_card(engine.bundle.path, report, table)
    return report


def _read_card(path: Path) -> dict:
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_synthesis_card(bundle_dir: Path, report: dict, table: str | None = None) -> None:
    from app.evaluation import write_card
    from inference.files import atomic_write_text

    write_card(bundle_dir, report)
    if table is not None:
        atomic_write_text(Path(bundle_dir) / QUALITY_CSV, table)


def quality_csv(report: dict) -> str:
    """Tables 6-9 as one CSV: class, row (1..10, average, real vs real), the metrics, FCD."""
    from training.synthesis.quality import METRICS

    q = report["synthesis"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["class", "image", *METRICS, "frechet_classifier_distance", "ms_ssim_pairs"]
                    + list(q["not_computed"]))
    for cls, block in q["classes"].items():
        for i, row in enumerate(block.get("rows", []), start=1):
            writer.writerow([cls, i, *(f"{row[m]:.4f}" for m in METRICS), "", ""] + ["n/a"] * len(q["not_computed"]))
        if "average" in block:
            writer.writerow([cls, "average", *(f"{block['average'][m]:.4f}" for m in METRICS),
                             f"{block.get('frechet_classifier_distance', float('nan')):.4f}",
                             f"{block['ms_ssim_synthetic']:.4f}"] + ["n/a"] * len(q["not_computed"]))
        if "real_vs_real" in block:
            writer.writerow([cls, "real vs real", *(f"{block['real_vs_real'][m]:.4f}" for m in METRICS),
                             f"{block.get('frechet_classifier_distance_real_train', float('nan')):.4f}",
                             f"{block['ms_ssim_real']:.4f}"] + ["n/a"] * len(q["not_computed"]))
    return out.getvalue()


def quality_tables(report: dict) -> str:
    """The terminal / Markdown layout of Tables 6-9: one table per class (Markdown pipes)."""
    from training.synthesis.quality import METRICS

    q = report["synthesis"]
    lines = []
    head = list(METRICS) + ["FCD*", "MS-SSIM"] + list(q["not_computed"])
    for cls, block in q["classes"].items():
        lines += ["", f"{cls} (synthetic vs the {block['n_real']} real held-out patches of the class, mean over them)",
                  "", "| image | " + " | ".join(head) + " |", "|" + " --- |" * (len(head) + 1)]
        na = ["n/a"] * len(q["not_computed"])
        for i, row in enumerate(block.get("rows", []), start=1):
            lines.append(f"| {i} | " + " | ".join([_num(row[m], 4 if m in ('SSIM', 'DSSIM', 'FSIM') else 2)
                                                   for m in METRICS] + ["", ""] + na) + " |")
        if "average" in block:
            a = block["average"]
            lines.append("| **average** | " + " | ".join(
                [_num(a[m], 4 if m in ("SSIM", "DSSIM", "FSIM") else 2) for m in METRICS]
                + [_num(block.get("frechet_classifier_distance")), _num(block["ms_ssim_synthetic"], 3)] + na) + " |")
            if "fid" in block:
                lines.append(f"| FID (user InceptionV3) | {_num(block['fid'])} |")
        if "real_vs_real" in block:
            a = block["real_vs_real"]
            lines.append("| real vs real | " + " | ".join(
                [_num(a[m], 4 if m in ("SSIM", "DSSIM", "FSIM") else 2) for m in METRICS]
                + [_num(block.get("frechet_classifier_distance_real_train")), _num(block["ms_ssim_real"], 3)]
                + na) + " |")
    lines += ["", "*FCD: Frechet classifier distance on the project's lesion-class classifier's features (not FID); "
              "in the real-vs-real row, real train patches vs the same held-out ones. MS-SSIM: mean over random "
              "pairs (synthetic pairs; real pairs in the real-vs-real row), lower is more diverse."]
    for name, why in q["not_computed"].items():
        lines.append(f"{name}: not computed ({why}).")
    return "\n".join(lines)


def synthesis_key_line(report: dict) -> str:
    q = report["synthesis"]
    fcd = [b.get("frechet_classifier_distance") for b in q["classes"].values()]
    null = [b.get("frechet_classifier_distance_real_train") for b in q["classes"].values()]
    fcd = [v for v in fcd if v is not None]
    null = [v for v in null if v is not None]
    parts = [f"synthetic lesion patches of {', '.join(q['classes'])}"]
    if fcd:
        parts.append(f"Frechet classifier distance {np.mean(fcd):.2f} (real train vs held-out {np.mean(null):.2f})"
                     if null else f"Frechet classifier distance {np.mean(fcd):.2f}")
    aug = (report.get("augmentation") or {})
    for name, exp in aug.items():
        real, mixed = exp["arms"]["real"]["accuracy"], exp["arms"]["real + synthetic"]["accuracy"]
        parts.append(f"augmentation ({name}): accuracy {real['mean']:.2f} +/- {real['sd']:.2f} real only vs "
                     f"{mixed['mean']:.2f} +/- {mixed['sd']:.2f} with synthetic")
    budget = report.get("budget") or {}
    if budget.get("iterations") is not None:
        parts.append(f"{budget['iterations']:,} iterations")
    return "; ".join(parts)


def augmentation_markdown(experiments: dict) -> list[str]:
    lines = []
    for name, exp in experiments.items():
        classes = exp["classes"]
        lines += ["", f"### {name}: {exp['labels']} (train {', '.join(exp['train_splits'])}; held out "
                      f"{', '.join(exp['test_splits'])}: " + ", ".join(f"{c} {exp['n_test'][c]}" for c in classes)
                  + ")", "",
                  "Real train patches: " + ", ".join(f"{c} {exp['n_train_real'][c]}" for c in classes)
                  + f"; synthetic added: {exp['synthetic_per_class']} per class. Same classifier, "
                  f"{exp['steps']} steps x batch {exp['batch']}, seeds {', '.join(map(str, exp['seeds']))}; "
                  "mean +/- sd over seeds.", "",
                  "| training set | accuracy | " + " | ".join(f"recall {c}" for c in classes) + " |",
                  "|" + " --- |" * (len(classes) + 2)]
        for arm, block in exp["arms"].items():
            cells = [f"{block['accuracy']['mean']:.3f} +/- {block['accuracy']['sd']:.3f}"]
            cells += [f"{block['recall'][c]['mean']:.2f} +/- {block['recall'][c]['sd']:.2f}" for c in classes]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def synthesis_card_markdown(report: dict) -> str:
    b = report.get("budget") or {}
    lines = [f"# Evaluation card: {report['bundle']} {report['version']} (synthesis)", "",
             f"**{report['key_line']}**", "",
             f"Paper 004 Tables 6-9 layout, split '{report['split']}' of {report['labels']}.",
             quality_tables(report)]
    clf = report["synthesis"]["classifier"]
    lines += ["", "Feature network: " + clf["description"] + "."]
    if clf.get("held_out"):
        lines.append(f"Its held-out accuracy: {clf['held_out']['accuracy']:.3f}.")
    if report.get("augmentation"):
        lines += ["", "## Augmentation experiment"] + augmentation_markdown(report["augmentation"])
    lines += ["", "## Training budget", "",
              f"{b.get('iterations')} iterations (planned {b.get('iterations_planned')}; paper preset "
              f"{b.get('paper_iterations')}), {b.get('train_seconds')} s on {b.get('device')}, preset "
              f"{b.get('preset')}.", "", f"Command: `{b.get('command')}`", ""]
    return "\n".join(lines)


def run_augmentation(labels: str | os.PathLike, *, model=None, name: str | None = None, seeds=(0, 1, 2, 3, 4),
                     steps: int = 400, train_splits=("train",), test_splits=("test",), device: str = "auto",
                     card: bool = True, log=print) -> dict:
    """`mammolens augmentation`: the experiment, added to the bundle's card under ``name``."""
    from inference.bundle import CARD_JSON
    from training.synthesis.augmentation import augmentation_experiment

    engine = load_generator(model, device)
    result = augmentation_experiment(engine, labels, seeds=seeds, steps=steps, train_splits=train_splits,
                                     test_splits=test_splits, log=log)
    if card:
        report = _read_card(engine.bundle.path / CARD_JSON)
        if "synthesis" not in report:  # no quality card yet: a card that holds only the experiment
            from app.evaluation import _budget

            report = {"bundle": engine.bundle.name, "version": engine.bundle.version, "method": "synthesis",
                      "labels": Path(labels).name, "split": ",".join(test_splits), "provider": engine.provider,
                      "synthesis": {"classes": {}, "not_computed": {}, "classifier": {"description": "n/a"}},
                      "budget": _budget(engine.bundle)}
        report.setdefault("augmentation", {})[name or Path(labels).parent.name] = result
        report["key_line"] = synthesis_key_line(report)
        _write_synthesis_card(engine.bundle.path, report)
    return result
