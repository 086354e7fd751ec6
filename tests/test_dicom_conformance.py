"""The DICOM files mammolens writes pass dciodvfy (dicom3tools) with no error: the demo study and
fresh phantoms (MG For Presentation, Breast Tomosynthesis, legacy DBT), with and without compression."""
from __future__ import annotations

import pytest

from tests.dicom_checks import dciodvfy_errors


def test_demo_study_has_no_dciodvfy_error():
    from app.gui import demo_study_path

    files = sorted(demo_study_path().glob("*.dcm"))
    assert len(files) == 5
    for f in files:
        assert dciodvfy_errors(f) == [], f.name


@pytest.mark.parametrize("compress", [None, "rle", "jpeg2000"])
def test_fresh_phantom_has_no_dciodvfy_error(tmp_path, compress):
    from training.phantom import (
        simulate_dbt,
        simulate_mammogram,
        write_dbt_dicom,
        write_legacy_dbt_series,
        write_mammogram_dicom,
    )

    image = simulate_mammogram(4, view="MLO", laterality="R", shape=(128, 104), pixel_spacing=0.8,
                               lesion_classes=("mass",))
    volume = simulate_dbt(5, shape=(96, 80), n_slices=4, pixel_spacing=0.8, lesion_classes=("mass",))
    files = [write_mammogram_dicom(tmp_path / "mg.dcm", image, compress=compress),
             write_dbt_dicom(tmp_path / "dbt.dcm", volume, compress=compress)]
    files += write_legacy_dbt_series(tmp_path / "legacy", volume, compress=compress)[:1]
    for f in files:
        assert dciodvfy_errors(f) == [], f"{f.name} ({compress or 'uncompressed'})"
