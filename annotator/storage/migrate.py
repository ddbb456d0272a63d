"""Schema upgrades: run on open, refuse a database newer than this application."""

from __future__ import annotations

from contextlib import ExitStack
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from annotator.domain.errors import DatabaseTooNew


def _script_location(stack: ExitStack) -> Path:
    return stack.enter_context(resources.as_file(resources.files("annotator.migrations")))


def alembic_config(stack: ExitStack, connection: Connection | None = None, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_script_location(stack)))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    with ExitStack() as stack:
        head = ScriptDirectory.from_config(alembic_config(stack)).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    with ExitStack() as stack:
        script = ScriptDirectory.from_config(alembic_config(stack))
        return {rev.revision for rev in script.walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` inside one transaction; refuse a too-new database."""
    current = current_revision(engine)
    if current is not None and current not in known_revisions():
        raise DatabaseTooNew(
            f"database {engine.url.render_as_string(hide_password=True)} is at schema revision {current}, "
            f"newer than this version of annotator understands (head {head_revision()}): "
            "upgrade annotator, or open another database"
        )
    if current == head_revision() and revision == "head":
        return
    with ExitStack() as stack, engine.connect().execution_options(annotator_write=True) as conn, conn.begin():
        command.upgrade(alembic_config(stack, connection=conn), revision)


def check(engine: Engine) -> None:
    """Raise if the ORM tables and the migrations disagree (``alembic check``)."""
    with ExitStack() as stack, engine.connect() as conn:
        command.check(alembic_config(stack, connection=conn))
