"""The command line as a user runs it: a real database file, real DICOM files, real exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def run(*args: str, db: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "annotator"] + (["--db", str(db)] if db else []) + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def mr_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("MR_small.dcm", "CT_small.dcm", "rtplan.dcm"):
        path = get_testdata_file(name, download=False)
        assert path is not None
        shutil.copy(path, folder / name)
    (folder / "notes.txt").write_text("not dicom")
    return folder


def test_help_lists_the_commands() -> None:
    out = run("--help").stdout
    for cmd in ("import", "db", "raters", "status", "gui"):
        assert cmd in out


def test_import_json_then_idempotent_then_status(tmp_path: Path, mr_folder: Path) -> None:
    db = tmp_path / "p.db"
    first = [json.loads(line) for line in run("import", str(mr_folder), "--json", db=db).stdout.splitlines()]
    by_name = {Path(r["path"]).name: r for r in first}
    assert by_name["MR_small.dcm"]["status"] == "imported"
    assert by_name["CT_small.dcm"]["status"] == "imported"
    assert by_name["rtplan.dcm"]["status"] == "rejected" and "pixel" in by_name["rtplan.dcm"]["reason"]
    assert by_name["notes.txt"]["status"] == "rejected" and by_name["notes.txt"]["reason"]
    second = [json.loads(line) for line in run("import", str(mr_folder), "--json", db=db).stdout.splitlines()]
    assert {r["status"] for r in second if r["status"] != "rejected"} == {"skipped"}
    status = json.loads(run("status", "--json", db=db).stdout)
    assert (status["images"], status["series"], status["studies"]) == (2, 2, 2)


def test_moved_files_are_relinked(tmp_path: Path, mr_folder: Path) -> None:
    db = tmp_path / "p.db"
    run("import", str(mr_folder / "MR_small.dcm"), db=db)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(mr_folder / "MR_small.dcm", moved / "renamed.dcm")
    [r] = [json.loads(x) for x in run("import", str(moved), "--json", db=db).stdout.splitlines()]
    assert r["status"] == "relinked"
    assert json.loads(run("status", "--json", db=db).stdout)["images"] == 1


def test_raters_db_and_errors(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    run("raters", "add", "alice", db=db)
    run("raters", "add", "rev", "--role", "reviewer", db=db)
    listing = run("raters", "list", db=db).stdout
    assert "alice" in listing and "reviewer" in listing
    dup = run("raters", "add", "alice", db=db, check=False)
    assert dup.returncode == 1
    assert dup.stderr.strip().count("\n") == 0 and "already exists" in dup.stderr
    current = run("db", "current", db=db).stdout
    assert "up to date" in current
    assert "already at" in run("db", "upgrade", db=db).stdout
    bad = run("import", str(tmp_path / "missing"), "--json", db=db)
    assert json.loads(bad.stdout)["reason"] == "no such file or folder"
    nodir = run("status", db=tmp_path / "no" / "dir.db", check=False)
    assert nodir.returncode == 1 and "does not exist" in nodir.stderr


def test_db_upgrade_from_empty_and_env_var(tmp_path: Path) -> None:
    import os

    db = tmp_path / "env.db"
    env = dict(os.environ, ANNOTATOR_DB=str(db))
    out = subprocess.run([sys.executable, "-m", "annotator", "db", "upgrade"], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout
    from annotator.storage import migrate

    assert f"(empty) -> {migrate.head_revision()}" in out
    assert db.exists()


def test_db_check_passes_on_the_migrated_schema_and_fails_on_drift(tmp_path: Path) -> None:
    """`make lint` runs `annotator db check`: the ORM tables and the migrations must agree."""
    import sqlite3

    db = tmp_path / "p.db"
    assert "the tables and the migrations agree" in run("db", "check", db=db).stdout
    with sqlite3.connect(db) as con:  # a column no migration created: what a forgotten migration looks like
        con.execute("ALTER TABLE raters ADD COLUMN nickname TEXT")
    proc = run("db", "check", db=db, check=False)
    assert proc.returncode != 0
    assert "the tables and the migrations disagree" in proc.stderr and "nickname" in proc.stderr
