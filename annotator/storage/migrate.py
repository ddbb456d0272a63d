"""Schema upgrades: run on open, refuse a database newer than this application.

Before upgrading an existing SQLite project file, a backup copy is written next to it
(``<file>.bak-<old revision>-<UTC time>``) with SQLite's online backup API, so the copy is consistent
even while the file is in WAL mode or another process reads it. A new empty database, an in-memory
one and PostgreSQL (back it up with the server's tools) get none.
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


def upgrade(engine: Engine, revision: str = "head") -> Path | None:
    """Bring the schema to ``revision`` inside one transaction; refuse a too-new database.

    Returns the backup written first (an existing SQLite file only), else None.
    """
    current = current_revision(engine)
    if current is not None and current not in known_revisions():
        raise DatabaseTooNew(
            f"database {engine.url.render_as_string(hide_password=True)} is at schema revision {current}, "
            f"newer than this version of annotator understands (head {head_revision()}): "
            "upgrade annotator, or open another database"
        )
    target = head_revision() if revision == "head" else revision
    if current == target:
        return None
    backup = None
    file = _sqlite_file(engine)
    if current is not None and file is not None:
        backup = backup_sqlite(file, current)
    try:
        with ExitStack() as stack, engine.connect().execution_options(annotator_write=True) as conn, conn.begin():
            command.upgrade(alembic_config(stack, connection=conn), revision)
    except Exception:
        if backup is not None:
            log.error("the schema upgrade of %s failed; a copy from before the attempt is in %s", file, backup)
        raise
    if backup is not None:
        log.info("upgraded the schema of %s from revision %s to %s; the file as it was is kept in %s",
                 file, current, target, backup)
    return backup


def check(engine: Engine) -> None:
    """Raise if the ORM tables and the migrations disagree (``alembic check``)."""
    with ExitStack() as stack, engine.connect() as conn:
        command.check(alembic_config(stack, connection=conn))
