"""Tests of the phantom simulator (training.phantom): anatomy, lesions, DBT, DICOM, data sets."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import pixel_array
from scipy import ndimage

from inference.labels import LESION_CLASSES, read_labels
from training.phantom import (
    PhantomImage,
    PhantomLesion,
    PhantomVolume,
    generate_dataset,
    labels_from_manifest,
    simulate_dbt,
    simulate_mammogram,
    write_dbt_dicom,
    write_legacy_dbt_series,
    write_mammogram_dicom,
)
from training.phantom.lesions import DETAILS, _speck
from training.phantom.noise import fit_power_law_beta, power_law_noise

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(shape=(512, 416), pixel_spacing=0.2)
ALL = tuple(LESION_CLASSES)


@pytest.fixture(scope="module")
def cc_all():
    """Left CC with one lesion of every class, and the same breast without lesions."""
    kw = dict(view="CC", laterality="L", density=0.3, **SMALL)
    return simulate_mammogram(11, lesion_classes=ALL, **kw), simulate_mammogram(11, **kw)


@pytest.fixture(scope="module")
def small_volume():
    return simulate_dbt(5, shape=(256, 208), n_slices=16, pixel_spacing=0.25, lesion_classes=("mass", "calcification"))


def _bbox(mask):
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)


# ---------------------------------------------------------------------------------------------
# packaging


def test_imports_without_torch_qt_or_onnxruntime():
    code = (
        "import sys\n"
        "for m in ('torch', 'PySide6', 'onnxruntime'):\n"
        "    sys.modules[m] = None\n"
        "import training.phantom as p\n"
        "img = p.simulate_mammogram(0, shape=(128, 104), pixel_spacing=0.8)\n"
        "assert img.pixels.dtype.name == 'uint16'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


# ---------------------------------------------------------------------------------------------
# determinism


def test_same_seed_same_pixels_and_different_seeds_differ():
    a = simulate_mammogram(3, view="MLO", lesion_classes=("mass", "calcification"), **SMALL)
    b = simulate_mammogram(3, view="MLO", lesion_classes=("mass", "calcification"), **SMALL)
    c = simulate_mammogram(4, view="MLO", lesion_classes=("mass", "calcification"), **SMALL)
    assert a.pixels.dtype == np.uint16 and a.pixels.shape == SMALL["shape"]
    assert a.pixels.tobytes() == b.pixels.tobytes()
    assert [l.box for l in a.lesions] == [l.box for l in b.lesions]
    assert not np.array_equal(a.pixels, c.pixels)


def test_lesions_do_not_change_the_anatomy(cc_all):
    img, normal = cc_all
    diff = img.pixels.astype(int) - normal.pixels.astype(int)
    near = np.zeros(diff.shape, bool)
    margin = int(12 / img.pixel_spacing)  # local contrast enhancement reaches a few mm out
    yy, xx = np.mgrid[: diff.shape[0], : diff.shape[1]]
    for les in img.lesions:
        x0, y0, x1, y1 = les.box
        near[max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin] = True
        near |= np.hypot(xx + 0.5 - les.cx, yy + 0.5 - les.cy) < 1.4 * les.radius + margin
    assert np.abs(diff[~near]).max() <= 1
    assert (diff[~near] != 0).mean() < 1e-3


def test_dbt_frames_are_deterministic_and_order_independent(small_volume):
    v2 = simulate_dbt(5, shape=(256, 208), n_slices=16, pixel_spacing=0.25, lesion_classes=("mass", "calcification"))
    backwards = [v2.frame(k) for k in reversed(range(v2.n_slices))][::-1]
    forwards = list(small_volume.frames())
    assert len(forwards) == 16
    for a, b in zip(forwards, backwards):
        assert a.dtype == np.uint16 and a.tobytes() == b.tobytes()
    other = simulate_dbt(6, shape=(256, 208), n_slices=16, pixel_spacing=0.25)
    assert not np.array_equal(other.frame(8), small_volume.frame(8))
    assert not np.array_equal(small_volume.frame(3), small_volume.frame(12))


# ---------------------------------------------------------------------------------------------
# anatomy


@pytest.mark.parametrize("beta", [2.5, 3.0, 3.5])
def test_tissue_field_has_the_requested_power_law(beta):
    fits = [
        fit_power_law_beta(power_law_noise(np.random.default_rng(s), (256, 256), 0.2, beta), 0.2, (0.1, 1.5))
        for s in range(3)
    ]
    assert abs(np.mean(fits) - beta) < 0.25


def test_parenchyma_spectrum_slope_in_range():
    """The image's parenchyma (a breast-only patch) keeps the drawn 1/f^beta slope."""
    drawn, fitted = [], []
    for seed in range(4):
        img = simulate_mammogram(seed, view="CC", shape=(768, 624), pixel_spacing=0.2)
        assert 2.5 <= img.beta <= 3.5
        inside = ndimage.binary_erosion(img.breast_mask, iterations=110)
        ys, xs = np.nonzero(inside)
        cy, cx = int(np.median(ys)), int(np.median(xs))
        window = (slice(cy - 96, cy + 96), slice(cx - 96, cx + 96))
        assert img.breast_mask[window].all()
        beta = fit_power_law_beta(img.pixels[window].astype(float), img.pixel_spacing, (0.1, 0.6))
        assert 2.0 <= beta <= 4.5, (seed, img.beta, beta)
        drawn.append(img.beta)
        fitted.append(beta)
    assert abs(np.mean(fitted) - np.mean(drawn)) < 0.35


def _relative_fine_texture(data) -> float:
    """Median over images of std(image - Gaussian blur, sigma 1.5 px) / std(image), eroded breast."""
    values = []
    for image, mask in zip(data.images, data.masks):
        inner = ndimage.binary_erosion(mask, iterations=6)
        fine = image - ndimage.gaussian_filter(image, 1.5)
        values.append(fine[inner].std() / image[inner].std())
    return float(np.median(values))


def test_parenchyma_at_model_scale_is_as_smooth_as_real_films(tmp_path):
    """At the 128 px the models see, phantom normals are about as smooth as mini-MIAS normals.

    A single thresholded tissue layer is far clumpier (0.42 against the films' 0.16); the projected
    parenchyma is not, and a model trained on a clumpier phantom learns its texture, not lesions.
    """
    import dataclasses

    from app.datasets import import_mias
    from inference.labels import write_labels
    from tests.conftest import shared_file
    from training.datasets import load_images

    folder = shared_file("mias").resolve()
    films = [dataclasses.replace(r, path=str(folder / Path(r.path).name))
             for r in import_mias(folder) if r.label == "normal"][:20]
    write_labels(tmp_path / "films.csv", films)
    real = _relative_fine_texture(load_images(tmp_path / "films.csv", 128))
    generate_dataset(tmp_path / "phantom", n=2, lesion_fraction=0.0, seed=5)
    phantom = _relative_fine_texture(load_images(tmp_path / "phantom" / "labels.csv", 128))
    assert 0.12 < real < 0.2, real
    assert 0.75 * real < phantom < 1.5 * real, (phantom, real)


def test_breast_outline_orientation_and_background():
    left = simulate_mammogram(8, view="CC", laterality="L", **SMALL)
    right = simulate_mammogram(8, view="CC", laterality="R", **SMALL)
    rows, cols = left.pixels.shape
    mid = slice(rows // 3, 2 * rows // 3)
    assert left.breast_mask[mid, 0].all() and not left.breast_mask[:, -1].any()
    assert right.breast_mask[mid, -1].all() and not right.breast_mask[:, 0].any()
    # the breast does not fill the image and the air is dark
    assert 0.2 < left.breast_mask.mean() < 0.85
    bg = left.pixels[~ndimage.binary_dilation(left.breast_mask, iterations=3)]
    assert np.median(bg) < 0.1 * np.median(left.pixels[left.breast_mask])
    # right is the mirror image of left for the same seed (pixels, masks, lesions)
    assert np.array_equal(right.pixels, left.pixels[:, ::-1])
    assert np.array_equal(right.breast_mask, left.breast_mask[:, ::-1])
    # the thickness falls off towards the skin
    dist = ndimage.distance_transform_edt(left.breast_mask)
    edge = left.pixels[(dist > 2) & (dist < 8)]
    inner = left.pixels[dist > 60]
    assert np.median(edge) < np.median(inner)
    # stored values use the 12-bit range sensibly
    assert left.pixels.max() <= 4095 and np.percentile(left.pixels[left.breast_mask], 99) > 2000


def test_mlo_has_a_bright_pectoral_wedge_in_the_upper_chest_wall_corner():
    for lat in ("L", "R"):
        img = simulate_mammogram(21, view="MLO", laterality=lat, density=0.2, **SMALL)
        rows, cols = img.pixels.shape
        pect = img.pectoral_mask
        assert pect is not None and pect.any()
        ys, xs = np.nonzero(pect)
        assert ys.mean() < rows / 3
        if lat == "L":
            assert xs.mean() < cols / 4 and pect[0, 0]
        else:
            assert xs.mean() > 3 * cols / 4 and pect[0, -1]
        breast_only = img.breast_mask & ~pect
        assert np.median(img.pixels[pect]) > np.median(img.pixels[breast_only]) + 200
    cc = simulate_mammogram(21, view="CC", **SMALL)
    assert cc.pectoral_mask is None


def test_14_bit_output():
    img = simulate_mammogram(2, bits_stored=14, shape=(256, 208), pixel_spacing=0.4)
    assert img.bits_stored == 14 and img.pixels.max() <= 16383 and img.pixels.max() > 8000


# ---------------------------------------------------------------------------------------------
# lesions


def test_lesions_are_inside_the_breast_and_masks_match_boxes(cc_all):
    img, _ = cc_all
    assert [l.cls for l in img.lesions] == list(ALL)
    for les in img.lesions:
        assert isinstance(les, PhantomLesion)
        assert les.detail in DETAILS[les.cls]
        assert les.mask.shape == img.pixels.shape and les.mask.dtype == bool
        assert les.mask.any()
        assert not (les.mask & ~img.breast_mask).any()
        assert les.box == _bbox(les.mask)
        x0, y0, x1, y1 = les.box
        assert x0 <= les.cx <= x1 and y0 <= les.cy <= y1 and les.radius > 0
        assert les.slice_start is None and les.slice_end is None
    sizes = {l.cls: l.size_mm for l in img.lesions}
    assert 5 <= sizes["mass"] <= 30 and 15 <= sizes["asymmetry"] <= 40 and 5 <= sizes["calcification"] <= 15


def test_lesions_avoid_the_pectoral_muscle():
    for seed in range(3):
        img = simulate_mammogram(seed, view="MLO", laterality="R", lesion_classes=ALL, **SMALL)
        for les in img.lesions:
            assert not (les.mask & img.pectoral_mask).any()
            assert not (les.mask & ~img.breast_mask).any()


def test_every_lesion_adds_measurable_density(cc_all):
    img, normal = cc_all
    diff = img.pixels.astype(float) - normal.pixels.astype(float)
    for les in img.lesions:
        inside = diff[les.mask].mean()
        assert inside > 20, (les.cls, inside)  # 12-bit levels, noise-free difference
    # and a mass in a fatty breast is brighter than its surroundings in the image itself
    fatty = simulate_mammogram(17, view="CC", density=0.0, lesion_classes=("mass",), **SMALL)
    les = fatty.lesions[0]
    ring = ndimage.binary_dilation(les.mask, iterations=15) & ~ndimage.binary_dilation(les.mask, iterations=5)
    ring &= fatty.breast_mask
    assert fatty.pixels[les.mask].mean() > fatty.pixels[ring].mean() + 50


def test_mass_shapes_and_sizes():
    seen = set()
    for seed in range(12):
        img = simulate_mammogram(100 + seed, view="CC", lesion_classes=("mass",), shape=(384, 312), pixel_spacing=0.3)
        les = img.lesions[0]
        seen.add(les.detail)
        assert 5.0 <= les.size_mm <= 30.0
        assert les.box == _bbox(les.mask)
    assert seen == {"round", "oval", "irregular", "spiculated"}


def test_asymmetry_has_no_convex_border_and_distortion_no_central_mass(cc_all):
    from skimage.morphology import convex_hull_image

    img, normal = cc_all
    asym = next(l for l in img.lesions if l.cls == "asymmetry")
    y0, x0 = asym.box[1], asym.box[0]
    m = asym.mask[y0:asym.box[3], x0:asym.box[2]]
    assert m.sum() / convex_hull_image(m).sum() < 0.95
    ad = next(l for l in img.lesions if l.cls == "architectural_distortion")
    # thin radiating lines: the footprint covers little of its box, unlike a mass
    x0, y0, x1, y1 = ad.box
    assert ad.mask[y0:y1, x0:x1].mean() < 0.35


def test_calcification_specks_count_size_and_visibility(cc_all):
    img, normal = cc_all
    calc = next(l for l in img.lesions if l.cls == "calcification")
    assert calc.detail == "cluster"
    assert 3 <= len(calc.specks) <= 20
    diff = img.pixels.astype(float) - normal.pixels.astype(float)
    x0, y0, x1, y1 = calc.box
    for x, y, d in calc.specks:
        assert 0.1 <= d <= 0.5
        assert x0 <= x <= x1 and y0 <= y <= y1
        # every speck shows, even those smaller than the 0.2 mm pixel
        assert diff[int(y), int(x)] > 5, (x, y, d)
    extent_mm = max(x1 - x0, y1 - y0) * img.pixel_spacing
    assert extent_mm <= 16.0


def test_subpixel_specks_are_area_weighted():
    small = _speck(10.0, 10.0, 0.1, 1.0, 0.0, 1.0, 0.5)
    big = _speck(10.0, 10.0, 0.2, 1.0, 0.0, 1.0, 0.5)
    # one pixel (0.5 mm) holds each speck; the signal scales with volume (area x thickness)
    ratio = big.add.sum() / small.add.sum()
    assert 7.0 < ratio < 9.0
    assert small.add.max() > 0 and small.footprint.any()


def test_lesion_sizes_follow_the_pixel_spacing():
    a = simulate_mammogram(9, lesion_classes=("mass",), shape=(512, 416), pixel_spacing=0.2)
    b = simulate_mammogram(9, lesion_classes=("mass",), shape=(1024, 832), pixel_spacing=0.1)
    la, lb = a.lesions[0], b.lesions[0]
    assert la.size_mm == pytest.approx(lb.size_mm)
    assert lb.radius == pytest.approx(2 * la.radius, rel=1e-6)


def test_too_small_breast_is_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        simulate_mammogram(0, lesion_classes=("asymmetry",), shape=(96, 80), pixel_spacing=0.3)
    with pytest.raises(ValueError, match="lesion class"):
        simulate_mammogram(0, lesion_classes=("tumour",), **SMALL)


# ---------------------------------------------------------------------------------------------
# DBT


def test_dbt_lesions_span_slices(small_volume):
    vol = small_volume
    assert isinstance(vol, PhantomVolume) and vol.n_slices == 16 and vol.shape == (256, 208)
    for les in vol.lesions:
        assert 0 <= les.slice_start <= les.slice_end < vol.n_slices
        assert les.box == _bbox(les.mask) and not (les.mask & ~vol.breast_mask).any()
    mass = next(l for l in vol.lesions if l.cls == "mass")
    assert mass.slice_end - mass.slice_start + 1 >= 3
    # calcification specks are sharp in one or two slices only
    normal = simulate_dbt(5, shape=(256, 208), n_slices=16, pixel_spacing=0.25)
    calc = next(l for l in vol.lesions if l.cls == "calcification")
    x, y, d, k = calc.specks[int(np.argmax([s[2] for s in calc.specks]))]
    signal = [float(vol.frame(j)[int(y), int(x)]) - float(normal.frame(j)[int(y), int(x)]) for j in range(16)]
    peak = int(np.argmax(signal))
    assert abs(peak - k) <= 1
    far = [signal[j] for j in range(16) if abs(j - peak) >= 4]
    assert signal[peak] > 20 and max(far) < 0.3 * signal[peak]


# ---------------------------------------------------------------------------------------------
# DICOM


def test_mammogram_dicom_round_trip_and_attributes(tmp_path):
    img = simulate_mammogram(1, view="MLO", laterality="R", lesion_classes=("mass",), **SMALL)
    p = write_mammogram_dicom(tmp_path / "a.dcm", img, patient_index=7, seed=3)
    ds = pydicom.dcmread(p)
    assert np.array_equal(ds.pixel_array, img.pixels)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.Modality == "MG" and ds.PresentationIntentType == "FOR PRESENTATION"
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY"]
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
    assert (float(ds.RescaleIntercept), float(ds.RescaleSlope), ds.RescaleType) == (0.0, 1.0, "US")
    assert len(ds.WindowCenter) == 2 and len(ds.WindowWidth) == 2
    assert list(ds.WindowCenterWidthExplanation) == ["STANDARD", "HARDER"] and ds.VOILUTFunction == "LINEAR"
    assert ds.ImageLaterality == "R" and "Laterality" not in ds
    assert ds.ViewPosition == "MLO"
    code = ds.ViewCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("399368009", "SCT")
    assert list(ds.PatientOrientation) == ["P", "FL"]
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.2, 0.2] == [float(v) for v in ds.PixelSpacing]
    assert ds.BodyPartExamined == "BREAST" and ds.BreastImplantPresent == "NO"
    assert str(ds.PatientName) == "PHANTOM^7" and ds.PatientID == "PHANTOM-7" and ds.PatientSex == "F"
    assert ds.StudyDate == "20260101" and ds.StudyDescription == "mammolens phantom"
    assert ds.Manufacturer == "mammolens phantom simulator"
    for attr in ("SeriesDescription", "SeriesNumber", "InstanceNumber", "StudyTime", "AccessionNumber"):
        assert attr in ds
    # deterministic UIDs and bytes; different images get different SOP instance UIDs
    q = write_mammogram_dicom(tmp_path / "b.dcm", img, patient_index=7, seed=3)
    assert p.read_bytes() == q.read_bytes()
    other = simulate_mammogram(1, view="CC", laterality="R", **SMALL)
    r = pydicom.dcmread(write_mammogram_dicom(tmp_path / "c.dcm", other, patient_index=7, seed=3))
    assert r.StudyInstanceUID == ds.StudyInstanceUID
    assert r.SeriesInstanceUID != ds.SeriesInstanceUID and r.SOPInstanceUID != ds.SOPInstanceUID
    s = pydicom.dcmread(write_mammogram_dicom(tmp_path / "d.dcm", img, patient_index=8, seed=3))
    assert s.StudyInstanceUID != ds.StudyInstanceUID and s.SOPInstanceUID != ds.SOPInstanceUID
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


@pytest.mark.parametrize(
    "compress,uid",
    [
        ("rle", pydicom.uid.RLELossless),
        ("jpeg2000", pydicom.uid.JPEG2000Lossless),
        ("jpegls", pydicom.uid.JPEGLSLossless),
    ],
)
def test_compression_is_lossless(tmp_path, compress, uid):
    img = simulate_mammogram(2, shape=(256, 208), pixel_spacing=0.4, lesion_classes=("calcification",))
    ds = pydicom.dcmread(write_mammogram_dicom(tmp_path / "m.dcm", img, compress=compress))
    assert ds.file_meta.TransferSyntaxUID == uid
    assert np.array_equal(ds.pixel_array, img.pixels)
    vol = simulate_dbt(4, shape=(128, 104), n_slices=6, pixel_spacing=0.6)
    path = write_dbt_dicom(tmp_path / "v.dcm", vol, compress=compress)
    dv = pydicom.dcmread(path)
    assert dv.file_meta.TransferSyntaxUID == uid
    arr = dv.pixel_array
    assert arr.shape == (6, 128, 104)
    for k in range(6):
        assert np.array_equal(arr[k], vol.frame(k))
    # encapsulated, one fragment per frame, with a basic offset table
    from pydicom.encaps import generate_fragments, parse_basic_offsets
    from pydicom.filebase import DicomBytesIO

    buf = DicomBytesIO(dv.PixelData)
    buf.is_little_endian = True
    offsets = parse_basic_offsets(buf)
    assert len(offsets) == 6 and offsets[0] == 0 and all(np.diff(offsets) > 0)
    assert len(list(generate_fragments(buf))) == 6
    one = pixel_array(path, index=4)
    assert np.array_equal(one, vol.frame(4))


def test_dbt_multiframe_dicom(tmp_path, small_volume):
    vol = small_volume
    path = write_dbt_dicom(tmp_path / "dbt.dcm", vol, patient_index=2, seed=1)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.13.1.3"
    assert ds.Modality == "MG" and int(ds.NumberOfFrames) == vol.n_slices
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "TOMOSYNTHESIS", "NONE"]
    assert ds.ImageLaterality == "L" and ds.ViewPosition == "CC"
    assert ds.ViewCodeSequence[0].CodeValue == "399162004"
    for attr in ("WindowCenter", "WindowWidth", "PixelSpacing", "RescaleSlope", "ImagePositionPatient"):
        assert attr not in ds
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == [0.25, 0.25]
    assert float(shared.PixelMeasuresSequence[0].SliceThickness) == 1.0
    assert len(shared.PlaneOrientationSequence[0].ImageOrientationPatient) == 6
    voi = shared.FrameVOILUTSequence[0]
    assert len(voi.WindowCenter) == 2 and voi.VOILUTFunction == "LINEAR" and len(voi.WindowCenterWidthExplanation) == 2
    pvt = shared.PixelValueTransformationSequence[0]
    assert (float(pvt.RescaleIntercept), float(pvt.RescaleSlope), pvt.RescaleType) == (0.0, 1.0, "US")
    anat = shared.FrameAnatomySequence[0]
    assert anat.FrameLaterality == "L" and anat.AnatomicRegionSequence[0].CodeValue == "76752008"
    per = ds.PerFrameFunctionalGroupsSequence
    assert len(per) == vol.n_slices
    iop = np.array([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    ipp = np.array([[float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient] for f in per])
    assert np.allclose(np.diff(ipp @ normal), 1.0)  # 1 mm apart along the normal, in frame order
    assert np.allclose(np.abs(np.diff(ipp[:, 2])), 1.0)  # CC: stacked along the patient z axis
    for k, f in enumerate(per):
        fc = f.FrameContentSequence[0]
        assert fc.InStackPositionNumber == k + 1 and fc.StackID == "1"
        assert list(fc.DimensionIndexValues) == [1, k + 1]
    arr = ds.pixel_array
    for k in (0, 7, 15):
        assert np.array_equal(arr[k], vol.frame(k))
    again = write_dbt_dicom(tmp_path / "dbt2.dcm", vol, patient_index=2, seed=1)
    assert again.read_bytes() == path.read_bytes()


def test_legacy_dbt_series(tmp_path):
    vol = simulate_dbt(3, shape=(128, 104), n_slices=8, pixel_spacing=0.6, view="MLO", laterality="R")
    paths = write_legacy_dbt_series(tmp_path / "legacy", vol, patient_index=4)
    assert len(paths) == 8 and len({p.name for p in paths}) == 8
    dss = [pydicom.dcmread(p) for p in paths]
    iop = np.array([float(v) for v in dss[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    z = [float(np.array([float(v) for v in d.ImagePositionPatient]) @ normal) for d in dss]
    assert np.allclose(np.diff(z), 1.0)
    inst = [int(d.InstanceNumber) for d in dss]
    assert inst == sorted(inst, reverse=True)  # reverse of position
    names = [p.name for p in paths]
    assert names != sorted(names) and names != sorted(names, reverse=True)
    assert len({d.SeriesInstanceUID for d in dss}) == 1 and len({d.SOPInstanceUID for d in dss}) == 8
    for k, d in enumerate(dss):
        assert d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
        assert list(d.ImageType) == ["ORIGINAL", "PRIMARY", "", "TOMOSYNTHESIS"]
        assert float(d.SliceLocation) == pytest.approx(z[k], abs=1e-3) and float(d.SliceThickness) == 1.0
        assert len(d.ImageOrientationPatient) == 6 and d.ImageLaterality == "R"
        assert np.array_equal(d.pixel_array, vol.frame(k))


# ---------------------------------------------------------------------------------------------
# data sets


def test_generate_dataset(tmp_path):
    calls = []
    out = tmp_path / "ds"
    kw = dict(
        n=4, lesion_fraction=1.0, shape=(384, 312), pixel_spacing=0.3, dbt=2, dbt_slices=8,
        dbt_shape=(160, 128), splits=(0.5, 0.25, 0.25), seed=5,
    )
    rows = generate_dataset(out, progress=lambda done, total, name: calls.append((done, total)), **kw)
    assert calls[-1] == (18, 18) and len(calls) == 18
    back = read_labels(out / "labels.csv")
    assert back == rows
    assert labels_from_manifest(out / "phantom.json") == rows
    assert labels_from_manifest(out) == rows
    # every 2D image once; one lesion per patient, every class present
    images = {r.path for r in rows}
    assert len(images) == 4 * 4 + 2
    lesion_rows = [r for r in rows if r.is_lesion]
    assert {r.label for r in lesion_rows if r.slice_start is None} == set(ALL)
    assert len({r.patient for r in lesion_rows if r.slice_start is None}) == 4
    # splits are per patient
    split_of = {}
    for r in rows:
        assert split_of.setdefault(r.patient, r.split) == r.split and r.split in ("train", "val", "test")
    manifest = json.loads((out / "phantom.json").read_text())
    assert manifest["seed"] == 5 and len(manifest["images"]) == 18
    for entry in manifest["images"]:
        assert (out / entry["path"]).exists()
        for les in entry["lesions"]:
            from PIL import Image

            mask = np.asarray(Image.open(out / les["mask"])) > 0
            assert tuple(les["box"]) == _bbox(mask)  # boxes land on the lesion masks
            if entry["kind"] == "dbt":
                assert les["slice_start"] is not None and les["slice_end"] >= les["slice_start"]
    for r in lesion_rows:
        ds = pydicom.dcmread(r.resolve(out))
        assert ds.ImageLaterality == r.laterality and ds.ViewPosition == r.view
    dbt_rows = [r for r in rows if r.path.startswith("P0005") or r.path.startswith("P0006")]
    assert any(r.slice_start is not None for r in dbt_rows)
    ds = pydicom.dcmread(out / "P0005" / "DBT_L_CC.dcm", stop_before_pixels=True)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.13.1.3"
    # one study per patient, one series per view
    a, b, c = (pydicom.dcmread(out / "P0001" / f, stop_before_pixels=True) for f in ("L_CC.dcm", "R_CC.dcm", "L_MLO.dcm"))
    assert a.StudyInstanceUID == b.StudyInstanceUID == c.StudyInstanceUID
    assert a.SeriesInstanceUID == b.SeriesInstanceUID != c.SeriesInstanceUID
    assert a.PatientID == "PHANTOM-1"
    # deterministic
    out2 = tmp_path / "ds2"
    rows2 = generate_dataset(out2, **kw)
    assert rows2 == rows
    assert (out / "P0002" / "R_MLO.dcm").read_bytes() == (out2 / "P0002" / "R_MLO.dcm").read_bytes()
    assert (out / "phantom.json").read_text() == (out2 / "phantom.json").read_text()


def test_generate_dataset_normal_only_and_legacy(tmp_path):
    rows = generate_dataset(
        tmp_path, n=1, views=("CC",), lateralities=("L",), lesion_fraction=0.0, shape=(256, 208),
        pixel_spacing=0.4, dbt=1, dbt_slices=6, dbt_shape=(128, 104), legacy_dbt=True, masks=False,
    )
    assert [r.label for r in rows] == ["normal", "normal"]
    assert (tmp_path / rows[1].path).is_dir() and len(list((tmp_path / rows[1].path).glob("*.dcm"))) == 6
    assert not (tmp_path / "masks").exists()


def test_phantom_image_dataclass_fields():
    img = simulate_mammogram(0, shape=(256, 208), pixel_spacing=0.4)
    assert isinstance(img, PhantomImage)
    assert (img.laterality, img.view, img.pixel_spacing, img.bits_stored) == ("L", "CC", 0.4, 12)
    assert img.breast_mask.dtype == bool and img.lesions == []


def test_generate_dataset_lesion_in_every_view_of_one_breast(tmp_path):
    rows = generate_dataset(tmp_path, n=2, lesion_fraction=1.0, lesion_views="breast", classes=("mass",),
                            shape=(256, 208), pixel_spacing=0.4, masks=False, seed=3)
    for patient in ("P0001", "P0002"):
        hits = {(r.laterality, r.view) for r in rows if r.patient == patient and r.is_lesion}
        # both views (CC and MLO) of one side, nothing on the other side
        assert len(hits) == 2 and len({lat for lat, _ in hits}) == 1 and {v for _, v in hits} == {"CC", "MLO"}
    with pytest.raises(ValueError, match="lesion_views"):
        generate_dataset(tmp_path / "x", n=1, lesion_views="both")


# ---------------------------------------------------------------------------------------------
# foreign objects (metal biopsy clips and skin markers)

FO_KINDS = ("biopsy_clip", "skin_marker_bb", "skin_marker_line")


@pytest.fixture(scope="module")
def fo_bases():
    """A left CC with a mass and a right MLO without lesions, to draw foreign objects on."""
    return (
        simulate_mammogram(21, view="CC", laterality="L", lesion_classes=("mass",), **SMALL),
        simulate_mammogram(22, view="MLO", laterality="R", **SMALL),
    )


@pytest.mark.parametrize("kind", FO_KINDS)
@pytest.mark.parametrize("which", [0, 1])
def test_foreign_object_is_small_sharp_brightest_and_inside_the_breast(fo_bases, kind, which):
    from training.phantom import add_foreign_object

    base = fo_bases[which]
    img = add_foreign_object(base, kind=kind)
    assert img is not base and base.foreign_objects == [] and img.lesions == base.lesions
    (obj,) = img.foreign_objects
    assert (obj.kind, obj.label) == (kind, "foreign_object")
    ps = base.pixel_spacing
    # the box is the mask's bounding box; the mask lies inside the breast, clear of the lesion
    assert obj.box == _bbox(obj.mask)
    assert not (obj.mask & ~base.breast_mask).any()
    for les in base.lesions:
        assert not (obj.mask & les.mask).any()
    # only the object's pixels change, and they change
    changed = img.pixels != base.pixels
    assert not (changed & ~obj.mask).any() and changed.sum() >= 0.6 * obj.mask.sum()
    # near-saturated metal: the brightest structure of the breast, white after the breast's window
    top = (1 << base.bits_stored) - 1
    breast = base.pixels[base.breast_mask]
    on = img.pixels[obj.mask].astype(float)
    assert on.max() >= 0.95 * top and on.max() > breast.max()
    assert np.mean(on > np.percentile(breast, 99.9)) >= 0.4
    assert img.window_presets() == base.window_presets()  # the twin's windows are kept
    centre, width, _ = img.window_presets()[0]
    assert (on.max() - (centre - width / 2)) / width >= 1.0
    # size and place per kind (mm)
    dist = ndimage.distance_transform_edt(base.breast_mask) * ps
    extent = np.hypot(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1]) * ps
    if kind == "biopsy_clip":
        assert 0.3 <= obj.wire_mm <= 0.6 and 2.0 <= obj.size_mm <= 5.0 and extent <= 7.0
        assert obj.shape in ("ribbon", "coil", "hairpin") and dist[obj.mask].min() >= 4.0
        if base.pectoral_mask is not None:
            assert not (obj.mask & base.pectoral_mask).any()
    elif kind == "skin_marker_bb":
        assert obj.shape == "disc" and 1.5 <= obj.size_mm <= 4.0 and extent <= obj.size_mm * 1.42 + 3 * ps
        # solid: every pixel well inside the disc is metal
        yy, xx = np.mgrid[: base.shape[0], : base.shape[1]]
        core = np.hypot(xx + 0.5 - obj.cx, yy + 0.5 - obj.cy) <= obj.size_mm / 2 / ps - 1.0
        assert core.any() and (img.pixels[core] >= 0.9 * top).all()
        assert dist[obj.mask].min() <= 3.5  # just inside the skin line
    else:
        assert obj.shape == "line" and 10.0 <= obj.size_mm <= 30.0 and 0.4 <= obj.wire_mm <= 0.6
        assert extent >= 0.9 * obj.size_mm
        assert dist[obj.mask].min() <= 5.5


def test_foreign_object_is_deterministic_and_from_its_own_stream(fo_bases):
    from training.phantom import add_foreign_object

    base = fo_bases[1]
    a, b = add_foreign_object(base), add_foreign_object(base)
    c = add_foreign_object(base, seed=base.seed + 1)
    assert a.pixels.tobytes() == b.pixels.tobytes() and a.foreign_objects[0].box == b.foreign_objects[0].box
    assert a.foreign_objects[0].box != c.foreign_objects[0].box
    # the image itself does not depend on the object: simulating again gives the base, bit for bit
    again = simulate_mammogram(22, view="MLO", laterality="R", **SMALL)
    assert again.pixels.tobytes() == base.pixels.tobytes()
    with pytest.raises(ValueError, match="foreign object kind"):
        add_foreign_object(base, kind="pacemaker")


def test_draw_foreign_object_on_any_image():
    from training.phantom import draw_foreign_object

    img = simulate_mammogram(7, shape=(256, 208), pixel_spacing=0.4)
    lo, hi = np.percentile(img.pixels[img.breast_mask], [0.5, 99.5])
    display = np.clip((img.pixels - lo) / (hi - lo), 0, 1).astype(np.float32) * 0.8  # a float display in [0, 1]
    avoid = np.zeros(display.shape, dtype=bool)
    avoid[:, :60] = True
    before = display.copy()
    out, obj = draw_foreign_object(display, 0.4, img.breast_mask, np.random.default_rng(3), "biopsy_clip",
                                   avoid=avoid)
    mask = obj.mask
    assert np.array_equal(display, before)  # the input is not modified
    assert out.dtype == display.dtype and obj.box == _bbox(mask)
    assert not (mask & (avoid | ~img.breast_mask)).any()
    assert np.array_equal(out[~mask], display[~mask]) and out[mask].max() >= 0.95
    again, obj2 = draw_foreign_object(display, 0.4, img.breast_mask, np.random.default_rng(3), "biopsy_clip",
                                      avoid=avoid)
    assert obj2.box == obj.box and np.array_equal(again, out)
    with pytest.raises(ValueError, match="no room"):
        draw_foreign_object(display, 0.4, np.zeros_like(img.breast_mask), np.random.default_rng(0), "skin_marker_bb")


def test_foreign_object_label_rows_are_not_lesions():
    from inference.labels import image_label
    from training.phantom import add_foreign_object, lesion_label_rows

    base = simulate_mammogram(21, view="CC", laterality="L", lesion_classes=("mass",), **SMALL)
    img = add_foreign_object(base, kind="skin_marker_bb")
    rows = lesion_label_rows("a.dcm", "P1", "L", "CC", img.lesions, foreign_objects=img.foreign_objects)
    assert [(r.label, r.detail) for r in rows] == [("mass", base.lesions[0].detail), ("foreign_object", "skin_marker_bb")]
    assert [r.is_lesion for r in rows] == [True, False] and image_label(rows) == "mass"
    assert rows[1].box() == tuple(float(v) for v in img.foreign_objects[0].box)
    only = lesion_label_rows("b.dcm", "P1", "L", "CC", [], foreign_objects=[o.to_dict() for o in img.foreign_objects])
    assert [r.label for r in only] == ["foreign_object"] and image_label(only) == "normal"


def test_generate_dataset_foreign_objects_and_their_twins(tmp_path):
    from PIL import Image

    from inference.labels import image_label, rows_by_image

    kw = dict(n=3, lesion_fraction=0.34, shape=(384, 312), pixel_spacing=0.3, seed=9, dbt=1, dbt_slices=6,
              dbt_shape=(160, 128))
    rows = generate_dataset(tmp_path / "fo", foreign_objects=0.5, **kw)
    twin_rows = generate_dataset(tmp_path / "twin", **kw)
    fo_rows = [r for r in rows if r.label == "foreign_object"]
    assert len(fo_rows) == 6 and not any(r.is_lesion for r in fo_rows)  # half of the 12 2D images, no DBT
    assert {r.detail for r in fo_rows} <= {"biopsy_clip", "skin_marker_bb", "skin_marker_line"}
    assert not any(r.path.startswith("P0004") for r in fo_rows)
    assert read_labels(tmp_path / "fo" / "labels.csv") == rows
    assert labels_from_manifest(tmp_path / "fo") == rows
    # the lesion rows are the same; an image with only an object is normal without a normal row
    grouped, twins = rows_by_image(rows), rows_by_image(twin_rows)
    assert grouped.keys() == twins.keys()
    for path, image_rows in grouped.items():
        assert [r for r in image_rows if r.is_lesion] == [r for r in twins[path] if r.is_lesion]
        assert image_label(image_rows) == image_label(twins[path])
        if any(r.label == "foreign_object" for r in image_rows) and image_label(image_rows) == "normal":
            assert all(r.label == "foreign_object" for r in image_rows)
    manifest = json.loads((tmp_path / "fo" / "phantom.json").read_text())
    assert manifest["parameters"]["foreign_objects"] == 0.5
    n_objects = 0
    for entry in manifest["images"]:
        a = pydicom.dcmread(tmp_path / "fo" / entry["path"]) if entry["kind"] == "2d" else None
        if a is None:
            assert "foreign_objects" not in entry
            continue
        b = pydicom.dcmread(tmp_path / "twin" / entry["path"])
        pa, pb = a.pixel_array, b.pixel_array
        assert (a.WindowCenter, a.WindowWidth) == (b.WindowCenter, b.WindowWidth)
        outside = np.ones(pa.shape, dtype=bool)
        for obj in entry["foreign_objects"]:
            n_objects += 1
            mask = np.asarray(Image.open(tmp_path / "fo" / obj["mask"])) > 0
            assert tuple(obj["box"]) == _bbox(mask) and obj["kind"] in ("biopsy_clip", "skin_marker_bb", "skin_marker_line")
            assert (pa[mask] != pb[mask]).mean() >= 0.6 and pa[mask].max() > pb[mask].max()
            x0, y0, x1, y1 = obj["box"]
            outside[max(0, y0 - 3):y1 + 3, max(0, x0 - 3):x1 + 3] = False
        assert np.array_equal(pa[outside], pb[outside])  # the twin property
        if not entry["foreign_objects"]:
            assert a.PixelData == b.PixelData
    assert n_objects == 6
    # deterministic
    again = generate_dataset(tmp_path / "again", foreign_objects=0.5, **kw)
    assert again == rows
    with pytest.raises(ValueError, match="foreign_objects"):
        generate_dataset(tmp_path / "bad", n=1, foreign_objects=1.5)


def test_phantom_command_foreign_objects_flag(tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "ph"
    assert main(["phantom", "--out", str(out), "--n", "1", "--views", "CC", "--lateralities", "L",
                 "--lesion-fraction", "0", "--shape", "256x208", "--spacing", "0.4", "--foreign-objects", "1"]) == 0
    assert "1 foreign object(s)" in capsys.readouterr().out
    (row,) = read_labels(out / "labels.csv")
    assert row.label == "foreign_object" and not row.is_lesion and row.box() is not None
    with pytest.raises(SystemExit):
        main(["phantom", "--out", str(out), "--foreign-objects", "2"])


def test_demo_study_has_one_biopsy_clip_in_a_normal_view():
    from inference.labels import image_label, rows_by_image

    demo = ROOT / "resources" / "demo"
    rows = read_labels(demo / "labels.csv")
    fo = [r for r in rows if r.label == "foreign_object"]
    assert [(r.path, r.laterality, r.view, r.detail) for r in fo] == [("MG_RCC.dcm", "R", "CC", "biopsy_clip")]
    assert not fo[0].is_lesion and image_label(rows_by_image(rows)["MG_RCC.dcm"]) == "normal"
    assert sum(r.is_lesion for r in rows) == 2  # the L-MLO mass and the DBT mass, as before
    pixels = pixel_array(str(demo / "MG_RCC.dcm"))
    x0, y0, x1, y1 = (int(v) for v in fo[0].box())
    inside = np.zeros(pixels.shape, dtype=bool)
    inside[y0:y1, x0:x1] = True
    assert 4 <= x1 - x0 <= 30 and 4 <= y1 - y0 <= 30  # 2-5 mm at 0.2 mm
    assert pixels[inside].max() > pixels[~inside].max()  # the brightest thing in the image
