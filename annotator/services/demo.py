"""Use case: the demo project — a synthetic lumbar MRI exam per patient written as real DICOM (a
localizer, a sagittal T2 series and axial T2 stacks at L3-L4, L4-L5 and L5-S1, whose SeriesDescription
names their level), imported, with two simulated experts who read every axial slice and whose labels
enter through the same labelling service a person's do, and (unless asked not to) an active model
trained on their consensus, so the first screen shows predictions. The demo also holds the seed
study's design as a ready reader study, "L4-L5 axial" (the axial L4-L5 slices chosen by rules from the
mixed exams, both experts, random order, 10 % hidden repeats), which the simulated experts have read.

Truth (``truth.csv`` beside the DICOM files, axial slices only) is not a rater and never enters the label
tables.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.domain.entities import ImportStatus, LabelAction, ModelVersion, Rater, Role
from annotator.domain.errors import InputError, NotFound
from annotator.domain.progress import ProgressCallback, no_progress
from annotator.domain.studies import Answer, ReadItem, VertebralLevel
from annotator.imaging.phantom_dicom import TRUTH_FILE, TruthRow, generate_dataset, read_truth
from annotator.imaging.phantom_exam import AXIAL_LEVELS
from annotator.imaging.simulated_experts import ExpertProfile, default_experts, simulate_reads
from annotator.services.importing import import_paths
from annotator.services.labelling import LabelService
from annotator.services.reading import ReadingSession
from annotator.services.studies import SEED_STUDY_NAME, create_study, seed_study_definition, study_for
from annotator.storage import catalog, models_repo, people
from annotator.storage.database import Database

REVIEWER = "reviewer"
ADMIN = "admin"
READING_SECONDS_MEDIAN = (14.0, 11.0)  # per simulated expert: a slice takes 10-20 s, as in reader studies
DEMO_MODEL_TARGET = "consensus"
DEMO_EPOCHS_SHARE = 0.5


@dataclass(frozen=True)
class DemoSummary:
    dicom_dir: str
    patients: int
    slices: int  # axial slices with truth, the ones the simulated experts read
    imported: int  # files imported now (every series of the exam)
    labels: dict[str, int]
    reused: bool
    study: str = ""
    reads: int = 0  # reads of the demo study by the simulated experts (first reads and hidden repeats)


def ensure_demo_model(db: Database, *, preset: str = "fast", epochs: int | None = None, seed: int = 0
                      ) -> ModelVersion | None:
    """Train a model on the demo's consensus, predict every slice and activate it (the same workflow as
    ``annotator train --target consensus --activate``), unless a model is already active: then None.

    ``epochs`` None: half the preset's (``demo_epochs``). About 20 s on two CPU cores with the ``fast``
    preset on the 40-patient demo."""
    if models_repo.active(db) is not None:
        return None
    from annotator.services import training

    if epochs is None:
        epochs = demo_epochs(training.resolve_preset(preset, None).train.epochs)
    return training.train(db, DEMO_MODEL_TARGET, preset=preset, epochs=epochs, seed=seed, activate=True)


def demo_epochs(preset_epochs: int) -> int:
    """The demo model's epochs: half a preset's (at least 1). The exam's three axial levels give the
    model about 2.5 times the slices of one level, so half the epochs still take more optimisation steps
    than the preset's epochs on one level."""
    return max(1, math.ceil(preset_epochs * DEMO_EPOCHS_SHARE))


def _rater(db: Database, name: str, role: Role, simulated: bool) -> Rater:
    try:
        return people.rater_by_name(db, name)
    except NotFound:
        return people.add_rater(db, name, role, simulated=simulated)


def build_demo(db: Database, dicom_dir: str | os.PathLike[str], *, patients: int = 40, seed: int = 0,
               matrix: int = 320, compressed_fraction: float = 0.1, if_missing: bool = False,
               on_progress: ProgressCallback = no_progress) -> DemoSummary:
    """Generate (or reuse), import and label the demo project; same seed -> byte-identical files.

    The experts read the slices of ``truth.csv``: every axial slice of every level, never the localizer
    or the sagittal images."""
    folder = Path(dicom_dir)
    truth_path = folder / TRUTH_FILE
    reused = if_missing and truth_path.is_file()
    if reused:
        truth = read_truth(truth_path)
    else:
        on_progress(0, 4, f"generating {patients} phantom patients (localizer, sagittal T2, axial T2 at "
                          f"{', '.join(AXIAL_LEVELS)})")
        truth = generate_dataset(folder, patients, seed, matrix=matrix, compressed_fraction=compressed_fraction,
                                 workers=min(2, os.cpu_count() or 1), exam=True)
    on_progress(1, 4, "importing DICOM")
    results = import_paths(db, [folder])
    imported = sum(r.status is ImportStatus.IMPORTED for r in results)
    experts = default_experts()
    people.update_settings(db, None, required_raters=tuple(e.name for e in experts))
    _rater(db, REVIEWER, Role.REVIEWER, simulated=False)
    on_progress(2, 4, "simulated experts labelling")
    by_sop = {im.sop_instance_uid: im for im in catalog.images(db)}
    counts: dict[str, int] = {}
    for k, profile in enumerate(experts):
        rater = _rater(db, profile.name, Role.ANNOTATOR, simulated=True)
        svc = LabelService(db, rater)
        done = {lab.image_id for lab in svc.my_labels()}
        todo = [t for t in truth if t.sop_instance_uid in by_sop and by_sop[t.sop_instance_uid].id not in done]
        found = {t.sop_instance_uid: by_sop[t.sop_instance_uid].geometry.pixel_spacing for t in todo}
        missing = [uid for uid, sp in found.items() if sp is None]
        if missing:
            raise InputError(f"demo slice {missing[0]} has no PixelSpacing: cannot simulate clicks in mm")
        spacing = {uid: sp for uid, sp in found.items() if sp is not None}
        reads = simulate_reads(profile, todo, spacing, np.random.default_rng([seed, 1000 + k]))
        svc.set_many([(by_sop[r.sop_instance_uid].id, r.x_px, r.y_px, r.grade) for r in reads],
                     action=LabelAction.SIMULATED)
        counts[profile.name] = len(svc.my_labels())
    on_progress(3, 4, f"simulated experts reading the study {SEED_STUDY_NAME!r}")
    study_reads = ensure_demo_study(db, truth, seed=seed)
    on_progress(4, 4, "done")
    return DemoSummary(str(folder), len({t.patient_id for t in truth}), len(truth), imported, counts, reused,
                       SEED_STUDY_NAME, study_reads)


def ensure_demo_study(db: Database, truth: Sequence[TruthRow], *, seed: int = 0) -> int:
    """The seed study as a reader study (created by the demo's admin, unless it exists), read through by
    the simulated experts: each read is a fresh simulated read of the slice (a repeat too: the expert's
    thresholds stay, her click and grade noise is drawn again, so intra-rater agreement comes out higher
    than inter-rater), with a reading time drawn around her median. Returns the reads made now."""
    if not any(im.level == VertebralLevel.L4_L5 for im in catalog.images(db)):
        return 0  # a demo folder written before the exam (one unlabelled stack per patient): no study to make
    admin = _rater(db, ADMIN, Role.ADMIN, simulated=False)
    experts = default_experts()
    try:
        study_for(db, admin, SEED_STUDY_NAME)
    except NotFound:
        n = sum(1 for t in truth if t.level == "L4-L5")  # a small demo cannot wait 20 slices for a repeat
        create_study(db, admin, seed_study_definition(tuple(e.name for e in experts), seed=seed,
                                                      washout=min(20, max(1, n // 3))))
    by_sop = {t.sop_instance_uid: t for t in truth}
    images = {im.id: im for im in catalog.images(db)}
    made = 0
    for k, profile in enumerate(experts):
        session = ReadingSession.open(db, people.rater_by_name(db, profile.name), SEED_STUDY_NAME)

        def answer(item: ReadItem, profile: ExpertProfile = profile, k: int = k) -> Answer:
            rng = np.random.default_rng([seed, 3000 + k, item.number])
            spacing = images[item.image_id].geometry.pixel_spacing
            if spacing is None:
                raise InputError(f"demo slice {item.sop_instance_uid} has no PixelSpacing")
            [read] = simulate_reads(profile, [by_sop[item.sop_instance_uid]], spacing, rng)
            seconds = float(rng.lognormal(math.log(READING_SECONDS_MEDIAN[k % 2]), 0.35))
            return Answer(read.x_px, read.y_px, read.grade, seconds=round(seconds, 1))

        made += session.read_through(answer)
    return made
