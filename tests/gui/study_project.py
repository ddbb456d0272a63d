"""A small reader-study project for the GUI tests: a two-patient phantom lumbar exam (localizer,
sagittal, axial stacks at three levels, 64x64), imported; an admin, a reviewer, two annotator readers
and a reference rater who has labelled every axial L4-L5 slice; and a study over those slices with one
calibration slice and hidden repeats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from annotator.domain.entities import Rater, Role
from annotator.domain.studies import Calibration, ReadOrder, StudyDefinition, StudySummary
from annotator.imaging.phantom_dicom import generate_dataset
from annotator.services import project as project_service
from annotator.services.importing import import_paths
from annotator.services.labelling import LabelService
from annotator.services.studies import create_study, seed_study_definition
from annotator.storage import studies as repo
from annotator.storage.database import Database

STUDY = "L4-L5 test"
REF_GRADE = 2


@dataclass
class StudyProject:
    db: Database
    admin: Rater
    rev: Rater
    ann: Rater
    bob: Rater
    expert: Rater
    study: StudySummary
    truth: dict[str, str]  # SOPInstanceUID -> level


def build(folder: Path) -> StudyProject:
    rows = generate_dataset(folder / "dicom", 2, seed=5, matrix=64, exam=True)
    db = project_service.open_project(f"sqlite:///{folder / 'study.db'}")
    import_paths(db, [folder / "dicom"])
    add = project_service.add_rater
    admin, rev = add(db, "admin", Role.ADMIN), add(db, "rev", Role.REVIEWER)
    ann, bob, expert = (add(db, n, Role.ANNOTATOR) for n in ("ann", "bob", "expert"))
    rule = seed_study_definition(("ann",)).rule
    labels = LabelService(db, expert)
    for image_id in repo.select_image_ids(db, rule):
        labels.set_label(image_id, 30.0, 30.0, REF_GRADE)
    definition = StudyDefinition(STUDY, rule, ("ann", "bob"), order=ReadOrder.RANDOM, seed=3,
                                 repeat_fraction=0.4, washout=1, calibration=Calibration("rater:expert", count=1))
    study = create_study(db, admin, definition)
    return StudyProject(db, admin, rev, ann, bob, expert, study, {r.sop_instance_uid: r.level for r in rows})
