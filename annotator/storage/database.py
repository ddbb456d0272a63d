"""Engines, sessions and transactions for SQLite and PostgreSQL.

Every user action is its own short committed transaction. On SQLite a write transaction begins with
``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing half-way; reads use a
plain deferred ``BEGIN``. The connection runs in WAL mode with ``synchronous=FULL`` and foreign keys on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from annotator.domain.errors import DatabaseError
from annotator.domain.settings import AppSettings
from annotator.storage import migrate, settings
from annotator.storage.settings import normalise_url

BUSY_TIMEOUT_S = 30.0
T = TypeVar("T")


def _install_sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("annotator_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_db_engine(url: str) -> Engine:
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"--db {url!r} is not a database URL or file path") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            if not folder.is_dir():
                raise DatabaseError(f"database folder {folder} does not exist")
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        _install_sqlite_events(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    raise DatabaseError(f"unsupported database {parsed.get_backend_name()!r}: use a SQLite file or PostgreSQL")


def _is_locked(exc: OperationalError) -> bool:
    msg = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return "database is locked" in msg or "database is busy" in msg


class Database:
    """An open, up-to-date project database: a factory of short transactions."""

    def __init__(self, engine: Engine, app_settings: AppSettings) -> None:
        self.engine = engine
        self.settings = app_settings  # where this project's files live (models folder, data folder)
        self.upgrade_backup: Path | None = None  # the copy written before this open upgraded the schema
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def url_with_password(self) -> str:
        """The full URL, password included: only for handing to a child process's environment."""
        return self.engine.url.render_as_string(hide_password=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def in_memory(self) -> bool:
        """An in-memory SQLite database: one per connection, so other threads cannot share it."""
        return self.dialect == "sqlite" and self.engine.url.database in (None, "", ":memory:")

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.engine.connect() as conn, Session(bind=conn, expire_on_commit=False) as session:
            yield session
            session.rollback()

    def write(self, work: Callable[[Session], T], *, attempts: int = 8) -> T:
        """Run ``work`` in one committed write transaction; retry the whole unit if SQLite is locked.

        The busy timeout already makes writers wait; the retry covers the rare lock error SQLite
        raises without waiting (a deferred reader upgrading, a WAL checkpoint).
        """
        delay = 0.02
        for attempt in range(attempts):
            try:
                with (self.engine.connect().execution_options(annotator_write=True) as conn,
                      Session(bind=conn, expire_on_commit=False) as session):
                    with conn.begin():
                        result = work(session)
                        session.flush()
                    return result
            except OperationalError as exc:
                if self.dialect != "sqlite" or not _is_locked(exc) or attempt == attempts - 1:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def integrity_check(self) -> str:
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                return str(conn.execute(text("PRAGMA integrity_check")).scalar_one())
            conn.execute(text("SELECT 1"))
            return "ok"

    def close(self) -> None:
        self.engine.dispose()


def open_database(where: str | AppSettings | None = None, *, upgrade: bool = True) -> Database:
    """Open (creating if needed) and upgrade a project database; refuse one newer than the app.

    ``where``: resolved settings, or a URL / file path (None: ``ANNOTATOR_DB`` or the default file).
    """
    app_settings = where if isinstance(where, AppSettings) else settings.resolve(where)
    engine = create_db_engine(app_settings.database_url)
    backup = None
    try:
        if upgrade:
            backup = migrate.upgrade(engine)
    except OperationalError as exc:
        engine.dispose()
        raise DatabaseError(f"cannot open database {engine.url.render_as_string(hide_password=True)}: "
                            f"{str(exc.orig or exc).splitlines()[0]}") from exc
    except Exception:
        engine.dispose()
        raise
    db = Database(engine, app_settings)
    db.upgrade_backup = backup
    return db
