"""Use cases around the project itself: opening it, its raters, its settings, its counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annotator.domain.entities import PROJECT_SWITCHES, ProjectCounts, ProjectSettings, Rater, Role
from annotator.domain.errors import DatabaseError, InputError, PasswordRequired, PermissionDenied
from annotator.domain.policy import Action, Policy, ReaderNames, reader_names
from annotator.domain.settings import AppSettings
from annotator.storage import catalog, migrate, people, settings, team
from annotator.storage.database import Database, open_database

__all__ = ["resolve_settings", "open_project", "add_rater", "list_raters", "policy", "project_settings",
           "reader_names_for", "change_settings", "set_switch", "status", "schema_status", "check_schema",
           "upgrade_schema", "acting", "acting_required", "connected_rater", "with_password"]


def resolve_settings(db: str | None = None) -> AppSettings:
    """Where the project at ``db`` (``--db``; None: ANNOTATOR_DB or the user data folder) keeps its files."""
    return settings.resolve(db)


def open_project(where: str | AppSettings | None = None) -> Database:
    """Open the project database (settings, a URL or file path; None: the default), upgraded. A rater of a
    team database (who may not change the schema) gets it only when it is up to date."""
    try:
        db = open_database(where)
    except DatabaseError as exc:
        if "no password supplied" in str(exc):
            raise PasswordRequired(f"{exc}: give the database password (your sign-in), in the URL, a "
                                   "~/.pgpass file or PGPASSWORD") from exc
        raise
    if db.dialect == "postgresql":
        team.install_refusals(db.engine)
    return db


def with_password(where: str | None, password: str) -> str:
    """The project's URL (``--db``; None: the default) with the database password of its user."""
    return settings.with_password(resolve_settings(where).database_url, password)


def connected_rater(db: Database) -> Rater | None:
    """The rater a team database's connection is (her login role); None: SQLite, or the database's owner."""
    return team.connected_rater(db)


def acting(db: Database, name: str | None) -> Rater | None:
    """Who acts (``--as NAME``): on a team database always the connected rater (another name is refused);
    else the rater called ``name``, or None (the database's owner, a script)."""
    me = team.connected_rater(db)
    if me is not None:
        if name is not None and name != me.name:
            raise PermissionDenied(f"connected as {me.name}: a team database acts as the rater who connects, "
                                   f"not as {name}")
        return me
    return None if name is None else people.rater_by_name(db, name)


def acting_required(db: Database, name: str | None, who: str = "the rater acting") -> Rater:
    """:func:`acting` for a command that needs somebody to act: ``--as NAME`` unless the connection says."""
    actor = acting(db, name)
    if actor is None:
        raise InputError(f"this needs --as NAME ({who})")
    return actor


def add_rater(db: Database, name: str, role: Role, *, simulated: bool = False, actor: Rater | None = None) -> Rater:
    """Add a rater. ``actor``: the rater adding her, who needs the right to manage raters
    (PermissionDenied otherwise), audited; None: the database's owner (a script). The sign-in screen's
    self-enrolment has its own rule (``policy.self_enrolment_roles``)."""
    if actor is not None:
        policy(db, actor).require(Action.MANAGE_RATERS)
    return people.add_rater(db, name, role, simulated=simulated, actor_id=None if actor is None else actor.id)


def list_raters(db: Database) -> list[Rater]:
    return people.list_raters(db)


def policy(db: Database, rater: Rater) -> Policy:
    """The project's rule book for ``rater``: what she may see and do (settings read now)."""
    return Policy.of(rater, people.get_settings(db))


def project_settings(db: Database) -> ProjectSettings:
    """The project's rules as stored now."""
    return people.get_settings(db)


def reader_names_for(db: Database, viewer: Rater) -> ReaderNames:
    """How other raters' names appear to ``viewer``: as they are, or as stable aliases (the policy decides)."""
    return reader_names(policy(db, viewer), people.list_raters(db))


def change_settings(db: Database, actor: Rater, **changes: Any) -> ProjectSettings:
    """Change project settings (fields of ProjectSettings); only who may manage settings (PermissionDenied
    otherwise); audited with the settings before and after."""
    policy(db, actor).require(Action.MANAGE_SETTINGS)
    return people.update_settings(db, actor.id, **changes)


def set_switch(db: Database, actor: Rater, switch: str, on: bool) -> ProjectSettings:
    """Turn an on/off project setting (``PROJECT_SWITCHES``: ``hide-reader-names``) on or off; admins only."""
    if switch not in PROJECT_SWITCHES:
        raise InputError(f"unknown setting {switch!r}: one of {', '.join(sorted(PROJECT_SWITCHES))}")
    return change_settings(db, actor, **{PROJECT_SWITCHES[switch]: on})


def rater_by_name(db: Database, name: str) -> Rater:
    """The rater called ``name``; NotFound (naming it) otherwise."""
    return people.rater_by_name(db, name)


def status(db: Database) -> ProjectCounts:
    return catalog.counts(db)


def schema_status(url: str | None) -> tuple[str, str | None, str]:
    """(database URL, current revision or None, head revision) without upgrading anything."""
    db = open_database(url, upgrade=False)
    try:
        return db.url, migrate.current_revision(db.engine), migrate.head_revision()
    finally:
        db.close()


def check_schema(url: str | None) -> str:
    """Open (and upgrade) the database, then raise if the ORM tables and the migrations disagree
    (``alembic check``); the head revision it checked."""
    db = open_database(url)
    try:
        migrate.check(db.engine)
        return migrate.head_revision()
    finally:
        db.close()


def upgrade_schema(url: str | None) -> tuple[str | None, str, Path | None]:
    """(revision before, revision after, the backup written first or None)."""
    db = open_database(url, upgrade=False)
    try:
        before = migrate.current_revision(db.engine)
        backup = migrate.upgrade(db.engine)
        if before != migrate.current_revision(db.engine) and team.initialized(db):
            team.init(db)  # the server-side rules cover the upgraded schema's tables too
        return before, migrate.current_revision(db.engine) or "", backup
    finally:
        db.close()
