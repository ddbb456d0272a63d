"""How soon a workstation learns of another's commit: the change watcher's latency.

    python benchmarks/live_latency.py [--db URL] [--labels 50] [--json out.json]

A writer (its own engine, as on another workstation) commits ``--labels`` label versions one at a time,
a moment apart; a :class:`ChangeWatcher` on a second engine is polled every millisecond, and the time
until it reports ``labels`` is recorded from the writer's commit returning (PostgreSQL may deliver the
notification before that: 0 ms) and from the writer starting its transaction. Prints p50 / p95 / max.
``--db``: an empty PostgreSQL database (``postgresql://user@host/db``) or a SQLite file; default: a new
SQLite file in a temporary folder. The screens add their background re-read on top
(``tests/gui/test_live.py`` measures the whole path; the goal is 1 s).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from annotator.domain.changes import ChangeKind
from annotator.domain.entities import DicomInstance, LabelAction, Role
from annotator.domain.geometry import ImageGeometry
from annotator.storage import catalog, labels, people
from annotator.storage.changes import ChangeWatcher
from annotator.storage.database import open_database


def _slice() -> DicomInstance:
    return DicomInstance(path="/nonexistent/bench.dcm", sha256="0" * 64, sop_instance_uid="1.2.3.4.5.1",
                         sop_class_uid="1.2.840.10008.5.1.4.1.1.4", study_instance_uid="1.2.3.4.5.2",
                         series_instance_uid="1.2.3.4.5.3", patient_id="P1", patient_name="Bench",
                         transfer_syntax_uid="1.2.840.10008.1.2.1",
                         geometry=ImageGeometry(rows=64, columns=64, pixel_spacing=(0.5, 0.5),
                                                image_position=(0.0, 0.0, 0.0), image_orientation=(1, 0, 0, 0, 1, 0),
                                                slice_thickness=4.0), modality="MR")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=None)
    ap.add_argument("--labels", type=int, default=50)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp(prefix='annotator-live-')) / 'live.db'}"
    writer, watched = open_database(url), open_database(url)
    try:
        [res] = catalog.import_instances(writer, [_slice()])
        image_id = catalog.image_by_sop(writer, res.sop_instance_uid).id
        rater = people.add_rater(writer, f"bench{time.time_ns()}", Role.ANNOTATOR)
        samples: list[float] = []  # from the writer's commit returning (PostgreSQL may notify before it returns)
        whole: list[float] = []  # from the writer starting its transaction
        with ChangeWatcher(watched) as watcher:
            time.sleep(0.3)
            watcher.poll()
            for n in range(args.labels):
                asked = time.perf_counter()
                labels.add_version(writer, image_id=image_id, rater_id=rater.id, x_px=1.0 + n, y_px=1.0,
                                   grade=n % 4, scale_code="lee", action=LabelAction.SET)
                committed = time.perf_counter()
                while ChangeKind.LABELS not in watcher.poll():
                    time.sleep(0.001)
                seen = time.perf_counter()
                samples.append(seen - committed)
                whole.append(seen - asked)
                time.sleep(0.05 + 0.01 * (n % 7))  # not in step with the SQLite poll
    finally:
        writer.close()
        watched.close()
    result: dict[str, object] = {"backend": writer.dialect, "n": len(samples)}
    for name, values in (("commit_returned", samples), ("write_started", whole)):
        ms = np.asarray(values) * 1000
        figures = {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
                   "max_ms": float(ms.max())}
        result[name] = figures
        print(f"{writer.dialect}: {name.replace('_', ' ')} -> watcher reports  p50 {figures['p50_ms']:.1f} ms  "
              f"p95 {figures['p95_ms']:.1f} ms  max {figures['max_ms']:.1f} ms  (n={len(values)})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
