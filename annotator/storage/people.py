"""Project settings and raters."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator.domain.entities import ProjectSettings, Rater, Role
from annotator.domain.errors import InputError, NotFound
from annotator.storage import audit, convert
from annotator.storage.database import Database
from annotator.storage.tables import ProjectSettingsRow, RaterRow


def _settings_row(session: Session) -> ProjectSettingsRow:
    row = session.get(ProjectSettingsRow, 1)
    if row is None:
        d = ProjectSettings()
        row = ProjectSettingsRow(id=1, name=d.name, scale_code=d.scale_code,
                                 model_suggestion=d.model_suggestion.value,
                                 show_other_raters_to_annotators=d.show_other_raters_to_annotators,
                                 disagreement_threshold_mm=d.disagreement_threshold_mm,
                                 required_raters=list(d.required_raters), cv_folds=d.cv_folds,
                                 hide_reader_names_from_reviewers=d.hide_reader_names_from_reviewers)
        session.add(row)
        session.flush()
    return row


def ensure_settings(session: Session) -> None:
    """Store the default settings row if the project has none yet (inside the caller's transaction)."""
    _settings_row(session)


def get_settings(db: Database) -> ProjectSettings:
    with db.read() as s:
        row = s.get(ProjectSettingsRow, 1)
        return convert.settings(row) if row is not None else ProjectSettings()


def _jsonable(settings: ProjectSettings) -> dict[str, Any]:
    d = asdict(settings)
    d["model_suggestion"] = settings.model_suggestion.value
    d["required_raters"] = list(settings.required_raters)
    return d


def update_settings(db: Database, actor_id: int | None, **changes: Any) -> ProjectSettings:
    def work(s: Session) -> ProjectSettings:
        row = _settings_row(s)
        before = convert.settings(row)
        after = replace(before, **changes)
        row.name = after.name
        row.scale_code = after.scale_code
        row.model_suggestion = after.model_suggestion.value
        row.show_other_raters_to_annotators = after.show_other_raters_to_annotators
        row.disagreement_threshold_mm = after.disagreement_threshold_mm
        row.required_raters = list(after.required_raters)
        row.cv_folds = after.cv_folds
        row.hide_reader_names_from_reviewers = after.hide_reader_names_from_reviewers
        audit.record(s, rater_id=actor_id, action="settings.update", entity="project_settings", entity_id=1,
                     before=_jsonable(before), after=_jsonable(after))
        return after

    return db.write(work)


def check_name(name: str) -> str:
    """The rater name, stripped; InputError unless it can address a reader (``rater:NAME``)."""
    name = name.strip()
    if not name or ":" in name or "," in name:
        raise InputError(f"rater name {name!r} must be non-empty and contain no ':' or ','")
    return name


def add_rater(db: Database, name: str, role: Role, *, simulated: bool = False,
              actor_id: int | None = None, password_hash: str | None = None) -> Rater:
    name = check_name(name)

    def work(s: Session) -> Rater:
        if s.scalar(select(RaterRow).where(RaterRow.name == name)) is not None:
            raise InputError(f"rater {name!r} already exists")
        row = RaterRow(name=name, role=role.value, simulated=simulated, password_hash=password_hash)
        s.add(row)
        s.flush()
        audit.record(s, rater_id=actor_id, action="rater.add", entity="rater", entity_id=row.id,
                     after={"name": name, "role": role.value, "simulated": simulated,
                            "protected": password_hash is not None})
        return convert.rater(row)

    try:
        return db.write(work)
    except IntegrityError as exc:
        raise InputError(f"rater {name!r} already exists") from exc


def list_raters(db: Database) -> list[Rater]:
    with db.read() as s:
        return [convert.rater(r) for r in s.scalars(select(RaterRow).order_by(RaterRow.id))]


def rater_by_name(db: Database, name: str) -> Rater:
    with db.read() as s:
        row = s.scalar(select(RaterRow).where(RaterRow.name == name))
        if row is None:
            raise NotFound(f"rater {name!r} does not exist (see `annotator raters list`)")
        return convert.rater(row)


def rater_by_id(db: Database, rater_id: int) -> Rater:
    with db.read() as s:
        row = s.get(RaterRow, rater_id)
        if row is None:
            raise NotFound(f"rater id {rater_id} does not exist")
        return convert.rater(row)


def password_hash(db: Database, rater_id: int) -> str | None:
    with db.read() as s:
        row = s.get(RaterRow, rater_id)
        if row is None:
            raise NotFound(f"rater id {rater_id} does not exist")
        return row.password_hash


def set_password_hash(db: Database, rater_id: int, hashed: str | None, actor_id: int | None) -> Rater:
    """Store (or, with None, remove) a rater's password hash; audited without the hash."""
    def work(s: Session) -> Rater:
        row = s.get(RaterRow, rater_id)
        if row is None:
            raise NotFound(f"rater id {rater_id} does not exist")
        before = {"protected": row.password_hash is not None}
        row.password_hash = hashed
        audit.record(s, rater_id=actor_id, action="rater.password", entity="rater", entity_id=rater_id,
                     before=before, after={"protected": hashed is not None})
        return convert.rater(row)

    return db.write(work)


def record_sign_in(db: Database, rater_id: int, ok: bool) -> None:
    """Audit a sign-in (or a refused one: a wrong password)."""
    db.write(lambda s: audit.record(s, rater_id=rater_id if ok else None,
                                    action="rater.sign_in" if ok else "rater.sign_in_refused",
                                    entity="rater", entity_id=rater_id))
