"""Use case: who may sign in as whom — optional rater passwords and who may create reviewers and admins.

A rater may have a password (stored as a salted scrypt hash, never in clear, never in the audit trail);
signing in as a protected rater needs it. Raters without one sign in by picking their name, as in a
pilot or the demo. Once the project has a protected admin ("locked"), the sign-in screen creates
annotators only, and a reviewer or admin without a password cannot sign in until one is set: reviewers
and admins see every reader, so in a locked project a blinded annotator can neither create nor borrow
such an account at the sign-in screen.

This guards the desktop sign-in against mistakes and casual unblinding. It is not a security boundary
against whoever can open the database itself — including through the command line (``annotator raters
add``, ``raters password``), which works with database access: with SQLite the file's permissions, with
PostgreSQL the server's roles are the boundary.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata

from annotator.domain import policy as policy_rules
from annotator.domain.entities import Rater, Role
from annotator.domain.errors import InputError, PermissionDenied
from annotator.domain.policy import Action, needs_password
from annotator.services.project import policy
from annotator.storage import people
from annotator.storage.database import Database

MIN_LENGTH = 8
_N, _R, _P = 2**14, 8, 1  # scrypt cost: ~50 ms and 16 MiB per check


def _bytes(password: str) -> bytes:
    return unicodedata.normalize("NFC", password).encode()  # "café" typed either way is one password


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InputError(f"a password needs at least {MIN_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(_bytes(password), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(_bytes(password), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError, OverflowError, MemoryError):  # a damaged stored hash opens nothing
        return False
    return hmac.compare_digest(got.hex(), digest)


def set_password(db: Database, rater: Rater, password: str | None, actor: Rater | None = None) -> Rater:
    """Give ``rater`` a password (None removes it). ``actor``: the rater doing it, who needs the right to
    manage raters (PermissionDenied otherwise), audited; None: the database's owner (a script)."""
    if actor is not None:
        policy(db, actor).require(Action.MANAGE_RATERS)
    if rater.simulated:
        raise InputError(f"rater {rater.name!r} is simulated: nobody signs in as it")
    return people.set_password_hash(db, rater.id, None if password is None else hash_password(password),
                                    None if actor is None else actor.id)


def locked(db: Database) -> bool:
    """Does the project have an admin with a password?"""
    return policy_rules.project_locked(people.list_raters(db))


def verify(db: Database, rater: Rater, password: str | None) -> None:
    """Raise PermissionDenied (audited) unless ``password`` opens ``rater``; a rater without one is open,
    except a reviewer or admin in a locked project."""
    stored = people.password_hash(db, rater.id)
    if stored is None:
        if needs_password(rater.role, has_password=False, project_locked=locked(db)):
            people.record_sign_in(db, rater.id, ok=False)
            raise PermissionDenied(f"{rater.name} is a {rater.role.value} without a password in a project that "
                                   f"has a protected admin: an admin sets one first "
                                   f"(`annotator raters password {rater.name}`)")
        return
    if not password or not check_password(password, stored):
        people.record_sign_in(db, rater.id, ok=False)
        raise PermissionDenied(f"wrong password for rater {rater.name!r}")


def self_enrolment_roles(db: Database) -> list[Role]:
    """The roles the sign-in screen may create: all, until the project has a protected admin."""
    return policy_rules.self_enrolment_roles(locked(db))
