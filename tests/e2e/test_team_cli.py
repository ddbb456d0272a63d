"""`annotator team` from the command line, on a real PostgreSQL server: init as the owner, raters added
with a password on stdin, workstations connecting with their own login, a removed rater locked out."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg
import pytest

from tests.team_server import team_server

pytestmark = pytest.mark.postgres


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "annotator", *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_team_init_add_connect_and_remove_from_the_command_line() -> None:
    server = team_server()
    name = server.new_database()
    owner = server.owner_url(name)
    done = run("team", "init", owner)
    assert done.returncode == 0, done.stderr
    assert f"{name}_annotator" in done.stdout and f"{name}_admin" in done.stdout
    assert run("team", "init", owner).returncode == 0  # again (after an upgrade): idempotent

    for rater, role in (("carol", "admin"), ("dave", "annotator")):
        added = run("--db", owner, "team", "add-rater", rater, "--role", role, stdin=f"pw-of-{rater}\n")
        assert added.returncode == 0, added.stderr
    with psycopg.connect(server.rater_dsn(name, "dave", "pw-of-dave")) as conn:  # SCRAM, not md5
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with psycopg.connect(f"host={server.sock} port={server.port} user=postgres dbname={name}") as conn:
        secret = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'dave'").fetchone()
        assert secret is not None and secret[0].startswith("SCRAM-SHA-256$")

    # a workstation: the connection's user is the rater; --as somebody else is refused
    carol = server.rater_url(name, "carol", "pw-of-carol")
    changed = run("--db", carol, "settings", "set", "hide-reader-names", "true")
    assert changed.returncode == 0, changed.stderr
    dave = server.rater_url(name, "dave", "pw-of-dave")
    refused = run("--db", dave, "settings", "set", "hide-reader-names", "false")
    assert refused.returncode == 1 and "dave is an annotator" in refused.stderr
    posing = run("--db", dave, "settings", "set", "hide-reader-names", "false", "--as", "carol")
    assert posing.returncode == 1 and "connected as dave" in posing.stderr
    shown = run("--db", dave, "settings", "show", "--json")
    assert json.loads(shown.stdout)["hide_reader_names_from_reviewers"] is True

    short = run("--db", owner, "team", "add-rater", "erin", stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    wrong = run("--db", server.rater_url(name, "dave", "not-his-password"), "status")
    assert wrong.returncode == 1 and "password authentication failed" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    removed = run("--db", owner, "team", "remove-rater", "dave")
    assert removed.returncode == 0, removed.stderr
    locked = run("--db", dave, "status")
    assert locked.returncode == 1 and "not permitted to log in" in locked.stderr
    listed = run("--db", owner, "raters", "list")
    assert "dave" in listed.stdout  # the rater and her work stay


def test_sslmode_in_the_url_is_honoured() -> None:
    server = team_server()
    name = server.new_database()
    assert run("team", "init", server.owner_url(name)).returncode == 0
    # this test server has no certificate: requiring TLS must fail rather than fall back to plain text
    done = run("--db", server.rater_url(name, "nobody", "x") + "?sslmode=require", "status")
    assert done.returncode == 1 and "SSL" in done.stderr


def _downgrade_one_revision(url: str) -> None:
    """Undo the newest migration, as the owner, with Alembic (the schema one release behind)."""
    from contextlib import ExitStack

    from alembic import command
    from sqlalchemy import create_engine

    from annotator.storage.migrate import alembic_config

    engine = create_engine(url)
    try:
        with ExitStack() as stack, engine.begin() as conn:
            command.downgrade(alembic_config(stack, connection=conn), "-1")
    finally:
        engine.dispose()


def test_a_rater_never_migrates_and_is_told_to_ask_the_owner() -> None:
    server = team_server()
    name = server.new_database()
    owner = server.owner_url(name)
    assert run("team", "init", owner).returncode == 0
    assert run("--db", owner, "team", "add-rater", "fay", stdin="pw-of-fay!\n").returncode == 0
    _downgrade_one_revision(f"postgresql+psycopg://postgres@/{name}?host={server.sock}&port={server.port}")
    behind = run("--db", server.rater_url(name, "fay", "pw-of-fay!"), "status")  # as if annotator were upgraded since
    assert behind.returncode == 1 and "team init" in behind.stderr and "Traceback" not in behind.stderr

    # the owner's `db upgrade` brings the server-side rules up to date with the schema it upgraded
    group = f"{name}_annotator"
    with psycopg.connect(f"host={server.sock} port={server.port} user=postgres dbname={name}",
                         autocommit=True) as conn:
        conn.execute(f'REVOKE INSERT ON annotations FROM "{group}"')  # rules older than the schema
        upgraded = run("--db", owner, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        assert conn.execute("SELECT has_table_privilege(%s, 'annotations', 'INSERT')", (group,)).fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM pg_policies WHERE tablename = 'raters'").fetchone() == (3,)


def test_a_database_owner_with_createrole_runs_the_team_and_pg_dump_restores_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What the README does: no superuser needed day to day, and a backup that restores under a new name."""
    server = team_server()
    admin = f"host={server.sock} port={server.port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE ROLE spine_owner LOGIN CREATEROLE")
        conn.execute("CREATE DATABASE spine OWNER spine_owner")
    owner = f"postgresql://spine_owner@/spine?host={server.sock}&port={server.port}"
    assert run("team", "init", owner).returncode == 0
    assert run("--db", owner, "team", "add-rater", "ida", stdin="pw-of-ida!\n").returncode == 0
    ida = server.rater_url("spine", "ida", "pw-of-ida!")
    assert run("--db", ida, "status").returncode == 0

    dump = tmp_path / "spine.dump"
    done = subprocess.run([str(server.bindir / "pg_dump"), "-Fc", "-f", str(dump), "-h", str(server.sock),
                           "-p", str(server.port), "-U", "spine_owner", "spine"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE spine_copy OWNER spine_owner")
    done = subprocess.run([str(server.bindir / "pg_restore"), "-h", str(server.sock), "-p", str(server.port),
                           "-U", "spine_owner", "-d", "spine_copy", str(dump)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    copy_owner = f"postgresql://spine_owner@/spine_copy?host={server.sock}&port={server.port}"
    assert run("team", "init", copy_owner).returncode == 0  # the copy's own group roles; ida joins hers
    shown = run("--db", server.rater_url("spine_copy", "ida", "pw-of-ida!"), "status", "--json")
    assert shown.returncode == 0, shown.stderr
    with psycopg.connect(server.rater_dsn("spine_copy", "ida", "pw-of-ida!")) as conn:
        assert conn.execute("SELECT annotator_me() IS NOT NULL, current_user").fetchone() == (True, "ida")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_log")


def test_a_rater_cannot_set_a_team_up_or_add_raters() -> None:
    server = team_server()
    name = server.new_database()
    owner = server.owner_url(name)
    assert run("team", "init", owner).returncode == 0
    assert run("--db", owner, "team", "add-rater", "jo", "--role", "admin", stdin="pw-of-jo!!\n").returncode == 0
    jo = server.rater_url(name, "jo", "pw-of-jo!!")
    for args in (["team", "init", jo], ["--db", jo, "team", "add-rater", "kim"], ["--db", jo, "team", "remove-rater",
                                                                              "jo"]):
        done = run(*args, stdin="pw-of-kim!!\n")
        assert done.returncode == 1 and "refused" in done.stderr and "Traceback" not in done.stderr, done.stderr
