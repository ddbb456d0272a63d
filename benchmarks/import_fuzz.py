"""Fuzz the importer: mutated copies of pydicom's test corpus go through the app's real import into a
real SQLite project database.

Every case is a file made from one corpus file (seeded: case N of seed S is always the same bytes) by
one to three mutations: bit flips, interesting byte values, truncation, a corrupted element length,
deeply nested sequences, huge Rows/Columns/NumberOfFrames/BitsAllocated, impossible PixelSpacing,
ImageOrientationPatient or ImagePositionPatient, a new SOPInstanceUID, or a splice of two files. Each
file is imported on its own (``import_paths``) in a worker process that the parent watches:

- crash: anything but one well-formed ImportResult (an exception, a worker that dies, a result with an
  empty or multi-line reason);
- hang: a case still running after ``--hang-s`` seconds (the worker is killed and restarted);
- the slowest case, wall and CPU seconds of its import (target: none over 2 s);
- nothing partial in the database: after every chunk and at the end, a rejected or skipped file has no
  row, an imported one exactly one; every image has its series, study and patient, every patient,
  study and series has an image, SQLite's integrity and foreign-key checks pass, and no stored
  geometry is impossible (spacing, orientation, position).

    python benchmarks/import_fuzz.py [--cases 100000] [--seed 0] [--jobs 1] [--dir DIR]
    python benchmarks/import_fuzz.py --case 1234 --seed 0 --dir out   # write one case's file to look at

Exit status 1 on any crash, hang, partial database or case over 2 s.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dicom_mutations import load_corpus, make_case

TARGET_S = 2.0
CHUNK = 250  # cases between database checks; their files are deleted after the check
MARK = "@@fuzz "
SELFTEST = "IMPORT_FUZZ_SELFTEST"


# ---------------------------------------------------------------------------------------------- worker


def check_database(db_file: Path, cases: dict[str, tuple[str, str]]) -> list[str]:
    """Problems with the database: partial rows, orphans, impossible geometry, rows that disagree with
    the results reported for ``cases`` (path -> (status, sop uid))."""
    from annotator.domain.geometry import orientation_problem, position_problem, spacing_problem

    problems = []
    con = sqlite3.connect(db_file)
    try:
        q = con.execute
        for what, sql in [
            ("image without series/study/patient", "select count(*) from images i left join series s on "
             "s.id = i.series_id left join studies t on t.id = s.study_id left join patients p on "
             "p.id = t.patient_id where p.id is null"),
            ("series without images", "select count(*) from series s where not exists "
             "(select 1 from images i where i.series_id = s.id)"),
            ("study without series", "select count(*) from studies t where not exists "
             "(select 1 from series s where s.study_id = t.id)"),
            ("patient without study", "select count(*) from patients p where not exists "
             "(select 1 from studies t where t.patient_id = p.id)"),
        ]:
            n = q(sql).fetchone()[0]
            if n:
                problems.append(f"{n} {what}")
        problems += [f"foreign key: {row}" for row in q("pragma foreign_key_check").fetchall()]
        rows: dict[str, list[str]] = collections.defaultdict(list)
        marks = ",".join("?" * len(cases))
        for path, sop in q(f"select file_path, sop_instance_uid from images where file_path in ({marks})",
                           list(cases)).fetchall() if cases else []:
            rows[path].append(sop)
        for path, (status, sop) in cases.items():
            want = [sop] if status in ("imported", "relinked") else []
            if rows.get(path, []) != want:
                problems.append(f"{Path(path).name} {status} but rows {rows.get(path, [])}")
        for sop, sr, sc, ipp, iop in q("select sop_instance_uid, pixel_spacing_row, pixel_spacing_col, "
                                       "image_position, image_orientation from images").fetchall():
            if sr is not None and spacing_problem((sr, sc)):
                problems.append(f"{sop}: stored PixelSpacing {sr}, {sc}")
            iop_v, ipp_v = (json.loads(v) if v is not None else None for v in (iop, ipp))
            if iop_v is not None and orientation_problem(tuple(iop_v)):
                problems.append(f"{sop}: stored orientation {iop}")
            if ipp_v is not None and position_problem(tuple(ipp_v)):
                problems.append(f"{sop}: stored position {ipp}")
    finally:
        con.close()
    return problems


def worker(seed: int, cases: list[int], workdir: Path, db_file: Path) -> None:
    import warnings

    warnings.simplefilter("ignore")
    from annotator.domain.entities import ImportStatus
    from annotator.services.importing import import_paths
    from annotator.storage.database import open_database

    def send(**msg: object) -> None:
        sys.stdout.write(MARK + json.dumps(msg) + "\n")
        sys.stdout.flush()

    # The harness's own test: pretend case N hangs, kills the worker or raises (hang=N,die=N,raise=N).
    selftest = {k: int(v) for k, v in (kv.split("=") for kv in os.environ.get(SELFTEST, "").split(",") if kv)}
    sources = load_corpus()
    db = open_database(f"sqlite:///{db_file}")
    send(ready=True)  # start-up (imports, corpus) is not part of any case's time
    chunk: dict[str, tuple[str, str]] = {}
    for n, case in enumerate(cases, start=1):
        data, label = make_case(sources, seed, case)
        path = workdir / f"c{case:07d}.dcm"
        path.write_bytes(data)
        t0, c0 = time.perf_counter(), time.process_time()
        crash = status = reason = ""
        try:
            if case == selftest.get("hang"):
                time.sleep(3600)
            if case == selftest.get("die"):
                os._exit(3)
            if case == selftest.get("raise"):
                raise RuntimeError("selftest")
            results = import_paths(db, [path])
            if len(results) != 1 or results[0].path != str(path) or not isinstance(results[0].status, ImportStatus):
                crash = f"not one result for the file: {results!r}"
            else:
                r = results[0]
                status, reason = r.status.value, r.reason
                if "\n" in reason or "\r" in reason or (r.status is not ImportStatus.IMPORTED and not reason):
                    crash = f"malformed reason {reason!r}"
                chunk[str(path)] = (status, r.sop_instance_uid)
        except BaseException as exc:  # noqa: BLE001 - anything escaping the importer is the finding
            crash = f"{type(exc).__name__}: {str(exc)[:300]}"
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        send(case=case, label=label, status=status, reason=reason[:160], crash=crash, wall=wall, cpu=cpu)
        if len(chunk) >= CHUNK or n == len(cases):
            try:
                problems = check_database(db_file, chunk)
            except Exception as exc:  # the checker itself failed: say so, never blame a case
                problems = [f"database check failed: {type(exc).__name__}: {exc}"]
            send(check=len(chunk), problems=problems[:20])
            for p in chunk:
                Path(p).unlink(missing_ok=True)
            chunk.clear()
    db.close()
    con = sqlite3.connect(db_file)
    ok = con.execute("pragma integrity_check").fetchone()[0]
    images = con.execute("select count(*) from images").fetchone()[0]
    con.close()
    send(done=True, integrity=ok, images=images)


# ---------------------------------------------------------------------------------------------- parent


@dataclass
class Report:
    cases: int = 0
    seconds: float = 0.0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    slowest: tuple[float, float, int, str] = (0.0, 0.0, -1, "")  # wall, cpu, case, label
    over_target: int = 0  # cases whose import took more than TARGET_S seconds of CPU
    over_target_wall: int = 0  # ... of wall time (other processes on a busy machine count here)
    databases: list[Path] = field(default_factory=list)
    images: int = 0

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, crash: str = "", hang: str = "", problems: Sequence[str] = (), images: int = 0) -> None:
        with self.lock:
            self.crashes += [crash] if crash else []
            self.hangs += [hang] if hang else []
            self.problems += list(problems)
            self.images += images

    @property
    def ok(self) -> bool:
        return not (self.crashes or self.hangs or self.problems or self.over_target)


def _fs_type(path: Path) -> str:
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _dev, mount, fs, *_ = line.split()
            if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fs
    except OSError:
        pass
    return kind


def _spawn(seed: int, cases: list[int], workdir: Path, db_file: Path) -> subprocess.Popen[bytes]:
    todo = workdir / "cases.json"
    todo.write_text(json.dumps(cases))
    return subprocess.Popen([sys.executable, __file__, "--worker", str(seed), str(todo), str(db_file)],
                            stdout=subprocess.PIPE, stderr=open(workdir / "stderr.log", "ab"),  # noqa: SIM115
                            cwd=os.getcwd(), env={**os.environ, "RUST_BACKTRACE": "0"})


def _lines(fd: int, hang_s: float, startup_s: float = 120.0) -> Iterator[str | None]:
    """The worker's lines as they come; None when nothing came for ``hang_s`` (``startup_s`` before its
    first line); ends at end of file. Reads the raw descriptor (no buffered reader), so a line is never
    held back while select() waits."""
    buf, wait = b"", max(hang_s, startup_s)
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            wait = hang_s
            yield line.decode("utf-8", "replace")
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            yield None
            return
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        buf += chunk


def _watch(report: Report, seed: int, cases: list[int], workdir: Path, db_file: Path, hang_s: float,
           on_case: Callable[[Report], None] | None = None) -> None:
    """Run ``cases`` in one worker; restart it after a hang or a death, skipping the case it was on."""
    pending = list(cases)
    while pending:
        proc = _spawn(seed, pending, workdir, db_file)
        assert proc.stdout is not None
        done: set[int] = set()
        finished = killed = False
        for line in _lines(proc.stdout.fileno(), hang_s):
            if line is None:
                proc.kill()
                killed = True
                left = [c for c in pending if c not in done]
                report.add(hang=f"case {left[0]}: still running after {hang_s:g} s" if left
                           else f"worker silent for {hang_s:g} s after its last case")
                break
            if not line.startswith(MARK):
                continue
            msg = json.loads(line[len(MARK):])
            if "case" in msg:
                done.add(msg["case"])
                _count(report, msg)
                if on_case is not None:
                    on_case(report)
            elif "check" in msg:
                report.add(problems=msg["problems"])
            elif msg.get("done"):
                report.add(images=msg["images"], problems=[] if msg["integrity"] == "ok"
                           else [f"integrity_check: {msg['integrity']}"])
                finished = True
        code = proc.wait()
        proc.stdout.close()
        if finished:
            return
        left = [c for c in pending if c not in done]
        if not killed:  # it died by itself (an exception, a signal, the out-of-memory killer)
            report.add(crash=f"case {left[0]}: worker died (exit status {code})" if left
                       else f"worker died after its last case (exit status {code}), before the final check")
        pending = left[1:]  # skip the case that hung or killed it
        for leftover in workdir.glob("c*.dcm"):
            leftover.unlink()


def _count(report: Report, msg: dict[str, object]) -> None:
    with report.lock:
        _count_locked(report, msg)


def _count_locked(report: Report, msg: dict[str, object]) -> None:
    report.cases += 1
    label = f"case {msg['case']} ({msg['label']})"
    if msg["crash"]:
        report.crashes.append(f"{label}: {msg['crash']}")
        return
    wall, cpu = float(msg["wall"]), float(msg["cpu"])  # type: ignore[arg-type]
    if wall > report.slowest[0]:
        report.slowest = (wall, cpu, int(msg["case"]), str(msg["label"]))  # type: ignore[call-overload]
    report.over_target += cpu > TARGET_S
    report.over_target_wall += wall > TARGET_S
    status = str(msg["status"])
    report.statuses[status] += 1
    if status != "imported" or msg["reason"]:
        reason = str(msg["reason"]).split(": ", 1)[0] if status == "rejected" else str(msg["reason"])
        report.reasons[f"{status}: {reason.split(' (')[0].split('/')[0][:70]}"] += 1


def run(cases: int, seed: int = 0, jobs: int = 1, folder: Path | None = None, hang_s: float = 30.0,
        first: int = 0, progress: bool = False) -> Report:
    """Fuzz ``cases`` cases (numbers ``first`` ...) in ``jobs`` workers, one database each, under ``folder``."""
    folder = Path(folder or tempfile.mkdtemp(prefix="annotator-fuzz-"))
    folder.mkdir(parents=True, exist_ok=True)
    report = Report()
    start = time.perf_counter()
    last = [start]

    def tick(r: Report) -> None:
        if progress and time.perf_counter() - last[0] > 10:
            last[0] = time.perf_counter()
            print(f"  {r.cases} cases, {r.cases / (last[0] - start):.0f}/s, crashes {len(r.crashes)}, "
                  f"hangs {len(r.hangs)}, slowest {r.slowest[0]:.2f} s", flush=True)

    threads = []
    for w in range(jobs):
        workdir = folder / f"worker{w}"
        workdir.mkdir(exist_ok=True)
        db_file = workdir / "project.db"
        report.databases.append(db_file)
        mine = list(range(first + w, first + cases, jobs))
        t = threading.Thread(target=_watch, args=(report, seed, mine, workdir, db_file, hang_s, tick))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    report.seconds = time.perf_counter() - start
    return report


def print_report(report: Report, seed: int, jobs: int) -> None:
    where = report.databases[0].parent.parent
    wall, cpu, case, label = report.slowest
    print(f"import fuzz: {report.cases} cases, seed {seed}, {jobs} worker(s), {report.seconds:.1f} s")
    print(f"database     {where}/worker*/project.db: SQLite files on {_fs_type(where)} "
          f"(WAL, synchronous=FULL, the app's settings), {report.images} image rows at the end")
    print(f"cases/s      {report.cases / max(report.seconds, 1e-9):.1f}")
    print(f"crashes      {len(report.crashes)}")
    print(f"hangs        {len(report.hangs)}")
    print(f"slowest      case {case} ({label}): {wall:.3f} s wall, {cpu:.3f} s CPU")
    print(f"over {TARGET_S:g} s     {report.over_target} by CPU time, {report.over_target_wall} by wall time")
    print("outcomes     " + ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items())))
    print(f"database     {'consistent' if not report.problems else f'{len(report.problems)} problems'}")
    for line in report.crashes[:10] + report.hangs[:10] + report.problems[:10]:
        print(f"  ! {line}")
    print("top reasons:")
    for reason, n in report.reasons.most_common(15):
        print(f"  {n:7d}  {reason}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        seed, todo, db_file = int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
        worker(seed, json.loads(todo.read_text()), todo.parent, db_file)
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes, one database each")
    ap.add_argument("--dir", type=Path, default=None, help="where databases and files go (kept)")
    ap.add_argument("--hang-s", type=float, default=30.0, help="a case running longer is a hang")
    ap.add_argument("--case", type=int, default=None, help="only write this case's file into --dir")
    args = ap.parse_args()
    if args.case is not None:
        out = Path(args.dir or ".")
        out.mkdir(parents=True, exist_ok=True)
        data, label = make_case(load_corpus(), args.seed, args.case)
        path = out / f"c{args.case:07d}.dcm"
        path.write_bytes(data)
        print(f"{path}: {label}")
        return 0
    report = run(args.cases, args.seed, args.jobs, args.dir, args.hang_s, progress=True)
    print_report(report, args.seed, args.jobs)
    if args.dir is None:
        shutil.rmtree(report.databases[0].parent.parent, ignore_errors=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
