"""Disagreement queue, adjudication with optimistic versioning, consensus; SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from annotator.domain.entities import AdjudicationStatus, QueueStatus, Role
from annotator.domain.errors import ConflictError, InputError, PermissionDenied
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.services import readers
from annotator.services.labelling import LabelService
from annotator.services.review import (
    ReviewService,
    consensus_marks,
    decided_alone,
    disagreement_queue,
    queue_counts,
    queue_images,
    queue_mark,
    with_decision,
)
from annotator.storage import audit, catalog, labels, people
from tests.factories import instance

E1, E2, E3 = (ReaderRef(ReaderKind.RATER, n) for n in ("e1", "e2", "e3"))


@pytest.fixture
def project(db):  # type: ignore[no-untyped-def]
    catalog.import_instances(db, [instance(i) for i in range(5)])  # 0.5 mm pixels
    ims = [im.id for im in catalog.images(db)]
    e1 = LabelService(db, people.add_rater(db, "e1", Role.ANNOTATOR))
    e2 = LabelService(db, people.add_rater(db, "e2", Role.ANNOTATOR))
    rev = people.add_rater(db, "rev", Role.REVIEWER)
    people.update_settings(db, None, required_raters=("e1", "e2"))
    plan = {  # image index: (e1 point, e1 grade, e2 point, e2 grade)
        0: ((30, 30), 1, (31, 30), 1),      # agree (0.5 mm)
        1: ((30, 30), 0, (30, 30), 2),      # grades differ by 2
        2: ((30, 30), 1, (40, 30), 1),      # 5 mm apart
        3: ((30, 30), 3, None, None),       # e2 missing
        4: ((30, 30), 2, (30, 31), 3),      # grades differ by 1
    }
    for i, (p1, g1, p2, g2) in plan.items():
        e1.set_label(ims[i], p1[0], p1[1], g1)
        if p2 is not None:
            e2.set_label(ims[i], p2[0], p2[1], g2)
    return db, ims, rev


def test_queue_reasons_order_and_counts(project) -> None:  # type: ignore[no-untyped-def]
    db, ims, rev = project
    q = disagreement_queue(db, rev)
    assert [it.image_id for it in q] == [ims[1], ims[4], ims[2], ims[3]]
    assert q[0].reasons == ("grades differ by 2",)
    assert q[2].reasons == ("centres 5.0 mm apart",)
    assert q[3].reasons == ("missing e2",)
    assert set(q[0].marks) == {E1, E2}
    assert all(it.status is QueueStatus.OPEN for it in q)
    assert queue_counts(q) == {"total": 4, "grades differ": 2, "centres apart": 1, "missing rater": 1}
    assert [it.image_id for it in disagreement_queue(db, rev, reason="missing")] == [ims[3]]
    with pytest.raises(PermissionDenied):
        disagreement_queue(db, people.rater_by_name(db, "e1"))
    with pytest.raises(PermissionDenied):
        ReviewService(db, people.rater_by_name(db, "e1"))


def test_queue_images_name_the_queue_slices(project) -> None:  # type: ignore[no-untyped-def]
    db, ims, rev = project
    q = disagreement_queue(db, rev)
    refs = queue_images(db, [it.image_id for it in q])
    assert sorted(refs) == sorted(it.image_id for it in q) and ims[0] not in refs
    assert refs[ims[1]] == catalog.image_by_id(db, ims[1]) and refs[ims[1]].patient_key
    assert queue_images(db, []) == {}


def test_decisions_never_touch_rater_labels_and_are_audited(project) -> None:  # type: ignore[no-untyped-def]
    db, ims, rev = project
    before = labels.current(db)
    svc = ReviewService(db, rev)
    a = svc.accept(ims[1], E2, expected_version=0)
    assert (a.grade, a.source, a.version, a.status) == (2, E2, 1, AdjudicationStatus.DECIDED)
    with pytest.raises(InputError, match="reason is required"):
        svc.decide(ims[4], 30, 30, 0, expected_version=0)  # grade 0: neither reader said so
    d = svc.decide(ims[4], 30, 30, 0, expected_version=0, reason="disc bulge mistaken for stenosis")
    assert d.source is None and d.source_text == "own" and d.reason.startswith("disc")
    assert labels.current(db) == before
    with pytest.raises(InputError, match="reason"):
        svc.reopen(ims[1], " ", expected_version=1)
    svc.reopen(ims[1], "second look", expected_version=1)
    entries = audit.entries(db, entity="adjudication")
    assert [e.action for e in entries] == ["adjudication.decided", "adjudication.decided", "adjudication.reopened"]
    # the stored spelling is unchanged by the enums and reader refs (no migration): plain strings
    assert [(e.after or {}).get("status") for e in entries] == ["decided", "decided", "reopened"]
    assert [(e.after or {}).get("source") for e in entries] == ["rater:e2", "own", "rater:e2"]
    assert [it.image_id for it in disagreement_queue(db, rev)] == [ims[2], ims[3]]
    [reopened] = disagreement_queue(db, rev, status="reopened")
    assert (reopened.image_id, reopened.status) == (ims[1], QueueStatus.REOPENED)
    assert [it.image_id for it in disagreement_queue(db, rev, status=QueueStatus.DECIDED)] == [ims[4]]
    with pytest.raises(InputError, match="queue status 'closed'"):
        disagreement_queue(db, rev, status="closed")


def test_accepting_the_model_uses_its_prediction_and_needs_a_reason_when_it_overrides(project) -> None:  # type: ignore[no-untyped-def]
    from annotator.domain.entities import Prediction
    from annotator.storage import models_repo

    db, ims, rev = project
    m = models_repo.register(db, name="m", preset="fast", target="rater:e1", kind="train", weights_path="/x",
                             weights_sha256="0" * 64, card={})
    models_repo.write_predictions(db, m.id, [Prediction(m.id, ims[1], 33.0, 29.0, 2, (0.1, 0.2, 0.6, 0.1)),
                                             Prediction(m.id, ims[4], 30.0, 30.0, 1, (0.1, 0.7, 0.1, 0.1))])
    svc = ReviewService(db, rev)
    a = svc.accept(ims[1], f"model:{m.id}", expected_version=0)  # grade 2 = e2's: no reason needed
    assert (a.source, a.x_px, a.y_px, a.grade) == (ReaderRef(ReaderKind.MODEL, str(m.id)), 33.0, 29.0, 2)
    with pytest.raises(InputError, match="reason is required"):
        svc.accept(ims[4], f"model:{m.id}", expected_version=0)  # grade 1: no rater said so
    assert svc.accept(ims[4], f"model:{m.id}", expected_version=0, reason="model right").grade == 1
    with pytest.raises(InputError, match="no graded label"):
        svc.accept(ims[2], f"model:{m.id}", expected_version=0)  # no prediction on this slice
    with pytest.raises(InputError, match="numeric"):
        svc.accept(ims[2], "model:latest", expected_version=0)


def test_a_cross_validations_out_of_fold_predictions_cannot_be_accepted(project) -> None:  # type: ignore[no-untyped-def]
    from annotator.domain.entities import Prediction
    from annotator.storage import models_repo
    from annotator.storage import review as review_store

    db, ims, rev = project
    cv = models_repo.register(db, name="cv", preset="fast", target="rater:e1", kind="cv", weights_path="/x",
                              weights_sha256="0" * 64, card={})
    models_repo.write_predictions(db, cv.id, [Prediction(cv.id, ims[1], 33.0, 29.0, 2, (0.1, 0.2, 0.6, 0.1), 0)])
    svc = ReviewService(db, rev)
    with pytest.raises(InputError, match=f"model {cv.id} is a cv model: its predictions are out-of-fold"):
        svc.accept(ims[1], f"model:{cv.id}", expected_version=0, reason="looks right")
    assert review_store.latest(db, ims[1]) is None  # nothing was decided


def test_second_reviewer_gets_a_conflict_and_sees_the_first_decision(project) -> None:  # type: ignore[no-untyped-def]
    db, ims, rev = project
    other = people.add_rater(db, "rev2", Role.ADMIN)
    ReviewService(db, rev).accept(ims[1], "rater:e1", expected_version=0)
    with pytest.raises(ConflictError) as err:
        ReviewService(db, other).accept(ims[1], "rater:e2", expected_version=0)
    assert err.value.current is not None and err.value.current.source == E1


def test_accepting_a_label_the_rater_changed_after_it_was_shown_conflicts(project) -> None:  # type: ignore[no-untyped-def]
    from annotator.storage import review

    db, ims, rev = project
    shown = next(it for it in disagreement_queue(db, rev) if it.image_id == ims[1]).marks[E2]
    assert shown.grade == 2
    LabelService(db, people.rater_by_name(db, "e2")).set_grade(ims[1], 1)  # e2 changes her mind meanwhile
    svc = ReviewService(db, rev)
    with pytest.raises(ConflictError, match="e2 changed their label") as err:
        svc.accept(ims[1], "rater:e2", expected_version=0, label_version=shown.version)
    assert err.value.current.grade == 1 and err.value.current.version == shown.version + 1  # what she has now
    assert review.latest(db, ims[1]) is None  # nothing stored
    a = svc.accept(ims[1], "rater:e2", expected_version=0, label_version=err.value.current.version)
    assert (a.grade, a.version) == (1, 1)  # the label as it is now, once seen


def test_simultaneous_decisions_one_wins_one_conflicts(project) -> None:  # type: ignore[no-untyped-def]
    db, ims, rev = project
    other = people.add_rater(db, "rev2", Role.REVIEWER)
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def decide(who, reader: str) -> None:  # type: ignore[no-untyped-def]
        svc = ReviewService(db, who)
        barrier.wait()
        try:
            outcome[who.name] = svc.accept(ims[4], reader, expected_version=0)
        except ConflictError as exc:
            outcome[who.name] = exc

    threads = [threading.Thread(target=decide, args=(rev, "rater:e1")),
               threading.Thread(target=decide, args=(other, "rater:e2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    kinds = sorted(type(v).__name__ for v in outcome.values())
    assert kinds == ["Adjudication", "ConflictError"]
    from annotator.storage import review

    assert [a.version for a in review.history(db, ims[4])] == [1]


def test_consensus_rule(project) -> None:  # type: ignore[no-untyped-def]
    db, ims, rev = project
    ReviewService(db, rev).accept(ims[1], "rater:e2", expected_version=0)
    cons = consensus_marks(db)
    # 0: same grade 0.5 mm apart; 1: decided; 2: same grade but 5 mm apart (over 3 mm); 3: e2 missing; 4: open
    assert set(cons) == {ims[0], ims[1]}
    assert cons[ims[0]].grade == 1 and cons[ims[0]].x_px == 30.5
    assert cons[ims[1]].grade == 2
    assert readers.marks(db, "consensus") == cons
    people.update_settings(db, None, disagreement_threshold_mm=6.0)  # 5 mm now counts as the same place
    assert consensus_marks(db)[ims[2]].x_px == 35.0
    assert ims[2] not in [it.image_id for it in disagreement_queue(db, rev)]  # the queue follows the same rule


def test_the_queue_leaves_out_untouched_slices_and_keeps_decided_ones(project) -> None:  # type: ignore[no-untyped-def]
    db, ims, rev = project
    catalog.import_instances(db, [instance(9)])  # a sixth slice nobody has labelled yet
    new = catalog.images(db)[-1].id
    assert new not in [it.image_id for it in disagreement_queue(db, rev, status=None)]
    LabelService(db, people.rater_by_name(db, "e2")).set_point(new, 30, 30)  # e2 starts it: now e1 is missing
    [item] = [it for it in disagreement_queue(db, rev) if it.image_id == new]
    assert item.reasons == ("missing e1, e2",)  # e1 has nothing, e2 has no grade yet
    ReviewService(db, rev).accept(ims[4], "rater:e1", expected_version=0)
    LabelService(db, people.rater_by_name(db, "e2")).set_grade(ims[4], 2)  # the raters agree afterwards
    [decided] = disagreement_queue(db, rev, status="decided")
    assert (decided.image_id, decided.reasons, decided.adjudication_version) == (ims[4], (), 1)  # still reopenable


def test_readers_outside_the_required_set_are_shown_but_do_not_queue(project) -> None:  # type: ignore[no-untyped-def]
    db, ims, rev = project
    e3 = LabelService(db, people.add_rater(db, "e3", Role.ANNOTATOR))
    e3.set_label(ims[0], 60, 60, 3)  # far off, other grade — but e3 is not a required rater
    e3.set_label(ims[1], 30, 30, 0)
    q = {it.image_id: it for it in disagreement_queue(db, rev, status=None)}
    assert ims[0] not in q  # e1 and e2 agree there
    assert set(q[ims[1]].marks) == {E1, E2, E3} and q[ims[1]].grade_distance == 2


def test_review_cli_queue_accept_and_conflict(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    from annotator.storage.database import open_database

    path = tmp_path / "r.db"
    db = open_database(str(path))
    catalog.import_instances(db, [instance(0)])
    [im] = catalog.images(db)
    for name, grade in (("e1", 0), ("e2", 2)):
        LabelService(db, people.add_rater(db, name, Role.ANNOTATOR)).set_label(im.id, 30, 30, grade)
    people.add_rater(db, "rev", Role.REVIEWER)
    db.close()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "annotator", "--db", str(path), "review", *args],
                              capture_output=True, text=True, timeout=120)

    q = json.loads(run("queue", "--as", "rev", "--json").stdout)
    assert q["counts"]["total"] == 1 and q["items"][0]["readers"]["rater:e2"]["grade"] == 2
    bad = run("accept", str(im.id), "e2", "--version", "0", "--as", "rev")  # not a reader: parsed at the boundary
    assert bad.returncode == 1 and "'e2' must be rater:NAME, model:ID or consensus" in bad.stderr
    assert run("accept", str(im.id), "rater:e2", "--version", "0", "--as", "rev").returncode == 0
    late = run("accept", str(im.id), "rater:e1", "--version", "0", "--as", "rev")
    assert late.returncode == 1 and "decided by someone else" in late.stderr
    denied = run("queue", "--as", "e1")
    assert denied.returncode == 1 and "annotator" in denied.stderr


def test_a_decision_alone_since_the_queue_was_read_updates_it_without_reading_it_again(project) -> None:  # type: ignore[no-untyped-def]
    db, ims, rev = project
    svc = ReviewService(db, rev)
    mark = queue_mark(db)
    queue = disagreement_queue(db, rev, status=None)
    adj = svc.accept(ims[1], E2, expected_version=0)
    after = decided_alone(db, mark, adj)
    assert after is not None and after != mark and after == queue_mark(db)
    updated = [with_decision(it, adj) if it.image_id == adj.image_id else it for it in queue]
    assert updated == disagreement_queue(db, rev, status=None)  # the same as reading it again
    reopened = svc.reopen(ims[1], "second look", expected_version=1)
    assert decided_alone(db, after, reopened) is not None
    assert with_decision(updated[0], reopened).status is QueueStatus.REOPENED

    mark = queue_mark(db)
    LabelService(db, people.rater_by_name(db, "e2")).set_label(ims[3], 30, 30, 3)  # e2 labels the slice she missed
    adj = svc.accept(ims[4], E1, expected_version=0)
    assert decided_alone(db, mark, adj) is None  # someone else wrote meanwhile: read the queue again

    mark = queue_mark(db)
    other = svc.accept(ims[2], E1, expected_version=0)
    assert decided_alone(db, mark, adj) is None  # alone, but not the decision asked about
    assert decided_alone(db, mark, other) is not None


def test_the_queue_reads_only_labelled_or_decided_slices(project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An exam's other series (most of a real catalogue) are not read for the queue or the consensus: the
    queue, its images and the consensus are the same with unlabelled slices in the catalogue, and the
    catalogue read asks for the labelled and decided slices only."""
    db, ims, rev = project
    before_q, before_c = disagreement_queue(db, rev, status=None), consensus_marks(db)
    catalog.import_instances(db, [instance(i) for i in range(5, 12)])  # never labelled
    extra = [im.id for im in catalog.images(db) if im.id not in ims]
    ReviewService(db, rev).decide(extra[0], 20, 20, 2, expected_version=0, reason="read by the reviewer alone")
    read: list[list[int]] = []
    real = catalog.images_marked

    def spy(d):  # type: ignore[no-untyped-def]
        out = real(d)
        read.append([im.id for im in out])
        return out

    monkeypatch.setattr(catalog, "images_marked", spy)
    after_q = disagreement_queue(db, rev, status=None)
    assert [it.image_id for it in after_q] == [*(it.image_id for it in before_q), extra[0]]
    assert [(it.reasons, it.marks) for it in after_q[:-1]] == [(it.reasons, it.marks) for it in before_q]
    assert after_q[-1].status is QueueStatus.DECIDED and after_q[-1].reasons == ()
    assert consensus_marks(db) == {**before_c, extra[0]: consensus_marks(db)[extra[0]]}
    assert read and all(ids == [*ims, extra[0]] for ids in read)  # catalogue order, nothing unlabelled


def test_images_by_id_reads_in_chunks_and_skips_unknown_ids(project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, ims, _ = project
    monkeypatch.setattr(catalog, "IDS_PER_QUERY", 2)
    got = catalog.images_by_id(db, [*reversed(ims), ims[0], 10**9])
    assert got == {i: catalog.image_by_id(db, i) for i in ims}
    assert catalog.images_by_id(db, []) == {}
