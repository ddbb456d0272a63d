"""Copy a whole project from one database to another (SQLite <-> PostgreSQL), verified table by table.

Every table of the schema is copied in foreign-key order with its primary keys, so ids, label versions,
decisions, reads, the audit log and models come across unchanged; PostgreSQL's id sequences are then
set past the largest id. The copy runs in ONE transaction on the destination, which must be at the same
schema revision and empty; the source is read in one snapshot (``REPEATABLE READ`` on PostgreSQL, one
read transaction on SQLite). Before the destination commits, each table is read back and compared with
what was read from the source: the row count and a SHA-256 over the rows in primary-key order, values
normalised so that both databases give the same text (times in UTC, floats as doubles, JSON with sorted
keys, bytes by their own SHA-256). Any difference rolls the whole copy back.

A SQLite project keeps model weights as files; the caller may have them stored in the destination inside
the same transaction (``weights_file``), and the weights table is then verified per model against each
version's registered SHA-256 instead of against the source's rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Float, LargeBinary, Table, func, insert, inspect, select, text
from sqlalchemy.types import JSON, DateTime

from annotator.domain.errors import DatabaseError
from annotator.storage import migrate, models_repo
from annotator.storage.database import Database
from annotator.storage.tables import Base, ModelVersionRow, ModelWeightsChunkRow

BATCH = 500
WEIGHTS_TABLE = ModelWeightsChunkRow.__tablename__

OnProgress = Callable[[int, int, str], None]
WeightsFile = Callable[[int], Path | None]  # model id -> a local, verified weights file (None: skip it)


@dataclass(frozen=True, slots=True)
class TableCheck:
    """One table as copied: rows and checksum read from the source and read back from the destination."""

    table: str
    rows: int
    checksum: str  # SHA-256 over the normalised rows in primary-key order
    copied_rows: int
    copied_checksum: str

    @property
    def ok(self) -> bool:
        return self.rows == self.copied_rows and self.checksum == self.copied_checksum


@dataclass(frozen=True, slots=True)
class CopyReport:
    source: str
    destination: str
    revision: str
    tables: tuple[TableCheck, ...]
    weights_added: int  # models whose weights files were stored in the destination's database

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def tables() -> list[Table]:
    """Every table of the schema, parents before children."""
    return list(Base.metadata.sorted_tables)


def _norm(column_type: Any, value: Any) -> Any:
    """A value as text-stable JSON, the same whichever database it was read from."""
    if value is None:
        return None
    if isinstance(column_type, DateTime):
        if value.tzinfo is None:  # SQLite keeps UTC times without an offset
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(column_type, Float):
        return float(value)
    if isinstance(column_type, LargeBinary):
        return hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(column_type, JSON):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def _to_destination(column_type: Any, value: Any) -> Any:
    """A value as the destination stores it (times as aware UTC, bytes as bytes)."""
    if value is None:
        return None
    if isinstance(column_type, DateTime):
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)
    if isinstance(column_type, LargeBinary):
        return bytes(value)
    return value


def _rows(conn: Connection, table: Table) -> Iterator[tuple[Any, ...]]:
    query = select(*table.columns).order_by(*table.primary_key.columns)
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
    for row in result:
        yield tuple(row)


class _Digest:
    def __init__(self, table: Table) -> None:
        self.types = [c.type for c in table.columns]
        self.sha = hashlib.sha256()
        self.n = 0

    def add(self, row: tuple[Any, ...]) -> None:
        values = [_norm(t, v) for t, v in zip(self.types, row, strict=True)]
        self.sha.update(json.dumps(values, separators=(",", ":")).encode())
        self.sha.update(b"\n")
        self.n += 1


def checksum(conn: Connection, table: Table) -> tuple[int, str]:
    """(rows, SHA-256 over the normalised rows in primary-key order) of one table."""
    d = _Digest(table)
    for row in _rows(conn, table):
        d.add(row)
    return d.n, d.sha.hexdigest()


def nonempty_tables(conn: Connection) -> list[str]:
    return [t.name for t in tables() if conn.execute(select(func.count()).select_from(t)).scalar()]


def _copy_table(src: Connection, dst: Connection, table: Table) -> tuple[int, str]:
    d = _Digest(table)
    names = [c.key for c in table.columns]
    types = [c.type for c in table.columns]
    batch: list[dict[str, Any]] = []
    for row in _rows(src, table):
        d.add(row)
        batch.append({k: _to_destination(t, v) for k, t, v in zip(names, types, row, strict=True)})
        if len(batch) >= BATCH:
            dst.execute(insert(table), batch)
            batch = []
    if batch:
        dst.execute(insert(table), batch)
    return d.n, d.sha.hexdigest()


def _reset_sequences(dst: Connection) -> None:
    """PostgreSQL: let the next id of each table follow the largest one copied."""
    for table in tables():
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and pk[0].autoincrement in (True, "auto") and pk[0].type.python_type is int:
            dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "
                             f"coalesce((SELECT max({pk[0].name}) FROM {table.name}), 0) + 1, false)"))


def _check_weights(dst: Connection) -> tuple[int, str]:
    """The weights table, verified: each stored model's bytes, in chunk order, hash to its registered
    SHA-256. (rows, a checksum over (model id, SHA-256) pairs)."""
    registered = dict(dst.execute(select(ModelVersionRow.id, ModelVersionRow.weights_sha256)).all())
    digests: dict[int, Any] = {}
    n = 0
    for model_id, _chunk, data in _rows(dst, ModelWeightsChunkRow.__table__):  # type: ignore[arg-type]
        digests.setdefault(model_id, hashlib.sha256()).update(bytes(data))
        n += 1
    summary = hashlib.sha256()
    for model_id in sorted(digests):
        actual = digests[model_id].hexdigest()
        if actual != registered.get(model_id):
            raise DatabaseError(f"model {model_id}: the weights copied have SHA-256 {actual}, registered "
                                f"{registered.get(model_id)}: nothing was copied")
        summary.update(f"{model_id}:{actual}\n".encode())
    return n, summary.hexdigest()


def copy_project(src: Database, dst: Database, *, weights_file: WeightsFile | None = None,
                 on_progress: OnProgress | None = None) -> CopyReport:
    """Copy every row of ``src`` into the empty ``dst`` (both at this app's head revision), verified.

    ``weights_file(model id)``: for each version whose weights the source does not store, a local file of
    them to store in the destination within the copy's transaction (None: leave that one out).
    Raises DatabaseError (and the destination stays empty) when anything differs.
    """
    head = migrate.head_revision()
    for db, role in ((src, "source"), (dst, "destination")):
        current = migrate.current_revision(db.engine)
        if current != head:
            raise DatabaseError(f"the {role} {db.url} is at schema revision {current or '(none)'}, not {head}: "
                                f"run `annotator --db URL db upgrade` on it first")
    if src.url_with_password == dst.url_with_password:
        raise DatabaseError("the source and the destination are the same database")
    todo = tables()
    checks: list[TableCheck] = []
    snapshot = {"isolation_level": "REPEATABLE READ"} if src.dialect == "postgresql" else {}
    with src.engine.connect().execution_options(**snapshot) as s_conn, s_conn.begin(), \
            dst.engine.connect().execution_options(annotator_write=True) as d_conn, d_conn.begin():
        filled = nonempty_tables(d_conn)
        if filled:
            raise DatabaseError(f"the destination {dst.url} is not empty (rows in {', '.join(filled)}): "
                                "copy into a new, empty database")
        copied: dict[str, tuple[int, str]] = {}
        for i, table in enumerate(todo):
            if on_progress is not None:
                on_progress(i, len(todo), table.name)
            copied[table.name] = _copy_table(s_conn, d_conn, table)
        added = 0
        if weights_file is not None:
            stored = set(d_conn.execute(select(ModelWeightsChunkRow.model_version_id).distinct()).scalars())
            for model_id in d_conn.execute(select(ModelVersionRow.id).order_by(ModelVersionRow.id)).scalars():
                file = None if model_id in stored else weights_file(model_id)
                if file is not None:
                    models_repo.store_weights(d_conn, model_id, file)
                    added += 1
        if dst.dialect == "postgresql":
            _reset_sequences(d_conn)
        for table in todo:
            rows, digest = copied[table.name]
            if table.name == WEIGHTS_TABLE:
                verified = _check_weights(d_conn)  # each model's bytes hash to its registered SHA-256
                if added:  # the destination holds more than the source did: the hashes are the reference
                    rows, digest = verified
            back_rows, back = verified if table.name == WEIGHTS_TABLE and added else checksum(d_conn, table)
            checks.append(TableCheck(table.name, rows, digest, back_rows, back))
        bad = [c for c in checks if not c.ok]
        if bad:
            raise DatabaseError("the copy differs from the source, so nothing was copied: " + "; ".join(
                f"{c.table}: {c.rows} rows (sha256 {c.checksum[:12]}) read, {c.copied_rows} rows "
                f"(sha256 {c.copied_checksum[:12]}) written" for c in bad))
        if on_progress is not None:
            on_progress(len(todo), len(todo), "verified")
    return CopyReport(src.url, dst.url, head, tuple(checks), added)


def prepare_destination(dst: Database) -> None:
    """Refuse a destination with anything in it (another revision, foreign tables); give a blank one the
    schema. Rows in an up-to-date annotator schema are refused by :func:`copy_project` itself."""
    current = migrate.current_revision(dst.engine)
    if current is None:
        with dst.engine.connect() as conn:
            found = inspect(conn).get_table_names()
        if found:
            raise DatabaseError(f"the destination {dst.url} is not empty (tables {', '.join(sorted(found)[:5])}"
                                f"{', ...' if len(found) > 5 else ''}): copy into a new, empty database")
        migrate.upgrade(dst.engine)
    elif current != migrate.head_revision():
        raise DatabaseError(f"the destination {dst.url} already holds a project (schema revision {current}): "
                            "copy into a new, empty database")
