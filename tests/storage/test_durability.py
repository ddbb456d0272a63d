"""No data lost: SIGKILL during commits, and several processes writing at once."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path

from annotator.domain.entities import Role
from annotator.storage import audit, catalog, labels, people
from annotator.storage.database import open_database
from tests.factories import instance

N_IMAGES = 20


def _setup(path: Path, n_raters: int) -> list[int]:
    db = open_database(f"sqlite:///{path}")
    catalog.import_instances(db, [instance(i) for i in range(N_IMAGES)])
    ids = [people.add_rater(db, f"r{k}", Role.ANNOTATOR).id for k in range(n_raters)]
    db.close()
    return ids


def _label_forever(url: str, rater_id: int, conn: mp.connection.Connection) -> None:  # type: ignore[name-defined]
    db = open_database(url, upgrade=False)
    image_ids = [im.id for im in catalog.images(db)]
    n = 0
    while True:
        image_id = image_ids[n % len(image_ids)]
        lab = labels.add_version(db, image_id=image_id, rater_id=rater_id, x_px=float(n), y_px=1.0,
                                 grade=n % 4, scale_code="lee", action="set")
        conn.send((lab.image_id, lab.version, n))  # reported only after the commit returned
        n += 1


def test_sigkill_while_committing_loses_no_committed_label(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    [rater_id] = _setup(path, 1)
    url = f"sqlite:///{path}"
    ctx = mp.get_context("fork")
    rng = random.Random(1234)
    committed: dict[tuple[int, int], int] = {}
    for _trial in range(100):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_label_forever, args=(url, rater_id, child))
        proc.start()
        child.close()
        # wait until the child is committing, then kill it at a random moment of its loop
        assert parent.poll(30), "child never committed"
        image_id, version, n = parent.recv()
        committed[(image_id, version)] = n
        deadline = time.monotonic() + rng.uniform(0.0, 0.05)
        while time.monotonic() < deadline:
            if parent.poll(0.005):
                image_id, version, n = parent.recv()
                committed[(image_id, version)] = n
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        while parent.poll():
            try:
                image_id, version, n = parent.recv()
            except EOFError:
                break
            committed[(image_id, version)] = n
        parent.close()
    db = open_database(url, upgrade=False)
    assert db.integrity_check() == "ok"
    stored = {}
    for im_id in range(1, N_IMAGES + 1):
        for lab in labels.history(db, im_id, rater_id):
            stored[(lab.image_id, lab.version)] = lab.x_px
    assert len(committed) >= 100
    missing = [k for k in committed if k not in stored]
    assert not missing
    assert all(stored[k] == float(n) for k, n in committed.items())
    # every acknowledged label has its audit entry, committed with it (same transaction)
    audited = {}
    for e in audit.entries(db, entity="annotation"):
        assert e.after is not None and e.rater_id == rater_id
        image_id, _, who = e.entity_id.partition(":")
        assert int(who) == rater_id
        audited[(int(image_id), int(e.after["version"]))] = e.after["x_px"]
    assert not [k for k in committed if k not in audited]
    assert all(audited[k] == float(n) for k, n in committed.items())
    assert set(audited) == set(stored)  # no entry without its label, no label without its entry
    db.close()


def _write_many(url: str, rater_id: int, n: int, q: mp.Queue) -> None:  # type: ignore[type-arg]
    try:
        db = open_database(url, upgrade=False)
        image_ids = [im.id for im in catalog.images(db)]
        for i in range(n):
            labels.add_version(db, image_id=image_ids[i % len(image_ids)], rater_id=rater_id, x_px=float(i),
                               y_px=0.0, grade=i % 4, scale_code="lee", action="set")
        q.put(("ok", rater_id))
    except Exception as exc:  # reported to the parent, which fails the test
        q.put(("error", f"{type(exc).__name__}: {exc}"))


def test_four_processes_writing_at_once_all_rows_present(tmp_path: Path) -> None:
    path = tmp_path / "concurrent.db"
    rater_ids = _setup(path, 4)
    url = f"sqlite:///{path}"
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_write_many, args=(url, rid, 200, q)) for rid in rater_ids]
    for p in procs:
        p.start()
    outcomes = [q.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(o[0] == "ok" for o in outcomes), outcomes
    db = open_database(url, upgrade=False)
    assert labels.count_versions(db) == 4 * 200
    for rid in rater_ids:
        versions = [lab.version for im in range(1, N_IMAGES + 1) for lab in labels.history(db, im, rid)]
        assert sorted(versions) == sorted(v for v in range(1, 11) for _ in range(N_IMAGES))
    assert db.integrity_check() == "ok"
    db.close()
