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


def test_result_objects_have_no_dciodvfy_error(tmp_path):
    """Parametric Map, SEG and SR of a mammogram (no frame of reference of its own) and of DBT
    slices, with the source's identifiers and pseudonymised."""
    import numpy as np
    import pydicom

    from app.gui import demo_study_path
    from inference.dicom_results import FrameResult, Provenance, Pseudonymizer, write_result_objects

    prov = Provenance("translation", "difference", "display units", "toy", "1", {"generator": "0" * 64}, "card line")
    files = []
    for name, frames, pseudonymizer in (("MG_RCC.dcm", [0], None), ("DBT_LCC.dcm", [3, 20], Pseudonymizer("k"))):
        header = pydicom.dcmread(demo_study_path() / name, stop_before_pixels=True)
        values = np.linspace(0, 1, header.Rows * header.Columns, dtype=np.float32).reshape(header.Rows, header.Columns)
        results = [FrameResult(k, values, 0.4, "normal") for k in frames]
        written = write_result_objects([demo_study_path() / name], results, prov, tmp_path, name[:-4], threshold=0.5,
                                       pseudonymizer=pseudonymizer)
        files += written.paths()
    assert len(files) == 6
    for f in files:
        assert dciodvfy_errors(f) == [], f.name
