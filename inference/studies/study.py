"""Open a file, a folder (recursive) or a DICOMDIR as patients / studies / series of images.

Qt-free: the viewer observes what this builds. Bad files never stop a folder: each one becomes a
:class:`~inference.errors.LoadError` in :attr:`StudySet.failures` with its one-sentence reason, and the
rest loads. Patient identifiers stay inside the images' ``identity``; everything meant for
display uses the pseudonymous patient key ("Patient 1", ...).
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from inference.errors import EmptyFolderError, LoadError, MammolensError
from inference.jobs import Progress
from inference.studies.image import SCREENING_ORDER, Image, order_views, view_sort_key
from inference.studies.plain_io import PLAIN_SUFFIXES, open_plain

# Sidecar files that sit next to images in research folders and are not images.
_SIDECAR_SUFFIXES = {".csv", ".txt", ".json", ".md", ".npy", ".npz", ".xml", ".html", ".pdf", ".py",
                     ".log", ".yaml", ".yml", ".zip", ".gz", ".onnx"}

# Lesion masks that datasets keep beside their images (phantom, CBIS-DDSM style) are not images
# to show: folders named like this, and files whose name ends like this, are skipped.
_MASK_FOLDERS = {"mask", "masks", "roi", "rois"}
_MASK_SUFFIXES = ("_mask", "_masks", "_roi")

log = logging.getLogger("mammolens.studies")

#: The sentence of a file that failed in a way mammolens does not expect (the log has the details).
#: SOP Class UID prefix of the Structured Report storage classes.
STRUCTURED_REPORTS = "1.2.840.10008.5.1.4.1.1.88."

INTERNAL_ERROR = "cannot be opened because of an internal error (details in the log)."



@dataclass
class Series:
    uid: str
    number: str = ""
    description: str = ""
    modality: str = ""
    images: list[Image] = field(default_factory=list)


@dataclass
class Study:
    uid: str
    date: str = ""
    description: str = ""
    series: list[Series] = field(default_factory=list)

    def images(self) -> list[Image]:
        return order_views([im for s in self.series for im in s.images])

    def hanging(self) -> dict[tuple[str, str], Image]:
        """The four screening views (R-CC, L-CC, R-MLO, L-MLO) that are present, 2D first."""
        found: dict[tuple[str, str], Image] = {}
        for image in sorted(self.images(), key=lambda im: im.is_volume):
            key = (image.laterality, image.view)
            if key in SCREENING_ORDER and key not in found:
                found[key] = image
        return found

    def volumes(self) -> list[Image]:
        return [im for im in self.images() if im.is_volume]


@dataclass
class Patient:
    key: str  # pseudonym shown to users: "Patient 1", ...
    studies: list[Study] = field(default_factory=list)


@dataclass
class StudySet:
    root: Path
    patients: list[Patient] = field(default_factory=list)
    failures: list[LoadError] = field(default_factory=list)

    def images(self) -> list[Image]:
        return [im for p in self.patients for st in p.studies for im in st.images()]

    def studies(self) -> list[Study]:
        return [st for p in self.patients for st in p.studies]

    def unreadable(self, identifiers: bool = False) -> list[str]:
        """One sentence per file that could not be read: by position and key, or by base name when
        the user asked for identifiers."""
        return [f.identified() if identifiers else str(f) for f in self.failures]

    def describe(self, identifiers: bool = False) -> str:
        """Human summary for `mammolens info`; contains no identifier unless ``identifiers``."""
        lines = [f"{self.root.name or self.root}: {len(self.patients)} patient(s), "
                 f"{len(self.studies())} study(ies), {len(self.images())} image(s), "
                 f"{len(self.failures)} unreadable file(s)"]
        for patient in self.patients:
            lines.append(f"{patient.key}")
            for s_index, study in enumerate(patient.studies, 1):
                lines.append(f"  Study {s_index}: {study.description or 'no description'}"
                             f"{', ' + study.date if study.date else ''}")
                for series in study.series:
                    lines.append(f"    Series {series.number or '-'} {series.modality} "
                                 f"{series.description or ''} ({len(series.images)} image(s))".rstrip())
                    for image in order_views(series.images):
                        lines.append(f"      {image.summary()}")
        for failure in self.unreadable(identifiers):
            lines.append(f"cannot read {failure}")
        return "\n".join(lines)


def patient_hash(patient_id: str) -> str:
    """Short stable hash used to group without showing the identifier."""
    return hashlib.sha256(patient_id.encode("utf-8")).hexdigest()[:10]


def _candidate_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d.lower() not in _MASK_FOLDERS)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            if p.suffix.lower() in _SIDECAR_SUFFIXES or p.stem.lower().endswith(_MASK_SUFFIXES):
                continue
            files.append(p)
    return files


def _dicomdir_files(path: Path) -> list[Path]:
    from pydicom.fileset import FileSet

    from inference.studies.dicom_io import read_header

    ds = read_header(path)
    if "DirectoryRecordSequence" not in ds:
        raise LoadError(path, "is named DICOMDIR but holds no directory records.")
    try:
        fileset = FileSet(ds)
        return [Path(instance.path) for instance in fileset]
    except Exception as exc:  # noqa: BLE001 - pydicom's FileSet raises many types on a broken directory
        log.info("DICOMDIR not usable: %s", type(exc).__name__)
        raise LoadError(path, "is a DICOMDIR whose directory records are broken (they do not form a valid "
                              "patient / study / series / image tree).") from None


def _labels_beside(root: Path) -> dict[str, tuple[str, str]]:
    """Laterality and view for plain images from a labels file in the folder, if there is one."""
    from inference.labels import LabelsError, read_labels

    found: dict[str, tuple[str, str]] = {}
    folder = root if root.is_dir() else root.parent
    for candidate in sorted(folder.glob("*.csv")):
        try:
            rows = read_labels(candidate)
        except LabelsError:
            continue
        for row in rows:
            found[str(row.resolve(candidate.parent).resolve())] = (row.laterality, row.view)
    return found


def open_path(path: str | os.PathLike, progress: Progress | None = None) -> StudySet:
    """Open a file, folder or DICOMDIR. Raises only when nothing at all can be opened."""
    from inference.studies.derived import attach_layers, is_derived, read_layer, sop_class_of
    from inference.studies.dicom_io import open_dicom, read_header, stack_slices

    root = Path(path)
    if not root.exists():
        raise LoadError(root, "does not exist.")
    if root.is_dir():
        dicomdir = root / "DICOMDIR"
        files = _dicomdir_files(dicomdir) if dicomdir.is_file() else _candidate_files(root)
    elif root.name.upper() == "DICOMDIR":
        files = _dicomdir_files(root)
    else:
        files = [root]
    plain_labels = _labels_beside(root) if any(f.suffix.lower() in PLAIN_SUFFIXES for f in files) else {}

    loaded: list[tuple[Image, object]] = []
    failures: list[LoadError] = []
    layers = []  # SEG / Parametric Map files: drawn over their source image, not browsed
    for i, f in enumerate(files):
        if progress:
            progress(i, len(files), f.name)
        try:
            if f.suffix.lower() in PLAIN_SUFFIXES:
                lat, view = plain_labels.get(str(f.resolve()), ("", ""))
                loaded.append((open_plain(f, lat, view), None))
            else:
                header = read_header(f)
                if "DirectoryRecordSequence" in header:
                    continue  # a nested DICOMDIR: its files are in the walk anyway
                if sop_class_of(header).startswith(STRUCTURED_REPORTS):
                    continue  # a structured report (e.g. analyze --dicom's) is no image and no layer
                if is_derived(header):
                    try:
                        layers.append(read_layer(f, header))
                    except ValueError as exc:
                        failures.append(LoadError(f, str(exc)))
                    continue
                loaded.append((open_dicom(f, header), header))
        except LoadError as exc:
            failures.append(exc)
        except MammolensError as exc:
            failures.append(LoadError(f, str(exc)))
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - one file never stops the others
            log.warning("opening file %d of %d failed unexpectedly: %s", i + 1, len(files), type(exc).__name__,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            failures.append(LoadError(f, INTERNAL_ERROR))
    if progress:
        progress(len(files), len(files), "")
    if not loaded and layers:
        raise LoadError(root, f"holds only a {layers[0].kind} without its source image; open the folder that "
                              "holds both, and it is drawn over its source.")
    if not loaded:
        if failures and root.is_file():
            raise failures[0]
        if not failures:
            raise EmptyFolderError(root, "holds no image files.")
        raise LoadError(root, f"holds no readable image: all {len(failures)} file(s) failed.")
    if not root.is_file() or root.name.upper() == "DICOMDIR":
        # files found on the disk are named by position and key: their names may be patients' names
        position = {f: i for i, f in enumerate(files, 1)}

        def relabel(exc) -> None:
            exc.pseudonymise(position.get(exc.path, 0), len(files))

        for image, _ in loaded:
            image.relabel = relabel
    else:
        relabel = None
    patients = _group(loaded, stack_slices, failures)
    for layer in attach_layers([im for p in patients for st in p.studies for im in st.images()], layers):
        failures.append(LoadError(layer.path, f"is a {layer.kind} whose source image is not among the files opened; "
                                              "open it together with its source."))
    if relabel is not None:
        for failure in failures:
            relabel(failure)
    if not any(st.images() for p in patients for st in p.studies):
        if root.is_file():
            raise failures[0]
        raise LoadError(root, f"holds no readable image: all {len(failures)} file(s) failed.")
    return StudySet(root=root, patients=patients, failures=failures)


def _group(loaded, stack_slices, failures: list[LoadError]) -> list[Patient]:
    """Patient / study / series tree; legacy DBT slice files become one volume per series view."""
    tree: dict[str, dict[str, dict[str, list]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for image, header in loaded:
        ident = image.identity
        patient = ident.get("PatientID") or ident.get("PatientName") or ""
        study = ident.get("StudyInstanceUID") or f"folder:{image.path.parent}"
        series = ident.get("SeriesInstanceUID") or f"folder:{image.path.parent}"
        tree[patient_hash(patient) if patient else f"folder:{image.path.parent}"][study][series].append((image, header))

    patients = []
    for p_index, (p_key, studies) in enumerate(tree.items(), 1):
        patient = Patient(key=f"Patient {p_index}")
        for study_uid, series_map in studies.items():
            first = next(iter(series_map.values()))[0][0].identity
            study = Study(uid=study_uid, date=first.get("StudyDate", ""), description=first.get("StudyDescription", ""))
            for series_uid, members in series_map.items():
                s_ident = members[0][0].identity
                series = Series(uid=series_uid, number=s_ident.get("SeriesNumber", ""),
                                description=s_ident.get("SeriesDescription", ""), modality=s_ident.get("Modality", ""))
                series.images = _merge_legacy_slices(members, stack_slices, failures)
                study.series.append(series)
            # 2D series in hanging order, then volumes
            study.series.sort(key=lambda s: (any(im.is_volume for im in s.images),
                                             min((view_sort_key(im.laterality, im.view) for im in s.images),
                                                 default=(9,))))
            patient.studies.append(study)
        patients.append(patient)
    return patients


def _merge_legacy_slices(members, stack_slices, failures: list[LoadError]) -> list[Image]:
    """Single-frame tomosynthesis slices of one series and view become one volume; a slice whose
    position cannot be read is left out of it (one failure) and never stops the others."""
    from inference.studies.dicom_io import slice_position

    out: list[Image] = []
    groups: dict[tuple, list] = defaultdict(list)
    for image, header in members:
        slice_like = (header is not None and image.n_frames == 1 and image.is_tomosynthesis
                      and ("ImagePositionPatient" in header or "SliceLocation" in header))
        if slice_like:
            try:
                slice_position(header)
            except (ValueError, TypeError, KeyError, OverflowError):
                failures.append(LoadError(image.path, "is a tomosynthesis slice whose position cannot be read; "
                                                      "it is left out of its volume."))
                continue
            groups[(image.laterality, image.view, image.rows, image.cols)].append((image, header))
        else:
            out.append(image)
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0][0])
        else:
            out.append(stack_slices([g[0] for g in group], [g[1] for g in group]))
    return order_views(out)

