"""From solo to team: ``annotator db copy`` moves a SQLite project onto PostgreSQL and back, every table
verified, ids and versions kept, models loadable; a non-empty destination is refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from annotator.domain.entities import LabelAction, ModelKind, Prediction, Role
from annotator.domain.errors import DatabaseError
from annotator.domain.settings import AppSettings
from annotator.domain.studies import Answer, StudyDefinition
from annotator.services import models as model_service
from annotator.services import transfer
from annotator.services.labelling import LabelService
from annotator.services.reading import ReadingSession
from annotator.services.review import ReviewService
from annotator.services.studies import create_study
from annotator.storage import audit, labels, models_repo, people
from annotator.storage import transfer as storage_transfer
from annotator.storage.database import Database, open_database
from tests.study_factories import RULE, archive

pytestmark = pytest.mark.postgres


def _checksums(db: Database) -> dict[str, tuple[int, str]]:
    with db.engine.connect() as conn:
        return {t.name: storage_transfer.checksum(conn, t) for t in storage_transfer.tables()}


def _project(path: Path) -> tuple[Database, bytes]:
    """A SQLite project with slices, several label versions, a reader study with reads, decisions, the
    audit log, a model with its weights file and predictions; and those weights."""
    db = open_database(f"sqlite:///{path / 'solo.db'}")
    sops = archive(db, range(3))
    boss = people.add_rater(db, "boss", Role.ADMIN)
    ann, bob = (people.add_rater(db, n, Role.ANNOTATOR) for n in ("ann", "bob"))
    rev = people.add_rater(db, "rev", Role.REVIEWER)
    axial = [im for im in labels_images(db) if im[1] in sops["AX T2 L4-5"]]
    for image_id, _sop in axial[:4]:
        LabelService(db, ann).set_point(image_id, 10.5, 11.25)
        LabelService(db, ann).set_grade(image_id, 1)  # two versions
        LabelService(db, bob).set_label(image_id, 30.0, 31.0, 3)
    LabelService(db, ann).set_grade(axial[0][0], 2)  # a third version
    review = ReviewService(db, rev)
    review.decide(axial[0][0], 20.0, 20.0, 2, 0)
    review.accept(axial[1][0], "rater:bob", 0)
    create_study(db, boss, StudyDefinition(name="s", rule=RULE, readers=("ann",), seed=7))
    session = ReadingSession.open(db, ann, "s")
    assert session.read_through(lambda item: Answer(12.0, 13.0, 1, seconds=2.5, comment="é ünïcode")) > 0
    weights = bytes(range(256)) * 40_000  # 10 MB: two chunks on PostgreSQL
    folder = path / "solo.models" / "m1"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(weights)
    model = models_repo.register(db, name="m1", preset="fast", target="rater:ann", kind=ModelKind.TRAIN,
                                 weights_path=str(folder / "model.safetensors"),
                                 weights_sha256=hashlib.sha256(weights).hexdigest(),
                                 card={"metrics": {"pooled": {"grades": {"accuracy": 0.5}}}, "ok": True})
    models_repo.write_predictions(db, model.id, [Prediction(model.id, image_id, 1.5, 2.5, 1, (0.1, 0.6, 0.2, 0.1))
                                                 for image_id, _ in axial])
    models_repo.activate(db, model.id)
    return db, weights


def labels_images(db: Database) -> list[tuple[int, str]]:
    from annotator.storage import catalog

    return [(im.id, im.sop_instance_uid) for im in catalog.images(db)]


def test_a_solo_project_moves_to_postgresql_and_back_unchanged(pg_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    solo, weights = _project(tmp_path)
    before = _checksums(solo)
    versions = sorted((lab.image_id, lab.rater_id, lab.version) for lab in labels.current(solo))
    audit_n = len(audit.entries(solo))
    solo.close()
    team_url = pg_server.create_database()

    outcome = transfer.copy_project(f"sqlite:///{tmp_path / 'solo.db'}", team_url)
    report = outcome.report
    assert all(t.ok for t in report.tables) and report.weights_added == 1
    counts = {t.table: t.rows for t in report.tables}
    assert counts["annotations"] == 13 and counts["adjudications"] == 2 and counts["reads"] > 0
    assert counts["audit_log"] == audit_n and counts["model_weight_chunks"] == 2

    team = open_database(AppSettings(team_url, None, tmp_path / "workstation2" / "models", tmp_path / "workstation2"))
    try:
        after = _checksums(team)
        assert {k: v for k, v in after.items() if k != "model_weight_chunks"} == \
            {k: v for k, v in before.items() if k != "model_weight_chunks"}, "every row, id and value came across"
        assert sorted((lab.image_id, lab.rater_id, lab.version) for lab in labels.current(team)) == versions
        # the model loads on another workstation from the database, checked by its SHA-256
        [model] = models_repo.list_versions(team)
        (tmp_path / "solo.models").rename(tmp_path / "away.models")
        local = model_service.local_weights(team, model)
        assert local.is_relative_to(tmp_path / "workstation2") and local.read_bytes() == weights
        (tmp_path / "away.models").rename(tmp_path / "solo.models")
        # ids continue after the copied ones (the sequences were moved on)
        ann = people.rater_by_name(team, "ann")
        max_id = max(lab.id for lab in labels.current(team))
        image_id = labels.current(team)[0].image_id
        new = labels.add_version(team, image_id=image_id, rater_id=ann.id, x_px=1.0, y_px=1.0, grade=0,
                                 scale_code="lee", action=LabelAction.SET)
        assert new.id > max_id
        team_sums = _checksums(team)
    finally:
        team.close()

    # and back, through the command line: a new SQLite file, identical to the server's project
    back = tmp_path / "back.db"
    out = subprocess.run([sys.executable, "-m", "annotator", "db", "copy", team_url, str(back), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert printed["weights_added"] == 0 and all(t["rows"] == t["copied_rows"] for t in printed["tables"])
    returned = open_database(str(back))
    try:
        assert _checksums(returned) == team_sums
        [model] = models_repo.list_versions(returned)
        assert models_repo.has_weights(returned, model.id), "the weights came along as rows"
    finally:
        returned.close()


def test_a_destination_that_is_not_empty_is_refused(pg_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    solo, _ = _project(tmp_path)
    solo.close()
    src = f"sqlite:///{tmp_path / 'solo.db'}"
    team_url = pg_server.create_database()
    transfer.copy_project(src, team_url)
    with pytest.raises(DatabaseError, match="is not empty"):
        transfer.copy_project(src, team_url)
    other = pg_server.create_database()  # somebody else's tables
    with psycopg.connect(other.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(DatabaseError, match="not empty .*invoices"):
        transfer.copy_project(src, other)
    with pytest.raises(DatabaseError, match="not empty"):
        transfer.copy_project(team_url, src)


def test_a_copy_that_differs_from_its_source_is_rolled_back(pg_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    solo, _ = _project(tmp_path)
    solo.close()
    team_url = pg_server.create_database()
    open_database(team_url).close()  # the empty schema
    with psycopg.connect(team_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("CREATE FUNCTION shift() RETURNS trigger AS $$ BEGIN NEW.grade := 0; RETURN NEW; END; $$ "
                     "LANGUAGE plpgsql")
        conn.execute("CREATE TRIGGER shift BEFORE INSERT ON annotations FOR EACH ROW EXECUTE FUNCTION shift()")
    with pytest.raises(DatabaseError, match="annotations: 13 rows .* read, 13 rows .* written"):
        transfer.copy_project(f"sqlite:///{tmp_path / 'solo.db'}", team_url)
    team = open_database(team_url)
    try:
        with team.engine.connect() as conn:
            assert storage_transfer.nonempty_tables(conn) == [], "nothing was left behind"
    finally:
        team.close()


def test_a_model_without_its_weights_file_stops_the_copy_unless_skipped(pg_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    solo, _ = _project(tmp_path)
    solo.close()
    (tmp_path / "solo.models" / "m1" / "model.safetensors").unlink()
    src, team_url = f"sqlite:///{tmp_path / 'solo.db'}", pg_server.create_database()
    with pytest.raises(DatabaseError, match="missing on this computer .*nothing was copied"):
        transfer.copy_project(src, team_url)
    outcome = transfer.copy_project(src, team_url, skip_missing_weights=True)
    assert outcome.report.weights_added == 0 and len(outcome.skipped_models) == 1
