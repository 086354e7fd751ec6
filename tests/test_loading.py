"""Study loading on real DICOM that pydicom ships, and every kind of bad input."""
from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

from inference import errors
from inference.studies.dicom_io import open_dicom
from inference.studies.study import open_path
from tests.conftest import pydicom_file

# (file, transfer syntax it is stored in)
DECODABLE = [
    ("CT_small.dcm", "Explicit VR Little Endian"),
    ("MR_small_RLE.dcm", "RLE Lossless"),
    ("MR_small_jp2klossless.dcm", "JPEG 2000 Image Compression (Lossless Only)"),
    ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless Image Compression"),
    ("JPGExtended.dcm", "JPEG Extended (Process 2 and 4)"),
    ("JPEG2000.dcm", "JPEG 2000 Image Compression"),
    ("ExplVR_BigEnd.dcm", "Explicit VR Big Endian"),
    ("SC_rgb_jpeg.dcm", "JPEG Baseline (Process 1)"),
]


@pytest.mark.parametrize("name,syntax", DECODABLE)
def test_shipped_files_decode_like_pydicom(name, syntax):
    path = pydicom_file(name)
    image = open_path(path).images()[0]
    assert image.transfer_syntax == syntax
    ref = pydicom.dcmread(path).pixel_array
    stored = image.stored(0)
    if ref.ndim == 3 and ref.shape[-1] == 3:  # colour: shown as luminance
        ref = ref.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    elif ref.ndim == 3:
        ref = ref[0]
    assert stored.shape == ref.shape
    assert np.allclose(stored, ref, atol=0.5)
    shown = image.display(0)
    assert shown.dtype == np.float32 and 0.0 <= shown.min() < shown.max() <= 1.0


def test_lossless_variants_agree_pixel_for_pixel():
    ref = open_path(pydicom_file("MR_small.dcm")).images()[0].stored(0)
    for name in ("MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        assert np.array_equal(open_path(pydicom_file(name)).images()[0].stored(0), ref), name


def test_monochrome1_is_inverted_after_the_window():
    folder = pydicom_file("dicomdirtests")
    images = [im for im in open_path(folder).images() if im.photometric == "MONOCHROME1"]
    assert images, "pydicom's DICOMDIR test set has MONOCHROME1 CR images"
    image = images[0]
    preset = image.default_preset()
    shown = image.display(0, preset).astype(np.float64)
    stored = image.stored(0).astype(np.float64)
    # MONOCHROME1: the largest value is darkest, so display decreases as stored value rises
    assert np.corrcoef(stored.ravel(), shown.ravel())[0, 1] < -0.9


def test_signed_ct_uses_rescale():
    image = open_path(pydicom_file("CT_small.dcm")).images()[0]
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    values = image.modality_values(0)
    assert np.allclose(values, ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))


def test_multiframe_decodes_only_requested_frame():
    image = open_path(pydicom_file("SC_rgb_rle_2frame.dcm")).images()[0]
    assert image.n_frames == 2 and image.decoded_frames == 0
    image.stored(1)
    assert image.decoded_frames == 1 and image.cached_frames() == [1]


def test_dicomdir_opens_every_referenced_image():
    studies = open_path(pydicom_file("dicomdirtests") / "DICOMDIR")
    assert len(studies.patients) == 2
    assert len(studies.images()) == 31 and not studies.failures


def _sentence(exc: Exception) -> str:
    text = str(exc)
    assert text.count("\n") == 0 and text.endswith(".")
    return text


def test_not_dicom(tmp_path):
    p = tmp_path / "notes.dcm"
    p.write_text("this is not an image\n" * 20)
    with pytest.raises(errors.NotDicomError) as info:
        open_path(p)
    assert "not a DICOM file" in _sentence(info.value)


def test_no_pixel_data():
    with pytest.raises(errors.NoPixelDataError) as info:
        open_path(pydicom_file("rtplan.dcm"))
    assert "no pixel data" in _sentence(info.value)


def test_truncated_native_pixel_data():
    with pytest.raises(errors.TruncatedFileError) as info:
        open_path(pydicom_file("MR_truncated.dcm"))
    assert "truncated" in _sentence(info.value)


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_compressed_file(tmp_path, keep):
    data = pydicom_file("JPEG2000.dcm").read_bytes()
    p = tmp_path / "cut.dcm"
    p.write_bytes(data[: int(len(data) * keep)])  # 0.5 cuts the header, 0.95 the JPEG 2000 stream
    with pytest.raises(errors.TruncatedFileError) as info:
        open_path(p)
    assert "truncated" in _sentence(info.value)


def test_truncated_header(tmp_path):
    p = tmp_path / "head.dcm"
    p.write_bytes(pydicom_file("CT_small.dcm").read_bytes()[:1000])
    with pytest.raises((errors.TruncatedFileError, errors.NoPixelDataError)) as info:
        open_path(p)
    _sentence(info.value)


def test_unknown_transfer_syntax(tmp_path):
    ds = pydicom.dcmread(pydicom_file("MR_small_RLE.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"  # private, encapsulated
    p = tmp_path / "private.dcm"
    ds.save_as(p)
    with pytest.raises(errors.UnsupportedTransferSyntaxError) as info:
        open_path(p)
    assert "1.2.3.4.5.6.7" in _sentence(info.value)


def test_missing_codec_names_the_package(monkeypatch):
    import pydicom.pixels

    class Unavailable:
        is_available = False
        missing_dependencies = ["openjpeg"]

    real = pydicom.pixels.get_decoder
    monkeypatch.setattr(pydicom.pixels, "get_decoder",
                        lambda uid: Unavailable() if "2.4.9" in str(uid) else real(uid))
    with pytest.raises(errors.MissingCodecError) as info:
        open_path(pydicom_file("JPEG2000.dcm"))
    assert info.value.package == "pylibjpeg-openjpeg"
    assert "pip install pylibjpeg-openjpeg" in _sentence(info.value)


def test_empty_folder(tmp_path):
    with pytest.raises(errors.EmptyFolderError) as info:
        open_path(tmp_path)
    assert "no image files" in _sentence(info.value)


def test_bad_file_in_folder_is_listed_and_rest_loads(tmp_path):
    for name in ("CT_small.dcm", "MR_small.dcm", "MR_truncated.dcm"):
        shutil.copy(pydicom_file(name), tmp_path / name)
    (tmp_path / "README.txt").write_text("sidecar text is not an error")
    (tmp_path / "junk.bin").write_bytes(b"\x00garbage" * 50)
    studies = open_path(tmp_path)
    assert len(studies.images()) == 2
    failed = sorted(f.path.name for f in studies.failures)
    assert failed == ["MR_truncated.dcm", "junk.bin"]
    text = studies.describe()
    # files found in a folder are named by position and key (their names can be patients' names)
    assert "MR_truncated.dcm" not in text and "junk.bin" not in text
    assert "file 3 of 4 (key " in text and "): is truncated" in text
    assert "MR_truncated.dcm: is truncated" in studies.describe(identifiers=True)


def test_plain_images_open_with_inferred_laterality(tmp_path):
    from skimage import io as skio

    img = np.zeros((200, 160), np.uint8)
    yy, xx = np.mgrid[:200, :160]
    img[((yy - 100) / 90.0) ** 2 + (xx / 120.0) ** 2 < 1] = 180  # breast against the left edge
    skio.imsave(tmp_path / "left.png", img, check_contrast=False)
    skio.imsave(tmp_path / "right.tif", img[:, ::-1].copy(), check_contrast=False)
    skio.imsave(tmp_path / "other.pgm", img, check_contrast=False)
    studies = open_path(tmp_path)
    by_name = {im.path.name: im for im in studies.images()}
    assert by_name["left.png"].laterality == "L" and by_name["right.tif"].laterality == "R"
    assert by_name["left.png"].laterality_source.startswith("inferred")
    assert np.array_equal(by_name["left.png"].stored(0), img)


def test_plain_image_laterality_from_labels(tmp_path):
    from skimage import io as skio

    from inference.labels import LabelRow, write_labels

    img = np.zeros((100, 80), np.uint8)
    img[:, :40] = 200
    skio.imsave(tmp_path / "a.png", img, check_contrast=False)
    write_labels(tmp_path / "labels.csv", [LabelRow(path="a.png", laterality="R", view="CC")])
    image = open_path(tmp_path).images()[0]
    assert (image.laterality, image.view, image.laterality_source) == ("R", "CC", "labels file")


def test_open_dicom_never_decodes(monkeypatch):
    import pydicom.pixels

    monkeypatch.setattr(pydicom.pixels, "pixel_array", lambda *a, **k: pytest.fail("decoded at open"))
    image = open_dicom(pydicom_file("CT_small.dcm"))
    assert image.decoded_frames == 0
