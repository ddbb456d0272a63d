"""Projects for the interchange-format tests: real phantom exams (DICOM files on disk) imported into a real
SQLite project, read by two raters, with their consensus and a registered model's predictions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from annotator.domain.entities import ImageRef, ModelKind, Prediction, Role
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.scales import load_scale
from annotator.imaging.phantom_dicom import TruthRow, generate_dataset
from annotator.services import readers as reader_service
from annotator.services.formats import ExportContext, ExportItem, IdentityMap, PlainIdentity
from annotator.services.importing import import_paths
from annotator.services.labelling import LabelService
from annotator.storage import catalog, models_repo, people
from annotator.storage.database import Database, open_database

RATERS = ("e1", "e2")


@dataclass
class Project:
    db: Database
    dicom_dir: Path
    truth: list[TruthRow]
    model_id: int

    def images(self) -> dict[str, ImageRef]:
        return {im.sop_instance_uid: im for im in catalog.images(self.db)}


def make_dicom(folder: Path, patients: int = 2, seed: int = 3) -> list[TruthRow]:
    return generate_dataset(folder, patients, seed, matrix=64, exam=True)


def fresh_db(path: Path, scale: str = "lee") -> Database:
    db = open_database(f"sqlite:///{path}")
    people.update_settings(db, None, scale_code=scale)
    return db


def build(tmp: Path, *, scale: str = "lee", patients: int = 2, seed: int = 3) -> Project:
    """Phantom exams imported; e1 and e2 read every axial slice with truth (point and grade), agreeing
    on all but one slice (so the consensus holds the others); a model predicts every axial slice."""
    dicom = tmp / "dicom"
    truth = make_dicom(dicom, patients, seed)
    db = fresh_db(tmp / "project.db", scale)
    import_paths(db, [dicom])
    n = load_scale(scale).n_grades
    by_sop = {im.sop_instance_uid: im for im in catalog.images(db)}
    rng = np.random.default_rng(seed)
    people.update_settings(db, None, required_raters=RATERS)
    for k, name in enumerate(RATERS):
        svc = LabelService(db, people.add_rater(db, name, Role.ANNOTATOR))
        items = []
        for j, t in enumerate(truth):
            grade = min(t.stage, n - 1)
            if k == 1 and j == 0:
                grade = (grade + 1) % n  # the one disagreement
            dx, dy = rng.normal(0, 0.25, 2) if k else (0.0, 0.0)
            items.append((by_sop[t.sop_instance_uid].id, t.x_px + float(dx), t.y_px + float(dy), grade))
        svc.set_many(items)
    model = models_repo.register(db, name="phantom-model", preset="fast", target="consensus", kind=ModelKind.TRAIN,
                                 weights_path="/nonexistent/weights.safetensors", weights_sha256="0" * 64, card={})
    preds = []
    for t in truth:
        p = rng.dirichlet(np.ones(n))
        preds.append(Prediction(model.id, by_sop[t.sop_instance_uid].id, t.x_px + float(rng.normal(0, 1.5)),
                                t.y_px + float(rng.normal(0, 1.5)), int(np.argmax(p)), tuple(float(v) for v in p)))
    models_repo.write_predictions(db, model.id, preds)
    return Project(db, dicom, truth, model.id)


def label_of(ref: ReaderRef, db: Database) -> str:
    if ref.kind is ReaderKind.MODEL:
        return f"model {models_repo.get(db, int(ref.key)).name} (id {ref.key})"
    return ref.key if ref.kind is ReaderKind.RATER else "consensus"


def export_items(db: Database, readers: Sequence[ReaderRef | str]) -> list[ExportItem]:
    """What the bundle service gathers: one item per slice and reader with a point or a grade."""
    images = catalog.images(db)
    out = []
    for r in readers:
        ref = ReaderRef.parse(r) if isinstance(r, str) else r
        marks = reader_service.marks(db, ref)
        out += [ExportItem(im, ref, label_of(ref, db), marks[im.id]) for im in images
                if im.id in marks and (marks[im.id].grade is not None or marks[im.id].x_px is not None)]
    return out


def context(db: Database, readers: Sequence[ReaderRef | str], out: Path,
            ids: IdentityMap | None = None) -> ExportContext:
    out.mkdir(parents=True, exist_ok=True)
    return ExportContext(db=db, items=export_items(db, readers), out_dir=out,
                         scale=load_scale(people.get_settings(db).scale_code), ids=ids or PlainIdentity())


class Pseudonyms:
    """A de-identified bundle's identity map: salted UIDs, and copies of only the labelled series' files
    with those UIDs written in (the others were never de-identified)."""

    def __init__(self, folder: Path, series: set[str]) -> None:
        self.folder, self.series = folder, series

    @property
    def deidentified(self) -> bool:
        return True

    def uid(self, original: str) -> str:
        return "2.25." + str(int(hashlib.sha256(b"salt" + original.encode()).hexdigest()[:30], 16))

    def patient(self, original: str) -> str:
        return "ANON" + hashlib.sha256(original.encode()).hexdigest()[:6]

    def source(self, image: ImageRef) -> Path:
        if image.series_instance_uid not in self.series:
            raise KeyError(image.sop_instance_uid)
        ds = pydicom.dcmread(image.path)
        for tag in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            setattr(ds, tag, self.uid(str(getattr(ds, tag))))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID = self.patient(str(ds.PatientID))
        ds.PatientName = "ANON"
        out = self.folder / f"{ds.SOPInstanceUID}.dcm"
        self.folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(out)
        return out
