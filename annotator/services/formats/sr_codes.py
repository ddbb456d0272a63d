"""The coded vocabulary of the app's DICOM SR (TID 1500) reports, shared by the writer and the reader.

Standard codes where DICOM and SNOMED CT have them (checked against pydicom's code dictionary, which is
generated from DICOM PS3.16); the app's private scheme ``99ANNOTATOR`` (declared in each file's Coding
Scheme Identification Sequence) for the rest: grades of scales other than Lee, and "cannot grade".
"""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from annotator.domain.errors import InputError
from annotator.domain.scales import GradingScale
from annotator.domain.studies import CannotGrade, VertebralLevel

PRIVATE_SCHEME = "99ANNOTATOR"
PRIVATE_SCHEME_NAME = "annotator lumbar stenosis grading"

REPORT_TITLE = codes.DCM.ImagingMeasurementReport  # DCM 126000, the root container of TID 1500
PROCEDURE = codes.cid100.MRIUnspecifiedBodyRegion  # LN 25056-3 (CID 100 has no lumbar-spine MRI code)
SPINAL_CANAL = codes.SCT.SpinalCanalStructure  # SCT 61853006, the finding site of every group
SEVERITY = codes.SCT.Severity  # SCT 246112005, the concept of a Lee grade
LEE_CODE = "lee"
LEE_VALUES = (codes.SCT.Normal, codes.SCT.Mild, codes.SCT.Moderate, codes.SCT.Severe)  # Lee 0..3
DEVICE_MANUFACTURER = "annotator"
PERSON = codes.cid270.Person  # DCM 121006, observer type of a rater
DEVICE = codes.cid270.Device  # DCM 121007, observer type of a model and of the consensus

# The level of a slice, as a second finding site (SNOMED CT "Level of Lx/Ly intervertebral disc").
LEVEL_CODES: dict[VertebralLevel, Code] = {
    VertebralLevel.L1_L2: codes.SCT.LevelOfL1L2IntervertebralDisc,  # 243920003
    VertebralLevel.L2_L3: codes.SCT.LevelOfL2L3IntervertebralDisc,  # 243921004
    VertebralLevel.L3_L4: codes.SCT.LevelOfL3L4IntervertebralDisc,  # 243922006
    VertebralLevel.L4_L5: codes.SCT.LevelOfL4L5IntervertebralDisc,  # 243923001
    VertebralLevel.L5_S1: codes.SCT.LevelOfL5S1IntervertebralDisc,  # 243927000
}

CANNOT_GRADE = Code("CANNOT-GRADE", PRIVATE_SCHEME, "Stenosis grade not assessable")
CANNOT_GRADE_REASONS: dict[CannotGrade, Code] = {
    CannotGrade.MOTION: codes.DCM.PatientMotion,  # DCM 128553
    CannotGrade.ARTEFACT: codes.DCM.ImageArtifacts,  # DCM 111207
    CannotGrade.WRONG_LEVEL: Code("WRONG-LEVEL", PRIVATE_SCHEME, "Slice not at the level to grade"),
    CannotGrade.OTHER: Code("OTHER", PRIVATE_SCHEME, "Other reason"),
}

# Concept names the reader looks for (value, scheme) -> meaning in a TID 1500 tree.
IMAGING_MEASUREMENTS = ("126010", "DCM")
MEASUREMENT_GROUP = ("125007", "DCM")
FINDING_SITE = ("363698007", "SCT")
TOPOGRAPHICAL_MODIFIER = ("106233006", "SCT")
PERSON_OBSERVER_NAME = ("121008", "DCM")
DEVICE_OBSERVER_NAME = ("121013", "DCM")
DEVICE_OBSERVER_UID = ("121012", "DCM")


def key(code: Code) -> tuple[str, str]:
    return (code.value, code.scheme_designator)


def grade_concept(scale: GradingScale) -> Code:
    """The concept name of a grade: Severity for Lee, the scale itself in the private scheme otherwise."""
    if scale.code == LEE_CODE:
        return SEVERITY
    return Code(_private_value(scale.code.upper()), PRIVATE_SCHEME, scale.name)


def grade_value(scale: GradingScale, ordinal: int) -> Code:
    """The coded value of a grade: Lee 0-3 as SNOMED CT Normal/Mild/Moderate/Severe, other scales'
    grades as ``SCALE-ORDINAL`` in the private scheme, meaning "LABEL: NAME"."""
    g = scale.grade(ordinal)
    if scale.code == LEE_CODE:
        return LEE_VALUES[ordinal]
    return Code(_private_value(f"{scale.code.upper()}-{ordinal}"), PRIVATE_SCHEME, f"{g.label}: {g.name}")


def grade_of(scale: GradingScale, concept: tuple[str, str], value: tuple[str, str]) -> int:
    """The ordinal a (concept, value) pair names on ``scale``; InputError when it grades another scale."""
    if concept == key(SEVERITY):
        if scale.code != LEE_CODE:
            raise InputError(f"the grade is a Lee severity ({value[0]}); the project grades on {scale.name}")
        for ordinal, code in enumerate(LEE_VALUES):
            if key(code) == value:
                return ordinal
        raise InputError(f"severity {value[1]} {value[0]} is none of Normal, Mild, Moderate, Severe (Lee 0-3)")
    if concept != key(grade_concept(scale)):
        raise InputError(f"the grade's concept {concept[1]} {concept[0]} is not the project's scale {scale.code}")
    for g in scale.grades:
        if key(grade_value(scale, g.ordinal)) == value:
            return g.ordinal
    raise InputError(f"grade {value[1]} {value[0]} is not on the {scale.code} scale")


def is_grade_concept(concept: tuple[str, str]) -> bool:
    """Severity, or a scale concept of the private scheme (any scale: a wrong one is then reported)."""
    return concept == key(SEVERITY) or (concept[1] == PRIVATE_SCHEME and concept != key(CANNOT_GRADE))


def level_of(value: tuple[str, str]) -> VertebralLevel | None:
    for level, code in LEVEL_CODES.items():
        if key(code) == value:
            return level
    return None


def _private_value(text: str) -> str:
    """A private code value (SH: at most 16 characters)."""
    if len(text) > 16:
        raise InputError(f"scale code {text!r} is too long for a DICOM code value (16 characters)")
    return text
