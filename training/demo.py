"""The bundled demo study: one phantom patient, four screening views (one with a mass, one normal
view with a metal biopsy clip) and one DBT volume with a spiculated mass, in a single study,
JPEG 2000 lossless to stay small.

Regenerate with ``mammolens phantom --demo --out resources/demo`` (deterministic: the files
change only when the simulator does).
"""
from __future__ import annotations

from pathlib import Path

from inference.labels import LabelRow, write_labels
from inference.studies.image import SCREENING_ORDER

DEMO_SEED = 2026
DEMO_SHAPE = (1024, 832)  # rows x cols at 0.2 mm: a 20 x 17 cm detector, reduced resolution
DEMO_SPACING = 0.2
DEMO_DBT_SHAPE = (640, 520)
DEMO_DBT_SLICES = 32  # keeps the JPEG 2000 file under 10 MB
DEMO_DBT_SPACING = 0.32
LESION_VIEW = ("L", "MLO", "mass")
DBT_VIEW = ("L", "CC", "mass")
# a normal view carries a metal biopsy clip (labelled foreign_object, not a lesion), drawn from the
# image's own foreign-object stream: the rest of the view is the same as without it
FOREIGN_OBJECT_VIEW = ("R", "CC", "biopsy_clip")
# The demo should show its lesions plainly: the seed search below takes the first seed whose
# mass is at least this large (the simulator draws 5 to 30 mm).
DEMO_MIN_MASS_MM = 15.0


def _first_seed_with_large_mass(simulate, seed: int):
    """The simulation of the first seed from ``seed`` on whose lesion reaches DEMO_MIN_MASS_MM."""
    for k in range(100):
        result = simulate(seed + 1000 * k)
        if all(les.size_mm >= DEMO_MIN_MASS_MM for les in result.lesions):
            return result
    raise RuntimeError("no seed gave a demo mass of the wanted size")
DEMO_PATIENT = "P0001"


def generate_demo_study(out: str | Path, progress=None) -> list[LabelRow]:
    from pydicom.uid import generate_uid

    from training.phantom import (
        add_foreign_object,
        lesion_label_rows,
        simulate_dbt,
        simulate_mammogram,
        write_dbt_dicom,
        write_mammogram_dicom,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study_uid = generate_uid(entropy_srcs=["mammolens-demo-study", str(DEMO_SEED)])
    rows: list[LabelRow] = []
    views = list(SCREENING_ORDER)
    for i, (lat, view) in enumerate(views):
        if progress:
            progress(i, len(views) + 1, f"{lat}-{view}")
        classes = (LESION_VIEW[2],) if (lat, view) == LESION_VIEW[:2] else ()
        image = _first_seed_with_large_mass(
            lambda seed: simulate_mammogram(seed, view=view, laterality=lat, shape=DEMO_SHAPE,
                                            pixel_spacing=DEMO_SPACING, lesion_classes=classes), DEMO_SEED + i)
        if (lat, view) == FOREIGN_OBJECT_VIEW[:2]:
            image = add_foreign_object(image, kind=FOREIGN_OBJECT_VIEW[2])
        series_uid = generate_uid(entropy_srcs=["mammolens-demo-series", lat, view, str(DEMO_SEED)])
        path = write_mammogram_dicom(out / f"MG_{lat}{view}.dcm", image, patient_index=1, study_uid=study_uid,
                                     series_uid=series_uid, instance=i + 1, compress="jpeg2000", seed=DEMO_SEED)
        rows += lesion_label_rows(path.relative_to(out), DEMO_PATIENT, lat, view, image.lesions,
                                  foreign_objects=image.foreign_objects)
    if progress:
        progress(len(views), len(views) + 1, "DBT")
    lat, view, cls = DBT_VIEW
    volume = _first_seed_with_large_mass(
        lambda seed: simulate_dbt(seed, view=view, laterality=lat, shape=DEMO_DBT_SHAPE, n_slices=DEMO_DBT_SLICES,
                                  pixel_spacing=DEMO_DBT_SPACING, lesion_classes=(cls,)), DEMO_SEED + 10)
    series_uid = generate_uid(entropy_srcs=["mammolens-demo-series", "DBT", str(DEMO_SEED)])
    path = write_dbt_dicom(out / f"DBT_{lat}{view}.dcm", volume, patient_index=1, study_uid=study_uid,
                           series_uid=series_uid, compress="jpeg2000", seed=DEMO_SEED)
    rows += lesion_label_rows(path.relative_to(out), DEMO_PATIENT, lat, view, volume.lesions)
    write_labels(out / "labels.csv", rows)
    if progress:
        progress(len(views) + 1, len(views) + 1, "")
    return rows
