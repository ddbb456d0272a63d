"""Shared fixtures: offscreen Qt, SQLite and a real PostgreSQL 15 server started in a temp folder."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import typing
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.pop("ANNOTATOR_DB", None)

BACKENDS = ["sqlite", "postgresql"]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


class PgServer:
    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.sock = root

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@/{dbname}?host={self.sock}"

    def start(self) -> None:
        subprocess.run(_as_postgres([str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                                     "-U", "postgres", "--no-sync", "-E", "UTF8"]),
                       check=True, capture_output=True)
        self.start_again()

    def start_again(self) -> None:
        """Start the server on its existing data folder (-F: no fsync, for speed; -w: wait until it accepts)."""
        opts = f"-k {self.sock} -c listen_addresses='' -F"
        subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts,
                                     "-l", str(self.root / "log"), "-w", "start"]),
                       check=True, capture_output=True)

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: like a crash (recovery on the next start); ``fast``: roll back, disconnect, shut down."""
        subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode,
                                     "-w", "stop"]), capture_output=True)

    def restart(self, mode: str = "fast") -> None:
        """Stop the server (clients lose their connections) and start it again with the same data."""
        self.stop(mode)
        self.start_again()

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host={self.sock} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


S = typing.TypeVar("S", bound=PgServer)


def launch_pg_server(kind: type[S], prefix: str) -> S:
    """A started server of ``kind`` in a new temp folder owned by ``postgres``; skips (fails in CI, where
    ANNOTATOR_REQUIRE_POSTGRES is set) when the server binaries are missing."""
    bindir = _pg_bin()
    if bindir is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.environ.get("ANNOTATOR_REQUIRE_POSTGRES"):  # CI: a skipped backend is a failed run
            pytest.fail(message + " and ANNOTATOR_REQUIRE_POSTGRES is set")
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(root, 0o777)
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    server = kind(bindir, root)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')[-500:]}")
    return server


def _new_pg_server() -> Iterator[PgServer]:
    server = launch_pg_server(PgServer, "annotator-pg-")
    root = server.root
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    yield from _new_pg_server()


@pytest.fixture
def own_pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of the test's own, which it may stop and restart without disturbing others."""
    yield from _new_pg_server()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'project.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database()


@pytest.fixture
def db(db_url: str):  # type: ignore[no-untyped-def]
    from annotator.storage.database import open_database

    database = open_database(db_url)
    yield database
    database.close()


@pytest.fixture
def sqlite_db(tmp_path: Path):  # type: ignore[no-untyped-def]
    from annotator.storage.database import open_database

    database = open_database(f"sqlite:///{tmp_path / 'project.db'}")
    yield database
    database.close()
