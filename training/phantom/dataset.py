"""Phantom data sets on disk: DICOM studies, lesion masks, a manifest and a labels file.

Layout under ``out_dir``::

    P0001/L_CC.dcm, P0001/R_CC.dcm, P0001/L_MLO.dcm, ...   one study per patient, series per view
    P0009/DBT_L_CC.dcm                                       a DBT volume (its own patient/study)
    P0009/DBT_L_CC/IMG_xxxx.dcm                              ... or a legacy series (legacy_dbt=True)
    masks/P0001_L_CC_0.png                                   one mask per lesion (0/255)
    masks/P0001_L_CC_fo0.png                                 one mask per foreign object (0/255)
    phantom.json                                             parameters + per-image ground truth
    labels.csv                                               the mammolens labels file
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from inference.files import atomic_open, atomic_write_text
from inference.labels import LabelRow, split_by_patient, write_labels

from .anatomy import LATERALITIES, VIEWS
from .dbt import simulate_dbt
from .dicom_writer import (
    series_uid_for,
    study_uid_for,
    write_dbt_dicom,
    write_legacy_dbt_series,
    write_mammogram_dicom,
)
from .foreign import (
    FOREIGN_OBJECT_KINDS,
    FOREIGN_OBJECT_LABEL,
    ForeignObject,
    add_foreign_object,
)
from .lesions import LESION_CLASSES, PhantomLesion
from .mammogram import child, simulate_mammogram

MANIFEST = "phantom.json"
LABELS = "labels.csv"
FORMAT = "mammolens-phantom"
VERSION = 1


def _image_seed(root: np.random.SeedSequence, *key: int) -> int:
    return int(child(root, *key).generate_state(1, np.uint32)[0])


def _write_mask(path: Path, mask: np.ndarray) -> Path:
    """A lesion mask as an 8-bit PNG (0/255), or a .npy file where Pillow is missing."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency of the project
        path = path.with_suffix(".npy")
        with atomic_open(path, "wb") as f:
            np.save(f, mask)
        return path
    with atomic_open(path, "wb") as f:
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(f, format="PNG")
    return path


def lesion_label_rows(
    path, patient: str, laterality: str, view: str, lesions, split: str = "", foreign_objects=()
) -> list[LabelRow]:
    """The labels-file rows of one phantom image: one per lesion and one per foreign object, or
    one ``normal`` row when there are neither.

    ``lesions`` are :class:`PhantomLesion` objects or their ``to_dict()`` records (as stored in
    ``phantom.json``); either way the geometry is the record's, rounded to 0.001 pixel, so rows
    rebuilt from a manifest equal the rows written with it. ``foreign_objects`` are
    :class:`ForeignObject` objects or their records: each gives a ``foreign_object`` row with its
    box and its kind as ``detail`` (never a lesion; an image with only foreign objects is normal
    and has no ``normal`` row).
    """
    base = dict(path=str(path), patient=patient, laterality=laterality, view=view, split=split)
    records = [les.to_dict() if isinstance(les, PhantomLesion) else les for les in lesions]
    objects = [obj.to_dict() if isinstance(obj, ForeignObject) else obj for obj in foreign_objects]
    if not records and not objects:
        return [LabelRow(**base, label="normal")]
    rows = []
    for rec in records:
        x0, y0, x1, y1 = rec["box"]
        rows.append(
            LabelRow(
                **base,
                label=rec["class"],
                detail=rec["detail"],
                x0=float(x0),
                y0=float(y0),
                x1=float(x1),
                y1=float(y1),
                cx=float(rec["cx"]),
                cy=float(rec["cy"]),
                r=float(rec["radius"]),
                slice_start=rec.get("slice_start"),
                slice_end=rec.get("slice_end"),
                contrast=rec.get("contrast"),
                size_scale=rec.get("size_scale"),
            )
        )
    for obj in objects:
        x0, y0, x1, y1 = obj["box"]
        rows.append(
            LabelRow(**base, label=FOREIGN_OBJECT_LABEL, detail=obj["kind"], x0=float(x0), y0=float(y0),
                     x1=float(x1), y1=float(y1))
        )
    return rows


def _manifest_rows(entry: dict) -> list[LabelRow]:
    return lesion_label_rows(
        entry["path"], entry["patient"], entry["laterality"], entry["view"], entry["lesions"], entry.get("split", ""),
        foreign_objects=entry.get("foreign_objects", ()),
    )


def _patient_splits(patient_keys: list[str], splits, seed: int) -> dict[str, str]:
    """train / val / test per patient key (all empty without ``splits``), drawn before any image."""
    if splits is None:
        return {key: "" for key in patient_keys}
    # split_by_patient works on label rows; one placeholder row per patient gives the assignment
    # up front, so bad fractions fail before anything is simulated
    placeholders = [LabelRow(path=key, patient=key) for key in patient_keys]
    fractions = tuple(float(v) for v in splits)
    return {row.patient: row.split for row in split_by_patient(placeholders, fractions, seed)}


def labels_from_manifest(manifest_path) -> list[LabelRow]:
    """Label rows rebuilt from a phantom manifest (``phantom.json`` or the folder holding it).

    Paths are relative to the manifest's folder, exactly as in the ``labels.csv`` written next to it.
    """
    p = Path(manifest_path)
    if p.is_dir():
        p = p / MANIFEST
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"Cannot read the phantom manifest {p.name}: {exc.strerror or exc}.") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p.name} is not a phantom manifest: {exc.msg} at line {exc.lineno}.") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("images"), list):
        raise ValueError(f"{p.name} is not a mammolens phantom manifest.")
    rows: list[LabelRow] = []
    for entry in data["images"]:
        rows.extend(_manifest_rows(entry))
    return rows


def _reusable_images(folder, parameters: dict, seed: int) -> dict[str, tuple[Path, dict]]:
    """The lesion-free 2D images of an earlier data set of the same recipe: path -> (file, manifest entry)."""
    folder = Path(folder)
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"the folder to reuse images from has no readable phantom manifest ({exc}).") from exc
    theirs = dict(data.get("parameters") or {})
    ours = dict(parameters)
    for key in ("lesion_contrast", "lesion_size"):
        theirs.pop(key, None)
        ours.pop(key, None)
    if data.get("format") != FORMAT or data.get("seed") != seed or theirs != ours:
        changed = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k)) or ["seed"]
        raise ValueError(f"the folder to reuse images from was written with another recipe ({', '.join(changed)} "
                         "differ); only the lesion contrast and size scales may change.")
    out = {}
    for entry in data.get("images", []):
        if entry.get("kind") == "2d" and not entry.get("lesions") and not entry.get("foreign_objects"):
            source = folder / entry["path"]
            if source.is_file():
                out[entry["path"]] = (source, entry)
    return out


def generate_dataset(
    out_dir,
    *,
    n: int = 8,
    views: Sequence[str] = ("CC", "MLO"),
    lateralities: Sequence[str] = ("L", "R"),
    lesion_fraction: float = 0.5,
    classes: Sequence[str] = LESION_CLASSES,
    lesion_views: str = "one",
    shape: tuple[int, int] = (1024, 832),
    pixel_spacing: float = 0.2,
    dbt: int = 0,
    dbt_slices: int = 40,
    dbt_shape: tuple[int, int] = (512, 416),
    legacy_dbt: bool = False,
    compress: str | None = None,
    bits_stored: int = 12,
    seed: int = 0,
    splits: Sequence[float] | None = None,
    masks: bool = True,
    foreign_objects: float = 0.0,
    foreign_object_kinds: Sequence[str] = FOREIGN_OBJECT_KINDS,
    lesion_contrast: float = 1.0,
    lesion_size: float = 1.0,
    reuse=None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[LabelRow]:
    """Write a phantom data set and return its label rows (paths relative to ``out_dir``).

    ``n`` patients each get every view in ``views`` for every laterality (one study per
    patient, one series per view); ``round(lesion_fraction * n)`` of them carry a lesion, the
    class cycling through ``classes`` so every class appears: in one of their images
    (``lesion_views="one"``) or, as in a real screening study, in every view of one breast
    (``"breast"``; each view is its own simulation, so position and shape differ). ``dbt``
    adds that many DBT volumes, each its own patient and study (every other one with a lesion
    when ``lesion_fraction > 0``), as multi-frame files or, with ``legacy_dbt``, as legacy
    single-frame series (the label path is then the series folder). ``splits`` =
    (train, val, test) fractions assigns whole patients. ``progress(done, total, name)`` is called
    after each image with the image's path. Deterministic for ``seed``.

    ``foreign_objects`` is the fraction of the 2D images (chosen at random over all of them,
    normal or not; DBT volumes never) that get one metal foreign object, its kind drawn from
    ``foreign_object_kinds`` (see :mod:`training.phantom.foreign`); it is labelled
    ``foreign_object`` and recorded in the manifest, never counted as a lesion. The choice and the
    objects come from their own random streams and are drawn on the finished images, so every
    other pixel, file and label is the same as without them: the same call with
    ``foreign_objects=0`` writes each object's twin, equal outside the object's mask (the DICOM
    windows too).

    ``lesion_contrast`` and ``lesion_size`` scale every lesion's conspicuity (see
    :mod:`training.phantom.lesions`: contrast multiplies its change to the tissue map, size every
    length); the anatomy, the splits and which images carry which class do not depend on them, so
    one seed written at several conspicuities is a contrast-detail series. The lesion rows of the
    labels record both (columns ``contrast`` and ``size_scale``) when either is not 1.
    ``reuse``: a folder written by this function with the same arguments except the two scales;
    its 2D images without a lesion (identical whatever the scales) are copied instead of
    simulated again.
    """
    out = Path(out_dir)
    n = int(n)
    dbt = int(dbt)
    if n < 0 or dbt < 0:
        raise ValueError("n and dbt must not be negative")
    views = tuple(views)
    lateralities = tuple(lateralities)
    classes = tuple(classes)
    if not views or any(v not in VIEWS for v in views):
        raise ValueError(f"views must be taken from {', '.join(VIEWS)}")
    if not lateralities or any(v not in LATERALITIES for v in lateralities):
        raise ValueError("lateralities must be taken from L, R")
    if lesion_views not in ("one", "breast"):
        raise ValueError("lesion_views must be 'one' or 'breast'")
    if not 0.0 <= float(lesion_fraction) <= 1.0:
        raise ValueError("lesion_fraction must be between 0 and 1")
    if any(c not in LESION_CLASSES for c in classes) or (lesion_fraction > 0 and not classes):
        raise ValueError(f"classes must be taken from {', '.join(LESION_CLASSES)}")
    if not 0.0 <= float(foreign_objects) <= 1.0:
        raise ValueError("foreign_objects must be a fraction between 0 and 1")
    foreign_object_kinds = tuple(foreign_object_kinds)
    if any(k not in FOREIGN_OBJECT_KINDS for k in foreign_object_kinds) or (
        foreign_objects > 0 and not foreign_object_kinds
    ):
        raise ValueError(f"foreign object kinds must be taken from {', '.join(FOREIGN_OBJECT_KINDS)}")
    lesion_contrast, lesion_size = float(lesion_contrast), float(lesion_size)
    if not (np.isfinite(lesion_contrast) and lesion_contrast >= 0):
        raise ValueError(f"the lesion contrast scale must be a number >= 0, not {lesion_contrast!r}")
    if not (np.isfinite(lesion_size) and lesion_size > 0):
        raise ValueError(f"the lesion size scale must be a number above 0, not {lesion_size!r}")
    parameters = {
        "n": n, "views": list(views), "lateralities": list(lateralities),
        "lesion_fraction": float(lesion_fraction), "classes": list(classes), "lesion_views": lesion_views, "shape": list(shape),
        "pixel_spacing": float(pixel_spacing), "dbt": dbt, "dbt_slices": int(dbt_slices),
        "dbt_shape": list(dbt_shape), "legacy_dbt": bool(legacy_dbt), "compress": compress,
        "bits_stored": int(bits_stored), "splits": list(splits) if splits is not None else None,
        "masks": bool(masks), "foreign_objects": float(foreign_objects),
        "foreign_object_kinds": list(foreign_object_kinds),
        "lesion_contrast": lesion_contrast, "lesion_size": lesion_size,
    }
    reusable = _reusable_images(reuse, parameters, int(seed)) if reuse is not None else {}
    out.mkdir(parents=True, exist_ok=True)
    root = np.random.SeedSequence(int(seed))
    plan = np.random.default_rng(child(root, 0))

    n_lesion = int(round(float(lesion_fraction) * n))
    lesion_patients = set(int(i) for i in plan.choice(n, n_lesion, replace=False)) if n_lesion else set()
    images_per_patient = [(lat, view) for view in views for lat in lateralities]
    patient_keys = [f"P{i + 1:04d}" for i in range(n + dbt)]
    split_of = _patient_splits(patient_keys, splits, seed)
    n_2d = n * len(images_per_patient)
    n_objects = int(round(float(foreign_objects) * n_2d))
    with_object = set()
    if n_objects:  # its own stream: the rest of the plan does not depend on it
        picks = np.random.default_rng(child(root, 4)).choice(n_2d, n_objects, replace=False)
        with_object = {int(i) for i in picks}
    class_counter = 0
    total = n * len(images_per_patient) + dbt
    done = 0
    entries: list[dict] = []
    mask_dir = out / "masks"

    def mask_entries(key, stem, items, prefix=""):
        """Manifest records of lesions or foreign objects, each with its mask file."""
        recs = []
        for i, item in enumerate(items):
            rec = item.to_dict()
            if masks:
                mp = _write_mask(mask_dir / f"{key}_{stem}_{prefix}{i}.png", item.mask)
                rec["mask"] = mp.relative_to(out).as_posix()
            recs.append(rec)
        return recs

    def add_entry(pi, lat, view, rel, kind, phantom_seed, phantom, mask_stem, **volume_fields):
        """Record one written image or volume (a PhantomImage or PhantomVolume) and report progress."""
        nonlocal done
        key = patient_keys[pi]
        entries.append(
            {
                "path": rel, "patient": key, "patient_index": pi + 1, "laterality": lat, "view": view,
                "kind": kind, "seed": phantom_seed, "split": split_of[key], "shape": list(phantom.shape),
                **volume_fields,
                "pixel_spacing": phantom.pixel_spacing, "bits_stored": phantom.bits_stored,
                "density": round(phantom.density, 4), "beta": round(phantom.beta, 4),
                "lesions": mask_entries(key, mask_stem, phantom.lesions),
                **({"foreign_objects": mask_entries(key, mask_stem, phantom.foreign_objects, "fo")}
                   if kind == "2d" else {}),
            }
        )
        done += 1
        if progress is not None:
            progress(done, total, rel)

    for pi in range(n):
        key = patient_keys[pi]
        prng = np.random.default_rng(child(root, 1, pi))
        density, beta = float(prng.uniform(0.0, 1.0)), float(prng.uniform(2.5, 3.5))
        lesion_image = int(prng.integers(len(images_per_patient))) if pi in lesion_patients else -1
        lesion_class = None
        if lesion_image >= 0:
            lesion_class = classes[class_counter % len(classes)]
            class_counter += 1
        study = study_uid_for(seed, pi + 1)
        instance_in_series = {v: 0 for v in views}
        for ii, (lat, view) in enumerate(images_per_patient):
            img_seed = _image_seed(root, 2, pi, ii)
            if lesion_views == "breast":
                hit = lesion_image >= 0 and lat == images_per_patient[lesion_image][0]
            else:
                hit = ii == lesion_image
            cls = (lesion_class,) if hit else ()
            instance_in_series[view] += 1
            rel = f"{key}/{lat}_{view}.dcm"
            if not cls and rel in reusable and pi * len(images_per_patient) + ii not in with_object:
                source, entry = reusable[rel]
                with atomic_open(out / rel, "wb") as f:
                    f.write(source.read_bytes())
                entries.append(dict(entry, split=split_of[key]))
                done += 1
                if progress is not None:
                    progress(done, total, rel)
                continue
            img = simulate_mammogram(
                img_seed, view=view, laterality=lat, shape=shape, pixel_spacing=pixel_spacing,
                lesion_classes=cls, bits_stored=bits_stored, density=density, beta=beta,
                lesion_contrast=lesion_contrast, lesion_size=lesion_size,
            )
            if pi * len(images_per_patient) + ii in with_object:
                img = add_foreign_object(img, img_seed, kinds=foreign_object_kinds)
            write_mammogram_dicom(
                out / rel, img, patient_index=pi + 1, study_uid=study,
                series_uid=series_uid_for(seed, pi + 1, view), instance=instance_in_series[view],
                compress=compress, seed=seed, series_number=views.index(view) + 1,
            )
            add_entry(pi, lat, view, rel, "2d", img_seed, img, f"{lat}_{view}")
            del img

    for j in range(dbt):
        pi = n + j
        key = patient_keys[pi]
        view = views[j % len(views)]
        lat = lateralities[(j // len(views)) % len(lateralities)]
        cls = ()
        if lesion_fraction > 0 and classes and j % 2 == 0:
            cls = (classes[class_counter % len(classes)],)
            class_counter += 1
        vol_seed = _image_seed(root, 3, j)
        vol = simulate_dbt(
            vol_seed, view=view, laterality=lat, shape=dbt_shape, n_slices=dbt_slices,
            pixel_spacing=pixel_spacing, lesion_classes=cls, bits_stored=bits_stored,
            lesion_contrast=lesion_contrast, lesion_size=lesion_size,
        )
        study = study_uid_for(seed, pi + 1)
        if legacy_dbt:
            rel = f"{key}/DBT_{lat}_{view}"
            write_legacy_dbt_series(out / rel, vol, patient_index=pi + 1, study_uid=study, compress=compress, seed=seed)
        else:
            rel = f"{key}/DBT_{lat}_{view}.dcm"
            write_dbt_dicom(out / rel, vol, patient_index=pi + 1, study_uid=study, compress=compress, seed=seed)
        add_entry(
            pi, lat, view, rel, "dbt-legacy" if legacy_dbt else "dbt", vol_seed, vol, f"DBT_{lat}_{view}",
            n_slices=vol.n_slices, slice_spacing=vol.slice_spacing,
        )
        del vol

    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "seed": int(seed),
        "parameters": parameters,
        "coordinates": "pixels, origin top-left, box x1/y1 exclusive; slices 0-based inclusive",
        "images": entries,
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    rows: list[LabelRow] = []
    for entry in entries:
        rows.extend(_manifest_rows(entry))
    write_labels(out / LABELS, rows)
    return rows


__all__ = ["generate_dataset", "labels_from_manifest", "lesion_label_rows", "MANIFEST", "LABELS"]
