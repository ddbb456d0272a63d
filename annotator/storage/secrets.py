"""The project's secret salt: created once, at random, stored in the database, never shown or exported.

De-identified bundles seed their pseudonyms from it, so one project maps an original UID or patient id
to the same pseudonym in every export, while nobody without the database can link the pseudonyms back.
"""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator.storage import audit
from annotator.storage.database import Database
from annotator.storage.tables import ProjectSecretRow

SALT_BYTES = 32


def deid_salt(db: Database) -> str:
    """The project's de-identification salt (64 hex digits), created on first use (audited, without it)."""
    with db.read() as s:
        row = s.get(ProjectSecretRow, 1)
        if row is not None:
            return row.deid_salt

    def work(s: Session) -> str:
        existing = s.get(ProjectSecretRow, 1)
        if existing is not None:  # another writer created it meanwhile
            return existing.deid_salt
        salt = secrets.token_hex(SALT_BYTES)
        s.add(ProjectSecretRow(id=1, deid_salt=salt))
        audit.record(s, rater_id=None, action="project.deid_salt", entity="project_secrets", entity_id=1,
                     after={"created": True})
        return salt

    try:
        return db.write(work)
    except IntegrityError:  # PostgreSQL: a concurrent first export inserted the row first
        with db.read() as s:
            row = s.get(ProjectSecretRow, 1)
            assert row is not None
            return row.deid_salt
