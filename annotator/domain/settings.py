"""Where this run of annotator keeps its things: resolved once at start, then passed along.

Resolved by :func:`annotator.storage.settings.resolve` (the command line's ``--db``, else
``ANNOTATOR_DB``, else the per-user data folder; ``ANNOTATOR_MODELS_DIR`` for the model registry)
and carried by the open database, so no other module reads the environment or parses a URL.
Project rules (grading scale, blinding) are not here: they live in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class AppSettings:
    database_url: str  # a SQLAlchemy URL: a SQLite file or a PostgreSQL server
    database_file: Path | None  # the SQLite file behind database_url; None for PostgreSQL or in-memory
    models_dir: Path  # the registry folder of this project's trained models
    user_data_dir: Path  # the per-user data folder (default database, demo DICOM files)
