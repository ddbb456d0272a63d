"""Reader-study tables on SQLite and PostgreSQL: reads are insert-only (ORM guard and database trigger),
one read per plan item, and the level column arrives by migration with old data intact."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from annotator.domain.entities import Role
from annotator.domain.errors import ConflictError
from annotator.domain.studies import Answer, ReadKind, SelectionRule, StudyDefinition
from annotator.storage import catalog, migrate, people
from annotator.storage import studies as repo
from annotator.storage.database import create_db_engine, open_database
from annotator.storage.tables import ReadRow
from tests.factories import instance


def _study_with_one_read(db):  # type: ignore[no-untyped-def]
    catalog.import_instances(db, [instance(i) for i in range(3)])
    ann = people.add_rater(db, "ann", Role.ANNOTATOR)
    ids = [im.id for im in catalog.images(db)]
    from annotator.domain.studies import PlanItem

    study = repo.create(db, StudyDefinition("s", SelectionRule(), ("ann",)), scale_code="lee", actor_id=None,
                        slices=ids, calibration=[], reader_ids={"ann": ann.id},
                        plans={"ann": [PlanItem(i + 1, iid, ReadKind.FIRST) for i, iid in enumerate(ids)]})
    sop = catalog.image_by_id(db, ids[0]).sop_instance_uid
    read = repo.record_read(db, study.id, ann.id, sop, Answer(1.0, 2.0, 1, seconds=4.25), scale_code="lee")
    return study, ann, read


def test_reads_are_insert_only_in_the_database(db) -> None:  # type: ignore[no-untyped-def]
    study, ann, read = _study_with_one_read(db)
    assert (read.seconds, read.kind, read.seq) == (4.25, ReadKind.FIRST, 1)
    for sql in ("UPDATE reads SET grade = 3", "DELETE FROM reads"):
        with pytest.raises(DBAPIError, match="insert-only"), db.engine.connect() as conn, conn.begin():
            conn.execute(text(sql))
    [kept] = repo.reads(db, study.id)
    assert (kept.grade, kept.x_px, kept.y_px) == (1, 1.0, 2.0)
    # the study's queries, on both backends
    assert repo.by_name(db, "s").n_slices == 3 and len(repo.slices(db, study.id, calibration=False)) == 3
    assert repo.slices(db, study.id, calibration=True) == [] and repo.reference_marks(db, study.id) == {}
    assert repo.plan_counts(db, study.id) == {(ann.id, ReadKind.FIRST): (3, 1)}
    item, sop, total = repo.current_item(db, study.id, ann.id)  # type: ignore[misc]
    assert (item.seq, total) == (2, 3) and repo.studies_of_reader(db, ann.id) == {study.id}


def test_reads_are_insert_only_in_the_orm_and_one_per_plan_item(sqlite_db) -> None:  # type: ignore[no-untyped-def]
    study, ann, read = _study_with_one_read(sqlite_db)

    def change(s):  # type: ignore[no-untyped-def]
        s.get(ReadRow, read.id).grade = 2

    with pytest.raises(RuntimeError, match="insert-only"):
        sqlite_db.write(change)
    # a second answer to the same item, as another window would send it after the first was stored
    with pytest.raises(DBAPIError), sqlite_db.engine.connect() as conn, conn.begin():
        conn.execute(text("INSERT INTO reads (plan_item_id, study_id, rater_id, image_id, comment, scale_code, "
                          "created_at) SELECT plan_item_id, study_id, rater_id, image_id, '', 'lee', created_at "
                          "FROM reads"))
    assert len(repo.reads(sqlite_db, study.id)) == 1


def test_a_concurrent_second_answer_is_a_conflict_not_an_overwrite(sqlite_db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    study, ann, _ = _study_with_one_read(sqlite_db)
    sop = catalog.image_by_id(sqlite_db, repo.plan(sqlite_db, study.id, ann.id)[1].image_id).sop_instance_uid
    repo.record_read(sqlite_db, study.id, ann.id, sop, Answer(1.0, 1.0, 0), scale_code="lee")
    # the other window still counts one read done, so it answers item 2 again
    monkeypatch.setattr(repo, "_done", lambda s, study_id, rater_id: 1)
    with pytest.raises(ConflictError, match="answered elsewhere"):
        repo.record_read(sqlite_db, study.id, ann.id, sop, Answer(5.0, 5.0, 3), scale_code="lee")
    monkeypatch.undo()
    assert [r.grade for r in repo.reads(sqlite_db, study.id)] == [1, 0]


def test_upgrade_from_0003_adds_levels_and_keeps_images(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate.upgrade(engine, "0003")
    with engine.connect() as conn, conn.begin():
        conn.execute(text("INSERT INTO patients (id, patient_key, patient_name) VALUES (1, 'P1', 'A^B')"))
        conn.execute(text("INSERT INTO studies (id, patient_id, study_instance_uid, study_date, description) "
                          "VALUES (1, 1, '1.2.3', '20260101', '')"))
        conn.execute(text("INSERT INTO series (id, study_id, series_instance_uid, description, modality, "
                          "frame_of_reference_uid) VALUES (1, 1, '1.2.3.4', 'AX T2 L4-5', 'MR', '')"))
        conn.execute(text(
            "INSERT INTO images (id, series_id, sop_instance_uid, sop_class_uid, slice_index, rows, columns, "
            "transfer_syntax_uid, file_path, sha256, imported_at) "
            "VALUES (1, 1, '1.2.3.4.5', '', 0, 64, 64, '', '/x.dcm', 'ab', '2026-01-02 03:04:05')"))
    engine.dispose()
    db = open_database(db_url)
    try:
        assert catalog.image_by_sop(db, "1.2.3.4.5").id == 1
        from annotator.storage import levels

        assert levels.counts(db) == {"none": 1}  # an old slice has no level until one is set
        migrate.check(db.engine)
    finally:
        db.close()
