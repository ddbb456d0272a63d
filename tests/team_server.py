"""A PostgreSQL server for team tests: trust for the superuser over the Unix socket (the owner who runs
``team init``), SCRAM passwords over TCP on 127.0.0.1 (the raters' workstations). One per test run."""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

from tests.conftest import PgServer, _as_postgres, launch_pg_server

_server: TeamServer | None = None


class TeamServer(PgServer):
    def __init__(self, bindir: Path, root: Path) -> None:
        super().__init__(bindir, root)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def start(self) -> None:
        subprocess.run(_as_postgres([str(self.bindir / "initdb"), "-D", str(self.data), "--auth-local=trust",
                                     "--auth-host=scram-sha-256", "-U", "postgres", "--no-sync", "-E", "UTF8"]),
                       check=True, capture_output=True)
        opts = f"-k {self.sock} -c listen_addresses=127.0.0.1 -p {self.port} -F"
        subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts,
                                     "-l", str(self.root / "log"), "-w", "start"]),
                       check=True, capture_output=True)

    def owner_url(self, dbname: str) -> str:
        return f"postgresql://postgres@/{dbname}?host={self.sock}&port={self.port}"

    def rater_url(self, dbname: str, login: str, password: str | None) -> str:
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{login}{secret}@127.0.0.1:{self.port}/{dbname}"

    def rater_dsn(self, dbname: str, login: str, password: str) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={login} password={password}"

    def new_database(self) -> str:
        import psycopg

        name = f"team_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"host={self.sock} port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name


def team_server() -> TeamServer:
    """The run's team server (started on first use, stopped at exit); skips where PostgreSQL is missing."""
    global _server
    if _server is not None:
        return _server
    server = launch_pg_server(TeamServer, "annotator-team-")
    root = server.root

    def stop() -> None:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    _server = server
    return server
