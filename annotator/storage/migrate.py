"""Schema upgrades: run on open, refuse a database newer than this application.

Before upgrading an existing SQLite project file, a backup copy is written next to it
(``<file>.bak-<old revision>-<UTC time>``; ``unversioned`` for a file with tables but no revision) with
SQLite's online backup API, while the upgrade holds the write lock, so the copy is consistent and
nothing is committed between the copy and the upgrade. A new empty database, an in-memory one and
PostgreSQL (back it up with the server's tools) get none.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import ExitStack, closing
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from annotator.domain.errors import DatabaseError, DatabaseTooNew

log = logging.getLogger(__name__)


def _script_location(stack: ExitStack) -> Path:
    return stack.enter_context(resources.as_file(resources.files("annotator.migrations")))


def alembic_config(stack: ExitStack, connection: Connection | None = None, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_script_location(stack)))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    with ExitStack() as stack:
        head = ScriptDirectory.from_config(alembic_config(stack)).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    with ExitStack() as stack:
        script = ScriptDirectory.from_config(alembic_config(stack))
        return {rev.revision for rev in script.walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def backup_sqlite(path: Path, revision: str) -> Path:
    """Copy the SQLite file ``path`` to ``<path>.bak-<revision>-<UTC time>`` beside it; its path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.bak-{revision}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bak-{revision}-{stamp}-{n}")
    try:
        with closing(sqlite3.connect(path, timeout=30.0)) as src, closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise DatabaseError(f"cannot back up {path} before upgrading its schema to {target}: {exc}; "
                            "nothing was changed") from exc
    return target


def _sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def _has_tables(conn: Connection) -> bool:
    """Does this SQLite database hold anything (a file made by an older tool, or a failed first open)?"""
    return bool(conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar())


def _may_change_schema(conn: Connection) -> bool:
    """Can this connection run the migrations? Always on SQLite; on PostgreSQL a superuser, the owner of
    the schema's tables, or anybody on a database without them yet. A rater of a team database connects
    as a login role that owns nothing and may not change the schema (``annotator team init``)."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.exec_driver_sql(
        "SELECT r.rolsuper OR c.oid IS NULL OR pg_has_role(current_user, c.relowner, 'USAGE') "
        "FROM pg_roles r LEFT JOIN pg_class c ON c.oid = to_regclass('alembic_version') "
        "WHERE r.rolname = current_user").scalar())


def upgrade(engine: Engine, revision: str = "head") -> Path | None:
    """Bring the schema to ``revision`` inside one transaction; refuse a too-new database.

    On SQLite the transaction begins with ``BEGIN IMMEDIATE``: the write lock is taken before the
    revision is read and the backup copied, so no other process can commit between the copy and the
    upgrade (WAL lets the copy read from a second connection meanwhile). Returns the backup written first
    (a SQLite file with a schema or any table, versioned or not), else None. When the upgrade fails, the
    DatabaseError says where that backup is.
    """
    target = head_revision() if revision == "head" else revision
    file = _sqlite_file(engine)
    with ExitStack() as stack, engine.connect().execution_options(annotator_write=True) as conn, conn.begin():
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current not in known_revisions():
            raise DatabaseTooNew(
                f"database {engine.url.render_as_string(hide_password=True)} is at schema revision {current}, "
                f"newer than this version of annotator understands (head {head_revision()}): "
                "upgrade annotator, or open another database"
            )
        if current == target:
            return None
        if not _may_change_schema(conn):
            raise DatabaseError(
                f"database {engine.url.render_as_string(hide_password=True)} is at schema revision "
                f"{current or '(none)'} and this version of annotator needs {target}; this login "
                "may not change the schema: the project's owner runs `annotator --db URL team init` (or "
                "`db upgrade`) first")
        backup = None
        if file is not None and (current is not None or _has_tables(conn)):
            backup = backup_sqlite(file, current or "unversioned")
        try:
            command.upgrade(alembic_config(stack, connection=conn), revision)
        except Exception as exc:
            if backup is None:
                raise
            log.error("the schema upgrade of %s failed; a copy from before the attempt is in %s", file, backup)
            raise DatabaseError(
                f"the schema upgrade of {file} from revision {current or '(none)'} to {target} failed "
                f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); it was rolled back, and a "
                f"copy of the file from before the attempt is kept in {backup}") from exc
    if backup is not None:
        log.info("upgraded the schema of %s from revision %s to %s; the file as it was is kept in %s",
                 file, current or "(none)", target, backup)
    return backup


def check(engine: Engine) -> None:
    """Raise if the ORM tables and the migrations disagree (``alembic check``)."""
    from alembic.util.exc import AutogenerateDiffsDetected

    with ExitStack() as stack, engine.connect() as conn:
        try:
            command.check(alembic_config(stack, connection=conn))
        except AutogenerateDiffsDetected as exc:
            raise DatabaseError(f"the tables and the migrations disagree (a migration is missing): {exc}") from exc
