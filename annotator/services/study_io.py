"""Use case: a reader study's reads as a label-set file, and back.

``export --study NAME`` writes one row per read with the label-set columns plus ``study``, ``level``,
``read`` (1 first, 2 repeat), ``calibration``, ``seconds``, ``cannot_grade`` and ``comment``.
``import-labels`` reads such a file back into a project where the study does not exist yet: the study is
rebuilt as an archive of what the file holds (its slices, readers, each reader's sequence in file order,
every item read), checked row by row first and stored in one transaction, or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from annotator.domain.entities import Rater, Role
from annotator.domain.errors import InputError, NotFound, PermissionDenied
from annotator.domain.policy import Action
from annotator.domain.readers import ReaderKind, ReaderMark, ReaderRef
from annotator.domain.scales import GradingScale, load_scale
from annotator.domain.studies import (
    Answer,
    CannotGrade,
    PlanItem,
    ReadKind,
    ReadOrder,
    ReferenceMark,
    SelectionRule,
    StudyDefinition,
)
from annotator.services.formats.table import STUDY_COLUMNS, StudyReadItem, item_row
from annotator.services.labelsets import _num, write_rows
from annotator.services.project import policy
from annotator.services.studies import study_for
from annotator.storage import catalog, people
from annotator.storage import studies as repo
from annotator.storage.database import Database


def export_items(db: Database, viewer: Rater, name: str) -> tuple[list[StudyReadItem], GradingScale]:
    """One item per read of the study (calibration reads flagged), by reader and sequence, and the scale the
    study's reads are graded on. Needs the right to export and to see the study's progress."""
    rules = policy(db, viewer)
    rules.require(Action.EXPORT)
    study = study_for(db, viewer, name)
    if not rules.may_see_study_progress:
        raise PermissionDenied(f"{viewer.name} cannot export the reads of study {name!r}")
    scale = load_scale(repo.scale_code(db, study.id))
    images = {im.id: im for im in catalog.images(db)}
    names = repo.reader_names(db, study.id)
    items = []
    for r in repo.reads(db, study.id):
        ref = ReaderRef(ReaderKind.RATER, names[r.rater_id])
        mark = ReaderMark(r.image_id, r.x_px, r.y_px, r.grade, None, None,
                          r.created_at.isoformat() if r.created_at is not None else None)
        items.append(StudyReadItem(
            image=images[r.image_id], reader=ref, reader_label=ref.key, mark=mark,
            cannot_grade=r.cannot_grade.value if r.cannot_grade else None, study=study.name,
            read=2 if r.kind is ReadKind.REPEAT else 1, calibration=r.kind is ReadKind.CALIBRATION,
            seconds=r.seconds, comment=r.comment))
    return items, scale


def export_rows(db: Database, viewer: Rater, name: str) -> list[dict[str, Any]]:
    """One row per read of the study (calibration reads flagged), by reader and sequence."""
    items, scale = export_items(db, viewer, name)
    return [item_row(item, scale) for item in items]


def export(db: Database, viewer: Rater, name: str, out: Path, fmt: str = "csv") -> int:
    rows = export_rows(db, viewer, name)
    write_rows(out, STUDY_COLUMNS, rows, fmt)
    return len(rows)


def _flag(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise InputError(f"{field} {value!r} is not true or false")


def import_rows(db: Database, actor: Rater | None, path: Path,
                rows: Sequence[tuple[int, dict[str, Any]]]) -> tuple[int, list[str], list[str]]:
    """(reads stored, errors by line, raters created): every row checked first; nothing stored on any error."""
    if actor is None:
        raise InputError(f"{path}: the file holds reader-study reads; importing a study needs --as ADMIN")
    policy(db, actor).require(Action.MANAGE_STUDIES)
    scale = load_scale(people.get_settings(db).scale_code)
    images = {im.sop_instance_uid: im for im in catalog.images(db)}
    errors: list[str] = []
    studies: dict[str, list[tuple[str, int, ReadKind, Answer, datetime | None]]] = {}
    for line, row in rows:
        try:
            ref = ReaderRef.parse(str(row.get("reader") or ""))
            if ref.kind is not ReaderKind.RATER:
                raise InputError(f"reader {ref}: only raters read in a study")
            sop = str(row.get("sop_uid") or "").strip()
            im = images.get(sop)
            if im is None:
                raise InputError(f"sop_uid {sop or '(missing)'} is not an imported slice")
            x, y = _num(row.get("x_px"), "x_px"), _num(row.get("y_px"), "y_px")
            if x is not None and y is not None and not im.geometry.contains(x, y):
                raise InputError(f"point ({x}, {y}) lies outside the {im.geometry.columns}x{im.geometry.rows} image")
            grade_text = "" if row.get("grade") is None else str(row["grade"]).strip()  # 0 is a grade
            grade = scale.parse(grade_text) if grade_text else None
            reason = str(row.get("cannot_grade") or "").strip()
            if reason and reason not in {c.value for c in CannotGrade}:
                raise InputError(f"cannot_grade {reason!r}: use {', '.join(c.value for c in CannotGrade)}")
            answer = Answer(x, y, grade, CannotGrade(reason) if reason else None, _num(row.get("seconds"), "seconds"),
                            str(row.get("comment") or ""))
            read = str(row.get("read") or "1").strip()
            if read not in ("1", "2"):
                raise InputError(f"read {read!r} must be 1 (first) or 2 (repeat)")
            kind = (ReadKind.CALIBRATION if _flag(row.get("calibration"), "calibration")
                    else ReadKind.FIRST if read == "1" else ReadKind.REPEAT)
            when = str(row.get("labelled_at") or "").strip()
            studies.setdefault(str(row["study"]).strip(), []).append(
                (ref.key, im.id, kind, answer, datetime.fromisoformat(when) if when else None))
        except (InputError, NotFound, ValueError) as exc:
            errors.append(f"{path.name}: line {line}: {exc}")
    for name in studies:
        try:
            repo.by_name(db, name)
            errors.append(f"{path.name}: study {name!r} already exists in this project; nothing was imported")
        except NotFound:
            pass
    if errors:
        return 0, errors, []
    raters = {r.name: r for r in people.list_raters(db)}
    created = sorted({reader for items in studies.values() for reader, *_ in items} - set(raters))
    sop_of = {im.id: sop for sop, im in images.items()}
    plans = {name: _plan(name, items, sop_of) for name, items in studies.items()}  # may raise before anything is stored
    for reader in created:
        raters[reader] = people.add_rater(db, reader, Role.ANNOTATOR)
    n = 0
    for definition, slices, calibration, plan, reads in plans.values():
        repo.create(db, definition, scale_code=scale.code, actor_id=actor.id, slices=slices, calibration=calibration,
                    reader_ids={r: raters[r].id for r in definition.readers}, plans=plan, reads=reads)
        n += sum(len(v) for v in reads.values())
    return n, [], created


def _plan(name: str, items: list[tuple[str, int, ReadKind, Answer, datetime | None]], sop_of: dict[int, str]) -> tuple[
        StudyDefinition, list[int], list[ReferenceMark], dict[str, list[PlanItem]],
        dict[str, list[tuple[int, Answer, datetime | None]]]]:
    readers = list(dict.fromkeys(reader for reader, *_ in items))
    slices = list(dict.fromkeys(iid for _, iid, kind, *_ in items if kind is ReadKind.FIRST))
    calibration = list(dict.fromkeys(iid for _, iid, kind, *_ in items if kind is ReadKind.CALIBRATION))
    plans: dict[str, list[PlanItem]] = {r: [] for r in readers}
    reads: dict[str, list[tuple[int, Answer, datetime | None]]] = {r: [] for r in readers}
    for reader, iid, kind, answer, when in items:
        if kind is ReadKind.REPEAT and all(p.image_id != iid or p.kind is not ReadKind.FIRST for p in plans[reader]):
            raise InputError(f"study {name!r}: {reader}'s repeat read of image {iid} comes before her first read")
        seq = len(plans[reader]) + 1
        plans[reader].append(PlanItem(seq, iid, kind))
        reads[reader].append((seq, answer, when))
    sops = tuple(sop_of[i] for i in slices)
    definition = StudyDefinition(name, SelectionRule(sop_uids=sops or None), tuple(readers),
                                 order=ReadOrder.SEQUENTIAL)
    return (definition, slices, [ReferenceMark(i, None, None, None) for i in calibration], plans, reads)
