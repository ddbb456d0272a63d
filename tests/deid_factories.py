"""A project of real DICOM files with realistic identifying values, for the de-identification tests: phantom
exams (some RLE / JPEG 2000) rewritten to carry a patient's name, id, birth date, accession number,
institution, physicians, a private element and a comment naming the patient, plus pydicom's MR_small."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from annotator.domain.entities import Rater, Role
from annotator.imaging.phantom_dicom import generate_dataset
from annotator.services import project as project_service
from annotator.services.importing import import_paths
from annotator.services.labelling import LabelService
from annotator.storage import catalog
from annotator.storage.database import Database

# name, id, birth date, accession, institution. No name part may be one dicognito writes as a fake value
# (its first names include "Maria"): the byte scan would then flag a coincidence as a leak whenever the
# project's random salt makes it pick that name.
PEOPLE = [
    ("Szczepanik^Wieslawa^Bozydara", "MRN-48213377", "19610407", "ACC77120934", "Klinikum Sankt Hildegard"),
    ("Oyelaran-Whitcombe^Babatunde", "MRN-90055126", "19480923", "ACC55310877", "Hopital Beausejour-Valcourt"),
    ("Thorvaldsdottir^Ingibjorg", "MRN-31770482", "19750112", "ACC10427763", "Klinikum Sankt Hildegard"),
]
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


@dataclass
class DeidProject:
    db: Database
    url: str
    reviewer: Rater
    annotator: Rater
    dicom: Path
    secrets: set[str] = field(default_factory=set)  # every original identifying string in the files
    burned_yes: str = ""  # the SOP UID of the slice marked BurnedInAnnotation YES
    burned_no: set[str] = field(default_factory=set)  # slices marked NO


def build(tmp: Path, *, patients: int = 3, label: bool = True) -> DeidProject:
    dicom = tmp / "dicom"
    generate_dataset(dicom, patients, seed=5, matrix=64, compressed_fraction=0.4, slices_per_patient=3)
    (dicom / "truth.csv").unlink()
    secrets: set[str] = set()
    burned_yes, burned_no = "", set()
    for i, folder in enumerate(sorted(p for p in dicom.iterdir() if p.is_dir())):
        name, pid, birth, accession, institution = PEOPLE[i % len(PEOPLE)]
        for k, f in enumerate(sorted(folder.glob("*.dcm"))):
            ds = pydicom.dcmread(f)
            ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, pid, birth
            ds.AccessionNumber, ds.InstitutionName = accession, institution
            ds.ReferringPhysicianName = "Abernathy-Quist^Reginald"
            ds.OperatorsName = "Vandersloot^Henrike"
            ds.OtherPatientIDs = pid.replace("MRN", "ALT")
            ds.ImageComments = f"reviewed with {name.split('^')[0]}, MRN {pid}"
            block = ds.private_block(0x0029, "ACME PATIENT INFO", create=True)
            block.add_new(0x10, "LO", f"{name} {pid}")
            if i == 0 and k == 0:
                ds.BurnedInAnnotation = "YES"
                burned_yes = ds.SOPInstanceUID
            elif i == 1:
                ds.BurnedInAnnotation = "NO"
                burned_no.add(ds.SOPInstanceUID)
            secrets |= {str(ds.get(kw)) for kw in UID_KEYWORDS}
            ds.save_as(f, enforce_file_format=True)
        secrets |= {name, *name.split("^"), pid, birth, f"{birth[:4]}-{birth[4:6]}-{birth[6:]}", accession,
                    institution, pid.replace("MRN", "ALT")}
    secrets |= {"Abernathy-Quist", "Vandersloot"}
    mr_small = dicom / "corpus" / "MR_small.dcm"
    mr_small.parent.mkdir()
    shutil.copy(str(get_testdata_file("MR_small.dcm")), mr_small)
    ds = pydicom.dcmread(mr_small)
    secrets |= {str(ds.PatientName), "CompressedSamples", str(ds.PatientID),
                *(str(ds.get(kw)) for kw in UID_KEYWORDS if ds.get(kw))}
    url = f"sqlite:///{tmp / 'project.db'}"
    db = project_service.open_project(url)
    results = import_paths(db, [dicom])
    assert all(r.status.value == "imported" for r in results), results
    reviewer = project_service.add_rater(db, "rev", Role.REVIEWER)
    annotator = project_service.add_rater(db, "ann", Role.ANNOTATOR)
    if label:
        svc = LabelService(db, annotator)
        for n, im in enumerate(catalog.images(db)):
            if n % 5 != 4:  # some slices stay unlabelled: they are not exported
                svc.set_label(im.id, im.geometry.columns / 2 + n % 3, im.geometry.rows / 2, n % 4)
    secrets.discard("")
    secrets.discard("None")
    return DeidProject(db, url, reviewer, annotator, dicom, secrets, burned_yes, burned_no)
