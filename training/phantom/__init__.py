"""Phantom simulator: synthetic mammograms and DBT volumes with lesion ground truth.

The project's ground-truth data source (demo study, bundled model training data, tests,
benchmarks). numpy/scipy/scikit-image/pydicom only: it imports without torch, Qt or
onnxruntime. Deterministic for a seed: same seed, byte-identical pixels and identical UIDs.

Orientation follows the DICOM display convention: left breasts have the chest wall at column 0
and the nipple pointing right, right breasts are the mirror image. Pixels are MONOCHROME2
"for presentation" (brighter = more attenuation), uint16 with 12 (default) or 14 bits stored.
Foreign objects (metal biopsy clips, skin markers; :mod:`.foreign`) can be drawn on finished 2D
images from their own random stream; they are labelled ``foreign_object``, never as lesions.
"""
from .dataset import generate_dataset, labels_from_manifest, lesion_label_rows
from .dbt import PhantomVolume, simulate_dbt
from .dicom_writer import (
    write_dbt_dicom,
    write_legacy_dbt_series,
    write_mammogram_dicom,
)
from .foreign import (
    FOREIGN_OBJECT_KINDS,
    FOREIGN_OBJECT_LABEL,
    ForeignObject,
    add_foreign_object,
    draw_foreign_object,
    foreign_object_rng,
)
from .lesions import LESION_CLASSES, PhantomLesion
from .mammogram import PhantomImage, simulate_mammogram

__all__ = [
    "FOREIGN_OBJECT_KINDS",
    "FOREIGN_OBJECT_LABEL",
    "ForeignObject",
    "LESION_CLASSES",
    "PhantomImage",
    "PhantomLesion",
    "PhantomVolume",
    "add_foreign_object",
    "draw_foreign_object",
    "foreign_object_rng",
    "generate_dataset",
    "labels_from_manifest",
    "lesion_label_rows",
    "simulate_dbt",
    "simulate_mammogram",
    "write_dbt_dicom",
    "write_legacy_dbt_series",
    "write_mammogram_dicom",
]
