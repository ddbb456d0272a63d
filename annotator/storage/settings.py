"""The one place that reads ``--db``, ``ANNOTATOR_DB``, ``ANNOTATOR_MODELS_DIR`` and the platform's
user data folder, and parses database URLs, into an :class:`AppSettings`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from annotator.domain.errors import DatabaseError
from annotator.domain.settings import AppSettings

DB_ENV = "ANNOTATOR_DB"
MODELS_DIR_ENV = "ANNOTATOR_MODELS_DIR"
APP_NAME = "annotator"


def normalise_url(url_or_path: str) -> str:
    """Accept a SQLAlchemy URL or a plain file path; PostgreSQL URLs use the psycopg 3 driver."""
    if "://" not in url_or_path:
        return f"sqlite:///{Path(url_or_path).expanduser().resolve()}"
    if url_or_path.startswith("postgresql://") or url_or_path.startswith("postgres://"):
        return "postgresql+psycopg://" + url_or_path.split("://", 1)[1]
    return url_or_path


def with_password(url: str, password: str) -> str:
    """The database URL with ``password`` for its user (a team workstation's sign-in)."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as exc:
        raise DatabaseError(f"--db {url!r} is not a database URL or file path") from exc
    return parsed.set(password=password).render_as_string(hide_password=False)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL and in-memory SQLite."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as exc:
        raise DatabaseError(f"--db {url!r} is not a database URL or file path") from exc
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser().resolve()


def resolve(db: str | None = None, environ: Mapping[str, str] | None = None) -> AppSettings:
    """Settings for one run: ``db`` (``--db``) wins over ``ANNOTATOR_DB``, which wins over
    ``annotator.db`` in the user data folder (created when it is used).

    The model registry is ``ANNOTATOR_MODELS_DIR`` if set; else, for a SQLite file,
    ``<its folder>/<its stem>.models``; else (PostgreSQL, in-memory SQLite) ``models`` in the user
    data folder.
    """
    env = os.environ if environ is None else environ
    user_data = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    chosen = db or env.get(DB_ENV)
    if not chosen:
        user_data.mkdir(parents=True, exist_ok=True)
        chosen = str(user_data / "annotator.db")
    url = normalise_url(chosen)
    file = sqlite_file(url)
    if env.get(MODELS_DIR_ENV):
        models = Path(env[MODELS_DIR_ENV]).expanduser()
    elif file is not None:
        models = file.parent / f"{file.stem}.models"
    else:
        models = user_data / "models"
    return AppSettings(database_url=url, database_file=file, models_dir=models, user_data_dir=user_data)
