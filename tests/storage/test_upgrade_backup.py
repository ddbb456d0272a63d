"""Before a schema upgrade of an existing SQLite project file, a consistent copy is kept beside it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from annotator.cli import main
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
