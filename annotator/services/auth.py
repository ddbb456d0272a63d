"""Use case: who may sign in as whom — optional rater passwords and who may create reviewers and admins.

A rater may have a password (stored as a salted scrypt hash, never in clear, never in the audit trail);
signing in as a protected rater needs it. Raters without one sign in by picking their name, as in a
pilot or the demo. Once the project has a protected admin, the sign-in screen creates annotators only:
reviewers and admins (who see every reader, i.e. unblinded) are then added by someone holding the
database (``annotator raters add --role``), so a blinded annotator cannot promote herself.

This guards the desktop sign-in against mistakes and casual unblinding. It is not a security boundary
against whoever can open the database file itself: with SQLite that is the file's permissions, with
PostgreSQL the server's roles.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from annotator.domain.entities import Rater, Role
from annotator.domain.errors import InputError, PermissionDenied
from annotator.storage import people
from annotator.storage.database import Database

MIN_LENGTH = 8
_N, _R, _P = 2**14, 8, 1  # scrypt cost: ~50 ms and 16 MiB per check


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InputError(f"a password needs at least {MIN_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def set_password(db: Database, rater: Rater, password: str | None, actor_id: int | None = None) -> Rater:
    """Give ``rater`` a password (None removes it)."""
    if rater.simulated:
        raise InputError(f"rater {rater.name!r} is simulated: nobody signs in as it")
    return people.set_password_hash(db, rater.id, None if password is None else hash_password(password), actor_id)


def verify(db: Database, rater: Rater, password: str | None) -> None:
    """Raise PermissionDenied (audited) unless ``password`` opens ``rater``; a rater without one is open."""
    stored = people.password_hash(db, rater.id)
    if stored is None:
        return
    if not password or not check_password(password, stored):
        people.record_sign_in(db, rater.id, ok=False)
        raise PermissionDenied(f"wrong password for rater {rater.name!r}")


def self_enrolment_roles(db: Database) -> list[Role]:
    """The roles the sign-in screen may create: all, until the project has a protected admin."""
    locked = any(r.role is Role.ADMIN and r.protected for r in people.list_raters(db))
    return [Role.ANNOTATOR] if locked else list(Role)
