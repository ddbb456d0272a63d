"""A team on one PostgreSQL server: N workstations (processes) labelling at once, with their reads.

Issue 14, point 6. Each workstation is its own process with its own connection pool, signed in as its
own annotator. It makes ``--writes`` label actions back to back (a point or a grade on its next slice,
through LabelService exactly as the workstation's session calls it: the screen holds its label, so one
action is one write transaction), and between them reads its worklist every 25 actions and the review
queue (as a reviewer) every 200. The commit latency of each action is timed around the service call.

Afterwards the database is checked against what the workstations were told: an acknowledged action
missing from the database is *lost*; an action key stored twice, or a (slice, rater) whose versions
are not exactly 1..n, is *duplicated*; a stored version nobody was told about is *unacknowledged*.

By default a throw-away PostgreSQL server (initdb, pg_ctl) is started in a temporary folder, with
fsync on (a commit waits for its WAL flush, as in production); ``--no-fsync`` turns it off; ``--db URL``
uses a server of your own (a fresh database per run is created beside the one named).
Target: p95 commit latency <= 30 ms at 10 workstations, 0 lost, 0 duplicated.
Usage: python benchmarks/team_load.py [--workstations 10 50] [--writes 1000] [--no-fsync] [--db URL]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import where  # benchmarks/where.py, beside this script

from annotator.domain.connection import new_action_key
from annotator.domain.entities import DicomInstance, Label, Role
from annotator.domain.errors import NotCommitted
from annotator.domain.geometry import ImageGeometry
from annotator.domain.scales import load_scale
from annotator.services.labelling import LabelService, Shown
from annotator.services.review import disagreement_queue
from annotator.services.worklist import WorklistService
from annotator.storage import catalog, people
from annotator.storage.database import open_database

PATIENTS, SLICES = 20, 20  # the catalogue: 400 axial slices
WORKLIST_EVERY, QUEUE_EVERY = 50, 500  # a reload now and then; a reviewer's queue more rarely


# ----- a throw-away server -----------------------------------------------------------------------
def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Server:
    def __init__(self, fsync: bool) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found and not shutil.which("initdb"):
            sys.exit("PostgreSQL server binaries (initdb, pg_ctl) are not installed; pass --db URL")
        self.bin = Path(found[-1]).parent if found else Path(str(shutil.which("initdb"))).parent
        self.root = Path(tempfile.mkdtemp(prefix="annotator-load-"))
        os.chmod(self.root, 0o777)
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres")
        self.fsync = fsync

    def start(self) -> None:
        subprocess.run(_as_postgres([str(self.bin / "initdb"), "-D", str(self.root / "data"), "-A", "trust",
                                     "-U", "postgres", "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
        opts = f"-k {self.root} -c listen_addresses='' -c max_connections=200" + ("" if self.fsync else " -F")
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-o", opts,
                                     "-l", str(self.root / "log"), "-w", "start"]), check=True, capture_output=True)

    def version(self) -> str:
        out = subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True, text=True)
        return out.stdout.strip()

    def cpu_s(self) -> float:
        """CPU seconds the server's exited backends used (the postmaster's reaped children)."""
        pid = (self.root / "data" / "postmaster.pid").read_text().split()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@/{dbname}?host={self.root}"

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w",
                                     "stop"]), capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _create_database(admin_url: str) -> str:
    """A fresh database on the server of ``admin_url``; its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"load_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


# ----- the project --------------------------------------------------------------------------------
def _instance(p: int, i: int) -> DicomInstance:
    uid = "1.2.826.0.1.3680043.8.498.77"
    return DicomInstance(
        path=f"/load/p{p}/img{i}.dcm", sha256=hashlib.sha256(f"{p}-{i}".encode()).hexdigest(),
        sop_instance_uid=f"{uid}.{p}.{i}", sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        study_instance_uid=f"{uid}.{p}", series_instance_uid=f"{uid}.{p}.0",
        patient_id=f"P{p:04d}", patient_name=f"Load^{p}", transfer_syntax_uid="1.2.840.10008.1.2.1",
        geometry=ImageGeometry(rows=320, columns=320, pixel_spacing=(0.6, 0.6),
                               image_position=(-96.0, -96.0, 4.0 * i), image_orientation=(1, 0, 0, 0, 1, 0),
                               slice_thickness=4.0),
        modality="MR", series_description="AX T2", series_number=1, instance_number=i + 1,
        window_center=600.0, window_width=1200.0)


def _project(url: str, workstations: int) -> None:
    db = open_database(url)
    catalog.import_instances(db, [_instance(p, i) for p in range(PATIENTS) for i in range(SLICES)])
    for k in range(workstations):
        people.add_rater(db, f"ws{k:02d}", Role.ANNOTATOR)
    people.add_rater(db, "reviewer", Role.REVIEWER)
    db.close()


# ----- one workstation ----------------------------------------------------------------------------
@dataclass
class Outcome:
    rater_id: int
    acked: list[tuple[str, int, int]]  # (key, image id, version) of each acknowledged action
    commit_s: list[float]
    worklist_s: list[float]
    queue_s: list[float]
    refused: int
    error: str = ""


def _workstation(url: str, k: int, writes: int, start: mp.synchronize.Event,  # type: ignore[name-defined]
                 out: mp.Queue) -> None:  # type: ignore[type-arg]
    acked: list[tuple[str, int, int]] = []
    commit_s: list[float] = []
    worklist_s: list[float] = []
    queue_s: list[float] = []
    refused, rater_id = 0, -1
    try:
        db = open_database(url, upgrade=False)
        raters = {r.name: r for r in people.list_raters(db)}
        rater, reviewer = raters[f"ws{k:02d}"], raters["reviewer"]
        rater_id = rater.id
        service, worklist = LabelService(db, rater), WorklistService(db, rater)
        images, scale = catalog.images(db), load_scale("lee")
        own: dict[int, Label | None] = {im.id: None for im in images}
        start.wait()
        for n in range(writes):
            image = images[(n * 7 + k * 13) % len(images)]
            key, shown = new_action_key(), Shown(image, own[image.id], scale)
            began = time.perf_counter()
            while True:
                try:
                    if n % 2 == 0:
                        lab = service.set_point(image.id, 100.0 + (n + k) % 40, 150.0 + k % 30, shown=shown,
                                                key=key)
                    else:
                        lab = service.set_grade(image.id, (n + k) % 4, shown=shown, key=key)
                    break
                except NotCommitted:  # the workstation keeps the action and repeats it with its key
                    refused += 1
            commit_s.append(time.perf_counter() - began)
            own[image.id] = lab
            acked.append((key, lab.image_id, lab.version))
            if n % WORKLIST_EVERY == WORKLIST_EVERY - 1:
                began = time.perf_counter()
                worklist.load()
                worklist_s.append(time.perf_counter() - began)
            if n % QUEUE_EVERY == QUEUE_EVERY - 1:
                began = time.perf_counter()
                disagreement_queue(db, reviewer)
                queue_s.append(time.perf_counter() - began)
        db.close()
        out.put(Outcome(rater_id, acked, commit_s, worklist_s, queue_s, refused))
    except Exception as exc:  # reported in the table, and the run fails
        out.put(Outcome(rater_id, acked, commit_s, worklist_s, queue_s, refused, f"{type(exc).__name__}: {exc}"))


# ----- a run --------------------------------------------------------------------------------------
def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def _check(url: str, outcomes: list[Outcome]) -> tuple[int, int, int]:
    """(lost, duplicated, unacknowledged) by comparing the database with what was acknowledged."""
    from sqlalchemy import select

    from annotator.storage.tables import AnnotationRow, AuditRow

    db = open_database(url, upgrade=False)
    with db.read() as s:
        rows = s.execute(select(AnnotationRow.action_key, AnnotationRow.image_id, AnnotationRow.rater_id,
                                AnnotationRow.version)).all()
        audited = Counter(a["key"] for (a,) in s.execute(select(AuditRow.after).where(AuditRow.entity == "annotation"))
                          if a and "key" in a)
    db.close()
    stored = {key: (image_id, rater_id, version) for key, image_id, rater_id, version in rows}
    keys = Counter(key for key, *_ in rows)
    acked = {key: (image_id, o.rater_id, version) for o in outcomes for key, image_id, version in o.acked}
    lost = sum(1 for key, where_ in acked.items() if stored.get(key) != where_)
    versions: dict[tuple[int, int], list[int]] = {}
    for _key, image_id, rater_id, version in rows:
        versions.setdefault((image_id, rater_id), []).append(version)
    duplicated = sum(n - 1 for n in keys.values() if n > 1)
    duplicated += sum(len(v) - len(set(v)) for v in versions.values())
    gaps = sum(1 for v in versions.values() if sorted(v) != list(range(1, len(v) + 1)))
    unacknowledged = len(set(stored) - set(acked))
    unaudited = sum(1 for key in stored if audited.get(key) != 1)
    if gaps or unaudited:
        print(f"  !! {gaps} (slice, rater) with version gaps, {unaudited} versions without exactly one audit entry")
    return lost, duplicated + gaps, unacknowledged


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(admin_url: str, workstations: int, writes: int, server: Server | None) -> bool:
    url = _create_database(admin_url)
    _project(url, workstations)
    ctx = mp.get_context("fork")  # the children share the imported modules; each opens its own engine
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_workstation, args=(url, k, writes, start, out)) for k in range(workstations)]
    for p in procs:
        p.start()
    time.sleep(1.0 + workstations * 0.05)  # let every workstation open its database before the start
    load_before = os.getloadavg()[0]
    cpu_before = (_children_cpu_s(), server.cpu_s() if server is not None else 0.0)
    began = time.perf_counter()
    start.set()
    outcomes = [out.get(timeout=3600) for _ in procs]
    took = time.perf_counter() - began
    for p in procs:
        p.join(60)
    time.sleep(0.5)  # the backends of the closed connections exit
    client_cpu = _children_cpu_s() - cpu_before[0]
    server_cpu = server.cpu_s() - cpu_before[1] if server is not None else float("nan")
    lost, duplicated, unacked = _check(url, outcomes)
    commits = [t for o in outcomes for t in o.commit_s]
    worklists = [t for o in outcomes for t in o.worklist_s]
    queues = [t for o in outcomes for t in o.queue_s]
    errors = [o.error for o in outcomes if o.error]
    total = sum(len(o.acked) for o in outcomes)
    print(f"{workstations} workstations x {writes} writes: {total} writes acknowledged in {took:.1f} s "
          f"({total / took:.0f} commits/s), {len(worklists)} worklist and {len(queues)} queue reads between them")
    print(f"  lost {lost}, duplicated {duplicated}, stored but unacknowledged {unacked}, errors {len(errors)}, "
          f"refused and repeated {sum(o.refused for o in outcomes)}")
    print(f"  commit latency ms: p50 {1000 * _pct(commits, 50):.1f}  p95 {1000 * _pct(commits, 95):.1f}  "
          f"p99 {1000 * _pct(commits, 99):.1f}  max {1000 * max(commits, default=float('nan')):.1f}  "
          f"mean {1000 * statistics.fmean(commits):.1f}")
    print(f"  worklist read ms: p50 {1000 * _pct(worklists, 50):.0f}  p95 {1000 * _pct(worklists, 95):.0f};  "
          f"queue read ms: p50 {1000 * _pct(queues, 50):.0f}  p95 {1000 * _pct(queues, 95):.0f}")
    print(f"  CPU per write, its share of the reads included: workstations {1000 * client_cpu / total:.2f} ms, "
          f"server {1000 * server_cpu / total:.2f} ms")
    print(f"  load average 1 min: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    for e in errors[:5]:
        print(f"  error: {e}")
    return not errors and lost == 0 and duplicated == 0 and unacked == 0 and total == workstations * writes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workstations", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--writes", type=int, default=1000, help="label writes per workstation")
    ap.add_argument("--no-fsync", action="store_true", help="start the throw-away server with fsync off")
    ap.add_argument("--db", help="postgresql URL of a server of your own (a fresh database is created on it)")
    args = ap.parse_args()
    server = None
    if args.db:
        admin_url = args.db
        print(f"database: PostgreSQL at {args.db} (a fresh database per run)")
    else:
        server = Server(fsync=not args.no_fsync)
        server.start()
        admin_url = server.url("postgres")
        fs = where.filesystem(server.root)
        print(f"database: {server.version()} in {server.root} ({fs}, "
              f"{'in memory' if fs in ('tmpfs', 'ramfs') else 'on disk'}), Unix socket, "
              f"fsync {'off' if args.no_fsync else 'on'}")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"Python {sys.version.split()[0]}")
    print(f"catalogue: {PATIENTS * SLICES} slices; each workstation reads its worklist every {WORKLIST_EVERY} "
          f"writes and the review queue every {QUEUE_EVERY}")
    ok = True
    try:
        for n in args.workstations:
            ok = run(admin_url, n, args.writes, server) and ok
    finally:
        if server is not None:
            server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
