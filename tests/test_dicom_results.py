"""Results as DICOM objects: `analyze --dicom` on the demo study writes a Parametric Map, a SEG and a
TID 1500 SR per image that pass dciodvfy, read back with highdicom with the .npy's values, carry
the source's identifiers (or consistent pseudonyms with --anonymize); DBT gives multi-frame objects."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.conftest import sr_content_items
from tests.dicom_checks import assert_dciodvfy_clean


def _demo() -> Path:
    from app.gui import demo_study_path

    return demo_study_path()




def _numbers(sr, meaning: str) -> list[float]:
    return [float(i.MeasuredValueSequence[0].NumericValue) for i in sr_content_items(sr)
            if i.ValueType == "NUM" and i.ConceptNameCodeSequence[0].CodeMeaning == meaning]


def _texts(sr) -> list[str]:
    return [str(i.TextValue) for i in sr_content_items(sr) if i.ValueType == "TEXT"]


def _referenced_uids(ds) -> set[str]:
    found = set()

    def walk(d):
        for elem in d:
            if elem.keyword == "ReferencedSOPInstanceUID":
                found.add(str(elem.value))
            elif elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
    walk(ds)
    return found


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """`mammolens analyze --dicom` over the demo's R-CC mammogram and DBT volume (central slice)."""
    from app.cli import main

    src = tmp_path_factory.mktemp("src")
    for name in ("MG_RCC.dcm", "DBT_LCC.dcm"):
        (src / name).symlink_to(_demo() / name)
    out = tmp_path_factory.mktemp("analysis") / "out"
    assert main(["analyze", str(src), "--out", str(out), "--dicom"]) == 0
    return src, out


def test_analyze_dicom_objects_are_valid_and_hold_the_maps(analysed):
    import highdicom as hd

    from inference.bundle import resolve_bundle

    src, out = analysed
    summary = json.loads((out / "results.json").read_text())
    bundle = resolve_bundle(summary["bundle"], method=summary["method"])
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == 6  # PM, SEG, SR for the mammogram and for the DBT slice
    for f in files:
        assert_dciodvfy_clean(f)
    for row in summary["results"]:
        dbt = "_slice" in row["map"]  # analyze names a volume's shown slice in its map file
        stem = row["map"][: -len("_difference.npy")]
        values = np.load(out / row["map"])
        source = pydicom.dcmread(src / ("DBT_LCC.dcm" if dbt else "MG_RCC.dcm"), stop_before_pixels=True)
        assert row["sop_uid"] == source.SOPInstanceUID
        pm_ds = pydicom.dcmread(out / "dicom" / f"{stem}_pm.dcm")
        pm = hd.pm.ParametricMap.from_dataset(pm_ds)
        np.testing.assert_array_equal(pm.pixel_array, values)  # float32: exactly the .npy
        mapping = pm_ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
        assert mapping.LUTLabel == "difference" and "display units" in mapping.LUTExplanation
        assert mapping.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
        derivation = pm_ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
        assert derivation.ReferencedSOPInstanceUID == source.SOPInstanceUID
        if dbt:
            assert int(derivation.ReferencedFrameNumber) == int(row["frame"])
        seg = hd.seg.segread(out / "dicom" / f"{stem}_seg.dcm")
        if dbt:
            mask = seg.get_pixels_by_source_frame(source_sop_instance_uid=source.SOPInstanceUID,
                                                  source_frame_numbers=[int(row["frame"])], segment_numbers=[1])
        else:
            mask = seg.get_pixels_by_source_instance(source_sop_instance_uids=[source.SOPInstanceUID],
                                                     segment_numbers=[1])
        mask = mask[..., 0]
        np.testing.assert_array_equal(mask[0].astype(bool), values >= bundle.calibration.threshold)
        description = seg.SegmentSequence[0]
        assert description.SegmentAlgorithmName == bundle.name
        assert summary["method"] in description.SegmentLabel
        sr = hd.sr.srread(out / "dicom" / f"{stem}_sr.dcm")
        assert _numbers(sr, "Anomaly score") == [pytest.approx(row["score"], rel=1e-12)]
        assert _numbers(sr, "Calibrated threshold") == [pytest.approx(bundle.calibration.threshold, rel=1e-12)]
        decisions = [i.ConceptCodeSequence[0].CodeMeaning for i in sr_content_items(sr) if i.ValueType == "CODE"
                     and i.ConceptNameCodeSequence[0].CodeMeaning == "Calibrated decision"]
        assert decisions == [row["decision"].capitalize()]
        texts = _texts(sr)
        assert bundle.name in texts and bundle.version in texts
        assert any(bundle.networks["generator"].sha256 in t for t in texts)
        if bundle.card_line:
            assert f"card: {bundle.card_line}" in texts
        assert {source.SOPInstanceUID, seg.SOPInstanceUID, pm_ds.SOPInstanceUID} <= _referenced_uids(sr)
        # identifiers follow the source: the objects belong with the source study
        for ds in (pm_ds, seg, sr):
            assert (ds.PatientID, ds.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)


def test_anonymized_objects_replace_identifiers_consistently(analysed, tmp_path):
    from inference.dicom_results import write_analysis_objects

    src, out = analysed
    written = write_analysis_objects(src, out, anonymize=True)
    assert len(written) == 6
    source = pydicom.dcmread(src / "MG_RCC.dcm", stop_before_pixels=True)
    objects = [pydicom.dcmread(p) for p in written]
    assert len({(d.PatientID, str(d.PatientName), d.StudyInstanceUID) for d in objects}) == 1
    first = objects[0]
    assert first.PatientID != source.PatientID and first.StudyInstanceUID != source.StudyInstanceUID
    assert first.PatientIdentityRemoved == "YES"
    for p in written:
        data = p.read_bytes()
        for secret in (str(source.PatientID), str(source.PatientName), str(source.SOPInstanceUID),
                       str(source.StudyInstanceUID)):
            assert secret.encode() not in data, p.name
    # the SR references the same (remapped) source image as the map and the SEG derive from
    by_kind = {p.name.rsplit("_", 1)[1]: d for p, d in zip(written, objects) if "slice" not in p.name}
    pm_source = by_kind["pm.dcm"].PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0] \
        .SourceImageSequence[0].ReferencedSOPInstanceUID
    seg_source = by_kind["seg.dcm"].PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0] \
        .SourceImageSequence[0].ReferencedSOPInstanceUID
    assert pm_source == seg_source and pm_source in _referenced_uids(by_kind["sr.dcm"])


def test_dbt_slices_become_multi_frame_objects_and_uncalibrated_gives_no_seg(tmp_path):
    import highdicom as hd

    from inference.dicom_results import FrameResult, Provenance, derived_frames, write_result_objects

    dbt = _demo() / "DBT_LCC.dcm"
    header = pydicom.dcmread(dbt, stop_before_pixels=True)
    rng = np.random.default_rng(3)
    frames = [FrameResult(k, rng.random((header.Rows, header.Columns), dtype=np.float32), 0.1 * k, None)
              for k in (4, 15, 30)]
    prov = Provenance("translation", "difference", "display units", "toy", "2", {"generator": "0" * 64})
    files = write_result_objects([dbt], frames, prov, tmp_path, "dbt", threshold=None)
    assert files.segmentation is None  # no calibrated threshold: no region to draw
    pm_ds = pydicom.dcmread(files.parametric_map)
    assert pm_ds.NumberOfFrames == 3
    # each frame holds the map of the source frame it references (highdicom orders frames by position)
    frame_of = derived_frames(pm_ds)
    assert sorted(n for (_, n) in frame_of) == [5, 16, 31]
    for f in frames:
        np.testing.assert_array_equal(pm_ds.pixel_array[frame_of[(header.SOPInstanceUID, f.frame + 1)] - 1], f.values)
    sr = hd.sr.srread(files.report)
    assert _numbers(sr, "Anomaly score") == pytest.approx([0.4, 1.5, 3.0])
    assert _numbers(sr, "Calibrated threshold") == []
    assert "threshold: none (uncalibrated bundle)" in _texts(sr)
    # a threshold above every value: a SEG whose frames are all empty
    files = write_result_objects([dbt], frames, prov, tmp_path, "dbt-empty", threshold=2.0)
    seg = hd.seg.segread(files.segmentation)
    assert seg.NumberOfFrames == 3 and not seg.pixel_array.any()
    for f in files.paths():
        assert_dciodvfy_clean(f)


def test_legacy_dbt_series_and_bad_input_one_sentence(tmp_path):
    from inference.dicom_results import (
        DicomResultError,
        FrameResult,
        Provenance,
        derived_frames,
        write_result_objects,
    )
    from training.phantom import simulate_dbt, write_legacy_dbt_series

    volume = simulate_dbt(5, shape=(96, 80), n_slices=4, pixel_spacing=0.8)
    paths = write_legacy_dbt_series(tmp_path / "legacy", volume)
    values = np.linspace(0, 1, 96 * 80, dtype=np.float32).reshape(96, 80)
    prov = Provenance("translation", "difference", "display units", "toy", "2")
    frames = [FrameResult(1, values, 0.5, "abnormal"), FrameResult(2, values[::-1].copy(), 0.2, "normal")]
    files = write_result_objects(paths, frames, prov, tmp_path / "out", "legacy", threshold=0.5)
    for f in files.paths():
        assert_dciodvfy_clean(f)
    seg = pydicom.dcmread(files.segmentation)
    frame_of = derived_frames(seg)
    for k, f in zip((1, 2), frames):
        number = frame_of[(pydicom.dcmread(paths[k]).SOPInstanceUID, 1)]
        np.testing.assert_array_equal(seg.pixel_array[number - 1].astype(bool), f.values >= 0.5)
    with pytest.raises(DicomResultError, match="the map is 10 x 10 pixels but its source image is 80 x 96"):
        write_result_objects(paths, [FrameResult(0, np.zeros((10, 10), np.float32), 0.0)], prov, tmp_path, "bad",
                             threshold=0.5)
    assert not list(tmp_path.glob("bad*"))


def test_analyze_all_slices_gives_one_multi_frame_object_of_every_slice(tmp_path):
    import highdicom as hd

    from app.cli import main
    from inference.dicom_results import derived_frames
    from training.phantom import simulate_dbt, write_dbt_dicom

    volume = simulate_dbt(8, shape=(160, 128), n_slices=4, pixel_spacing=0.5, lesion_classes=("mass",))
    source = tmp_path / "dbt"
    write_dbt_dicom(source / "DBT.dcm", volume, compress="jpeg2000")
    out = tmp_path / "out"
    assert main(["analyze", str(source), "--out", str(out), "--all-slices", "--dicom"]) == 0
    summary = json.loads((out / "results.json").read_text())
    from inference.volume_maps import VolumeMaps

    (volume_file,) = out.glob("*_difference_volume.npz")  # analyze names files by the image's UID key
    stem = volume_file.name[: -len("_difference_volume.npz")]
    volume_maps = VolumeMaps(volume_file)
    maps = [volume_maps.slice(k) for k in range(len(volume_maps))]
    pm = pydicom.dcmread(out / "dicom" / f"{stem}_pm.dcm")
    header = pydicom.dcmread(source / "DBT.dcm", stop_before_pixels=True)
    frame_of = derived_frames(pm)
    assert pm.NumberOfFrames == 4 == len(summary["results"])
    for k in range(4):  # the volume's map of each slice, exactly
        np.testing.assert_array_equal(pm.pixel_array[frame_of[(header.SOPInstanceUID, k + 1)] - 1], maps[k])
    sr = hd.sr.srread(out / "dicom" / f"{stem}_sr.dcm")
    assert _numbers(sr, "Anomaly score") == pytest.approx([r["score"] for r in summary["results"]], rel=1e-12)
    for f in sorted((out / "dicom").glob("*.dcm")):
        assert_dciodvfy_clean(f)
