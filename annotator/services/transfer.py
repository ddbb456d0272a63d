"""From solo to team (and back): copy a whole project into a new, empty database, verified.

``annotator db copy SRC_URL DST_URL`` moves a SQLite project onto a PostgreSQL server (or a server's
project into a SQLite file): catalogue, every label version, decisions, reader studies and their reads,
the audit log, models and their predictions, with their ids and versions. The copy is verified before it
commits (row counts and a SHA-256 per table; see :mod:`annotator.storage.transfer`) and refuses a
destination that is not empty.

Models: a SQLite project keeps weights as files in its models folder. Copied onto PostgreSQL, each
version's weights file (checked against its SHA-256) is stored in the database too, so every workstation
of the team can load it; a model whose file is gone stops the copy unless ``skip_missing_weights``.
Weights stored in a PostgreSQL project travel as rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from annotator.domain.errors import DatabaseError, ModelIntegrityError
from annotator.services import models as model_service
from annotator.storage import models_repo, transfer
from annotator.storage.database import Database, open_database
from annotator.storage.transfer import CopyReport, OnProgress, TableCheck

__all__ = ["CopyOutcome", "CopyReport", "TableCheck", "copy_project"]


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    report: CopyReport
    skipped_models: tuple[str, ...]  # "model ID: why" for each version copied without its weights


def copy_project(src_url: str, dst_url: str, *, skip_missing_weights: bool = False,
                 on_progress: OnProgress | None = None) -> CopyOutcome:
    src = open_database(src_url)  # upgraded to this app's schema, as every command does
    try:
        dst = open_database(dst_url, upgrade=False)
        try:
            transfer.prepare_destination(dst)
            skipped: list[str] = []
            files = _weights_files(src, skipped, skip_missing_weights) if dst.dialect == "postgresql" else None
            report = transfer.copy_project(src, dst, weights_file=files, on_progress=on_progress)
            return CopyOutcome(report, tuple(skipped))
        finally:
            dst.close()
    finally:
        src.close()


def _weights_files(src: Database, skipped: list[str], skip_missing: bool) -> transfer.WeightsFile:
    """Each model's weights file in the source's models folder, checked by its SHA-256."""
    def weights_file(model_id: int) -> Path | None:
        try:
            return model_service.local_weights(src, models_repo.get(src, model_id))
        except ModelIntegrityError as exc:
            if not skip_missing:
                raise DatabaseError(f"{exc}; nothing was copied (--skip-missing-weights copies the model "
                                    "without its weights)") from exc
            skipped.append(f"model {model_id}: {exc}")
            return None

    return weights_file
