"""Blind adjudication: with the project option on, a reviewer sees other readers only as stable aliases,
on every service a screen or the CLI reads; an admin still sees names; the option is an admin's to set."""

from __future__ import annotations

import pytest

from annotator.domain.entities import AdjudicationStatus, Role
from annotator.domain.errors import PermissionDenied
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.services import project as project_service
from annotator.services.labelling import LabelService
from annotator.services.review import ReviewService, disagreement_queue
from annotator.storage import audit, catalog, people
from tests.factories import instance

ZOE, ADAM = ReaderRef(ReaderKind.RATER, "zoe"), ReaderRef(ReaderKind.RATER, "adam")


@pytest.fixture
def blind(sqlite_db):  # type: ignore[no-untyped-def]
    """zoe joins before adam (so she is Reader A though her name sorts last); they disagree on 3 slices;
    the admin hides reader names from reviewers."""
    db = sqlite_db
    catalog.import_instances(db, [instance(i) for i in range(4)])
    ims = [im.id for im in catalog.images(db)]
    boss = people.add_rater(db, "boss", Role.ADMIN)
    zoe = LabelService(db, people.add_rater(db, "zoe", Role.ANNOTATOR))
    adam = LabelService(db, people.add_rater(db, "adam", Role.ANNOTATOR))
    rev = people.add_rater(db, "rev", Role.REVIEWER)
    people.update_settings(db, None, required_raters=("zoe", "adam"))
    for i in range(3):
        zoe.set_label(ims[i], 30, 30, 0)
        adam.set_label(ims[i], 30, 30, 2)
    zoe.set_label(ims[3], 30, 30, 1)  # adam missing
    project_service.change_settings(db, boss, hide_reader_names_from_reviewers=True)
    return db, ims, boss, rev


def _texts(items) -> str:  # type: ignore[no-untyped-def]
    return " ".join([" ".join(it.reasons) + " " + " ".join(it.shown(k) for k in it.marks) for it in items])


def test_only_an_admin_changes_the_option_and_it_is_audited(blind) -> None:  # type: ignore[no-untyped-def]
    db, _ims, boss, rev = blind
    with pytest.raises(PermissionDenied, match="rev is a reviewer and cannot change project settings"):
        project_service.change_settings(db, rev, hide_reader_names_from_reviewers=False)
    assert project_service.project_settings(db).hide_reader_names_from_reviewers is True
    entry = [e for e in audit.entries(db) if e.action == "settings.update"][-1]
    assert entry.rater_id == boss.id
    assert entry.after["hide_reader_names_from_reviewers"] is True


def test_a_reviewer_sees_aliases_in_the_queue_an_admin_sees_names(blind) -> None:  # type: ignore[no-untyped-def]
    db, ims, boss, rev = blind
    items = disagreement_queue(db, rev)
    assert {it.shown(k) for it in items for k in it.marks} == {"Reader A", "Reader B"}
    assert {it.shown(ZOE) for it in items} == {"Reader A"} and items[0].shown(ADAM) == "Reader B"
    missing = next(it for it in items if it.image_id == ims[3])
    assert missing.reasons == ("missing Reader B",)
    assert "zoe" not in _texts(items) and "adam" not in _texts(items)
    assert set(items[0].marks) == {ZOE, ADAM}  # the references stay real: decisions key on them

    admin_items = disagreement_queue(db, boss)
    assert {it.shown(k) for it in admin_items for k in it.marks} == {"rater:zoe", "rater:adam"}
    assert next(it for it in admin_items if it.image_id == ims[3]).reasons == ("missing adam",)


def test_a_reviewer_accepts_by_alias_and_the_record_keeps_the_real_reader(blind) -> None:  # type: ignore[no-untyped-def]
    db, ims, _boss, rev = blind
    svc = ReviewService(db, rev)
    adj = svc.accept(ims[0], "Reader B", 0)
    assert adj.status is AdjudicationStatus.DECIDED and adj.source == ADAM and adj.grade == 2
    entry = [e for e in audit.entries(db) if e.entity == "adjudication"][-1]
    assert "rater:adam" in str(entry.after) and entry.rater_id == rev.id
    with pytest.raises(PermissionDenied, match="hidden"):  # a guessed real name does not reach a label
        svc.accept(ims[1], "rater:zoe", 0)
    assert svc.accept(ims[1], ZOE, 0).source == ZOE  # a screen passes the reference it was given


def test_overlays_and_the_agreement_report_name_readers_as_the_viewer_may_see_them(blind) -> None:  # type: ignore[no-untyped-def]
    from annotator.services.agreement import agreement_report, as_markdown, report_json
    from annotator.services.viewing import ViewingService

    db, ims, boss, rev = blind
    others = ViewingService(db, rev).overlay(ims[0]).others
    assert [o.shown for o in others] == ["Reader A", "Reader B"]  # by joining order, not by name
    assert [o.rater.name for o in others] == ["zoe", "adam"]  # the references stay real
    assert [o.shown for o in ViewingService(db, boss).overlay(ims[0]).others] == ["zoe", "adam"]

    report = agreement_report(db, [ZOE, ADAM], n_boot=0)
    blind_json = report_json(report, project_service.reader_names_for(db, rev))
    assert (blind_json["pairs"][0]["a"], blind_json["pairs"][0]["b"]) == ("Reader A", "Reader B")
    assert blind_json["group"]["readers"] == ["Reader A", "Reader B"]
    text = str(blind_json) + as_markdown(report, project_service.reader_names_for(db, rev))
    assert "zoe" not in text and "adam" not in text
    admin_json = report_json(report, project_service.reader_names_for(db, boss))
    assert (admin_json["pairs"][0]["a"], admin_json["pairs"][0]["b"]) == ("rater:zoe", "rater:adam")
