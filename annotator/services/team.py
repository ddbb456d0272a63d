"""Use cases of a team project on a shared PostgreSQL server: set it up, add and remove raters.

Each rater connects as her own login role; the database password is her sign-in, and the server enforces
the project's rule book (grants and row-level security compiled from ``annotator.domain.policy``, see
``annotator.storage.team``). These use cases run as the project's owner: a superuser or the database's
owner with CREATEROLE, never as a rater.
"""

from __future__ import annotations

from annotator.domain.entities import Rater, Role
from annotator.domain.errors import InputError
from annotator.services.auth import MIN_LENGTH
from annotator.storage import people, team
from annotator.storage.database import Database, open_database
from annotator.storage.team import TeamSetup

__all__ = ["TeamSetup", "init", "add_rater", "remove_rater", "connected_rater", "login_enabled", "sign_in"]


def init(url: str) -> TeamSetup:
    """Create the schema (migrations) and the project's group roles, grants and row-level security on the
    PostgreSQL database at ``url``, connected as its owner. Run again after upgrading annotator."""
    db = open_database(url)
    team.install_refusals(db.engine)  # a role that may not set a team up is told so in one line
    try:
        return team.init(db)
    finally:
        db.close()


def add_rater(db: Database, name: str, role: Role, password: str | None, *, login: str | None = None) -> Rater:
    """A PostgreSQL login role (SCRAM password) for a new rater, or a new password that re-enables a
    removed one. ``password`` None: the login role exists already (the same person in another project on
    this server) and keeps its password."""
    if password is not None and len(password) < MIN_LENGTH:
        raise InputError(f"a password needs at least {MIN_LENGTH} characters")
    return team.add_rater(db, name, Role(role), password, login=login)


def remove_rater(db: Database, name: str) -> Rater:
    """Disable the rater's login; every label, read, decision and audit entry of hers stays."""
    return team.remove_rater(db, name)


def connected_rater(db: Database) -> Rater | None:
    """The rater this connection signs in as (a team database), else None: SQLite, or the owner."""
    return team.connected_rater(db)


def sign_in(db: Database) -> Rater | None:
    """The connected rater of a team database, her sign-in audited (the server checked her password);
    None: not a team connection, the app's own sign-in applies."""
    rater = team.connected_rater(db)
    if rater is not None:
        people.record_sign_in(db, rater.id, ok=True)
    return rater


def login_enabled(db: Database, rater: Rater) -> bool | None:
    return team.login_enabled(db, rater)
