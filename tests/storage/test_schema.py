"""Schema, migrations and connection settings, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from annotator.domain.entities import Role
from annotator.domain.errors import DatabaseTooNew
from annotator.storage import migrate, people
from annotator.storage.database import create_db_engine, open_database


def test_fresh_database_is_at_head_without_drift(db) -> None:  # type: ignore[no-untyped-def]
    assert migrate.current_revision(db.engine) == migrate.head_revision()
    migrate.check(db.engine)  # alembic check: ORM tables and migrations agree


def test_revision_chain_is_linear() -> None:
    from contextlib import ExitStack

    from alembic.script import ScriptDirectory

    with ExitStack() as stack:
        script = ScriptDirectory.from_config(migrate.alembic_config(stack))
        assert len(script.get_heads()) == 1
        revs = list(script.walk_revisions())
        assert [r.revision for r in revs][-1] == "0001"
        assert all(len(r._all_down_revisions) <= 1 for r in revs)


def test_old_migrations_import_no_application_code() -> None:
    """A revision is frozen: it copies the constants and SQL it needs, so a later change of the app
    cannot change what upgrading an old database does."""
    import ast

    versions = Path(__file__).parents[2] / "migrations" / "versions"
    files = sorted(versions.glob("[0-9]*.py"))
    assert len(files) >= 3
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] == "annotator"], f"{f.name} imports {names}"


def test_newer_database_is_refused_with_a_clear_message(db_url: str) -> None:
    db = open_database(db_url)
    with db.engine.connect() as conn, conn.begin():
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    db.close()
    with pytest.raises(DatabaseTooNew, match="newer than this version of annotator"):
        open_database(db_url)


def test_upgrade_from_first_revision_keeps_data(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate.upgrade(engine, "0001")
    assert migrate.current_revision(engine) == "0001"
    with engine.connect() as conn, conn.begin():
        conn.execute(text("INSERT INTO raters (id, name, role, simulated, created_at) "
                          "VALUES (1, 'alice', 'annotator', false, '2026-01-02 03:04:05')"))
        conn.execute(text("INSERT INTO patients (id, patient_key, patient_name) VALUES (1, 'P1', 'A^B')"))
        conn.execute(text("INSERT INTO studies (id, patient_id, study_instance_uid, study_date, description) "
                          "VALUES (1, 1, '1.2.3', '20260101', '')"))
        conn.execute(text("INSERT INTO series (id, study_id, series_instance_uid, description, modality, "
                          "frame_of_reference_uid) VALUES (1, 1, '1.2.3.4', 'AX T2', 'MR', '')"))
        conn.execute(text(
            "INSERT INTO images (id, series_id, sop_instance_uid, sop_class_uid, slice_index, rows, columns, "
            "pixel_spacing_row, pixel_spacing_col, transfer_syntax_uid, file_path, sha256, imported_at) "
            "VALUES (1, 1, '1.2.3.4.5', '', 0, 64, 64, 0.5, 0.6, '', '/x.dcm', 'ab', '2026-01-02 03:04:05')"))
        conn.execute(text(
            "INSERT INTO annotations (id, image_id, rater_id, version, x_px, y_px, grade, scale_code, action, "
            "created_at) VALUES (1, 1, 1, 1, 10.5, 20.25, 2, 'lee', 'set', '2026-01-02 03:04:05')"))
    engine.dispose()

    db = open_database(db_url)  # upgrades on open
    assert migrate.current_revision(db.engine) == migrate.head_revision()
    from annotator.storage import labels

    [lab] = labels.current(db)
    assert (lab.x_px, lab.y_px, lab.grade, lab.scale_code, lab.version) == (10.5, 20.25, 2, "lee", 1)
    assert people.rater_by_name(db, "alice").role is Role.ANNOTATOR
    migrate.check(db.engine)
    db.close()


def test_sqlite_connection_settings(sqlite_db) -> None:  # type: ignore[no-untyped-def]
    with sqlite_db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_sqlite_writes_begin_immediate_and_wait_for_the_lock(sqlite_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A write transaction takes the write lock at BEGIN and queues behind another writer."""
    path = sqlite_db.engine.url.database
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    done = threading.Event()

    def writer() -> None:
        people.add_rater(sqlite_db, "bob", Role.REVIEWER)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.3)
    assert not done.is_set(), "the write should wait for the other writer's lock"
    other.execute("ROLLBACK")
    other.close()
    t.join(10)
    assert done.is_set()
    assert [r.name for r in people.list_raters(sqlite_db)] == ["bob"]


def test_foreign_keys_are_enforced(db) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), db.engine.connect() as conn, conn.begin():
        conn.execute(text("INSERT INTO studies (patient_id, study_instance_uid, study_date, description) "
                          "VALUES (999, '9.9', '', '')"))


def test_bad_url_and_missing_folder_are_clear_errors(tmp_path: Path) -> None:
    from annotator.domain.errors import DatabaseError

    with pytest.raises(DatabaseError, match="does not exist"):
        open_database(str(tmp_path / "no" / "such" / "dir" / "x.db"))
    with pytest.raises(DatabaseError, match="unsupported database"):
        open_database("mysql://localhost/x")


def test_default_url_honours_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from annotator.storage.settings import resolve

    monkeypatch.delenv("ANNOTATOR_MODELS_DIR", raising=False)
    monkeypatch.setenv("ANNOTATOR_DB", str(tmp_path / "env.db"))
    assert resolve().database_url == f"sqlite:///{tmp_path / 'env.db'}"
    assert resolve(str(tmp_path / "cli.db")).database_url == f"sqlite:///{tmp_path / 'cli.db'}"  # --db wins
    monkeypatch.delenv("ANNOTATOR_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    default = resolve()
    assert default.database_url.endswith("annotator/annotator.db")
    assert str(tmp_path / "xdg") in default.database_url
    assert default.user_data_dir.is_dir() and default.database_file == default.user_data_dir / "annotator.db"
    assert resolve("postgres://u@host/db").database_url == "postgresql+psycopg://u@host/db"
    assert resolve("postgres://u@host/db").database_file is None
