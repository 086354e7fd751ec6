"""Write phantom images as real DICOM: MG For Presentation, Breast Tomosynthesis, legacy DBT.

* 2D: Digital Mammography X-Ray Image Storage - For Presentation (1.2.840.10008.5.1.4.1.1.1.2).
* DBT: Breast Tomosynthesis Image Storage (1.2.840.10008.5.1.4.1.1.13.1.3), an enhanced
  multi-frame object: window, rescale, pixel spacing, orientation and anatomy live in the
  shared functional groups, slice positions in the per-frame groups (never at the top level).
  ImageOrientationPatient follows PatientOrientation (MLO at 45 degrees) and slice ``k`` sits
  ``k`` mm along the plane normal (row x column), so sorting by position gives frame order.
  Frames are generated, encoded and written one at a time, so memory stays about one frame
  (plus the compressed output when compressing).
* Legacy DBT: the same volume as single-frame MG For Presentation files, one per slice, with
  instance numbers in *reverse* order of position and file names that do not sort by position.

Every file is written atomically (temporary sibling, then ``os.replace``). UIDs are derived
from the seed, the patient index and the image (``pydicom.uid.generate_uid(entropy_srcs=...)``),
so writing the same phantom twice gives identical files.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_encoder
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from inference.files import atomic_open

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
BREAST_TOMOSYNTHESIS = "1.2.840.10008.5.1.4.1.1.13.1.3"
COMPRESSIONS = {None: ExplicitVRLittleEndian, "rle": RLELossless, "jpeg2000": JPEG2000Lossless, "jpegls": JPEGLSLossless}
STUDY_DATE = "20260101"
STUDY_TIME = "090000"
MANUFACTURER = "mammolens phantom simulator"
SOFTWARE_VERSION = "mammolens-phantom 1"
VIEW_CODES = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique")}
BREAST_CODE = ("76752008", "Breast")
PATIENT_ORIENTATION = {
    ("L", "CC"): ["A", "R"],
    ("R", "CC"): ["P", "L"],
    ("L", "MLO"): ["A", "FR"],
    ("R", "MLO"): ["P", "FL"],
}
_DIRECTIONS = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "H": (0, 0, 1), "F": (0, 0, -1)}


def phantom_uid(*parts) -> str:
    """A deterministic UID for the given parts (under pydicom's UID root)."""
    return generate_uid(entropy_srcs=["mammolens-phantom", *(str(p) for p in parts)])


def study_uid_for(seed: int, patient_index: int) -> str:
    return phantom_uid("study", seed, patient_index)


def series_uid_for(seed: int, patient_index: int, key: str) -> str:
    return phantom_uid("series", seed, patient_index, key)


def _study_and_series_uids(seed, patient_index, study_uid, series_uid, series_key) -> tuple[str, str]:
    """The given study/series UIDs, or the ones derived from the seed where not given."""
    return (
        study_uid or study_uid_for(seed, patient_index),
        series_uid or series_uid_for(seed, patient_index, series_key),
    )


def frame_of_reference_uid(seed: int, patient_index: int, volume) -> str:
    """One frame of reference per volume, whichever way (multi-frame or legacy) it is written."""
    return phantom_uid("frame-of-reference", seed, patient_index, volume.seed, volume.laterality, volume.view)


def image_orientation(laterality: str, view: str) -> list[float]:
    """ImageOrientationPatient matching PatientOrientation (MLO at 45 degrees)."""
    out = []
    for code in PATIENT_ORIENTATION[(laterality, view)]:
        v = np.zeros(3)
        for ch in code:
            v += np.array(_DIRECTIONS[ch], float)
        v /= np.linalg.norm(v)
        out.extend(float(round(c, 6)) + 0.0 for c in v)
    return out


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters."""
    text = f"{value:.6g}"
    return text if len(text) <= 16 else f"{value:.8e}"[:16]


def _code(value: str, meaning: str, scheme: str = "SCT") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def stack_normal(laterality: str, view: str) -> np.ndarray:
    """Unit normal of the image plane (row x column direction cosines)."""
    iop = np.array(image_orientation(laterality, view))
    n = np.cross(iop[:3], iop[3:])
    return n / np.linalg.norm(n)


def slice_ipp(laterality: str, view: str, position: float) -> list[str]:
    """ImagePositionPatient of a slice ``position`` mm along the stack normal from the first.

    Slices are stacked along the normal of ImageOrientationPatient, so the position a reader
    computes (IPP . normal) increases 1 mm per slice, in the order of ``frame(k)``.
    """
    return [_ds(float(v) + 0.0) for v in np.round(stack_normal(laterality, view) * position, 6)]


def _check_compress(compress) -> str:
    if compress not in COMPRESSIONS:
        raise ValueError(f"compress must be one of None, 'rle', 'jpeg2000', 'jpegls', not {compress!r}")
    return COMPRESSIONS[compress]


def _common(ds: Dataset, *, laterality, view, patient_index, study_uid, series_uid, series_number, series_description):
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = STUDY_DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = STUDY_TIME
    ds.AccessionNumber = ""
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = "mammolens"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "mammolens phantom"
    ds.SeriesDescription = series_description
    ds.ManufacturerModelName = "phantom"
    ds.PatientName = f"PHANTOM^{patient_index}"
    ds.PatientID = f"PHANTOM-{patient_index}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "synthetic phantom, no patient data"
    ds.BodyPartExamined = "BREAST"
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = SOFTWARE_VERSION
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.ViewPosition = view
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = f"{patient_index}"
    ds.SeriesNumber = int(series_number)
    ds.PatientOrientation = PATIENT_ORIENTATION[(laterality, view)]
    ds.ImageLaterality = laterality
    code, meaning = VIEW_CODES[view]
    ds.ViewCodeSequence = Sequence([_code(code, meaning)])
    ds.ViewCodeSequence[0].ViewModifierCodeSequence = Sequence([])
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    ds.OrganExposed = "BREAST"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"


def _pixel_module(ds: Dataset, rows: int, cols: int, bits_stored: int):
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = int(rows)
    ds.Columns = int(cols)
    ds.BitsAllocated = 16
    ds.BitsStored = int(bits_stored)
    ds.HighBit = int(bits_stored) - 1
    ds.PixelRepresentation = 0


def _file_meta(ds: Dataset, transfer_syntax: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta


def _identity_rescale(ds: Dataset) -> None:
    """Stored values are the presentation values: slope 1, intercept 0."""
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"


def _slice_spacing(ds: Dataset, volume) -> None:
    """SliceThickness and SpacingBetweenSlices: both the volume's slice pitch."""
    ds.SliceThickness = _ds(volume.slice_spacing)
    ds.SpacingBetweenSlices = _ds(volume.slice_spacing)


def _orientation(laterality: str, view: str) -> list[str]:
    return [_ds(v) for v in image_orientation(laterality, view)]


def _windows(ds: Dataset, presets):
    ds.WindowCenter = [_ds(c) for c, _, _ in presets]
    ds.WindowWidth = [_ds(max(w, 1.0)) for _, w, _ in presets]
    ds.WindowCenterWidthExplanation = [e for _, _, e in presets]
    ds.VOILUTFunction = "LINEAR"


def _mg_dataset(
    pixels_shape, *, laterality, view, pixel_spacing, bits_stored, presets, patient_index, study_uid, series_uid,
    series_number, series_description, instance, sop_uid, image_type, thickness_mm,
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = sop_uid
    ds.ImageType = image_type
    _common(
        ds, laterality=laterality, view=view, patient_index=patient_index, study_uid=study_uid, series_uid=series_uid,
        series_number=series_number, series_description=series_description,
    )
    ds.InstanceNumber = int(instance)
    ds.AnatomicRegionSequence = Sequence([_code(*BREAST_CODE)])
    ds.BodyPartThickness = _ds(thickness_mm)
    ds.DetectorType = "DIRECT"
    ds.ImagerPixelSpacing = [_ds(pixel_spacing), _ds(pixel_spacing)]
    ds.PixelSpacing = [_ds(pixel_spacing), _ds(pixel_spacing)]
    ds.EstimatedRadiographicMagnificationFactor = "1.0"
    ds.QualityControlImage = "NO"
    _pixel_module(ds, pixels_shape[0], pixels_shape[1], bits_stored)
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1  # higher values: less X-ray intensity (more attenuation)
    ds.AcquisitionContextSequence = Sequence([])  # Type 2: present, empty (no context recorded)
    _identity_rescale(ds)
    _windows(ds, presets)
    return ds


def _save(ds: Dataset, path: Path, arr: np.ndarray, compress) -> Path:
    ts = _check_compress(compress)
    arr = np.ascontiguousarray(arr, dtype=np.uint16)
    # compress() starts from an uncompressed dataset and sets the compressed transfer syntax itself
    _file_meta(ds, ExplicitVRLittleEndian)
    if compress is None:
        ds.PixelData = arr.tobytes()
        ds["PixelData"].VR = "OW"
    else:
        ds.compress(ts, arr, generate_instance_uid=False)
    path = Path(path)
    with atomic_open(path, "wb") as f:
        ds.save_as(f, enforce_file_format=True)
    return path


def write_mammogram_dicom(
    path,
    image,
    *,
    patient_index: int = 1,
    study_uid: str | None = None,
    series_uid: str | None = None,
    instance: int = 1,
    compress: str | None = None,
    seed: int = 0,
    series_number: int | None = None,
) -> Path:
    """Write a :class:`PhantomImage` as an MG For Presentation file (atomically); returns the path."""
    _check_compress(compress)
    lat, view = image.laterality, image.view
    study_uid, series_uid = _study_and_series_uids(seed, patient_index, study_uid, series_uid, view)
    sop = phantom_uid("image", seed, patient_index, image.seed, lat, view, instance, *image.pixels.shape)
    ds = _mg_dataset(
        image.pixels.shape, laterality=lat, view=view, pixel_spacing=image.pixel_spacing, bits_stored=image.bits_stored,
        presets=image.window_presets(), patient_index=patient_index, study_uid=study_uid, series_uid=series_uid,
        series_number=series_number if series_number is not None else (1 if view == "CC" else 2),
        series_description=f"phantom {view}", instance=instance, sop_uid=sop, image_type=["ORIGINAL", "PRIMARY"],
        thickness_mm=image.thickness_mm,
    )
    return _save(ds, path, image.pixels, compress)


# ---------------------------------------------------------------------------------------------
# DBT


def _tag_bytes(group: int, elem: int) -> bytes:
    return struct.pack("<HH", group, elem)


def _frame_encoder(compress, volume):
    if compress is None:
        return None
    enc = get_encoder(_check_compress(compress))
    rows, cols = volume.shape
    opts = dict(
        rows=rows, columns=cols, samples_per_pixel=1, bits_allocated=16, bits_stored=volume.bits_stored,
        pixel_representation=0, photometric_interpretation="MONOCHROME2", number_of_frames=1,
    )
    return lambda frame: enc.encode(np.ascontiguousarray(frame), **opts)


def _write_pixel_data(f, volume, compress) -> None:
    """Append the Pixel Data element, generating (and encoding) one frame at a time."""
    n = volume.n_slices
    rows, cols = volume.shape
    encode = _frame_encoder(compress, volume)
    if encode is None:
        length = n * rows * cols * 2
        if length >= 0xFFFFFFFF:
            raise ValueError("the volume is too large for one uncompressed DICOM Pixel Data element")
        f.write(_tag_bytes(0x7FE0, 0x0010) + b"OW\0\0" + struct.pack("<I", length))
        for k in range(n):
            f.write(volume.frame(k).astype("<u2", copy=False).tobytes())
        return
    f.write(_tag_bytes(0x7FE0, 0x0010) + b"OB\0\0" + struct.pack("<I", 0xFFFFFFFF))
    item = _tag_bytes(0xFFFE, 0xE000)
    f.write(item + struct.pack("<I", 4 * n))
    bot_at = f.tell()
    f.write(b"\0" * (4 * n))
    offsets = []
    pos = 0
    for k in range(n):
        data = encode(volume.frame(k))
        if len(data) % 2:
            data += b"\0"
        offsets.append(pos)
        f.write(item + struct.pack("<I", len(data)))
        f.write(data)
        pos += 8 + len(data)
        del data
    if pos >= 0xFFFFFFFF:
        raise ValueError("the compressed volume is too large for a basic offset table")
    f.write(_tag_bytes(0xFFFE, 0xE0DD) + b"\0\0\0\0")
    end = f.tell()
    f.seek(bot_at)
    f.write(struct.pack(f"<{n}I", *offsets))
    f.seek(end)


def _dbt_dataset(volume, *, patient_index, study_uid, series_uid, seed, series_number) -> Dataset:
    lat, view = volume.laterality, volume.view
    ps = volume.pixel_spacing
    presets = volume.window_presets()
    ds = Dataset()
    ds.SOPClassUID = BREAST_TOMOSYNTHESIS
    ds.SOPInstanceUID = phantom_uid("dbt", seed, patient_index, volume.seed, lat, view, volume.n_slices, *volume.shape)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMOSYNTHESIS", "NONE"]
    _common(
        ds, laterality=lat, view=view, patient_index=patient_index, study_uid=study_uid, series_uid=series_uid,
        series_number=series_number, series_description=f"phantom DBT {view}",
    )
    ds.AcquisitionDateTime = STUDY_DATE + STUDY_TIME
    ds.AcquisitionDuration = 4.0
    ds.InstanceNumber = 1
    ds.BodyPartThickness = _ds(volume.thickness_mm)
    ds.FrameOfReferenceUID = frame_of_reference_uid(seed, patient_index, volume)
    ds.PositionReferenceIndicator = ""
    ds.ContentQualification = "RESEARCH"
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.AcquisitionContextSequence = Sequence([])
    ds.NumberOfFrames = int(volume.n_slices)
    _pixel_module(ds, volume.shape[0], volume.shape[1], volume.bits_stored)
    # multi-frame dimensions: one stack, frames by in-stack position
    org_uid = phantom_uid("dimension-organization", ds.SOPInstanceUID)
    org = Dataset()
    org.DimensionOrganizationUID = org_uid
    ds.DimensionOrganizationSequence = Sequence([org])
    ds.DimensionOrganizationType = "3D"
    dims = []
    for pointer, label in ((0x00209056, "Stack ID"), (0x00209057, "In-Stack Position Number")):
        d = Dataset()
        d.DimensionOrganizationUID = org_uid
        d.DimensionIndexPointer = pointer
        d.FunctionalGroupPointer = 0x00209111  # FrameContentSequence
        d.DimensionDescriptionLabel = label
        dims.append(d)
    ds.DimensionIndexSequence = Sequence(dims)
    # shared functional groups
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [_ds(ps), _ds(ps)]
    _slice_spacing(pm, volume)
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = _orientation(lat, view)
    shared.PlaneOrientationSequence = Sequence([po])
    voi = Dataset()
    _windows(voi, presets)
    shared.FrameVOILUTSequence = Sequence([voi])
    pvt = Dataset()
    _identity_rescale(pvt)
    shared.PixelValueTransformationSequence = Sequence([pvt])
    anat = Dataset()
    anat.FrameLaterality = lat
    anat.AnatomicRegionSequence = Sequence([_code(*BREAST_CODE)])
    shared.FrameAnatomySequence = Sequence([anat])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    # per-frame functional groups
    frames = []
    for k in range(volume.n_slices):
        item = Dataset()
        fc = Dataset()
        fc.StackID = "1"
        fc.InStackPositionNumber = k + 1
        fc.DimensionIndexValues = [1, k + 1]
        fc.FrameAcquisitionDateTime = STUDY_DATE + STUDY_TIME
        fc.FrameReferenceDateTime = STUDY_DATE + STUDY_TIME
        fc.FrameAcquisitionDuration = 4000.0
        item.FrameContentSequence = Sequence([fc])
        pp = Dataset()
        pp.ImagePositionPatient = slice_ipp(lat, view, volume.slice_position(k))
        item.PlanePositionSequence = Sequence([pp])
        # X-Ray 3D Frame Type is a per-frame macro of this IOD (never shared)
        ftype = Dataset()
        ftype.FrameType = ["ORIGINAL", "PRIMARY", "TOMOSYNTHESIS", "NONE"]
        ftype.PixelPresentation = "MONOCHROME"
        ftype.VolumetricProperties = "VOLUME"
        ftype.VolumeBasedCalculationTechnique = "NONE"
        item.XRay3DFrameTypeSequence = Sequence([ftype])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    return ds


def write_dbt_dicom(
    path,
    volume,
    *,
    patient_index: int = 1,
    study_uid: str | None = None,
    series_uid: str | None = None,
    compress: str | None = None,
    seed: int = 0,
    series_number: int = 3,
) -> Path:
    """Write a :class:`PhantomVolume` as one Breast Tomosynthesis Image (multi-frame) file.

    Frames are generated and written one at a time (encoded one at a time when ``compress``
    is set, with a Basic Offset Table), so memory stays about one frame plus the output.
    """
    ts = _check_compress(compress)
    study_uid, series_uid = _study_and_series_uids(
        seed, patient_index, study_uid, series_uid, f"DBT-{volume.laterality}-{volume.view}"
    )
    ds = _dbt_dataset(
        volume, patient_index=patient_index, study_uid=study_uid, series_uid=series_uid, seed=seed,
        series_number=series_number,
    )
    _file_meta(ds, ts)
    path = Path(path)
    with atomic_open(path, "wb") as f:
        ds.save_as(f, enforce_file_format=True)
        _write_pixel_data(f, volume, compress)
    return path


def legacy_file_order(n: int, seed: int) -> list[int]:
    """File-name numbers for slices 0..n-1: a fixed shuffle that never sorts by position."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), n, 0x1E6AC7]))
    perm = [int(v) for v in rng.permutation(n)]
    if n >= 2 and (perm == sorted(perm) or perm == sorted(perm, reverse=True)):
        perm[0], perm[1] = perm[1], perm[0]
        if n == 2:
            perm = [1, 0]
    return perm


def write_legacy_dbt_series(
    folder,
    volume,
    *,
    patient_index: int = 1,
    study_uid: str | None = None,
    series_uid: str | None = None,
    compress: str | None = None,
    seed: int = 0,
    series_number: int = 4,
) -> list[Path]:
    """Write the volume as single-frame MG For Presentation files, one per slice.

    All files share one SeriesInstanceUID and FrameOfReferenceUID; the position along the stack
    normal (ImagePositionPatient . normal) and SliceLocation increase 1 mm per slice, in the
    order of ``volume.frame(k)``; InstanceNumber runs in the REVERSE order of position
    and the file names (``IMG_xxxx.dcm``) do not sort by position either, so readers must order
    by position. Returns the paths ordered by slice (``paths[k]`` holds slice ``k``).
    """
    _check_compress(compress)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lat, view = volume.laterality, volume.view
    study_uid, series_uid = _study_and_series_uids(
        seed, patient_index, study_uid, series_uid, f"DBT-legacy-{lat}-{view}"
    )
    for_uid = frame_of_reference_uid(seed, patient_index, volume)
    presets = volume.window_presets()
    iop = _orientation(lat, view)
    names = legacy_file_order(volume.n_slices, seed * 100003 + patient_index)
    n = volume.n_slices
    paths = []
    for k in range(n):
        frame = volume.frame(k)
        sop = phantom_uid("legacy-dbt", seed, patient_index, volume.seed, lat, view, n, k, *volume.shape)
        ds = _mg_dataset(
            frame.shape, laterality=lat, view=view, pixel_spacing=volume.pixel_spacing, bits_stored=volume.bits_stored,
            presets=presets, patient_index=patient_index, study_uid=study_uid, series_uid=series_uid,
            series_number=series_number, series_description=f"phantom DBT {view} (legacy)", instance=n - k,
            sop_uid=sop, thickness_mm=volume.thickness_mm,
            # MG Image Type value 3 is enumerated (empty here); the tomosynthesis mark goes in value 4
            image_type=["ORIGINAL", "PRIMARY", "", "TOMOSYNTHESIS"],
        )
        z = volume.slice_position(k)
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = slice_ipp(lat, view, z)
        ds.ImageOrientationPatient = iop
        ds.SliceLocation = _ds(z)
        _slice_spacing(ds, volume)
        paths.append(_save(ds, folder / f"IMG_{names[k]:04d}.dcm", frame, compress))
    return paths
