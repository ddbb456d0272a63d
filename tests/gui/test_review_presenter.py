"""The review workflow driven through its presenter alone: no window, no widget.

The presenter reads and writes through the services in the background; each test waits for its
signals (never sleeps) and checks what it says against the database.
"""

from __future__ import annotations

import threading

import pytest

from annotator.domain.entities import ImageRef, Role
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.gui.pixel_loader import PixelLoader
from annotator.gui.review_presenter import ItemView, QueueView, ReviewPresenter
from annotator.services import project as project_service
from annotator.services.labelling import LabelService
from annotator.services.review import ReviewService, disagreement_queue
from annotator.services.viewing import DecodedSlice, decode_slice
from annotator.services.worklist import WorklistService, project_rules
from annotator.storage import labels

ALICE, BOB = ReaderRef(ReaderKind.RATER, "alice"), ReaderRef(ReaderKind.RATER, "bob")

PLAN = {  # slice index: (alice point, grade), (bob point, grade); 0.5 mm rows x 0.6 mm columns
    0: (((40, 40), 1), ((43, 44), 3)),  # grades differ by 2
    1: (((40, 40), 2), ((50, 40), 2)),  # same grade, 6 mm apart
    2: (((60, 60), 0), None),  # bob has not labelled it
}


def _label(project) -> list[int]:  # type: ignore[no-untyped-def]
    ids = [im.id for im in WorklistService(project.db, project.alice).series_images(1)]
    for i, (a, b) in PLAN.items():
        LabelService(project.db, project.alice).set_label(ids[i], *a[0], a[1])
        if b is not None:
            LabelService(project.db, project.bob).set_label(ids[i], *b[0], b[1])
    return ids


class _Recorder:
    """What the presenter emitted, in order: what a panel would have rendered."""

    def __init__(self, p: ReviewPresenter) -> None:
        self.queues: list[QueueView] = []
        self.items: list[ItemView | None] = []
        self.pixels: list[int] = []
        self.messages: list[tuple[str, str]] = []
        self.errors: list[Exception] = []
        self.reasons: list[str] = []
        p.queueChanged.connect(self.queues.append)
        p.itemChanged.connect(self.items.append)
        p.pixelsShown.connect(lambda d: self.pixels.append(d.image.id))
        p.message.connect(lambda text, kind: self.messages.append((text, kind)))
        p.errorRaised.connect(self.errors.append)
        p.reasonChanged.connect(self.reasons.append)

    @property
    def last_message(self) -> tuple[str, str]:
        shown = [m for m in self.messages if m[0]]
        return shown[-1] if shown else ("", "")


@pytest.fixture
def make(qtbot, project):  # type: ignore[no-untyped-def]
    made: list[ReviewPresenter] = []

    def build(rater=None, loader=None) -> tuple[ReviewPresenter, _Recorder]:  # type: ignore[no-untyped-def]
        p = ReviewPresenter(project.db, rater or project.rev, project_rules(project.db).scale, loader=loader)
        made.append(p)
        rec = _Recorder(p)
        with qtbot.waitSignal(p.busyChanged, check_params_cb=lambda busy: not busy, timeout=10000):
            p.reload()
        return p, rec

    yield build
    for p in made:
        p.shutdown()
        p.deleteLater()


def _settle(qtbot, p: ReviewPresenter) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: not p.busy, timeout=10000)


def test_loading_the_queue_lists_it_by_severity_and_shows_the_first_slice(qtbot, project, make) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    p, rec = make()
    assert p.queue_image_ids() == [it.image_id for it in disagreement_queue(project.db, project.rev)] == ids
    assert rec.queues[-1].counts == "3 to decide · 1 grades differ · 1 centres apart · 1 missing rater"
    view = rec.items[-1]
    assert view is not None and view.item.image_id == ids[0] and p.current.image_id == ids[0]
    assert [(r.key, r.mark.grade) for r in view.readers] == [(ALICE, 1), (BOB, 3)]
    assert view.status == "open" and view.latest is None and p.version == 0
    qtbot.waitUntil(lambda: p.showing, timeout=5000)  # pixels decoded on a worker, then shown
    assert rec.pixels == [ids[0]]

    p.set_filters(reason="centres")
    _settle(qtbot, p)
    assert p.queue_image_ids() == [ids[1]] and p.current.image_id == ids[1]
    assert rec.queues[-1].counts.endswith("— 1 shown")
    with pytest.raises(Exception, match="status filter 'later'"):
        p.set_filters(status="later")


def test_selecting_an_item_shows_its_readers_and_resets_the_own_decision(qtbot, project, make) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    p, rec = make()
    qtbot.waitUntil(lambda: p.showing, timeout=5000)
    assert p.set_point(45, 42) and p.own == (45, 42, None)
    p.choose_grade(2)
    p.set_reason("looks moderate")
    p.step(+2)
    assert p.current.image_id == ids[2] and p.own == (None, None, None) and p.reason == ""
    assert rec.reasons[-1] == ""  # the panel clears its reason field
    view = rec.items[-1]
    bob = next(r for r in view.readers if r.key == BOB)
    assert bob.mark.version is None and bob.mark.grade is None  # required but not labelled: listed empty
    assert not p.set_point(10, 10) or p.showing  # no point on pixels not yet shown
    p.step(-1)
    assert p.current.image_id == ids[1]
    p.select_image(ids[0])
    assert p.current.image_id == ids[0]
    p.step(-1)  # already first: stays
    assert p.current.image_id == ids[0]


def test_accepting_a_reader_stores_an_adjudication_and_moves_on(qtbot, project, make) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    before = labels.current(project.db)
    p, rec = make()
    with qtbot.waitSignal(p.adjudicated, timeout=10000) as sig:
        p.accept(BOB)
    _settle(qtbot, p)
    [adj] = ReviewService(project.db, project.rev).history(ids[0])
    assert sig.args[0] == adj and (adj.source, adj.grade, adj.x_px, adj.y_px) == (BOB, 3, 43, 44)
    assert labels.current(project.db) == before  # rater labels untouched
    assert p.queue_image_ids() == [ids[1], ids[2]] and p.current.image_id == ids[1]
    assert rec.last_message[1] == "info" and rec.last_message[0].startswith(f"Saved slice {ids[0]}")


def test_an_own_decision_overriding_every_reader_needs_a_reason(qtbot, project, make) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    p, rec = make()
    p.step(1)
    assert p.current.image_id == ids[1]
    p.decide()
    assert rec.last_message == ("Not decided: click the canal centre on the slice first.", "error")
    qtbot.waitUntil(lambda: p.showing, timeout=5000)
    p.set_point(45, 42)
    p.choose_grade(0)  # both readers said 2
    p.decide()
    _settle(qtbot, p)
    text, kind = rec.last_message
    assert kind == "error" and "reason is required" in text
    assert ReviewService(project.db, project.rev).history(ids[1]) == []
    assert p.current.image_id == ids[1] and p.own == (45, 42, 0)  # nothing lost
    p.set_reason("disc bulge mistaken for stenosis")
    with qtbot.waitSignal(p.adjudicated, timeout=10000):
        p.decide()
    _settle(qtbot, p)
    [adj] = ReviewService(project.db, project.rev).history(ids[1])
    assert (adj.source, adj.grade, adj.reason) == (None, 0, "disc bulge mistaken for stenosis")  # own point
    assert p.current.image_id == ids[2] and p.reason == "" and p.own == (None, None, None)


def test_a_concurrent_decision_is_a_conflict_that_stores_nothing(qtbot, project, make) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    other = project_service.add_rater(project.db, "rev2", Role.REVIEWER)
    mine, rec = make(other)
    assert mine.current.image_id == ids[0] and mine.version == 0
    ReviewService(project.db, project.rev).accept(ids[0], ALICE, expected_version=0)  # rev, elsewhere
    mine.set_reason("bob is right")
    with qtbot.assertNotEmitted(mine.adjudicated):
        mine.accept(BOB)
        _settle(qtbot, mine)
    text, kind = rec.last_message
    assert kind == "conflict" and "rev decided grade 1 Mild from rater:alice" in text
    assert "nothing was overwritten" in text
    [adj] = ReviewService(project.db, project.rev).history(ids[0])
    assert (adj.reviewer_id, adj.source) == (project.rev.id, ALICE)
    assert mine.current.image_id == ids[0] and mine.version == 1  # their decision is now what is shown
    assert mine.reason == "bob is right"  # the reviewer's input is kept
    assert rec.items[-1].decided_source == ALICE


def test_a_slice_decoded_after_the_reviewer_moved_on_is_dropped(qtbot, project, make) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    release = threading.Event()

    def decode(image: ImageRef) -> DecodedSlice:
        if image.id == ids[0]:
            release.wait(10)  # the first slice is slow to decode
        return decode_slice(image)

    loader = PixelLoader(decode)
    p, rec = make(loader=loader)
    assert p.current.image_id == ids[0] and not p.showing
    p.step(1)  # moves on before the first slice arrives
    qtbot.waitUntil(lambda: p.showing, timeout=5000)
    assert p.current.image_id == ids[1]
    release.set()
    qtbot.waitUntil(lambda: ids[0] in loader.cache, timeout=5000)  # decoded and cached...
    assert rec.pixels == [ids[1]] and p.feed.decoded.image.id == ids[1]  # ...but never shown
    loader.shutdown()
    loader.deleteLater()


def test_a_reload_answered_after_a_newer_one_is_dropped(qtbot, project, make) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    p, rec = make()
    n = len(rec.queues)
    p.set_filters(status="all")
    p.set_filters(reason="missing")  # the newer reload: only its answer is listed
    _settle(qtbot, p)
    assert len(rec.queues) == n + 1 and p.queue_image_ids() == [ids[2]]


def test_importing_the_presenter_loads_no_widget_module() -> None:
    import subprocess
    import sys

    code = ("import sys, annotator.gui.review_presenter, annotator.gui.review_state\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('PySide6.QtWidgets', 'pyqtgraph')))\n"
            "print(bad)\n"
            "sys.exit(1 if bad else 0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _gui_thread_statements(engine):  # type: ignore[no-untyped-def]
    """Statements run on the GUI thread from now on (the list grows until the listener is removed)."""
    from sqlalchemy import event

    gui = threading.get_ident()
    seen: list[str] = []

    def on_execute(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if threading.get_ident() == gui:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    return seen, lambda: event.remove(engine, "before_cursor_execute", on_execute)


def test_stepping_through_the_queue_reads_nothing_on_the_gui_thread(qtbot, project, make) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    p, rec = make()
    seen, stop = _gui_thread_statements(project.db.engine)
    try:
        p.step(1)  # read ahead with the first row: shown complete at once
        assert rec.items[-1].item.image_id == ids[1] and not rec.items[-1].loading and not p.loading_details
        p.select_row(2)
        assert rec.items[-1].item.image_id == ids[2] and not rec.items[-1].loading
        for _ in range(3):
            p.step(-1)
            qtbot.waitUntil(lambda: not p.loading_details, timeout=5000)
        _settle(qtbot, p)
        assert p.current.image_id == ids[0]
    finally:
        stop()
    assert seen == []


def test_a_row_shows_at_once_and_its_decisions_follow(qtbot, project, make, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from annotator.gui import review_presenter

    ids = _label(project)
    ReviewService(project.db, project.rev).accept(ids[1], ALICE, expected_version=0)
    monkeypatch.setattr(review_presenter, "READ_AHEAD", ())  # nothing read ahead: each row is read when shown
    p, rec = make()
    p.set_filters(status="all")
    _settle(qtbot, p)
    row = p.queue_image_ids().index(ids[1])
    seen, stop = _gui_thread_statements(project.db.engine)
    try:
        with qtbot.waitSignal(p.itemChanged, check_params_cb=lambda v: v is not None and not v.loading,
                              timeout=5000):
            p.select_row(row)
            first = rec.items[-1]
            assert first.item.image_id == ids[1] and first.loading  # at once, as the queue lists it
            assert [r.key for r in first.readers] == [ALICE, BOB] and first.history == [] and first.latest is None
            assert p.version == 1  # what a decision made now is based on: the version the row shows
    finally:
        stop()
    assert seen == []
    view = rec.items[-1]
    assert view.item.image_id == ids[1] and view.status == "decided" and view.decided_source == ALICE
    assert [a.version for a in view.history] == [1] and p.version == 1


def test_details_read_for_a_row_already_left_are_dropped(qtbot, project, make, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from annotator.gui import review_presenter

    ids = _label(project)
    monkeypatch.setattr(review_presenter, "READ_AHEAD", ())
    release = threading.Event()
    started = threading.Event()
    real = review_presenter.read_details

    def slow_for_the_second(service, viewing, image_id):  # type: ignore[no-untyped-def]
        if image_id == ids[1]:
            started.set()
            release.wait(10)
        return real(service, viewing, image_id)

    monkeypatch.setattr(review_presenter, "read_details", slow_for_the_second)
    p, rec = make()
    p.step(1)
    qtbot.waitUntil(started.is_set, timeout=5000)  # the read of ids[1] is under way...
    p.step(1)  # ...when the reviewer moves on
    qtbot.waitUntil(lambda: not p.loading_details, timeout=5000)
    assert p.current.image_id == ids[2]
    n = len(rec.items)
    release.set()
    _settle(qtbot, p)
    assert len(rec.items) == n  # the late answer changed nothing on screen
    assert p.current.image_id == ids[2] and not p.view.loading and p.view.item.image_id == ids[2]
    assert [v.item.image_id for v in rec.items if v is not None and not v.loading][-1] == ids[2]


def _count_queue_reads(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """How many times the whole queue is read (each read computes every slice of the project)."""
    from annotator.gui import review_state

    reads: list[int] = []
    real = review_state.disagreement_queue

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(review_state, "disagreement_queue", counted)
    return reads


def test_a_decision_updates_its_row_without_reading_the_whole_queue_again(qtbot, project, make, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    p, rec = make()
    p.set_filters(status="all")
    _settle(qtbot, p)
    reads = _count_queue_reads(monkeypatch)
    untouched = p.rows[1]
    with qtbot.waitSignal(p.adjudicated, timeout=10000):
        p.accept(BOB)
    _settle(qtbot, p)
    assert reads == []  # nothing but this decision was written: the queue read before it still holds
    assert p.queue_image_ids() == ids and p.current.image_id == ids[1]  # same order, moved to the next
    assert [it.status for it in p.rows] == ["decided", "open", "open"] and p.rows[0].adjudication_version == 1
    assert p.rows[1] is untouched
    assert rec.queues[-1].counts.startswith("3 in queue")
    # the queue as updated is the queue as the database now lists it
    assert p.rows == disagreement_queue(project.db, project.rev, status=None)

    p.reopen()  # no reason: refused, nothing stored, nothing read
    _settle(qtbot, p)
    assert reads == [] and rec.last_message[1] == "error"


def test_a_write_by_someone_else_meanwhile_reads_the_queue_again(qtbot, project, make, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    p, rec = make()
    reads = _count_queue_reads(monkeypatch)
    LabelService(project.db, project.bob).set_label(ids[2], 61, 60, 0)  # bob labels the slice he had missed
    with qtbot.waitSignal(p.adjudicated, timeout=10000):
        p.accept(BOB)
    _settle(qtbot, p)
    assert reads == [1]  # read again: the row updated alone would have missed bob's label
    assert p.queue_image_ids() == [ids[1]] and p.current.image_id == ids[1]  # ids[2] left: the raters agree
    assert p.rows == disagreement_queue(project.db, project.rev)


def test_a_stream_of_changes_costs_back_to_back_queue_reads_not_one_each(qtbot, project, make,  # type: ignore[no-untyped-def]
                                                                         monkeypatch) -> None:
    """Colleagues commit faster than the queue is read: refreshes asked for while one read runs wait for
    it (the newest one only), so the workers never fill with reads whose answers would be dropped, and the
    queue shown in the end has the last commit."""
    import annotator.gui.review_presenter as module

    ids = _label(project)
    p, rec = make()
    gate, reads = threading.Event(), []
    real = module.fetch_queue

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(threading.get_ident())
        if len(reads) == 1:
            gate.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "fetch_queue", counted)
    LabelService(project.db, project.bob).set_label(ids[2], 61, 61, 3)  # something to read: not skipped
    p.refresh()
    qtbot.waitUntil(lambda: len(reads) == 1, timeout=5000)
    for grade in (0, 1, 2, 3, 0):  # five commits by bob, each announced while the first read is blocked
        LabelService(project.db, project.bob).set_label(ids[2], 61, 61, grade)
        p.refresh()
    gate.set()
    _settle(qtbot, p)
    assert len(reads) == 2  # the blocked read, then one for the five refreshes
    # bob's last grade (0) agrees with alice's, 0.8 mm away: the slice has left the queue; before it, it
    # was listed with bob's earlier grades
    assert ids[2] not in [it.image_id for it in p.data.items] and ids[2] in [it.image_id for it in rec.queues[0].rows]
    assert rec.errors == []
