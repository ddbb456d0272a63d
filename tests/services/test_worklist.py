"""Workstation services without Qt: worklist progress and filters, next unfinished slice, undo/redo,
and blinding (an annotator's queries return no other rater's labels and no withheld suggestion)."""

from __future__ import annotations

import pytest

from annotator.domain.entities import ModelSuggestion, Role
from annotator.domain.errors import InputError
from annotator.services.labelling import LabelService
from annotator.services.viewing import SuggestionStatus, ViewingService
from annotator.services.worklist import SliceState, WorklistFilter, WorklistService, sign_in
from annotator.storage import catalog, people
from annotator.storage.tables import ModelVersionRow, PredictionRow
from tests.factories import instance


@pytest.fixture
def two_series(sqlite_db):  # type: ignore[no-untyped-def]
    catalog.import_instances(sqlite_db, [instance(i, series=0) for i in range(3)]
                             + [instance(i, series=1) for i in range(2)])
    alice = people.add_rater(sqlite_db, "alice", Role.ANNOTATOR)
    bob = people.add_rater(sqlite_db, "bob", Role.ANNOTATOR)
    rev = people.add_rater(sqlite_db, "rev", Role.REVIEWER)
    return sqlite_db, alice, bob, rev, catalog.images(sqlite_db)


def _states(wl) -> list[SliceState]:  # type: ignore[no-untyped-def]
    return [sl.state for st in wl.studies for se in st.series for sl in se.slices]


def test_progress_and_filters_are_per_rater(two_series) -> None:  # type: ignore[no-untyped-def]
    db, alice, bob, _rev, imgs = two_series
    la = LabelService(db, alice)
    la.set_point(imgs[0].id, 10, 12)
    la.set_grade(imgs[0].id, 1)  # done
    la.set_point(imgs[1].id, 5, 5)  # incomplete: point, no grade
    LabelService(db, bob).set_label(imgs[2].id, 3, 3, 2)  # bob's work must not count for alice
    ws = WorklistService(db, alice)
    wl = ws.load()
    assert (wl.progress.done, wl.progress.total) == (1, 5)
    assert _states(wl) == [SliceState.DONE, SliceState.INCOMPLETE] + [SliceState.UNLABELLED] * 3
    [study] = wl.studies
    assert [str(s.progress) for s in study.series] == ["1/3", "0/2"]
    assert len(_states(ws.load(WorklistFilter.UNLABELLED))) == 3
    assert _states(ws.load(WorklistFilter.MINE)) == [SliceState.DONE, SliceState.INCOMPLETE]
    assert _states(ws.load(WorklistFilter.INCOMPLETE)) == [SliceState.INCOMPLETE]
    # series with nothing left after the filter disappear, but progress still counts every slice
    assert [len(s.slices) for s in ws.load(WorklistFilter.MINE).studies[0].series] == [2]
    assert str(WorklistService(db, bob).load().progress) == "1/5"


def test_next_unlabelled_skips_done_wraps_and_ends(two_series) -> None:  # type: ignore[no-untyped-def]
    db, alice, _bob, _rev, imgs = two_series
    ws, la = WorklistService(db, alice), LabelService(db, alice)
    assert ws.next_unlabelled(None) == imgs[0]
    la.set_label(imgs[1].id, 1, 1, 0)
    assert ws.next_unlabelled(imgs[0].id) == imgs[2]  # imgs[1] is done
    la.set_grade(imgs[3].id, 2)  # grade only: incomplete, still to do
    assert ws.next_unlabelled(imgs[2].id) == imgs[3]
    assert ws.next_unlabelled(imgs[4].id) == imgs[0]  # wraps around
    for im in imgs:
        la.set_label(im.id, 2, 2, 1)
    assert ws.next_unlabelled(imgs[0].id) is None


def test_undo_redo_commit_new_versions_restoring_states(two_series) -> None:  # type: ignore[no-untyped-def]
    db, alice, _bob, _rev, imgs = two_series
    la = LabelService(db, alice)
    im = imgs[0].id
    assert la.undo(im) is None and la.undo_redo_available(im) == (False, False)
    la.set_point(im, 10, 10)  # v1
    la.set_grade(im, 2)  # v2
    la.set_point(im, 20, 20)  # v3
    u1 = la.undo(im)  # back to v2's state
    assert u1 is not None and (u1.version, u1.x_px, u1.grade, u1.action) == (4, 10, 2, "undo")
    u2 = la.undo(im)  # back to v1's state
    assert u2 is not None and (u2.x_px, u2.grade) == (10, None)
    assert la.undo_redo_available(im) == (True, True)
    r1 = la.redo(im)
    assert r1 is not None and (r1.x_px, r1.grade, r1.action) == (10, 2, "redo")
    la.set_grade(im, 3)  # a new action after undo discards the redo branch (the 20,20 point)
    assert la.redo(im) is None
    back = la.undo(im)
    assert back is not None and (back.x_px, back.grade) == (10, 2)
    la.undo(im)
    last = la.undo(im)  # all the way back to the empty slice
    assert last is not None and last.empty and la.undo(im) is None
    hist = la.history(im)
    assert [h.version for h in hist] == list(range(1, len(hist) + 1))  # nothing deleted, only added
    assert [h.action for h in hist] == ["point", "grade", "point", "undo", "undo", "redo", "grade",
                                        "undo", "undo", "undo"]


def test_undo_is_audited(two_series) -> None:  # type: ignore[no-untyped-def]
    from annotator.storage import audit

    db, alice, _bob, _rev, imgs = two_series
    la = LabelService(db, alice)
    la.set_grade(imgs[0].id, 1)
    la.undo(imgs[0].id)
    actions = [e.action for e in audit.entries(db, entity="annotation")]
    assert actions == ["label.grade", "label.undo"]


def _add_model(db, image_ids, *, active: bool = True) -> int:  # type: ignore[no-untyped-def]
    def work(s):  # type: ignore[no-untyped-def]
        mv = ModelVersionRow(name="fast-1", preset="fast", target="rater:alice", kind="train",
                             weights_path="/x", weights_sha256="0" * 64, active=active)
        s.add(mv)
        s.flush()
        for i in image_ids:
            s.add(PredictionRow(model_version_id=mv.id, image_id=i, x_px=30.0, y_px=31.0, grade=1,
                                probabilities=[0.1, 0.7, 0.15, 0.05]))
        return mv.id

    return db.write(work)


def test_annotator_gets_no_other_raters_rows(two_series) -> None:  # type: ignore[no-untyped-def]
    db, alice, bob, rev, imgs = two_series
    LabelService(db, bob).set_label(imgs[0].id, 7, 7, 3)
    LabelService(db, alice).set_point(imgs[0].id, 9, 9)
    ids = [im.id for im in imgs]
    seen = LabelService(db, alice).visible_labels(ids)
    assert {lab.rater_id for lab in seen} == {alice.id}
    ov = ViewingService(db, alice).overlays(ids)
    assert all(o.others == () and not o.others_visible for o in ov.values())
    assert ov[imgs[0].id].own is not None and ov[imgs[0].id].own.x_px == 9
    rev_ov = ViewingService(db, rev).overlay(imgs[0].id)
    assert {r.rater.name for r in rev_ov.others} == {"alice", "bob"}
    people.update_settings(db, None, show_other_raters_to_annotators=True)
    assert [r.rater.name for r in ViewingService(db, alice).overlay(imgs[0].id).others] == ["bob"]


def test_model_suggestion_follows_the_project_policy(two_series) -> None:  # type: ignore[no-untyped-def]
    db, alice, _bob, rev, imgs = two_series
    im = imgs[0].id
    assert ViewingService(db, alice).overlay(im).suggestion.status is SuggestionStatus.NO_MODEL
    _add_model(db, [im])
    sug = ViewingService(db, alice).overlay(im).suggestion  # default policy: hidden
    assert sug.status is SuggestionStatus.HIDDEN and sug.prediction is None
    assert ViewingService(db, rev).overlay(im).suggestion.status is SuggestionStatus.SHOWN
    people.update_settings(db, None, model_suggestion=ModelSuggestion.AFTER_OWN_GRADE)
    la = LabelService(db, alice)
    la.set_point(im, 5, 5)
    assert ViewingService(db, alice).overlay(im).suggestion.status is SuggestionStatus.AFTER_GRADE
    la.set_grade(im, 0)
    shown = ViewingService(db, alice).overlay(im).suggestion
    assert shown.status is SuggestionStatus.SHOWN and shown.prediction is not None
    assert shown.prediction.probabilities == (0.1, 0.7, 0.15, 0.05)
    people.update_settings(db, None, model_suggestion=ModelSuggestion.ALWAYS)
    assert ViewingService(db, alice).overlay(imgs[1].id).suggestion.status is SuggestionStatus.NOT_PREDICTED


def test_sign_in_picks_or_creates_and_refuses_simulated(two_series) -> None:  # type: ignore[no-untyped-def]
    db, alice, *_ = two_series
    assert sign_in(db, rater_id=alice.id) == alice
    carol = sign_in(db, new_name="carol", new_role=Role.ADMIN)
    assert carol.role is Role.ADMIN
    sim = people.add_rater(db, "sim1", Role.ANNOTATOR, simulated=True)
    with pytest.raises(InputError, match="simulated"):
        sign_in(db, rater_id=sim.id)
    with pytest.raises(InputError):
        sign_in(db)


def test_overlays_after_own_change_match_a_fresh_read(two_series) -> None:  # type: ignore[no-untyped-def]
    db, alice, _bob, _rev, imgs = two_series
    im = imgs[0].id
    _add_model(db, [im])
    people.update_settings(db, None, model_suggestion=ModelSuggestion.AFTER_OWN_GRADE)
    vs, la = ViewingService(db, alice), LabelService(db, alice)
    ov = vs.overlay(im)
    for action in (lambda: la.set_point(im, 4, 4), lambda: la.set_grade(im, 2), lambda: la.undo(im),
                   lambda: la.redo(im), lambda: la.clear(im)):
        label = action()
        ov = vs.with_own(ov, label)
        fresh = vs.overlay(im)
        assert (ov.own, ov.suggestion.status, ov.suggestion.prediction) == \
            (fresh.own, fresh.suggestion.status, fresh.suggestion.prediction)


def test_next_unfinished_is_a_slice_to_grade_once_levels_are_known(two_series) -> None:  # type: ignore[no-untyped-def]
    """An exam's localizer and sagittal series carry no level; once the catalogue knows levels, Enter (and the
    first slice a window opens) goes to the slices at a level, never to a localizer."""
    from annotator.domain.studies import VertebralLevel
    from annotator.storage import levels

    db, alice, _bob, _rev, imgs = two_series
    ws = WorklistService(db, alice)
    assert ws.next_unlabelled(None) == imgs[0]  # no levels anywhere: every slice is to grade
    levels.set_level(db, [imgs[3].id, imgs[4].id], VertebralLevel.L4_L5, actor_id=None, source="test")
    fresh = {im.id: im for im in catalog.images(db)}
    assert ws.next_unlabelled(None) == fresh[imgs[3].id]
    assert ws.next_unlabelled(imgs[3].id) == fresh[imgs[4].id]
    LabelService(db, alice).set_label(imgs[3].id, 1, 1, 0)
    LabelService(db, alice).set_label(imgs[4].id, 1, 1, 0)
    assert ws.next_unlabelled(imgs[4].id) is None  # the slices without a level are not owed a grade


def test_progress_counts_the_slices_to_grade(two_series) -> None:  # type: ignore[no-untyped-def]
    from annotator.domain.studies import VertebralLevel
    from annotator.storage import levels

    db, alice, _bob, _rev, imgs = two_series
    levels.set_level(db, [imgs[3].id, imgs[4].id], VertebralLevel.L4_L5, actor_id=None, source="test")
    LabelService(db, alice).set_label(imgs[3].id, 1, 1, 0)
    wl = WorklistService(db, alice).load()
    assert str(wl.progress) == "1/2"  # the level-less series is listed, but owes no grade
    assert [str(se.progress) for se in wl.studies[0].series] == ["0/0", "1/2"]
    assert len(_states(wl)) == 5
