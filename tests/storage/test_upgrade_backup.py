"""Before a schema upgrade of an existing SQLite project file, a consistent copy is kept beside it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from annotator.cli import main
from annotator.domain.errors import DatabaseError
from annotator.storage import migrate, people
from annotator.storage.database import create_db_engine, open_database

OLD = "0002"


def _old_project(url: str) -> Engine:
    """A database at revision 0002 holding one rater, its engine left open (on SQLite the row then sits
    in the write-ahead log, not yet in the main file)."""
    engine = create_db_engine(url)
    migrate.upgrade(engine, OLD)
    with engine.connect() as conn, conn.begin():
        conn.execute(text("INSERT INTO raters (id, name, role, simulated, created_at) "
                          "VALUES (1, 'alice', 'annotator', false, '2026-01-02 03:04:05')"))
    return engine


def test_upgrading_a_sqlite_file_keeps_a_consistent_backup_of_the_old_revision(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    engine = _old_project(f"sqlite:///{path}")
    assert Path(f"{path}-wal").stat().st_size > 0  # the data is (also) in the WAL: a file copy could miss it
    db = open_database(str(path))
    try:
        backup = db.upgrade_backup
        assert backup is not None and backup.parent == tmp_path
        assert backup.name.startswith(f"demo.db.bak-{OLD}-")
        assert [p.name for p in tmp_path.glob("demo.db.bak-*")] == [backup.name]
        assert migrate.current_revision(db.engine) == migrate.head_revision() != OLD
        assert [r.name for r in people.list_raters(db)] == ["alice"]
    finally:
        db.close()
        engine.dispose()
    with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as old:
        assert old.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert old.execute("SELECT version_num FROM alembic_version").fetchall() == [(OLD,)]
        assert old.execute("SELECT name, role FROM raters").fetchall() == [("alice", "annotator")]
        assert old.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
    assert not Path(f"{backup}-wal").exists()
    reopened = open_database(str(path))  # already at head: no second backup
    assert reopened.upgrade_backup is None
    reopened.close()
    assert len(list(tmp_path.glob("demo.db.bak-*"))) == 1


def test_a_new_database_gets_no_backup(tmp_path: Path) -> None:
    db = open_database(str(tmp_path / "new.db"))
    assert db.upgrade_backup is None
    db.close()
    assert sorted(p.name for p in tmp_path.iterdir() if ".bak" in p.name) == []


def test_postgresql_gets_no_backup(pg_server) -> None:  # type: ignore[no-untyped-def]
    url = pg_server.create_database()
    engine = _old_project(url)
    engine.dispose()
    db = open_database(url)
    assert db.upgrade_backup is None
    assert migrate.current_revision(db.engine) == migrate.head_revision()
    db.close()


def test_the_cli_says_where_the_backup_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.db"
    _old_project(f"sqlite:///{path}").dispose()
    assert main(["--db", str(path), "db", "upgrade"]) == 0
    out = capsys.readouterr()
    [backup] = tmp_path.glob("p.db.bak-*")
    assert f"schema {OLD} -> {migrate.head_revision()}" in out.out
    assert f"backup of the database before the upgrade: {backup}" in out.out
    _old_project(f"sqlite:///{tmp_path / 'q.db'}").dispose()
    assert main(["--db", str(tmp_path / "q.db"), "status"]) == 0  # any command that opens it says so
    [other] = tmp_path.glob("q.db.bak-*")
    assert f"kept in {other}" in capsys.readouterr().err


def test_the_backup_is_copied_under_the_upgrades_write_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the copy is made, no other connection can begin a write: nothing is committed between the
    copy and the upgrade."""
    path = tmp_path / "p.db"
    _old_project(f"sqlite:///{path}").dispose()
    real_backup = migrate.backup_sqlite
    writers: list[str] = []

    def backup_while_probing(file: Path, revision: str) -> Path:
        with sqlite3.connect(file, timeout=0) as other:
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("INSERT INTO raters (id, name, role, simulated, created_at) "
                              "VALUES (2, 'bob', 'annotator', false, '2026-01-02 03:04:05')")
                other.commit()
                writers.append("committed")
            except sqlite3.OperationalError as exc:
                writers.append(str(exc))
        return real_backup(file, revision)

    monkeypatch.setattr(migrate, "backup_sqlite", backup_while_probing)
    db = open_database(str(path))
    try:
        assert writers == ["database is locked"]
        assert [r.name for r in people.list_raters(db)] == ["alice"]
    finally:
        db.close()


def test_a_failing_upgrade_names_its_backup_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    engine = _old_project(f"sqlite:///{path}")
    with engine.connect() as conn, conn.begin():  # the column 0003 adds, there already: the upgrade fails
        conn.execute(text("ALTER TABLE raters ADD COLUMN password_hash TEXT"))
    engine.dispose()
    with pytest.raises(DatabaseError) as failed:
        open_database(str(path))
    [backup] = tmp_path.glob("p.db.bak-*")
    message = str(failed.value)
    assert f"the schema upgrade of {path} from revision {OLD}" in message and str(backup) in message
    assert "duplicate column name: password_hash" in message and "rolled back" in message
    with sqlite3.connect(path) as now, sqlite3.connect(backup) as before:
        assert now.execute("SELECT version_num FROM alembic_version").fetchall() == [(OLD,)]
        assert before.execute("SELECT version_num FROM alembic_version").fetchall() == [(OLD,)]
        assert now.execute("SELECT name FROM raters").fetchall() == [("alice",)]


def test_a_file_with_tables_but_no_revision_is_backed_up_too(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('kept')")
        conn.commit()
    db = open_database(str(path))
    try:
        backup = db.upgrade_backup
        assert backup is not None and backup.name.startswith("old.db.bak-unversioned-")
        assert migrate.current_revision(db.engine) == migrate.head_revision()
    finally:
        db.close()
    with closing(sqlite3.connect(backup)) as copy:
        assert copy.execute("SELECT text FROM notes").fetchall() == [("kept",)]
        assert copy.execute("SELECT count(*) FROM sqlite_master WHERE name = 'alembic_version'").fetchone() == (0,)
