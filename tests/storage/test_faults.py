"""Faults lose nothing: server restarts, a lost commit acknowledgement, an outage longer than the wait.

Every test runs against a PostgreSQL server of its own (``own_pg_server``), restarted with pg_ctl.
Writers commit through the real service and storage code; an action is acknowledged only when the
service returned its version, and afterwards every acknowledged action is stored exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from annotator.domain.connection import ConnectionState, ConnectionStatus, new_action_key
from annotator.domain.entities import Label, Rater, Role
from annotator.domain.errors import NotCommitted
from annotator.domain.scales import load_scale
from annotator.services.labelling import LabelService, Shown
from annotator.storage import audit, catalog, labels, people
from annotator.storage.database import Database, open_database
from annotator.storage.reconnect import Backoff
from tests.factories import instance
from tests.storage.pg_proxy import DropCommitAck

if TYPE_CHECKING:
    from tests.conftest import PgServer

N_IMAGES = 8
N_WRITERS = 4
RESTARTS = 100


def _project(url: str, n_raters: int) -> tuple[Database, list[Rater]]:
    db = open_database(url)
    catalog.import_instances(db, [instance(i) for i in range(N_IMAGES)])
    return db, [people.add_rater(db, f"r{k}", Role.ANNOTATOR) for k in range(n_raters)]


@dataclass
class Writer:
    """One workstation: labels the slices in turn through LabelService, as the session does (it holds
    its own label, so each action is one write). An action refused with NotCommitted is repeated with
    the same key until stored, as the session's pending action is."""

    url: str
    rater: Rater
    stop: threading.Event
    acked: list[Label] = field(default_factory=list)
    refused: int = 0
    states: list[ConnectionState] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        db = open_database(self.url, upgrade=False)
        db.backoff = Backoff(first_s=0.01, max_s=0.05, total_s=30)  # the server is back in ~0.3 s: look often
        db.monitor.subscribe(lambda st: self.states.append(st.state))
        try:
            service = LabelService(db, self.rater)
            images, scale = catalog.images(db), load_scale("lee")
            own: dict[int, Label | None] = {im.id: None for im in images}
            n = 0
            while not self.stop.is_set():
                image = images[n % len(images)]
                key, shown = new_action_key(), Shown(image, own[image.id], scale)
                while True:
                    try:
                        if n % 2:
                            lab = service.set_grade(image.id, n % 4, shown=shown, key=key)
                        else:
                            lab = service.set_point(image.id, float(n % 60), 1.0, shown=shown, key=key)
                        break
                    except NotCommitted:
                        self.refused += 1
                self.acked.append(lab)
                own[image.id] = lab
                n += 1
        except Exception as exc:  # reported to the test, which fails
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            db.close()


def _stored(db: Database, raters: list[Rater]) -> list[Label]:
    return [lab for r in raters for im in range(1, N_IMAGES + 1) for lab in labels.history(db, im, r.id)]


def test_hundred_server_restarts_every_acknowledged_label_stored_exactly_once(own_pg_server: PgServer) -> None:
    url = own_pg_server.create_database()
    db, raters = _project(url, N_WRITERS)
    stop = threading.Event()
    writers = [Writer(url, r, stop) for r in raters]
    threads = [threading.Thread(target=w.run, name=f"writer-{w.rater.name}") for w in writers]
    for t in threads:
        t.start()
    began = time.monotonic()
    for i in range(RESTARTS):
        # let every writer commit something between two restarts, then restart while they commit
        marks = [len(w.acked) for w in writers]
        deadline = time.monotonic() + 30
        while any(len(w.acked) <= m for w, m in zip(writers, marks, strict=True)) and time.monotonic() < deadline:
            if any(w.errors for w in writers):
                break
            time.sleep(0.002)
        own_pg_server.restart("immediate" if i % 2 else "fast")
    stop.set()
    for t in threads:
        t.join(60)
    took = time.monotonic() - began
    assert not any(t.is_alive() for t in threads)
    assert not [e for w in writers for e in w.errors]

    acked = [lab for w in writers for lab in w.acked]
    stored = _stored(db, raters)
    keys = Counter(lab.key for lab in stored)
    assert all(k is not None for k in keys)
    assert not [k for k, n in keys.items() if n > 1]  # no action stored twice
    by_key = {lab.key: lab for lab in stored}
    assert [lab for lab in acked if by_key.get(lab.key) != lab] == []  # every acknowledged one, as acknowledged
    assert len(stored) == len(acked)  # and nothing that was not acknowledged
    for r in raters:  # versions per (image, rater): 1..n, no gap, no duplicate
        for im in range(1, N_IMAGES + 1):
            versions = [lab.version for lab in labels.history(db, im, r.id)]
            assert versions == list(range(1, len(versions) + 1))
    # every version has its audit entry (same transaction), and no entry lacks its version
    audited = Counter(e.after["key"] for e in audit.entries(db, entity="annotation") if e.after)
    assert audited == Counter({lab.key: 1 for lab in stored})
    # the restarts did hit the writers: each saw the connection drop and come back many times
    assert all(w.states.count(ConnectionState.RECONNECTING) >= RESTARTS // 4 for w in writers)
    assert all(w.states[-1] is ConnectionState.CONNECTED for w in writers)
    assert len(acked) >= RESTARTS * N_WRITERS
    print(f"{RESTARTS} restarts in {took:.1f} s: {len(acked)} labels acknowledged, {len(stored)} stored, "
          f"{sum(w.refused for w in writers)} refused and repeated")
    db.close()


def test_commit_whose_acknowledgement_is_lost_is_stored_once(own_pg_server: PgServer) -> None:
    """The server commits, the connection breaks before the client hears it: the retry finds the key."""
    url = own_pg_server.create_database()
    setup, [rater] = _project(url, 1)
    image = catalog.images(setup)[0]
    with DropCommitAck(own_pg_server.sock) as proxy:
        db = open_database(proxy.url(url), upgrade=False)
        states: list[ConnectionStatus] = []
        db.monitor.subscribe(states.append)
        service = LabelService(db, rater)
        first = service.set_point(image.id, 10.0, 12.0, shown=Shown(image, None, load_scale("lee")))
        proxy.arm()  # the next COMMIT's answer never reaches the client
        key = new_action_key()
        second = service.set_grade(image.id, 2, shown=Shown(image, first, load_scale("lee")), key=key)
        assert proxy.dropped == 1
        assert [s.state for s in states] == [ConnectionState.RECONNECTING, ConnectionState.CONNECTED]
        assert (second.version, second.grade, second.key) == (2, 2, key)
        # repeated by the user with the same key: the stored version comes back, nothing new is stored
        again = service.set_grade(image.id, 2, shown=Shown(image, first, load_scale("lee")), key=key)
        assert again == second
        # without a key to look up (a write that has none), the outcome is unknown, and the user is told
        proxy.arm()
        with pytest.raises(NotCommitted) as refused:
            people.add_rater(db, "second", Role.ANNOTATOR)
        assert refused.value.certain is False
        db.close()
    assert [(lab.version, lab.grade) for lab in labels.history(setup, image.id, rater.id)] == [(1, None), (2, 2)]
    assert len(audit.entries(setup, entity="annotation")) == 2
    assert "second" in {r.name for r in people.list_raters(setup)}  # it had committed: hence "may be stored"
    setup.close()


def test_outage_longer_than_the_wait_is_refused_then_stored_once(own_pg_server: PgServer) -> None:
    url = own_pg_server.create_database()
    db, [rater] = _project(url, 1)
    db.backoff = Backoff(total_s=0.5)
    states: list[ConnectionState] = []
    db.monitor.subscribe(lambda st: states.append(st.state))
    service = LabelService(db, rater)
    image, key = catalog.images(db)[0], new_action_key()
    shown = Shown(image, None, load_scale("lee"))
    own_pg_server.stop("fast")
    try:
        began = time.monotonic()
        with pytest.raises(NotCommitted) as refused:
            service.set_grade(image.id, 1, shown=shown, key=key)
        assert 0.5 <= time.monotonic() - began < 5
        assert refused.value.certain is True and "not stored" in str(refused.value)
        assert states == [ConnectionState.RECONNECTING, ConnectionState.OFFLINE]
        assert db.ping() is False
    finally:
        own_pg_server.start_again()
    assert labels.history(db, image.id, rater.id) == []
    stored = service.set_grade(image.id, 1, shown=shown, key=key)
    assert states[-1] is ConnectionState.CONNECTED
    assert service.set_grade(image.id, 1, shown=shown, key=key) == stored  # a second repeat changes nothing
    assert [lab.key for lab in labels.history(db, image.id, rater.id)] == [key]
    db.close()
