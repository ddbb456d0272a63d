"""``annotator settings set hide-reader-names`` and what a reviewer's CLI then prints: aliases only."""

from __future__ import annotations

import json
from pathlib import Path

from annotator.domain.entities import Role
from annotator.services import project
from annotator.services.labelling import LabelService
from annotator.storage import catalog, people
from tests.e2e.test_cli import run
from tests.factories import instance


def _project(path: Path) -> None:
    """boss (admin), zoe and adam (annotators, zoe first), rev (reviewer); two slices they disagree on."""
    db = project.open_project(str(path))
    try:
        catalog.import_instances(db, [instance(i) for i in range(2)])
        people.add_rater(db, "boss", Role.ADMIN)
        zoe = LabelService(db, people.add_rater(db, "zoe", Role.ANNOTATOR))
        adam = LabelService(db, people.add_rater(db, "adam", Role.ANNOTATOR))
        people.add_rater(db, "rev", Role.REVIEWER)
        for im in catalog.images(db):
            zoe.set_label(im.id, 30, 30, 0)
            adam.set_label(im.id, 30, 30, 2)
    finally:
        db.close()


def test_settings_set_is_for_admins_and_hides_names_from_a_reviewers_queue(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    _project(db)
    before = json.loads(run("review", "queue", "--json", "--as", "rev", db=db).stdout)
    assert set(before["items"][0]["readers"]) == {"rater:zoe", "rater:adam"}

    refused = run("settings", "set", "hide-reader-names", "true", "--as", "rev", db=db, check=False)
    assert refused.returncode != 0
    assert "rev is a reviewer and cannot change project settings: only admins may" in refused.stderr
    assert json.loads(run("settings", "show", "--json", db=db).stdout)["hide_reader_names_from_reviewers"] is False

    assert run("settings", "set", "hide-reader-names", "true", "--as", "boss", db=db).stdout.strip() == \
        "hide-reader-names: true"
    assert json.loads(run("settings", "show", "--json", db=db).stdout)["hide_reader_names_from_reviewers"] is True

    out = run("review", "queue", "--json", "--as", "rev", db=db).stdout
    items = json.loads(out)["items"]
    assert [set(it["readers"]) for it in items] == [{"Reader A", "Reader B"}] * 2
    assert items[0]["readers"]["Reader A"]["grade"] == 0  # zoe joined first: Reader A though her name sorts last
    assert "zoe" not in out and "adam" not in out
    admin = json.loads(run("review", "queue", "--json", "--as", "boss", db=db).stdout)["items"]
    assert set(admin[0]["readers"]) == {"rater:zoe", "rater:adam"}

    agreement = run("agreement", "--json", "--bootstrap", "0", "--readers", "Reader A", "Reader B", "--as", "rev",
                    db=db).stdout
    assert json.loads(agreement)["group"]["readers"] == ["Reader A", "Reader B"]
    assert "zoe" not in agreement and "adam" not in agreement
    named = json.loads(run("agreement", "--json", "--bootstrap", "0", "--as", "boss", db=db).stdout)
    assert {named["pairs"][0]["a"], named["pairs"][0]["b"]} == {"rater:zoe", "rater:adam"}

    # the reviewer decides by the alias she was shown
    decided = run("review", "accept", str(items[0]["image_id"]), "Reader B", "--version", "0", "--as", "rev", db=db)
    assert "decided Reader B grade 2" in decided.stdout

    assert run("settings", "set", "hide-reader-names", "false", "--as", "boss", db=db).returncode == 0
    again = json.loads(run("review", "queue", "--json", "--as", "rev", db=db).stdout)["items"]
    assert set(again[0]["readers"]) == {"rater:zoe", "rater:adam"}
