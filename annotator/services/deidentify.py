"""De-identified copies of DICOM slices (dicognito, seeded by the project's secret salt) and the identity
map that makes every label file of a bundle name the copies' identifiers.

What a copy goes through (DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile):

- dicognito's :class:`~dicognito.anonymizer.Anonymizer`, seeded with the project's salt: every UID except
  class and transfer-syntax UIDs, every person name, the patient and request ids, institution and
  station, addresses; dates and times are shifted into the past by one offset per project (so intervals
  survive: Retain Longitudinal Temporal Information with Modified Dates Option, 113107).
- then this module: private elements and free-text attributes that may hold a name (comments, patient
  history, request descriptions, device serial numbers, …) are removed, the birth date and time emptied;
  study and series descriptions and the protocol name are kept unless they contain one of the patient's
  original names or ids (Clean Descriptors Option, 113105); sex, age, size and weight are kept (Retain
  Patient Characteristics Option, 113108); the file meta group is rebuilt (no source AE titles) and the
  preamble zeroed.
- recorded on the copy: PatientIdentityRemoved ``YES``, DeidentificationMethod (dicognito and this
  profile) and DeidentificationMethodCodeSequence (113100 and the options above, scheme DCM),
  LongitudinalTemporalInformationModified ``MODIFIED``.

Pixel data is copied as it is (no decode, no re-encode). Text burned into the pixels is not removed: a
slice whose BurnedInAnnotation is not ``NO`` is reported as a warning. An absent BurnedInAnnotation counts
as not ``NO`` (DICOM: absent means unknown), which is the usual case for MR; such slices are listed
under their own reason so a reader can tell "unknown" from "YES".

The seeded anonymizer maps a value the same way in every file and every export of one project, so the
identity map can be built from the copies (original -> what the copy holds) and, for an identifier no
copy holds, from the same anonymizer applied to a one-element dataset.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from dicognito import __version__ as DICOGNITO_VERSION  # noqa: N812
from dicognito.anonymizer import Anonymizer
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from annotator.domain.entities import ImageRef
from annotator.domain.errors import Cancelled, InputError
from annotator.domain.progress import ProgressCallback, ShouldStop, never_stop, no_progress

PROFILE_CODES: tuple[tuple[str, str], ...] = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113105", "Clean Descriptors Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113108", "Retain Patient Characteristics Option"),
)
METHOD = f"PS3.15 Basic Profile, dicognito {DICOGNITO_VERSION}"  # LO: at most 64 characters

# Basic Profile "X" attributes dicognito leaves: free text or device identity that may name a person.
REMOVED = (
    "ImageComments", "PatientComments", "AdditionalPatientHistory", "StudyComments", "ImagingServiceRequestComments",
    "RequestedProcedureComments", "InterpretationText", "TextComments", "TextString", "ReasonForStudy",
    "ReasonForTheRequestedProcedure", "RequestedProcedureDescription", "ScheduledProcedureStepDescription",
    "PerformedProcedureStepDescription", "AdmittingDiagnosesDescription", "AdmittingDiagnosesCodeSequence",
    "DerivationDescription", "MedicalAlerts", "Allergies", "EthnicGroup", "SpecialNeeds", "PatientState",
    "PregnancyStatus", "SmokingStatus", "LastMenstrualDate", "PatientBirthTime", "PatientBirthName",
    "OtherPatientIDsSequence", "OtherPatientNames", "PatientMotherBirthName", "IssuerOfPatientIDQualifiersSequence",
    "DeviceSerialNumber", "DeviceUID", "PlateID", "GantryID", "DetectorID", "CassetteID", "GeneratorID",
    "RequestAttributesSequence", "ReferencedPatientSequence", "ReferencedStudySequence",
    "OperatorIdentificationSequence",
    "PerformingPhysicianIdentificationSequence", "PhysiciansOfRecordIdentificationSequence",
    "ReferringPhysicianIdentificationSequence", "InstitutionCodeSequence", "InstitutionalDepartmentName",
    "InstitutionalDepartmentTypeCodeSequence", "ContentCreatorIdentificationCodeSequence", "StudyIDIssuer",
    "ModifiedAttributesSequence", "OriginalAttributesSequence", "DigitalSignaturesSequence",
)
EMPTIED = ("PatientBirthDate",)
DESCRIPTORS = ("StudyDescription", "SeriesDescription", "ProtocolName")


@dataclass(frozen=True)
class BurnedIn:
    """A copied slice whose pixels may carry text: BurnedInAnnotation was not ``NO``."""

    sop_uid: str  # the copy's (pseudonymous) SOPInstanceUID
    value: str  # "YES", another value, or "" (absent: unknown)

    @property
    def reason(self) -> str:
        return ("BurnedInAnnotation absent (unknown)" if not self.value
                else f"BurnedInAnnotation {self.value!r}")


class Deidentifier:
    """Applies the profile above to datasets; one per project salt (the same salt, the same pseudonyms)."""

    def __init__(self, salt: str) -> None:
        if not salt:
            raise InputError("de-identification needs the project's secret salt")
        self._anonymizer = Anonymizer(seed=salt)

    def apply(self, ds: Dataset) -> None:
        """De-identify ``ds`` in place."""
        originals = _identifying_values(ds)
        if not hasattr(ds, "file_meta"):
            ds.file_meta = FileMetaDataset()
        self._anonymizer.anonymize(ds)
        ds.remove_private_tags()
        ds.walk(_strip)
        for keyword in DESCRIPTORS:
            value = ds.get(keyword)
            if value is not None and _mentions(str(value), originals):
                del ds[keyword]
        ds.PatientIdentityRemoved = "YES"
        methods = ds.get("DeidentificationMethod", [])
        methods = [methods] if isinstance(methods, str) else list(methods)
        ds.DeidentificationMethod = [*[m for m in methods if m != METHOD], METHOD]
        ds.DeidentificationMethodCodeSequence = DicomSequence([_code(v, m) for v, m in PROFILE_CODES])
        ds.LongitudinalTemporalInformationModified = "MODIFIED"

    def uid(self, original: str) -> str:
        """The pseudonym dicognito gives this UID under this salt (as in every copy)."""
        probe = Dataset()
        probe.SOPInstanceUID = original
        self._probe(probe)
        return str(probe.SOPInstanceUID)

    def patient_id(self, original: str) -> str:
        probe = Dataset()
        probe.PatientID = original
        self._probe(probe)
        return str(probe.PatientID)

    def _probe(self, probe: Dataset) -> None:
        probe.file_meta = FileMetaDataset()
        self._anonymizer.anonymize(probe)


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item


_REMOVED_TAGS = frozenset(pydicom.datadict.tag_for_keyword(k) for k in REMOVED)
_EMPTIED_TAGS = frozenset(pydicom.datadict.tag_for_keyword(k) for k in EMPTIED)


def _strip(ds: Dataset, elem: pydicom.DataElement) -> None:
    if elem.tag in _REMOVED_TAGS:
        del ds[elem.tag]
    elif elem.tag in _EMPTIED_TAGS:
        elem.value = ""


def _identifying_values(ds: Dataset) -> list[str]:
    """The patient's names and ids as the original holds them (to clean descriptors of)."""
    out: list[str] = []
    for keyword in ("PatientName", "PatientID", "AccessionNumber", "OtherPatientIDs", "PatientBirthDate",
                    "ReferringPhysicianName", "InstitutionName"):
        value = ds.get(keyword)
        if value:
            out += [p for p in str(value).replace("^", " ").replace("=", " ").split() if len(p) >= 3]
    return [v.upper() for v in out]


def _mentions(text: str, originals: Iterable[str]) -> bool:
    upper = text.upper()
    return any(v in upper for v in originals)


@dataclass
class DeidentifiedIdentity:
    """The identity map of a de-identified bundle (an :class:`~annotator.services.formats.IdentityMap`)."""

    deidentifier: Deidentifier
    uids: dict[str, str]  # original -> pseudonym, as read back from the copies
    patients: dict[str, str]  # an image's patient key -> the copy's PatientID
    copies: dict[int, Path]  # image id -> its de-identified copy

    @property
    def deidentified(self) -> bool:
        return True

    def uid(self, original: str) -> str:
        found = self.uids.get(original)
        if found is None:
            found = self.uids[original] = self.deidentifier.uid(original)
        return found

    def patient(self, original: str) -> str:
        found = self.patients.get(original)
        if found is None:
            found = self.patients[original] = self.deidentifier.patient_id(original)
        return found

    def source(self, image: ImageRef) -> Path:
        try:
            return self.copies[image.id]
        except KeyError:
            raise InputError(f"slice {image.id} has no de-identified copy in this bundle") from None


UID_KEYWORDS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")


def copy_deidentified(images: Sequence[ImageRef], folder: Path, salt: str, *,
                      progress: ProgressCallback = no_progress,
                      should_stop: ShouldStop = never_stop) -> tuple[DeidentifiedIdentity, list[BurnedIn]]:
    """Write a de-identified copy of each slice into ``folder`` (``<pseudonymous SOP UID>.dcm``); the
    identity map read back from the copies and the slices that may carry burned-in text."""
    deid = Deidentifier(salt)
    folder.mkdir(parents=True, exist_ok=True)
    identity = DeidentifiedIdentity(deid, {}, {}, {})
    burned: list[BurnedIn] = []
    total = len(images)
    for n, image in enumerate(images):
        if should_stop():
            raise Cancelled("export cancelled: nothing was written")
        try:
            ds = pydicom.dcmread(image.path)
        except (OSError, InvalidDicomError) as exc:
            raise InputError(f"{image.path}: cannot read the slice to de-identify it ({exc})") from exc
        before = {k: str(ds.get(k, "")) for k in UID_KEYWORDS}
        burned_in = str(ds.get("BurnedInAnnotation", "")).strip().upper()
        if not str(ds.get("PatientID", "")).strip():  # else every patient without an id shares one pseudonym
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the key may exceed LO's 64 characters until it is replaced
                ds.PatientID = image.patient_key
        deid.apply(ds)
        sop = str(ds.SOPInstanceUID)
        ds.file_meta = _file_meta(ds)
        ds.preamble = b"\0" * 128
        path = folder / f"{sop}.dcm"
        ds.save_as(path, enforce_file_format=True)
        for k in UID_KEYWORDS:
            if before[k]:
                identity.uids[before[k]] = str(ds.get(k, ""))
        for original in (image.sop_instance_uid, image.study_instance_uid, image.series_instance_uid):
            if original not in identity.uids:  # the catalogue's value differs from the file's: map it too
                identity.uids[original] = deid.uid(original)
        identity.patients[image.patient_key] = str(ds.get("PatientID", "")) or deid.patient_id(image.patient_key)
        identity.copies[image.id] = path
        if burned_in != "NO":
            burned.append(BurnedIn(sop, burned_in))
        progress(n + 1, total, f"de-identified {n + 1} of {total} slices")
    return identity, burned


def _file_meta(ds: Dataset) -> FileMetaDataset:
    """A fresh file meta group: no source or sending AE titles, no private information."""
    old = ds.file_meta
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = old.TransferSyntaxUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "ANNOTATOR_DEID"
    return meta


def fsync_tree(root: Path) -> None:
    """Flush every file under ``root`` to disk (before the bundle's folder is renamed into place)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
