"""The change watcher: a commit on another connection is reported within a second, by kind."""

from __future__ import annotations

import time

import psycopg
import pytest

from annotator.domain.changes import ChangeKind
from annotator.domain.entities import LabelAction, ModelKind, Role
from annotator.storage import catalog, labels, models_repo, people
from annotator.storage.changes import ChangeWatcher
from annotator.storage.database import open_database
from tests.factories import instance


def _wait(watcher: ChangeWatcher, timeout_s: float = 1.0) -> tuple[set[ChangeKind], float]:
    """The kinds the watcher reports first, and how long after the call they came."""
    start = time.perf_counter()
    seen: set[ChangeKind] = set()
    while not seen and time.perf_counter() - start < timeout_s:
        time.sleep(0.005)
        seen = watcher.poll()
    return seen, time.perf_counter() - start


def test_a_label_committed_elsewhere_is_reported_within_a_second(db_url: str) -> None:
    db = open_database(db_url)
    other = open_database(db_url)  # another workstation: its own engine and connections
    try:
        [res] = catalog.import_instances(db, [instance(0)])
        alice = people.add_rater(db, "alice", Role.ANNOTATOR)
        image_id = catalog.image_by_sop(db, res.sop_instance_uid).id
        with ChangeWatcher(db) as watcher:
            time.sleep(0.3)
            assert watcher.poll() == set(), "nothing was committed since start"
            latencies = []
            for grade in (1, 2, 3):
                labels.add_version(other, image_id=image_id, rater_id=alice.id, x_px=3.0, y_px=4.0, grade=grade,
                                   scale_code="lee", action=LabelAction.SET)
                kinds, latency = _wait(watcher)
                assert ChangeKind.LABELS in kinds, kinds
                assert ChangeKind.MODELS not in kinds
                latencies.append(latency)
            print(f"{db.dialect}: label -> watcher latencies {[f'{x * 1000:.0f} ms' for x in latencies]}")
            assert max(latencies) < 1.0
            # a model registered, then activated (an update): reported as a model change
            v = models_repo.register(other, name="m", preset="fast", target="rater:alice", kind=ModelKind.TRAIN,
                                     weights_path="/nowhere", weights_sha256="0" * 64, card={})
            kinds, _ = _wait(watcher)
            assert ChangeKind.MODELS in kinds and ChangeKind.LABELS not in kinds
            models_repo.activate(other, v.id)
            kinds, _ = _wait(watcher)
            assert ChangeKind.MODELS in kinds
            # reading changes nothing
            labels.current(other)
            time.sleep(0.5)
            assert watcher.poll() == set()
    finally:
        other.close()
        db.close()


def test_the_callback_hears_of_each_change(db) -> None:  # type: ignore[no-untyped-def]
    heard: list[frozenset[ChangeKind]] = []
    with ChangeWatcher(db, on_change=heard.append):
        catalog.import_instances(db, [instance(0)])
        deadline = time.perf_counter() + 1.0
        while not heard and time.perf_counter() < deadline:
            time.sleep(0.01)
    assert heard and ChangeKind.CATALOGUE in heard[0]


@pytest.mark.postgres
def test_the_listener_reconnects_and_reports_everything_after_losing_its_connection(pg_server) -> None:  # type: ignore[no-untyped-def]
    db = open_database(pg_server.create_database())
    try:
        with ChangeWatcher(db) as watcher:
            dbname = db.engine.url.database
            with psycopg.connect(f"host={pg_server.sock} user=postgres dbname=postgres", autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND query LIKE 'LISTEN%%'",
                    (dbname,)).fetchall()
            assert killed, "the watcher's listening connection was found"
            kinds, _ = _wait(watcher, 5.0)
            assert kinds == set(ChangeKind), "what was missed while disconnected is unknown: everything"
            catalog.import_instances(db, [instance(0)])
            kinds, latency = _wait(watcher)
            assert ChangeKind.CATALOGUE in kinds and latency < 1.0
    finally:
        db.close()


def test_an_in_memory_database_cannot_be_watched() -> None:
    db = open_database("sqlite://")
    try:
        with pytest.raises(ValueError, match="in-memory"):
            ChangeWatcher(db)
    finally:
        db.close()


def test_the_fingerprint_changes_with_each_commit_and_only_then(db) -> None:  # type: ignore[no-untyped-def]
    from annotator.storage.changes import fingerprint

    [res] = catalog.import_instances(db, [instance(0)])
    alice = people.add_rater(db, "alice", Role.ANNOTATOR)
    image_id = catalog.image_by_sop(db, res.sop_instance_uid).id
    seen = [fingerprint(db)]
    labels.current(db)
    assert fingerprint(db) == seen[-1], "a read changes nothing"
    labels.add_version(db, image_id=image_id, rater_id=alice.id, x_px=1.0, y_px=1.0, grade=1, scale_code="lee",
                       action=LabelAction.SET)
    seen.append(fingerprint(db))
    v = models_repo.register(db, name="m", preset="fast", target="rater:alice", kind=ModelKind.TRAIN,
                             weights_path="/nowhere", weights_sha256="0" * 64, card={})
    seen.append(fingerprint(db))
    models_repo.activate(db, v.id)
    seen.append(fingerprint(db))
    people.update_settings(db, None, disagreement_threshold_mm=5.0)
    seen.append(fingerprint(db))
    assert len(set(seen)) == len(seen)


@pytest.mark.postgres
def test_the_fingerprint_sees_a_commit_that_took_a_smaller_id_last(pg_server) -> None:  # type: ignore[no-untyped-def]
    """Two workstations label at once: the one that took the smaller id commits last. A largest-id
    summary would not move; the fingerprint does."""
    from sqlalchemy import insert

    from annotator.storage.changes import fingerprint
    from annotator.storage.tables import AnnotationRow

    db = open_database(pg_server.create_database())
    try:
        [res] = catalog.import_instances(db, [instance(0)])
        image_id = catalog.image_by_sop(db, res.sop_instance_uid).id
        a, b = (people.add_rater(db, n, Role.ANNOTATOR) for n in ("a", "b"))

        def row(rater_id: int) -> dict[str, object]:
            return dict(image_id=image_id, rater_id=rater_id, version=1, x_px=1.0, y_px=1.0, grade=1,
                        scale_code="lee", action="set")

        with db.engine.connect() as slow:
            slow.begin()
            slow.execute(insert(AnnotationRow).values(**row(a.id)))  # takes the smaller id, commits last
            with db.engine.begin() as fast:
                fast.execute(insert(AnnotationRow).values(**row(b.id)))
            before = fingerprint(db)
            slow.commit()
        assert fingerprint(db) != before
    finally:
        db.close()
