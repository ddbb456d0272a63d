"""Reader-study speed over a large catalogue: creating a study by rules and asking for the next slice.

Targets (issue 13, point 10): creating a study by rules over 100,000 catalogued images <= 2 s;
``read next`` <= 20 ms at that size. The catalogue is synthetic rows inserted in bulk (no DICOM files:
neither operation reads pixels): per patient a localizer, a sagittal T2 series and axial T2 stacks at
L3-L4, L4-L5 and L5-S1, with ImageOrientationPatient and the level the import rule would set.
Usage: python benchmarks/study_speed.py [--images 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import where  # benchmarks/where.py, beside this script
from sqlalchemy import insert, select

from annotator.domain.entities import Role
from annotator.domain.studies import Orientation, SelectionRule, StudyDefinition, VertebralLevel
from annotator.services.reading import ReadingSession
from annotator.services.studies import create_study
from annotator.storage import people
from annotator.storage import studies as repo
from annotator.storage.database import Database, open_database
from annotator.storage.tables import ImageRow, PatientRow, PlanItemRow, ReadRow, SeriesRow, StudyRow

AXIAL, SAGITTAL, CORONAL = [1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, -1], [1, 0, 0, 0, 0, -1]
# description, orientation(s), level, slices: 50 images per patient
EXAM = [("LOCALIZER", [AXIAL, SAGITTAL, CORONAL], None, 3), ("SAG T2", [SAGITTAL], None, 17),
        ("AX T2 L3-L4", [AXIAL], "L3-L4", 10), ("AX T2 L4-L5", [AXIAL], "L4-L5", 10),
        ("AX T2 L5-S1", [AXIAL], "L5-S1", 10)]
PER_PATIENT = sum(n for *_, n in EXAM)


def build_catalogue(db: Database, n_images: int) -> None:
    now = datetime.now(UTC)
    patients = n_images // PER_PATIENT

    def work(s) -> None:  # type: ignore[no-untyped-def]
        s.execute(insert(PatientRow), [dict(id=p + 1, patient_key=f"P{p:06d}", patient_name="")
                                       for p in range(patients)])
        s.execute(insert(StudyRow), [dict(id=p + 1, patient_id=p + 1, study_instance_uid=f"1.9.{p}", study_date="",
                                          description="") for p in range(patients)])
        series, images = [], []
        for p in range(patients):
            for k, (desc, iops, level, n) in enumerate(EXAM):
                sid = p * len(EXAM) + k + 1
                series.append(dict(id=sid, study_id=p + 1, series_instance_uid=f"1.9.{p}.{k}", description=desc,
                                   modality="MR", series_number=k + 1, frame_of_reference_uid=""))
                for i in range(n):
                    images.append(dict(series_id=sid, sop_instance_uid=f"1.9.{p}.{k}.{i}", sop_class_uid="",
                                       instance_number=i + 1, slice_index=i, position_along_normal=4.0 * i,
                                       rows=512, columns=512, pixel_spacing_row=0.5, pixel_spacing_col=0.5,
                                       image_position=[0.0, 0.0, 4.0 * i], image_orientation=iops[i % len(iops)],
                                       slice_thickness=4.0, transfer_syntax_uid="", file_path=f"/x/{p}/{k}/{i}.dcm",
                                       sha256="0" * 64, imported_at=now, level=level))
        s.execute(insert(SeriesRow), series)
        for i in range(0, len(images), 20000):
            s.execute(insert(ImageRow), images[i:i + 20000])

    db.write(work)


def answer_half(db: Database, study_id: int, rater_id: int) -> int:
    """Store reads for the first half of a reader's plan, as if she were half-way (bulk, like a long study)."""
    now = datetime.now(UTC)

    def work(s) -> int:  # type: ignore[no-untyped-def]
        items = s.execute(select(PlanItemRow.id, PlanItemRow.image_id).where(
            PlanItemRow.study_id == study_id, PlanItemRow.rater_id == rater_id).order_by(PlanItemRow.seq)).all()
        half = items[:len(items) // 2]
        s.execute(insert(ReadRow), [dict(plan_item_id=pid, study_id=study_id, rater_id=rater_id, image_id=iid,
                                         x_px=256.0, y_px=256.0, grade=1, cannot_grade=None, seconds=5.0, comment="",
                                         scale_code="lee", created_at=now) for pid, iid in half])
        return len(half)

    return db.write(work)


def _ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=20)
    return (f"median {statistics.median(samples) * 1000:.2f} ms, p95 {q[18] * 1000:.2f} ms, "
            f"max {max(samples) * 1000:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5,
                    help="study creations (each a new study) and x40 read-next calls")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study_speed.db"
        print(where.describe(path))
        db = open_database(f"sqlite:///{path}")
        t0 = time.perf_counter()
        build_catalogue(db, args.images)
        print(f"catalogue        {args.images} images, {args.images // PER_PATIENT} patients "
              f"(bulk insert {time.perf_counter() - t0:.1f} s)")
        admin = people.add_rater(db, "admin", Role.ADMIN)
        readers = [people.add_rater(db, n, Role.ANNOTATOR) for n in ("ann", "bob")]
        rule = SelectionRule(series_description="^AX", orientation=Orientation.AXIAL, level=VertebralLevel.L4_L5,
                             modality="MR")
        creations, summary = [], None
        for k in range(args.repeats):
            definition = StudyDefinition(f"bench {k}", rule, ("ann", "bob"), seed=k, repeat_fraction=0.1, washout=20)
            t0 = time.perf_counter()
            summary = create_study(db, admin, definition)
            creations.append(time.perf_counter() - t0)
        assert summary is not None
        print(f"study create     {summary.n_slices} slices selected (axial, L4-L5, ^AX, MR), 2 readers crossed, "
              f"10% repeats, washout 20: median {statistics.median(creations):.3f} s, max {max(creations):.3f} s "
              f"over {args.repeats} studies (target <= 2 s)")
        ann = readers[0]
        done = answer_half(db, summary.id, ann.id)
        session = ReadingSession.open(db, ann, summary.name)
        nexts, opens = [], []
        for _ in range(40 * args.repeats):
            t0 = time.perf_counter()
            item = session.next()
            nexts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            item = ReadingSession.open(db, ann, summary.name).next()
            opens.append(time.perf_counter() - t0)
        assert item is not None and item.number == done + 1
        kinds = {it.kind for it in repo.plan(db, summary.id, ann.id)}
        print(f"read next        at item {item.number} of {item.total} ({done} reads stored; plan kinds "
              f"{sorted(k.value for k in kinds)}): {_ms(nexts)} (target <= 20 ms)")
        print(f"open + next      (the study looked up by name, rights checked, then next): {_ms(opens)}")
        db.close()


if __name__ == "__main__":
    main()
