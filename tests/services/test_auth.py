"""Optional rater passwords, audited sign-in, and no self-promotion to reviewer once an admin is protected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from annotator.domain.entities import Role
from annotator.domain.errors import InputError, PermissionDenied
from annotator.services import auth
from annotator.services.worklist import sign_in
from annotator.storage import audit, people
from annotator.storage.database import open_database


def test_a_protected_rater_needs_the_password_and_every_attempt_is_audited(db) -> None:  # type: ignore[no-untyped-def]
    alice = people.add_rater(db, "alice", Role.ANNOTATOR)
    assert sign_in(db, rater_id=alice.id) == alice  # no password: signs in by name
    alice = auth.set_password(db, alice, "correct horse")
    assert alice.protected
    for wrong in (None, "", "Correct horse"):
        with pytest.raises(PermissionDenied, match="wrong password for rater 'alice'"):
            sign_in(db, rater_id=alice.id, password=wrong)
    assert sign_in(db, rater_id=alice.id, password="correct horse").name == "alice"
    actions = [e.action for e in audit.entries(db, entity="rater", entity_id=str(alice.id))]
    assert actions == ["rater.add", "rater.sign_in", "rater.password", *["rater.sign_in_refused"] * 3,
                       "rater.sign_in"]
    assert all("correct" not in str(e.after) for e in audit.entries(db))  # the audit trail holds no secret
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM raters WHERE name = 'alice'")).scalar()
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert auth.check_password("correct horse", stored) and not auth.check_password("correct horse ", stored)
    assert auth.hash_password("correct horse") != auth.hash_password("correct horse")  # salted
    with pytest.raises(InputError, match="at least 8"):
        auth.set_password(db, alice, "short")
    assert sign_in(db, rater_id=alice.id, password="correct horse")  # the failed change changed nothing
    assert not auth.set_password(db, alice, None).protected  # removed: by name again
    assert sign_in(db, rater_id=alice.id) == people.rater_by_id(db, alice.id)


def test_once_an_admin_is_protected_the_sign_in_screen_adds_annotators_only(db) -> None:  # type: ignore[no-untyped-def]
    assert auth.self_enrolment_roles(db) == list(Role)  # a new project: whoever starts it may be admin
    boss = sign_in(db, new_name="boss", new_role=Role.ADMIN, password="admin pass 1")
    assert boss.protected and auth.self_enrolment_roles(db) == [Role.ANNOTATOR]
    with pytest.raises(PermissionDenied, match="only an admin adds a reviewer"):
        sign_in(db, new_name="mallory", new_role=Role.REVIEWER)
    assert "mallory" not in [r.name for r in people.list_raters(db)]
    carol = sign_in(db, new_name="carol", password="carols pw")
    assert carol.role is Role.ANNOTATOR and carol.protected
    with pytest.raises(InputError, match="at least 8"):
        sign_in(db, new_name="dave", password="1234")
    assert "dave" not in [r.name for r in people.list_raters(db)]


def test_cli_sets_lists_and_clears_passwords(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    db = open_database(str(path))
    people.add_rater(db, "alice", Role.ANNOTATOR)
    db.close()

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "annotator", "--db", str(path), "raters", *args],
                              input=stdin, capture_output=True, text=True, timeout=120)

    assert run("password", "alice", stdin="s3cret-pass\n").stdout.strip() == "rater alice: password set"
    assert "password" in run("list").stdout.splitlines()[0]
    refused = run("password", "alice", stdin="short\n")
    assert refused.returncode != 0 and "at least 8 characters" in refused.stderr
    db = open_database(str(path))
    alice = people.rater_by_name(db, "alice")
    assert sign_in(db, rater_id=alice.id, password="s3cret-pass") == alice  # the refused change kept the old one
    db.close()
    assert "no password" in run("password", "alice", "--clear").stdout
    assert "password" not in run("list").stdout
    assert run("password", "nobody", stdin="whatever-pw\n").returncode != 0


def test_in_a_locked_project_reviewers_and_admins_need_a_password_to_sign_in(db) -> None:  # type: ignore[no-untyped-def]
    rev = people.add_rater(db, "rev", Role.REVIEWER)
    ann = people.add_rater(db, "ann", Role.ANNOTATOR)
    assert sign_in(db, rater_id=rev.id) == rev  # not locked yet: by name
    auth.set_password(db, people.add_rater(db, "boss", Role.ADMIN), "boss-pass")
    with pytest.raises(PermissionDenied, match="rev is a reviewer without a password"):
        sign_in(db, rater_id=rev.id)  # a blinded annotator cannot borrow an unprotected reviewer
    assert sign_in(db, rater_id=ann.id) == ann  # annotators may still sign in by name
    auth.set_password(db, rev, "review-pass")
    assert sign_in(db, rater_id=rev.id, password="review-pass").name == "rev"


def test_passwords_are_unicode_normalised_and_a_damaged_hash_opens_nothing() -> None:
    import unicodedata

    stored = auth.hash_password(unicodedata.normalize("NFC", "café au lait"))
    assert auth.check_password(unicodedata.normalize("NFD", "café au lait"), stored)
    for damaged in ("", "scrypt$x", "bcrypt$1$2$3$00$00", "scrypt$99999999999999999999$8$1$00$00",
                    "scrypt$16384$8$1$zz$00", "scrypt$16384$8$1$é$00"):
        assert not auth.check_password("café au lait", damaged)
