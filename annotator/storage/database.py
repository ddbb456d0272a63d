"""Engines, sessions and transactions for SQLite and PostgreSQL.

Every user action is its own short committed transaction. On SQLite a write transaction begins with
``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing half-way; reads use a
plain deferred ``BEGIN``. The connection runs in WAL mode with ``synchronous=FULL`` and foreign keys on.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from annotator.domain.connection import ConnectionState
from annotator.domain.errors import AnnotatorError, DatabaseError, DatabaseUnavailable, NotCommitted
from annotator.domain.settings import AppSettings
from annotator.storage import migrate, settings
from annotator.storage.reconnect import Backoff, ConnectionMonitor, Retry, connection_lost, first_line
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


def _not_committed(exc: BaseException, total_s: float, *, certain: bool, key: str | None) -> NotCommitted:
    if certain:
        return NotCommitted(f"the database has not answered for {total_s:g} s ({first_line(exc)}): this action "
                            "was not stored; try again once the connection is back", certain=True, key=key)
    return NotCommitted(f"the connection to the database broke while this action was being stored, and the "
                        f"database has not answered for {total_s:g} s since ({first_line(exc)}); repeating the "
                        "action stores it at most once", certain=False, key=key)


class Database:
    """An open, up-to-date project database: a factory of short transactions."""

    def __init__(self, engine: Engine, app_settings: AppSettings) -> None:
        self.engine = engine
        self.settings = app_settings  # where this project's files live (models folder, data folder)
        self.upgrade_backup: Path | None = None  # the copy written before this open upgraded the schema
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.backoff = Backoff()  # how long a lost connection is retried before an action is refused
        self.monitor = ConnectionMonitor()  # connected / reconnecting / offline, told to subscribers

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
        """A read-only session; waits (with back-off, bounded) for a server that is restarting.

        A connection lost in the middle of the read is a DatabaseUnavailable: the caller's body cannot be
        re-run from here, and reads change nothing, so the user simply asks again.
        """
        conn = self._connect()
        try:
            with conn, Session(bind=conn, expire_on_commit=False) as session:
                yield session
                session.rollback()
        except DBAPIError as exc:
            if not connection_lost(exc, self.dialect):
                raise
            self.monitor.report(ConnectionState.RECONNECTING, first_line(exc))
            raise DatabaseUnavailable(f"the connection to the database broke while reading ({first_line(exc)}); "
                                      "try again") from exc
        self.monitor.connected()

    def _connect(self) -> Connection:
        retry: Retry | None = None
        while True:
            try:
                return self.engine.connect()
            except DBAPIError as exc:
                if not connection_lost(exc, self.dialect):
                    raise
                retry = retry or Retry(self.backoff)
                wait = retry.next_wait()
                if wait is None:
                    self.monitor.report(ConnectionState.OFFLINE, first_line(exc))
                    raise DatabaseUnavailable(f"the database has not answered for {self.backoff.total_s:g} s "
                                              f"({first_line(exc)})") from exc
                self.monitor.report(ConnectionState.RECONNECTING, first_line(exc))
                time.sleep(wait)

    def ping(self) -> bool:
        """One round trip to the server (no waiting); reports the connection state it found."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            if not connection_lost(exc, self.dialect):
                raise
            self.monitor.report(ConnectionState.OFFLINE, first_line(exc))
            return False
        self.monitor.connected()
        return True

    def write(self, work: Callable[[Session], T], *, replay: Callable[[Session], T | None] | None = None,
              key: str | None = None, attempts: int = 8) -> T:
        """Run ``work`` in one committed write transaction; commit it exactly once or raise.

        SQLite: the whole unit is retried when the file is locked (the busy timeout already makes writers
        wait; the retry covers the rare lock error SQLite raises without waiting).

        PostgreSQL: when the connection is lost (server restart, network), the unit is retried on a new
        connection with back-off (``self.backoff``), and the state is reported to ``self.monitor``. A loss
        before COMMIT was sent means nothing was stored. A loss during COMMIT leaves the outcome unknown:
        a unit with ``replay`` (which finds, by the action's idempotency ``key``, what an earlier commit of
        the same action stored) is retried, and ``replay`` runs first, so an action that did commit is
        returned, never stored twice; a unit without ``replay`` raises NotCommitted(certain=False) at once.
        ``replay`` also runs when ``work`` fails on a constraint or a conflict: that is what repeating an
        action that had committed meets (the key is unique), and the earlier commit is returned.
        When the reconnect time runs out: NotCommitted, saying whether the action may have been stored.
        """
        retry: Retry | None = None
        unknown = False  # an attempt broke off while committing
        delay = 0.02
        for attempt in itertools.count():
            committing = False
            try:
                with (self.engine.connect().execution_options(annotator_write=True) as conn,
                      Session(bind=conn, expire_on_commit=False) as session, conn.begin()):
                    earlier = replay(session) if unknown and replay is not None else None
                    result = earlier if earlier is not None else work(session)
                    session.flush()
                    committing = True
                self.monitor.connected()
                return result
            except (IntegrityError, AnnotatorError):
                if replay is not None and (found := self._replayed(replay)) is not None:
                    return found
                raise
            except DBAPIError as exc:  # OperationalError, or InterfaceError: psycopg found the connection closed
                if self.dialect == "sqlite" and isinstance(exc, OperationalError) and _is_locked(exc) \
                        and attempt < attempts - 1:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                if not connection_lost(exc, self.dialect):
                    raise
                self._lost(exc, committing, replay, key)
                unknown = unknown or committing
                retry = retry or Retry(self.backoff)
                wait = retry.next_wait()
                if wait is None:
                    self.monitor.report(ConnectionState.OFFLINE, first_line(exc))
                    raise _not_committed(exc, self.backoff.total_s, certain=not unknown, key=key) from exc
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _lost(self, exc: DBAPIError, committing: bool, replay: object, key: str | None) -> None:
        self.monitor.report(ConnectionState.RECONNECTING, first_line(exc))
        if committing and replay is None:  # no way to tell whether it committed, so no retry
            raise NotCommitted(f"the connection to the database broke while this action was being stored "
                               f"({first_line(exc)}): it may or may not be stored; check before repeating it",
                               certain=False, key=key) from exc

    def _replayed(self, replay: Callable[[Session], T | None]) -> T | None:
        with self.read() as s:
            return replay(s)

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
