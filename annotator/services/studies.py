"""Use case: create reader studies and look at them (admins and reviewers see design and progress).

Creating a study resolves its rule over the catalogue once, draws the calibration slices, assigns
slices to readers (crossed or split) and plans each reader's sequence (seeded per reader, with hidden
repeats after a washout); all of it is stored in one transaction and never recomputed.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

from annotator.domain.entities import Rater
from annotator.domain.errors import InputError, NotFound, PermissionDenied
from annotator.domain.policy import Action, ReaderNames
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.studies import (
    Orientation,
    ReaderProgress,
    ReadKind,
    ReadOrder,
    ReferenceMark,
    SelectionRule,
    StudyDefinition,
    StudyDesign,
    StudySummary,
    VertebralLevel,
    assign_slices,
    plan_reader,
)
from annotator.services.project import policy, reader_names_for
from annotator.storage import labels, people
from annotator.storage import studies as repo
from annotator.storage.database import Database

SEED_STUDY_NAME = "L4-L5 axial"


def seed_study_definition(readers: tuple[str, ...], *, seed: int = 0, repeat_fraction: float = 0.1,
                          washout: int = 20) -> StudyDefinition:
    """The seed study's design (Won et al. 2020: axial T2 slices at the L4-5 disc, every reader reads
    every slice), with hidden repeats for intra-rater agreement: what the demo's ready study uses."""
    return StudyDefinition(SEED_STUDY_NAME, SelectionRule(series_description="^AX", orientation=Orientation.AXIAL,
                                                          level=VertebralLevel.L4_L5, modality="MR"),
                           readers, StudyDesign.CROSSED, order=ReadOrder.RANDOM, seed=seed,
                           repeat_fraction=repeat_fraction, washout=washout)


def reader_name(text: str) -> str:
    """``rater:NAME`` (or a bare NAME) -> NAME; a model or the consensus cannot read in a study."""
    ref = ReaderRef.parse(text if ":" in text else f"rater:{text}")
    if ref.kind is not ReaderKind.RATER:
        raise InputError(f"reader {text!r}: only raters (rater:NAME) read in a study")
    return ref.key


def read_sop_list(path: Path) -> tuple[str, ...]:
    """One SOPInstanceUID a line (blank lines and ``#`` comments skipped); a clear error naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the SOP list: {exc.strerror or exc}") from exc
    uids = []
    for n, line in enumerate(text.splitlines(), 1):
        uid = line.split("#", 1)[0].strip()
        if uid and not all(ch.isdigit() or ch == "." for ch in uid):
            raise InputError(f"{path}: line {n}: {uid!r} is not a SOPInstanceUID")
        if uid:
            uids.append(uid)
    if not uids:
        raise InputError(f"{path}: the SOP list is empty")
    return tuple(dict.fromkeys(uids))


def _resolve_sops(db: Database, uids: tuple[str, ...], what: str) -> list[int]:
    found = repo.image_ids_for_sops(db, uids)
    missing = [u for u in uids if u not in found]
    if missing:
        raise InputError(f"{what}: {len(missing)} SOPInstanceUIDs are not in the catalogue "
                         f"(first: {', '.join(missing[:3])}); import them first")
    return [found[u] for u in uids]


def _calibration(db: Database, definition: StudyDefinition, selected: list[int]) -> list[ReferenceMark]:
    cal = definition.calibration
    if cal is None:
        return []
    reference = people.rater_by_name(db, reader_name(cal.reference))
    own = {lab.image_id: lab for lab in labels.current(db, rater_ids=[reference.id]) if lab.complete}
    if cal.sop_uids is not None:
        ids = _resolve_sops(db, cal.sop_uids, "--calibration")
        unlabelled = [i for i in ids if i not in own]
        if unlabelled:
            raise InputError(f"--reference {cal.reference}: no point and grade on calibration image ids "
                             f"{', '.join(map(str, unlabelled[:5]))}")
    else:
        labelled = [i for i in selected if i in own]
        if len(labelled) < cal.count:
            raise InputError(f"--calibration {cal.count}: the reference {cal.reference} has a point and grade on "
                             f"only {len(labelled)} of the selected slices")
        ids = sorted(random.Random(f"calibration:{definition.seed}").sample(labelled, cal.count),
                     key=selected.index)
    return [ReferenceMark(i, own[i].x_px, own[i].y_px, own[i].grade) for i in ids]


def create_study(db: Database, actor: Rater, definition: StudyDefinition) -> StudySummary:
    """Resolve, assign, plan and store a study (admins only)."""
    policy(db, actor).require(Action.MANAGE_STUDIES)
    readers = {name: people.rater_by_name(db, name) for name in definition.readers}
    rule = definition.rule
    selected = (_resolve_sops(db, rule.sop_uids, "--sop-list") if rule.sop_uids is not None
                else repo.select_image_ids(db, rule))
    calibration = _calibration(db, definition, selected)
    cal_ids = [m.image_id for m in calibration]
    taken = set(cal_ids)
    slices = [i for i in selected if i not in taken]  # a calibration slice is never read again as a study slice
    if not slices:
        raise InputError(f"study {definition.name!r}: the rule selects no slice besides the calibration slices "
                         f"({rule.to_json()})")
    assigned = assign_slices(slices, definition.readers, definition.design, definition.readers_per_slice,
                             definition.seed)
    plans = {name: plan_reader(name, assigned[name], cal_ids, order=definition.order, seed=definition.seed,
                               repeat_fraction=definition.repeat_fraction, washout=definition.washout)
             for name in definition.readers}
    return repo.create(db, definition, scale_code=people.get_settings(db).scale_code, actor_id=actor.id,
                       slices=slices, calibration=calibration, reader_ids={n: r.id for n, r in readers.items()},
                       plans=plans)


def shown_summary(summary: StudySummary, names: ReaderNames) -> StudySummary:
    """The study as a viewer who may not see reader names sees it: its readers and calibration reference
    by alias (the stored definition keeps the names)."""
    if not names.hidden:
        return summary
    d = summary.definition
    cal = d.calibration
    if cal is not None:
        ref = cal.reference
        cal = dataclasses.replace(cal, reference=names.reader(ref) if ":" in ref else names.name(ref))
    shown = dataclasses.replace(d, readers=tuple(names.name(r) for r in d.readers), calibration=cal)
    return dataclasses.replace(summary, definition=shown)


def list_studies(db: Database, viewer: Rater) -> list[StudySummary]:
    """The studies this rater may see: her own as a reader, every study for reviewers and admins (readers
    named as the viewer may see them)."""
    rules = policy(db, viewer)
    names = reader_names_for(db, viewer)
    mine = repo.studies_of_reader(db, viewer.id)
    return [shown_summary(s, names) for s in repo.list_all(db) if rules.may_see_study(assigned=s.id in mine)]


def studies_to_read(db: Database, reader: Rater) -> list[StudySummary]:
    """The studies this rater reads in (whatever her role): what "Read a study" offers her."""
    rules = policy(db, reader)
    mine = repo.studies_of_reader(db, reader.id)
    return [s for s in repo.list_all(db) if rules.may_read_in_study(assigned=s.id in mine)]


def study_for(db: Database, viewer: Rater, name: str) -> StudySummary:
    """The study called ``name`` if this rater may see it; NotFound otherwise (an annotator does not learn
    that a study she is not assigned to exists)."""
    study = repo.by_name(db, name)
    if not policy(db, viewer).may_see_study(assigned=study.id in repo.studies_of_reader(db, viewer.id)):
        raise NotFound(f"no reader study named {name!r} is assigned to {viewer.name}")
    return study


@dataclass(frozen=True, slots=True)
class StudyReport:
    """The admin's and reviewer's view of a study: its slices, readers and progress."""

    study: StudySummary
    slice_sops: list[str]
    calibration_sops: list[str]
    readers: list[ReaderProgress]
    median_seconds: dict[str, float | None]

    def to_json(self) -> dict[str, object]:
        return {"name": self.study.name, "id": self.study.id, "definition": self.study.definition.to_json(),
                "slices": self.slice_sops, "calibration_slices": self.calibration_sops,
                "readers": [{"reader": p.reader, "assigned": p.assigned, "done": p.done,
                             "repeats_planned": p.repeats_planned, "repeats_done": p.repeats_done,
                             "calibration_planned": p.calibration_planned, "calibration_done": p.calibration_done,
                             "cannot_grade": p.cannot_grade, "median_seconds": self.median_seconds[p.reader]}
                            for p in self.readers]}


def show_study(db: Database, viewer: Rater, name: str) -> StudyReport:
    """Slices, readers, per-reader progress, repeats planned and done (reviewers and admins); readers are
    named as the viewer may see them."""
    rules = policy(db, viewer)
    study = study_for(db, viewer, name)
    if not rules.may_see_study_progress:
        raise PermissionDenied(f"{viewer.name} reads in study {name!r} and cannot see its design or its "
                               "readers' progress: only reviewers and admins may")
    names = reader_names_for(db, viewer)
    counts = repo.plan_counts(db, study.id)
    reads = repo.reads(db, study.id)
    progress, medians = [], {}
    for rid, real in repo.reader_names(db, study.id).items():
        rname = names.name(real)  # as the viewer may see her
        def c(kind: ReadKind, rid: int = rid) -> tuple[int, int]:
            return counts.get((rid, kind), (0, 0))
        own = [r for r in reads if r.rater_id == rid]
        progress.append(ReaderProgress(rname, *c(ReadKind.FIRST), *c(ReadKind.REPEAT), *c(ReadKind.CALIBRATION),
                                       cannot_grade=sum(r.cannot_grade is not None for r in own)))
        secs = [r.seconds for r in own if r.seconds is not None and r.kind is not ReadKind.CALIBRATION]
        medians[rname] = statistics.median(secs) if secs else None
    return StudyReport(shown_summary(study, names), [sop for _, sop in repo.slices(db, study.id, calibration=False)],
                       [sop for _, sop in repo.slices(db, study.id, calibration=True)], progress, medians)
