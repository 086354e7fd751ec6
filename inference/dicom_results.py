"""A map result as DICOM objects other tools open: Parametric Map, binary SEG and TID 1500 SR (highdicom).

For one analysed image (a mammogram, or a DBT volume's analysed slices):

* **Parametric Map**: the method's map as float pixels (float32, exactly the ``.npy`` values),
  with a Real World Value Mapping labelled by the map's name and the method's unit, each frame
  referencing its source image and frame.
* **Segmentation** (binary): the region where the map reaches the bundle's calibrated threshold
  (``value >= threshold``, the decision rule of :mod:`inference.metrics`), one segment described by
  the method and the bundle (name, version, sha256, threshold). An empty region gives a SEG whose
  frames are empty; a bundle without calibration gives no SEG (there is no threshold to draw).
* **Structured Report** (TID 1500 Measurement Report): per analysed frame the score, the
  threshold and the decision, the bundle's name / version / sha256 and its card's key line (as
  TID 4019 algorithm parameters), referencing the source images, the Parametric Map and the SEG.

DBT volumes give multi-frame objects, one frame per analysed slice. Identifiers follow the source
(the objects belong with the source study); a :class:`Pseudonymizer` replaces the patient and the
study identifiers and remaps every UID, the same way in all three objects. Mammograms For
Presentation carry no frame of reference, which the Parametric Map IOD requires: the derived
objects get one of their own (shared by the three), the detector plane laid out from the
source's Patient Orientation and Pixel Spacing. Every file is written atomically.
"""
from __future__ import annotations

import copy
import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from inference.errors import MammolensError
from inference.files import atomic_open

#: Private coding scheme of the score, threshold and decision concepts (no standard code exists).
SCHEME = "99MAMMOLENS"
SERIES_NUMBERS = {"pm": 901, "seg": 902, "sr": 903}
MANUFACTURER = "mammolens"
_DIRECTIONS = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "H": (0, 0, 1), "F": (0, 0, -1)}
#: Patient and study attributes a pseudonymised object blanks (Type 2: present, empty) or drops.
_BLANKED = ("PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "ReferringPhysicianName",
            "StudyDate", "StudyTime", "SeriesDate", "SeriesTime", "ContentDate", "ContentTime",
            "AcquisitionDate", "AcquisitionTime")
_DROPPED = ("OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress",
            "PatientTelephoneNumbers", "PatientBirthName", "PatientMotherBirthName", "InstitutionName",
            "InstitutionAddress", "InstitutionalDepartmentName", "OperatorsName", "PerformingPhysicianName",
            "RequestingPhysician", "PhysiciansOfRecord", "StationName", "DeviceSerialNumber",
            "IssuerOfPatientID", "MedicalRecordLocator", "PatientComments", "AcquisitionDateTime",
            "RequestAttributesSequence", "ReferencedStudySequence", "ReferencedPatientSequence",
            "StudyDescription", "SeriesDescription", "PatientAge", "PatientSize", "PatientWeight",
            "EthnicGroup", "AdditionalPatientHistory", "Occupation", "AdmittingDiagnosesDescription",
            "PerformedProcedureStepDescription", "RequestedProcedureDescription")


class DicomResultError(MammolensError):
    """A result that cannot be written as DICOM objects (the message is one sentence)."""


@dataclass(frozen=True)
class Provenance:
    """Who made the map: the method, its main map and unit, the bundle and its card's key line."""

    method: str
    map_name: str
    unit: str
    bundle_name: str
    bundle_version: str
    sha256: Mapping[str, str] = field(default_factory=dict)  # network role -> sha256 of its ONNX file
    card_line: str | None = None

    @classmethod
    def of(cls, bundle, spec, map_name: str | None = None) -> "Provenance":
        """From a :class:`~inference.bundle.Bundle` and its method's registry spec."""
        name = map_name or spec.maps[0]
        return cls(method=bundle.method, map_name=name, unit=spec.units.get(name, "") or "no units",
                   bundle_name=bundle.name, bundle_version=bundle.version,
                   sha256={role: n.sha256 for role, n in bundle.networks.items()}, card_line=bundle.card_line)

    def parameters(self, threshold: float | None) -> list[str]:
        """The TID 4019 / SEG algorithm parameters: map, unit, threshold, sha256s, card line."""
        out = [f"map: {self.map_name} ({self.unit})",
               f"threshold: {'none (uncalibrated bundle)' if threshold is None else repr(float(threshold))}"]
        out += [f"sha256 {role}: {sha}" for role, sha in sorted(self.sha256.items())]
        if self.card_line:
            out.append(f"card: {self.card_line}")
        return out


@dataclass(frozen=True)
class FrameResult:
    """One analysed frame: its 0-based frame in the source, the map, the score and the decision."""

    frame: int
    values: np.ndarray  # (rows, cols) float, in the source image's grid
    score: float
    decision: str | None = None


@dataclass(frozen=True)
class ResultFiles:
    parametric_map: Path
    segmentation: Path | None  # None when the bundle has no calibrated threshold
    report: Path

    def paths(self) -> list[Path]:
        return [p for p in (self.parametric_map, self.segmentation, self.report) if p is not None]


class Pseudonymizer:
    """Replaces patient and study identifiers and remaps UIDs, consistently across every object it touches.

    The same ``key`` gives the same pseudonyms and UIDs (a study analysed in two runs stays one
    study); without one, a random key keeps this run's objects unlinkable to the source.
    """

    def __init__(self, key: str | None = None) -> None:
        self.key = key or secrets.token_hex(16)
        self._patients: dict[str, str] = {}

    def uid(self, uid: str) -> str:
        from pydicom.uid import generate_uid

        return str(generate_uid(entropy_srcs=["mammolens-pseudonym", self.key, str(uid)]))

    def patient(self, patient_id: str) -> str:
        import hashlib

        if patient_id not in self._patients:
            digest = hashlib.sha256(f"{self.key}:{patient_id}".encode()).hexdigest()[:12].upper()
            self._patients[patient_id] = f"ML-{digest}"
        return self._patients[patient_id]

    def apply(self, ds):
        """A pseudonymised copy of a source header (the pixel data, if any, is not copied)."""
        out = copy.deepcopy(ds)
        pseudonym = self.patient(str(ds.get("PatientID", "") or "") + "|" + str(ds.get("PatientName", "") or ""))
        out.PatientID = pseudonym
        out.PatientName = f"{pseudonym}^"
        for name in _BLANKED:
            if name in out:
                setattr(out, name, "")
        for name in _DROPPED:
            if name in out:
                delattr(out, name)
        for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            if name in out:
                setattr(out, name, self.uid(getattr(out, name)))
        if "file_meta" in out.__dict__ or hasattr(out, "file_meta"):
            meta = getattr(out, "file_meta", None)
            if meta is not None and "MediaStorageSOPInstanceUID" in meta:
                meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = "mammolens: identifiers replaced, UIDs remapped"
        return out


# ---------------------------------------------------------------------------------------------
# sources


def source_files(image) -> list[Path]:
    """The file(s) of an :class:`~inference.studies.image.Image`: one per slice for a legacy DBT
    series (``slice_files``), else its one file."""
    files = getattr(image, "slice_files", None)
    return [Path(p) for p in files] if files else [Path(image.path)]


def _read_header(path: Path):
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - one sentence, whatever pydicom raised
        raise DicomResultError(f"{path.name} is not a DICOM file the results can reference ({type(exc).__name__}).") \
            from None


def _orientation_from_patient_orientation(ds) -> list[float]:
    """Row and column direction cosines from Patient Orientation (e.g. ``A\\R``, ``P\\FL``)."""
    value = ds.get("PatientOrientation")
    try:
        codes = [str(v) for v in value] if value is not None and not isinstance(value, str) else str(value).split("\\")
        vectors = []
        for code in codes[:2]:
            v = np.sum([_DIRECTIONS[c] for c in code], axis=0).astype(float)
            vectors.append(v / np.linalg.norm(v))
        if len(vectors) == 2 and abs(float(vectors[0] @ vectors[1])) < 1e-6:
            return [float(round(c, 6)) + 0.0 for v in vectors for c in v]
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        pass
    return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def _with_plane(ds):
    """A single-frame source without a frame of reference (MG For Presentation), laid in a plane of its
    own: the derived objects share one frame of reference, derived from the source's SOP Instance UID."""
    from pydicom.uid import generate_uid

    if "FrameOfReferenceUID" in ds and "ImageOrientationPatient" in ds and "ImagePositionPatient" in ds:
        return ds
    out = copy.deepcopy(ds)
    out.FrameOfReferenceUID = generate_uid(entropy_srcs=["mammolens-detector-plane", str(ds.SOPInstanceUID)])
    out.PositionReferenceIndicator = ""
    out.ImageOrientationPatient = _orientation_from_patient_orientation(ds)
    out.ImagePositionPatient = [0.0, 0.0, 0.0]
    if "PixelSpacing" not in out:
        out.PixelSpacing = list(ds.get("ImagerPixelSpacing", None) or [1.0, 1.0])
    if "SliceThickness" not in out:
        out.SliceThickness = 1.0
    return out


def _plane_positions(hd, header, frames: Sequence[int]):
    """Plane positions of the chosen frames of an enhanced multi-frame source (None for single frames)."""
    if int(header.get("NumberOfFrames", 1) or 1) <= 1:
        return None
    try:
        per_frame = header.PerFrameFunctionalGroupsSequence
        return [hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT,
                                         per_frame[k].PlanePositionSequence[0].ImagePositionPatient) for k in frames]
    except (AttributeError, IndexError, KeyError) as exc:
        raise DicomResultError("the multi-frame source has no per-frame plane positions, so its maps cannot be "
                               f"placed on its frames ({type(exc).__name__}).") from None


@dataclass
class _Sources:
    headers: list  # as handed to highdicom (pseudonymised, with a plane where needed)
    per_frame: list  # header of each analysed frame's source (same object for a multi-frame source)
    frame_numbers: list[int]  # 1-based frame number within that header's object
    plane_positions: list | None


def _sources(files: Sequence[Path], frames: Sequence[int], pseudonymizer: Pseudonymizer | None) -> _Sources:
    import highdicom as hd

    if len(files) == 1:
        header = _read_header(files[0])
        n = int(header.get("NumberOfFrames", 1) or 1)
        bad = [k for k in frames if not 0 <= k < n]
        if bad:
            raise DicomResultError(f"frame {bad[0] + 1} is outside the source's {n} frame(s).")
        if pseudonymizer is not None:
            header = pseudonymizer.apply(header)
        if n == 1:
            header = _with_plane(header)
        return _Sources([header], [header] * len(frames), [k + 1 for k in frames],
                        _plane_positions(hd, header, frames))
    bad = [k for k in frames if not 0 <= k < len(files)]
    if bad:
        raise DicomResultError(f"slice {bad[0] + 1} is outside the series' {len(files)} files.")
    headers = []
    for k in frames:
        h = _read_header(files[k])
        if pseudonymizer is not None:
            h = pseudonymizer.apply(h)
        headers.append(_with_plane(h))
    return _Sources(headers, headers, [1] * len(frames), None)


# ---------------------------------------------------------------------------------------------
# the three objects


def _code(value: str, meaning: str, scheme: str = SCHEME):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _short(text: str, limit: int = 64) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _finish(ds, first_source, laterality: bool = False) -> None:
    """What the derived objects need beyond highdicom's: Patient Orientation, and the series'
    Laterality for the Parametric Map (its IOD has no Image or Frame Laterality)."""
    if "PatientOrientation" in first_source and "PatientOrientation" not in ds:
        ds.PatientOrientation = first_source.PatientOrientation
    if not laterality:
        return
    laterality = first_source.get("ImageLaterality") or first_source.get("Laterality")
    if not laterality:
        try:
            laterality = first_source.SharedFunctionalGroupsSequence[0].FrameAnatomySequence[0].FrameLaterality
        except (AttributeError, IndexError):
            laterality = None
    if laterality in ("L", "R") and "Laterality" not in ds:
        ds.Laterality = laterality


def _save(ds, path: Path) -> Path:
    with atomic_open(path, "wb") as f:
        ds.save_as(f, enforce_file_format=True)
    return path


def _parametric_map(hd, src: _Sources, values: np.ndarray, prov: Provenance):
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=_short(prov.map_name, 16), lut_explanation=_short(prov.unit),
        unit=_code("1", _short(prov.unit), "UCUM"), value_range=(low, high), slope=1.0, intercept=0.0)
    width = max(high - low, 1e-6)
    pm = hd.pm.ParametricMap(
        src.headers, values, hd.UID(), SERIES_NUMBERS["pm"], hd.UID(), 1, MANUFACTURER, _short(prov.bundle_name),
        _short(f"{prov.bundle_name} {prov.bundle_version}"), "0", False, [mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=low + width / 2, window_width=width,
                                                          voi_lut_function="LINEAR_EXACT")],
        plane_positions=src.plane_positions, content_label="MAP",
        content_description=_short(f"{prov.method} {prov.map_name} map"))
    pm.SeriesDescription = _short(f"mammolens {prov.method} {prov.map_name} map")
    _finish(pm, src.headers[0], laterality=True)
    return pm


def _segmentation(hd, src: _Sources, values: np.ndarray, threshold: float, prov: Provenance):
    from pydicom.sr.codedict import codes

    with np.errstate(invalid="ignore"):
        mask = np.nan_to_num(values, nan=-np.inf) >= threshold
    algorithm = hd.AlgorithmIdentificationSequence(
        name=_short(prov.bundle_name), family=codes.DCM.ArtificialIntelligence, version=_short(prov.bundle_version),
        source=_short(f"mammolens {prov.method}"),
        parameters={"map": _short(prov.map_name), "threshold": repr(float(threshold)),
                    **{f"sha256 {role}": sha for role, sha in sorted(prov.sha256.items())}})
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label=_short(f"{prov.method} {prov.map_name} >= {threshold:.4g}"),
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion, algorithm_type="AUTOMATIC", algorithm_identification=algorithm,
        tracking_id=_short(f"{prov.method} region"), tracking_uid=hd.UID())
    seg = hd.seg.Segmentation(
        src.headers, mask, "BINARY", [segment], hd.UID(), SERIES_NUMBERS["seg"], hd.UID(), 1, MANUFACTURER,
        _short(prov.bundle_name), _short(f"{prov.bundle_name} {prov.bundle_version}"), "0",
        plane_positions=src.plane_positions, omit_empty_frames=False, content_label="REGION",
        content_description=_short(f"{prov.method}: {prov.map_name} at or above the calibrated threshold"))
    seg.SeriesDescription = _short(f"mammolens {prov.method} region >= threshold")
    _finish(seg, src.headers[0])
    return seg


def derived_frames(ds) -> dict[tuple[str, int], int]:
    """``{(source SOP Instance UID, source frame number): frame number}`` of a derived multi-frame
    object (highdicom orders the frames by position, not in the order they were given)."""
    out = {}
    for number, item in enumerate(ds.PerFrameFunctionalGroupsSequence, 1):
        for derivation in item.get("DerivationImageSequence", []):
            for ref in derivation.get("SourceImageSequence", []):
                out[(str(ref.ReferencedSOPInstanceUID), int(ref.get("ReferencedFrameNumber", 1) or 1))] = number
    return out


def _report(hd, src: _Sources, frames: Sequence[FrameResult], threshold, prov: Provenance, pm, seg):
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes

    sr = hd.sr
    unitless = _code("1", "no units", "UCUM")
    device = sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=_short(f"mammolens {prov.method}"), model_name=_short(prov.bundle_name)))
    algorithm = sr.AlgorithmIdentification(name=_short(prov.bundle_name), version=_short(prov.bundle_version),
                                           parameters=prov.parameters(threshold))
    pm_frames = derived_frames(pm)
    groups = []
    for i, (fr, header, number) in enumerate(zip(frames, src.per_frame, src.frame_numbers)):
        measurements = [sr.Measurement(name=_code("ML0001", "Anomaly score"), value=float(fr.score), unit=unitless,
                                       algorithm_id=algorithm)]
        if threshold is not None:
            measurements.append(sr.Measurement(name=_code("ML0002", "Calibrated threshold"), value=float(threshold),
                                               unit=unitless))
        evaluations = []
        if fr.decision in ("normal", "abnormal"):
            value = _code("17621005", "Normal", "SCT") if fr.decision == "normal" else \
                _code("263654008", "Abnormal", "SCT")
            evaluations.append(sr.QualitativeEvaluation(name=_code("ML0003", "Calibrated decision"), value=value))
        multi = int(header.get("NumberOfFrames", 1) or 1) > 1
        source = sr.SourceImageForMeasurementGroup(
            referenced_sop_class_uid=header.SOPClassUID, referenced_sop_instance_uid=header.SOPInstanceUID,
            referenced_frame_numbers=[number] if multi else None)
        # the frame's map in the Parametric Map is a source of the group too
        pm_frame = sr.SourceImageForMeasurementGroup(
            referenced_sop_class_uid=pm.SOPClassUID, referenced_sop_instance_uid=pm.SOPInstanceUID,
            referenced_frame_numbers=[pm_frames[(str(header.SOPInstanceUID), number)]])
        groups.append(sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=sr.TrackingIdentifier(uid=hd.UID(), identifier=f"frame {fr.frame + 1}"),
            algorithm_id=algorithm,
            finding_sites=[sr.FindingSite(anatomic_location=codes.SCT.Breast)],
            measurements=measurements, qualitative_evaluations=evaluations or None, source_images=[source, pm_frame]))
    if seg is not None:
        sources = {}
        for header, number in zip(src.per_frame, src.frame_numbers):
            sources.setdefault(header.SOPInstanceUID, (header, []))[1].append(number)
        region = sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=1,
            source_images=[sr.SourceImageForSegmentation(
                referenced_sop_class_uid=h.SOPClassUID, referenced_sop_instance_uid=h.SOPInstanceUID,
                referenced_frame_numbers=numbers if int(h.get("NumberOfFrames", 1) or 1) > 1 else None)
                for h, numbers in sources.values()])
        groups.append(sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{prov.method} region"),
            referenced_segment=region, algorithm_id=algorithm,
            finding_type=codes.SCT.MorphologicallyAbnormalStructure,
            finding_sites=[sr.FindingSite(anatomic_location=codes.SCT.Breast)],
            measurements=[sr.Measurement(name=_code("ML0004", "Region pixels"),
                                         value=float(np.count_nonzero(seg.pixel_array)),
                                         unit=_code("{pixels}", "pixels", "UCUM"))]))
    report = sr.MeasurementReport(
        observation_context=sr.ObservationContext(observer_device_context=device),
        procedure_reported=_code("71651007", "Mammography", "SCT"), imaging_measurements=groups)
    evidence = list({h.SOPInstanceUID: h for h in src.headers}.values()) + [pm] + ([seg] if seg is not None else [])
    doc = sr.Comprehensive3DSR(
        evidence=evidence, content=report, series_instance_uid=hd.UID(), series_number=SERIES_NUMBERS["sr"],
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER, is_complete=True)
    doc.SeriesDescription = _short(f"mammolens {prov.method} report")
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "mammolens concepts"
    scheme.CodingSchemeResponsibleOrganization = "mammolens"
    doc.CodingSchemeIdentificationSequence = [scheme]
    return doc


def write_result_objects(files: Sequence[str | Path], frames: Sequence[FrameResult], provenance: Provenance,
                         out: str | Path, stem: str, *, threshold: float | None,
                         pseudonymizer: Pseudonymizer | None = None) -> ResultFiles:
    """Write ``{stem}_pm.dcm``, ``{stem}_seg.dcm`` (when calibrated) and ``{stem}_sr.dcm`` into ``out``.

    ``files``: the source image's file (or a legacy DBT series' files, one per slice); ``frames``:
    the analysed frames, in the order they should appear. Raises :class:`DicomResultError` with
    one sentence when the result cannot be written.
    """
    import highdicom as hd

    if not frames:
        raise DicomResultError("there is no analysed frame to write.")
    files = [Path(f) for f in files]
    src = _sources(files, [fr.frame for fr in frames], pseudonymizer)
    values = np.stack([np.asarray(fr.values, dtype=np.float32) for fr in frames])
    rows, cols = int(src.headers[0].Rows), int(src.headers[0].Columns)
    if values.shape[1:] != (rows, cols):
        raise DicomResultError(f"the map is {values.shape[2]} x {values.shape[1]} pixels but its source image is "
                               f"{cols} x {rows}.")
    if threshold is not None and not math.isfinite(float(threshold)):
        threshold = None
    single = len(src.headers) == 1 and int(src.headers[0].get("NumberOfFrames", 1) or 1) == 1
    pm_values = values[0] if single else values
    try:
        pm = _parametric_map(hd, src, pm_values, provenance)
        seg = _segmentation(hd, src, pm_values, float(threshold), provenance) if threshold is not None else None
        sr = _report(hd, src, frames, threshold, provenance, pm, seg)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        # highdicom checks the source's attributes: one sentence with its first line
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        raise DicomResultError(f"the map, SEG and SR cannot be derived from {files[0].name}: {_short(reason, 160)}.") \
            from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pm_path = _save(pm, out / f"{stem}_pm.dcm")
    seg_path = _save(seg, out / f"{stem}_seg.dcm") if seg is not None else None
    sr_path = _save(sr, out / f"{stem}_sr.dcm")
    return ResultFiles(pm_path, seg_path, sr_path)


# ---------------------------------------------------------------------------------------------
# beside an analyze output


def _analysed_images(source: str | Path) -> dict:
    """``{SOP Instance UID: Image}`` for the images under ``source`` (a legacy DBT volume under each
    of its slices' UIDs): the key analyze's rows carry."""
    import pydicom

    from inference.studies.study import open_path

    images = {}
    for study in open_path(source).studies():
        for image in study.images():
            uids = [image.identity.get("SOPInstanceUID")]
            for path in getattr(image, "slice_files", None) or ():  # a legacy volume's rows carry their slices' UIDs
                uids.append(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
                            .get("SOPInstanceUID"))
            images.update({str(uid): image for uid in uids if uid})
    return images


def write_analysis_objects(source: str | Path, out: str | Path, *, model: str | None = None,
                           anonymize: bool = False, pseudonymizer: Pseudonymizer | None = None) -> list[Path]:
    """Parametric Map, SEG and SR of every image of an analyze output ``out`` (its ``results.json``
    rows, keyed by SOP Instance UID and frame, and its maps), for the images under ``source``,
    written as one set into ``out/dicom``.

    A DBT volume analysed with every slice gives multi-frame objects of all its slices (from the
    volume map); otherwise the objects hold the slice whose map analyze wrote. ``anonymize``
    (or an explicit ``pseudonymizer``) replaces the identifiers, the same way in every object.
    Failed rows have no map and get no object.
    """
    import json
    import re

    from inference.bundle import resolve_bundle
    from inference.files import staged_folder
    from inference.methods import get

    out = Path(out)
    try:
        summary = json.loads((out / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise MammolensError(f"{out.name} holds no readable results.json: run analyze into it first.") from None
    spec = get(summary["method"])
    bundle = resolve_bundle(model or summary["bundle"], method=spec.method)
    provenance = Provenance.of(bundle, spec)
    threshold = bundle.calibration.threshold if bundle.calibration is not None else None
    if pseudonymizer is None and anonymize:
        pseudonymizer = Pseudonymizer()
    images = _analysed_images(source)
    by_task: dict[str, list[dict]] = {}
    for row in summary.get("results", []):
        if row.get("status") == "ok":
            by_task.setdefault(str(row["key"]).rsplit("-", 1)[0], []).append(row)
    written: list[Path] = []
    with staged_folder(out / "dicom") as staging:
        for rows in by_task.values():
            image = next((images[str(r["sop_uid"])] for r in rows if str(r.get("sop_uid")) in images), None)
            if image is None:
                raise MammolensError(f"{rows[0]['image']} of the analyze output is not among the images of the "
                                     "source given; pass the same file or folder analyze ran on.")
            shown = [r for r in rows if r.get("map")]
            if not shown:
                continue
            # analyze names a map STEM[_sliceNNN]_LABEL.npy and a volume's maps STEM_LABEL_volume.npz
            # (model space, see inference.volume_maps) or, full size, STEM_LABEL_volume.npy
            stem, _, label = Path(shown[0]["map"]).stem.rpartition("_")
            volume_file = out / f"{re.sub(r'_slice[0-9]{3}$', '', stem)}_{label}_volume.npy"
            model_file = volume_file.with_suffix(".npz")
            if image.is_volume and (model_file.is_file() or volume_file.is_file()):
                if model_file.is_file():
                    from inference.volume_maps import VolumeMaps

                    volume = VolumeMaps(model_file)
                    slice_of = volume.slice
                else:
                    full = np.load(volume_file)
                    slice_of = lambda i, full=full: full[i].astype(np.float32)  # noqa: E731
                frames = [FrameResult(int(r["frame"]) - 1, slice_of(i), float(r["score"]),
                                      r.get("decision")) for i, r in enumerate(rows)]
                stem = re.sub(r"_slice[0-9]{3}$", "", stem)
            else:
                row = shown[0]
                frames = [FrameResult(int(row["frame"]) - 1 if image.is_volume else 0,
                                      np.load(out / row["map"]).astype(np.float32), float(row["score"]),
                                      row.get("decision"))]
            files = write_result_objects(source_files(image), frames, provenance, staging, stem,
                                         threshold=threshold, pseudonymizer=pseudonymizer)
            written += [out / "dicom" / p.name for p in files.paths()]
    return written


def write_image_result(image, frame: int, result, bundle, out: str | Path, stem: str, *,
                       pseudonymizer: Pseudonymizer | None = None) -> ResultFiles:
    """The three objects of one :class:`~inference.result.Result` of ``bundle`` on ``frame`` of an
    opened :class:`~inference.studies.image.Image` (the viewer's current view)."""
    from inference.methods import get

    spec = get(bundle.method)
    provenance = Provenance.of(bundle, spec)
    if provenance.map_name not in result.maps:
        raise DicomResultError(f"this {bundle.method} result has no '{provenance.map_name}' map to write.")
    if image.sop_class in ("", "plain image"):
        raise DicomResultError(f"{image.name} is not a DICOM image, so results cannot reference it as DICOM.")
    values = np.asarray(result.maps[provenance.map_name], dtype=np.float32)
    return write_result_objects(source_files(image), [FrameResult(frame, values, result.score, result.decision)],
                                provenance, out, stem, threshold=result.threshold, pseudonymizer=pseudonymizer)
