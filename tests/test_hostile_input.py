"""Hostile DICOM input: every broken file is its one sentence and never stops the others; declared
sizes are checked before decoding; bad display values fall back instead of showing black; overlay
planes and Patient Orientation are read; a few hundred seeded fuzz cases (``make fuzz`` runs 10,000)."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference.errors import LoadError
from inference.studies.study import open_path
from tests.conftest import pydicom_file

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"


def rewrite(source: Path, target: Path, **values) -> Path:
    """``source`` with header values replaced (None deletes), written as given (no validation)."""
    from tests.fuzz.mutations import _lenient, _set

    with _lenient():
        ds = pydicom.dcmread(source)
        for name, value in values.items():
            if value is None:
                if name in ds:
                    delattr(ds, name)
            elif isinstance(value, str) and "\\" in value or name in ("RescaleSlope", "RescaleIntercept",
                                                                      "WindowCenter", "WindowWidth", "NumberOfFrames"):
                _set(ds, name, value)
            else:
                setattr(ds, name, value)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=False)
    target.write_bytes(buf.getvalue())
    return target


def sentence_of(path: Path) -> str:
    with pytest.raises(LoadError) as info:
        open_path(path).images()[0].display(0)
    message = str(info.value)
    assert "\n" not in message and message.endswith((".", ")")) and " at 0x" not in message
    return message


# ------------------------------------------------------------------------------------ sentences


@pytest.mark.parametrize("values,expected", [
    ({"NumberOfFrames": "-1"}, "declares no frames"),
    ({"NumberOfFrames": "100000000"}, "frames"),
    ({"Rows": 65535, "Columns": 65535}, "memory budget"),
    ({"BitsAllocated": None}, "no Bits Allocated value"),
    ({"BitsStored": 40}, "more stored bits per pixel than it allocates"),
    ({"SamplesPerPixel": 65535}, "samples per pixel"),
    ({"PhotometricInterpretation": ["MONOCHROME2", "MONOCHROME1"]}, "several Photometric Interpretation values"),
    ({"RescaleSlope": "0x10"}, "Rescale Slope that is not one finite number"),
    ({"RescaleSlope": "1\\2\\3"}, "Rescale Slope that is not one finite number"),
    ({"RescaleIntercept": "1e309"}, "Rescale Intercept that is not one finite number"),
], ids=["frames-negative", "frames-absurd", "huge", "no-bits", "bits-stored", "samples", "photometric-multi",
        "slope-hex", "slope-multi", "intercept-inf"])
def test_impossible_attributes_give_one_sentence(tmp_path, values, expected):
    path = rewrite(pydicom_file("CT_small.dcm"), tmp_path / "case.dcm", **values)
    message = sentence_of(path)
    assert expected in message
    assert "0x10" not in message and "1e309" not in message  # no raw header values


def test_memory_budget_is_a_setting(tmp_path, monkeypatch):
    path = rewrite(pydicom_file("CT_small.dcm"), tmp_path / "case.dcm")
    monkeypatch.setenv("MAMMOLENS_MEMORY_BUDGET_MB", "0.1")
    assert "memory budget of 0 MB" in sentence_of(path)
    monkeypatch.setenv("MAMMOLENS_MEMORY_BUDGET_MB", "nonsense")  # falls back to the default
    assert open_path(path).images()[0].display(0).shape == (128, 128)


@pytest.mark.parametrize("center,width", [("nan", "nan"), ("inf", "400"), ("40", "-inf"), ("abc", "1")])
def test_non_finite_window_falls_back_to_a_computed_window_not_black(tmp_path, center, width):
    path = rewrite(pydicom_file("CT_small.dcm"), tmp_path / "case.dcm", WindowCenter=center, WindowWidth=width)
    image = open_path(path).images()[0]
    shown = image.display(0)
    assert np.isfinite(shown).all() and shown.std() > 0.05
    assert all(np.isfinite(p.center) and np.isfinite(p.width) for p in image.presets if p.kind == "window")


def test_a_broken_voi_lut_is_dropped_and_a_broken_modality_lut_is_a_sentence(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 65535])  # 65535 bits per entry
    item.add_new(0x00283006, "US", [0] * 4096)
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.VOILUTSequence = Sequence([item])
    ds.save_as(tmp_path / "voi.dcm")
    assert np.isfinite(open_path(tmp_path / "voi.dcm").images()[0].display(0)).all()
    ds.ModalityLUTSequence = Sequence([Dataset()])
    ds.ModalityLUTSequence[0].add_new(0x00283002, "US", [16, 0])  # shorter than three values
    ds.save_as(tmp_path / "modality.dcm")
    assert "Modality LUT whose descriptor or data is missing or invalid" in sentence_of(tmp_path / "modality.dcm")


def test_decoder_panics_become_the_files_sentence(tmp_path, monkeypatch):
    import pydicom.pixels

    class PanicException(BaseException):  # what pyo3 raises: not an Exception
        pass

    def panic(*_a, **_k):
        raise PanicException("index out of bounds: the len is 80 but the index is 82")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", panic)
    shutil.copy(pydicom_file("MR_small_RLE.dcm"), tmp_path / "rle.dcm")
    message = sentence_of(tmp_path / "rle.dcm")
    assert message == "rle.dcm: frame 1 cannot be decoded: its pixel data is corrupt or does not match what its " \
                      "header declares."


def test_dicomdir_failures_read_in_words(tmp_path):
    source = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests"
    if not source.is_dir():
        pytest.skip("pydicom's wheel does not ship dicomdirtests")
    shutil.copytree(source, tmp_path / "dd")
    data = bytearray((tmp_path / "dd" / "DICOMDIR").read_bytes())
    at = data.find(b"\x04\x00\x00\x14")  # (0004,1400) offset of the next directory record
    data[at + 8:at + 12] = b"\x56\x1e\x00\x00"
    (tmp_path / "dd" / "DICOMDIR").write_bytes(bytes(data))
    try:
        open_path(tmp_path / "dd")
    except LoadError as exc:
        assert "(7766)" not in str(exc) and "\n" not in str(exc)


# ------------------------------------------------------------------------------------ decoding


def test_12_bit_lossy_jpeg_and_deflated_files_display():
    for name in ("JPEG-lossy.dcm", "image_dfl.dcm"):
        image = open_path(pydicom_file(name)).images()[0]
        shown = image.display(0)
        assert np.isfinite(shown).all() and shown.std() > 0.05, name


def test_imagecodecs_jpeg2000_is_pixel_identical_to_openjpeg():
    from pydicom.pixels import pixel_array

    for name in ("JPEG2000.dcm", "MR_small_jp2klossless.dcm", "GDCMJ2K_TextGBR.dcm"):
        path = str(pydicom_file(name))
        np.testing.assert_array_equal(pixel_array(path, decoding_plugin="imagecodecs"),
                                      pixel_array(path, decoding_plugin="pylibjpeg"))


# ------------------------------------------------------------------------------------ isolation


def test_one_undecodable_view_never_stops_the_study(tmp_path):
    study = tmp_path / "study"
    shutil.copytree(DEMO, study)
    data = bytearray((study / "MG_LCC.dcm").read_bytes())
    at = data.find(b"\xff\x4f\xff\x51")  # the JPEG 2000 codestream's first markers: header fine, decode fails
    data[at:at + 64] = bytes(64)
    (study / "MG_LCC.dcm").write_bytes(bytes(data))
    studies = open_path(study)
    # the codestream check refuses it from its first bytes, when the folder opens
    failed = [str(f) for f in studies.failures]
    shown = []
    for image in studies.images():  # what the viewer's hanging does, view by view
        try:
            image.display(image.n_frames // 2)
            shown.append(image.name)
        except LoadError as exc:
            failed.append(str(exc))
    assert "R-CC" in shown and "R-MLO" in shown and "L-MLO" in shown
    assert len(failed) == 1 and failed[0].startswith("file ") and "MG_LCC" not in failed[0]


def test_a_legacy_dbt_slice_with_a_bad_position_is_left_out_alone(tmp_path, capsys):
    from app.cli import main

    folder = tmp_path / "dbt"
    folder.mkdir()
    for k in range(4):
        rewrite(pydicom_file("CT_small.dcm"), folder / f"DOE_JANE_{k}.dcm", ImageType=["ORIGINAL", "PRIMARY", "TOMO"],
                ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
                ImagePositionPatient="abc\\1\\2" if k == 2 else [0, 0, float(k)],
                SOPInstanceUID=f"1.2.3.{k}", InstanceNumber=k + 1)
    studies = open_path(folder)
    assert [im.n_frames for im in studies.images()] == [3]
    assert len(studies.failures) == 1 and "position cannot be read" in str(studies.failures[0])
    assert main(["info", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "1 unreadable file(s)" in out and "DOE_JANE" not in out + err
    assert main(["info", str(folder), "--identifiers"]) == 0
    assert "DOE_JANE_2.dcm: is a tomosynthesis slice" in capsys.readouterr().out


def test_pydicom_warnings_never_print_file_names(tmp_path):
    import subprocess
    import sys

    data = pydicom_file("JPEG2000.dcm").read_bytes()
    (tmp_path / "DOE_JANE_MRN12345.dcm").write_bytes(data[:len(data) - 100])  # pydicom warns, naming the file
    shutil.copy(pydicom_file("CT_small.dcm"), tmp_path / "ok.dcm")
    run = subprocess.run([sys.executable, "-m", "app", "info", str(tmp_path)], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert run.returncode == 0 and "1 unreadable file(s)" in run.stdout
    assert "DOE_JANE" not in run.stdout + run.stderr


# ------------------------------------------------------------------------------------ overlays, orientation


def test_overlay_planes_are_read_clipped_and_patient_orientation_is_kept(tmp_path):
    ds = pydicom.dcmread(DEMO / "MG_RCC.dcm")
    rows, cols = ds.Rows, ds.Columns
    plane = np.zeros((64, 64), bool)
    plane[:, :] = True
    for group, origin in ((0x6000, [1, 1]), (0x6002, [-25, -25])):
        ds.add_new((group, 0x0010), "US", 64)
        ds.add_new((group, 0x0011), "US", 64)
        ds.add_new((group, 0x0040), "CS", "G")
        ds.add_new((group, 0x0050), "SS", origin)
        ds.add_new((group, 0x0100), "US", 1)
        ds.add_new((group, 0x0102), "US", 0)
        ds.add_new((group, 0x3000), "OW", np.packbits(plane.ravel(), bitorder="little").tobytes())
    ds.save_as(tmp_path / "spot.dcm")
    image = open_path(tmp_path / "spot.dcm").images()[0]
    first, second = image.overlay_planes
    assert first.mask.shape == (rows, cols) and first.mask[:64, :64].all() and first.mask.sum() == 64 * 64
    # origin -25,-25 (1-based): only the 38 x 38 part inside the image remains
    assert second.mask[:38, :38].all() and second.mask.sum() == 38 * 38
    assert image.patient_orientation == tuple(ds.PatientOrientation)
    assert image.hanging_flips() is not None


@pytest.mark.parametrize("laterality,orientation,expected", [
    ("L", ("A", "R"), (False, False)), ("R", ("P", "L"), (False, False)),
    ("R", ("A", "L"), (True, False)), ("L", ("A", "F"), (False, False)), ("L", ("A", "H"), (False, True)),
    ("L", ("A", "L"), (False, True)),
])
def test_hanging_flips_from_patient_orientation(laterality, orientation, expected):
    from inference.studies.image import FrameSource, Image

    image = Image(Path("x.dcm"), 4, 4, 1, FrameSource(lambda i: np.zeros((4, 4)), lambda i: None),
                  laterality=laterality, patient_orientation=orientation)
    assert image.hanging_flips() == expected


# ------------------------------------------------------------------------------------ seeded fuzz


def test_three_hundred_seeded_fuzz_cases():
    from tests.fuzz.runner import run_fuzz, table

    results = run_fuzz(range(300), seed=7, include_real=False, timeout=20.0, batch=300)
    bad = [r for r in results if r["outcome"] not in ("ok", "typed error")]
    assert not bad, table(results)
