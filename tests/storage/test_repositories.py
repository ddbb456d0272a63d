"""Catalogue, raters, labels and audit on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from annotator.domain.entities import ImportStatus, LabelAction, Role
from annotator.domain.errors import ConflictError, InputError, NotFound
from annotator.storage import audit, catalog, labels, people
from tests.factories import instance


def test_import_orders_slices_along_the_normal_and_is_idempotent(db) -> None:  # type: ignore[no-untyped-def]
    # inserted in reverse z order, instance numbers scrambled: slice order must follow position
    batch = [instance(i, z=z) for i, z in [(0, 8.0), (1, -4.0), (2, 0.0), (3, 4.0)]]
    res = catalog.import_instances(db, batch)
    assert [r.status for r in res] == [ImportStatus.IMPORTED] * 4
    [series] = catalog.list_series(db)
    assert series.n_images == 4 and series.patient_key == "P0000"
    imgs = catalog.images(db, series.id)
    assert [im.geometry.image_position[2] for im in imgs] == [-4.0, 0.0, 4.0, 8.0]  # type: ignore[index]
    assert [im.slice_index for im in imgs] == [0, 1, 2, 3]
    again = catalog.import_instances(db, batch)
    assert {r.status for r in again} == {ImportStatus.SKIPPED}
    assert catalog.counts(db).images == 4


def test_moved_file_is_relinked_by_sop_uid(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    old = tmp_path / "gone.dcm"
    new = tmp_path / "here.dcm"
    new.write_bytes(b"x")
    catalog.import_instances(db, [instance(0, path=str(old))])
    [r] = catalog.import_instances(db, [instance(0, path=str(new))])
    assert r.status is ImportStatus.RELINKED
    assert catalog.image_by_sop(db, r.sop_instance_uid).path == str(new)
    assert [e.action for e in audit.entries(db, entity="image")] == ["image.relink"]


def test_missing_spacing_is_stored_as_unavailable(db) -> None:  # type: ignore[no-untyped-def]
    catalog.import_instances(db, [instance(0, spacing=None)])
    [im] = catalog.images(db)
    assert im.geometry.pixel_spacing is None and not im.geometry.has_mm


def test_raters_unique_and_roles(db) -> None:  # type: ignore[no-untyped-def]
    people.add_rater(db, "alice", Role.ANNOTATOR)
    people.add_rater(db, "rev", Role.REVIEWER)
    with pytest.raises(InputError, match="already exists"):
        people.add_rater(db, "alice", Role.ADMIN)
    with pytest.raises(InputError):
        people.add_rater(db, "bad:name", Role.ADMIN)
    assert [(r.name, r.role) for r in people.list_raters(db)] == [("alice", Role.ANNOTATOR),
                                                                 ("rev", Role.REVIEWER)]
    with pytest.raises(NotFound):
        people.rater_by_name(db, "nobody")


def test_labels_are_versioned_and_audited(db) -> None:  # type: ignore[no-untyped-def]
    catalog.import_instances(db, [instance(0)])
    [im] = catalog.images(db)
    alice = people.add_rater(db, "alice", Role.ANNOTATOR)
    v1 = labels.add_version(db, image_id=im.id, rater_id=alice.id, x_px=10, y_px=12, grade=None,
                            scale_code="lee", action="point", expected_version=0)
    v2 = labels.add_version(db, image_id=im.id, rater_id=alice.id, x_px=10, y_px=12, grade=2,
                            scale_code="lee", action="grade", expected_version=1)
    assert (v1.version, v2.version) == (1, 2)
    [cur] = labels.current(db, rater_ids=[alice.id])
    assert (cur.version, cur.grade, cur.x_px) == (2, 2, 10)
    assert [h.grade for h in labels.history(db, im.id, alice.id)] == [None, 2]
    with pytest.raises(ConflictError):
        labels.add_version(db, image_id=im.id, rater_id=alice.id, x_px=1, y_px=1, grade=0,
                           scale_code="lee", action="grade", expected_version=1)
    entries = audit.entries(db, entity="annotation")
    assert [e.action for e in entries] == ["label.point", "label.grade"]
    assert entries[1].before == {"version": 1, "x_px": 10.0, "y_px": 12.0, "grade": None, "scale": "lee"}
    assert entries[1].after is not None and entries[1].after["grade"] == 2
    assert entries[1].rater_id == alice.id
    assert catalog.counts(db).labels_per_rater == {"alice": 1}


@pytest.mark.parametrize("table", ["annotations", "adjudications", "audit_log"])
def test_insert_only_tables_refuse_update_and_delete_in_sql(db, table: str) -> None:  # type: ignore[no-untyped-def]
    from annotator.domain.entities import AdjudicationStatus
    from annotator.storage import review

    catalog.import_instances(db, [instance(0)])
    [im] = catalog.images(db)
    alice = people.add_rater(db, "alice", Role.ANNOTATOR)
    rev = people.add_rater(db, "rev", Role.REVIEWER)
    labels.add_version(db, image_id=im.id, rater_id=alice.id, x_px=1, y_px=1, grade=1, scale_code="lee",
                       action="set")
    decided = review.record(db, image_id=im.id, reviewer_id=rev.id, expected_version=0,
                            status=AdjudicationStatus.DECIDED, source=None, x_px=2.0, y_px=2.0, grade=2,
                            scale_code="lee", reason="checked")
    with db.engine.connect() as conn:
        before = conn.execute(text(f"SELECT * FROM {table} ORDER BY id")).all()
    assert before, f"the test wrote no row into {table}"
    for stmt in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):
        with pytest.raises(DBAPIError, match="insert-only"), db.engine.connect() as conn, conn.begin():
            conn.execute(text(stmt))
    with db.engine.connect() as conn:
        assert conn.execute(text(f"SELECT * FROM {table} ORDER BY id")).all() == before
    assert labels.count_versions(db) == 1
    assert review.latest(db, im.id) == decided


def test_settings_update_is_audited(db) -> None:  # type: ignore[no-untyped-def]
    from annotator.domain.entities import ModelSuggestion

    assert people.get_settings(db).scale_code == "lee"
    s = people.update_settings(db, None, scale_code="schizas", model_suggestion=ModelSuggestion.ALWAYS)
    assert people.get_settings(db) == s
    [e] = audit.entries(db, entity="project_settings")
    assert e.before is not None and e.after is not None
    assert (e.before["scale_code"], e.after["scale_code"]) == ("lee", "schizas")


def test_a_version_after_a_stale_one_is_refused_on_both_backends(db) -> None:  # type: ignore[no-untyped-def]
    catalog.import_instances(db, [instance(0)])
    [im] = catalog.images(db)
    alice = people.add_rater(db, "alice", Role.ANNOTATOR)
    common = dict(image_id=im.id, rater_id=alice.id, y_px=1.0, grade=None, scale_code="lee",
                  action=LabelAction.POINT)
    v1 = labels.add_version_after(db, None, x_px=1.0, **common)  # type: ignore[arg-type]
    v2 = labels.add_version_after(db, v1, x_px=2.0, **common)  # type: ignore[arg-type]
    assert (v1.version, v2.version, v2.action) == (1, 2, LabelAction.POINT)
    with pytest.raises(ConflictError) as stale:  # v1 is no longer the newest: the unique key refuses
        labels.add_version_after(db, v1, x_px=3.0, **common)  # type: ignore[arg-type]
    assert stale.value.current == v2  # the conflict carries the label as it is now
    with pytest.raises(ConflictError):  # the caller shows no label, but one is stored
        labels.add_version_after(db, None, x_px=3.0, **common)  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="image id 999"):
        labels.add_version_after(db, None, **{**common, "image_id": 999}, x_px=3.0)  # type: ignore[arg-type]
    assert [h.x_px for h in labels.history(db, im.id, alice.id)] == [1.0, 2.0]
    assert [e.action for e in audit.entries(db, entity="annotation")] == ["label.point", "label.point"]
    with db.engine.connect() as conn:  # the enum stores the same strings as before: no migration
        assert conn.execute(text("SELECT DISTINCT action FROM annotations")).scalars().all() == ["point"]


def test_one_rule_picks_the_active_model_when_several_are_marked(db) -> None:  # type: ignore[no-untyped-def]
    from annotator.services import models as model_service
    from annotator.services.viewing import ViewingService
    from annotator.storage import models_repo

    reader = people.add_rater(db, "rev", Role.REVIEWER)
    common = dict(preset="fast", target="rater:x", kind="train", weights_path="/x", weights_sha256="0" * 64, card={})
    older, newer = (models_repo.register(db, name=n, **common) for n in ("older", "newer"))  # type: ignore[arg-type]
    assert models_repo.active(db) is None
    with db.engine.connect() as conn, conn.begin():  # a race left both marked; the older one registered later
        conn.execute(text("UPDATE model_versions SET active = :t, created_at = :c WHERE id = :i"),
                     {"t": True, "c": "2999-01-01 00:00:00", "i": older.id})
        conn.execute(text("UPDATE model_versions SET active = :t WHERE id = :i"), {"t": True, "i": newer.id})
    assert newer.id > older.id
    picked = {models_repo.active(db).id, ViewingService(db, reader).active_model().id,  # type: ignore[union-attr]
              model_service.get_model(db, None).id}
    assert picked == {newer.id}  # the highest id, by every path that asks
