"""A team database on a real PostgreSQL server: whatever SQL a rater sends with her own login, she gets no
more than the project's rule book (``annotator.domain.policy``) lets the app show her.

The data is written by the owner (who bypasses row-level security); each rater then connects with psycopg
as herself, with her SCRAM password over TCP, and asks directly in SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import errors

from annotator.domain.entities import LabelAction, ModelKind, Prediction, ProjectSettings, Rater, Role
from annotator.domain.policy import Action, Policy
from annotator.domain.studies import Answer, Calibration, ReadOrder, SelectionRule, StudyDefinition, StudyDesign
from annotator.services.studies import create_study
from annotator.storage import catalog, labels, models_repo, people, review, team
from annotator.storage import studies as studies_repo
from annotator.storage.database import Database, open_database
from tests.factories import instance
from tests.team_server import TeamServer, team_server

pytestmark = pytest.mark.postgres

PASSWORD = "s3cret-enough"
RATERS = {"ann": Role.ANNOTATOR, "ann2": Role.ANNOTATOR, "rev": Role.REVIEWER, "adm": Role.ADMIN}


@dataclass
class Project:
    server: TeamServer
    name: str
    db: Database  # the owner's connection
    raters: dict[str, Rater]
    images: list[int]
    graded: dict[str, int]  # rater -> an image whose current label of hers has a grade
    ungraded: dict[str, int]  # rater -> an image she has not graded (her current label there has no grade)
    assigned: int  # a study every role reads in
    unassigned: int  # a study only ann2 reads in

    def connect(self, rater: str) -> psycopg.Connection:
        return psycopg.connect(self.server.rater_dsn(self.name, rater, PASSWORD), autocommit=True)


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    server = team_server()
    name = server.new_database()
    db = open_database(server.owner_url(name))
    team.init(db)
    raters = {n: team.add_rater(db, n, role, PASSWORD) for n, role in RATERS.items()}
    catalog.import_instances(db, [instance(i) for i in range(6)])
    ims = [im.id for im in catalog.images(db)]

    def label(who: str, image: int, grade: int | None) -> None:
        labels.add_version(db, image_id=image, rater_id=raters[who].id, x_px=10.0, y_px=12.0, grade=grade,
                           scale_code="lee", action=LabelAction.SET)

    # everybody labels images 0-3 with a grade; on image 4 each sets a point only; ann's image 5 is graded,
    # then cleared (a newer version without a grade: she has not graded it *now*)
    for who in RATERS:
        for i in range(4):
            label(who, ims[i], i % 4)
        label(who, ims[4], None)
    label("ann", ims[5], 2)
    label("ann", ims[5], None)
    model = models_repo.register(db, name="m1", preset="fast", target="consensus", kind=ModelKind.TRAIN,
                                 weights_path="/nonexistent", weights_sha256="0" * 64, card={})
    models_repo.write_predictions(db, model.id, [Prediction(model.id, i, 11.0, 11.0, 1, (0.1, 0.6, 0.2, 0.1))
                                                 for i in ims])
    models_repo.activate(db, model.id)
    review.record(db, image_id=ims[0], reviewer_id=raters["rev"].id, expected_version=0,
                  status=review.AdjudicationStatus.DECIDED, source=None, x_px=10.0, y_px=10.0, grade=1,
                  scale_code="lee", reason="test")
    rule = SelectionRule(series_description="AX", modality="MR")
    study = create_study(db, raters["adm"], StudyDefinition(
        "everyone", rule, tuple(RATERS), StudyDesign.CROSSED, order=ReadOrder.SEQUENTIAL,
        calibration=Calibration("rater:rev", count=2)))
    other = create_study(db, raters["adm"], StudyDefinition("ann2 only", rule, ("ann2",), StudyDesign.CROSSED))
    for who in RATERS:  # each reads her first calibration item (of two), so one reference is hers to see
        item = studies_repo.current_item(db, study.id, raters[who].id)
        assert item is not None
        sop = catalog.image_by_id(db, item[0].image_id).sop_instance_uid
        studies_repo.record_read(db, study.id, raters[who].id, sop, Answer(10.0, 10.0, 1), scale_code="lee")
    graded = {who: ims[0] for who in RATERS}
    ungraded = {who: ims[4] for who in RATERS}
    yield Project(server, name, db, raters, ims, graded, ungraded, study.id, other.id)
    db.close()


def _count(conn: psycopg.Connection, sql: str, *args: object) -> int:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def _server_view(conn: psycopg.Connection, p: Project, who: str) -> dict[str, bool]:
    """What the server lets this connection read, as answers to the policy's questions."""
    me = p.raters[who].id
    cal = _count(conn, "SELECT count(*) FROM reader_study_slices WHERE study_id = %s AND calibration", p.assigned)
    read_cal = _count(conn, "SELECT count(*) FROM reader_study_slices s WHERE s.study_id = %s AND s.calibration "
                            "AND EXISTS (SELECT 1 FROM reads r WHERE r.study_id = s.study_id "
                            "AND r.image_id = s.image_id AND r.rater_id = %s)", p.assigned, me)
    return {
        "own_labels": _count(conn, "SELECT count(*) FROM annotations WHERE rater_id = %s", me) > 0,
        "other_readers": _count(conn, "SELECT count(*) FROM annotations WHERE rater_id <> %s", me) > 0,
        "adjudications": _count(conn, "SELECT count(*) FROM adjudications") > 0,
        "model_graded": _count(conn, "SELECT count(*) FROM predictions WHERE image_id = %s", p.graded[who]) > 0,
        "model_ungraded": _count(conn, "SELECT count(*) FROM predictions WHERE image_id = %s",
                                 p.ungraded[who]) > 0,
        "model_cleared": _count(conn, "SELECT count(*) FROM predictions WHERE image_id = %s", p.images[5]) > 0,
        "assigned_study": _count(conn, "SELECT count(*) FROM reader_studies WHERE id = %s", p.assigned) > 0,
        "unassigned_study": _count(conn, "SELECT count(*) FROM reader_studies WHERE id = %s", p.unassigned) > 0,
        "others_reads": _count(conn, "SELECT count(*) FROM reads WHERE rater_id <> %s", me) > 0,
        "others_plans": _count(conn, "SELECT count(*) FROM reader_plan_items WHERE rater_id <> %s", me) > 0,
        "others_audit": _count(conn, "SELECT count(*) FROM audit_log WHERE rater_id IS DISTINCT FROM %s", me) > 0,
        "own_reads": _count(conn, "SELECT count(*) FROM reads WHERE rater_id = %s", me) > 0,
        "reference_after_read": read_cal > 0,
        "reference_before_read": cal - read_cal > 0,
    }


def _policy_view(p: Policy) -> dict[str, bool]:
    """The same questions answered by the rule book."""
    return {
        "own_labels": True,
        "other_readers": p.may_see_other_readers,
        "adjudications": p.may_see_other_readers,  # the consensus
        "model_graded": p.may_see_model(own_graded=True),
        "model_ungraded": p.may_see_model(own_graded=False),
        "model_cleared": p.may_see_model(own_graded=False),
        "assigned_study": p.may_see_study(assigned=True),
        "unassigned_study": p.may_see_study(assigned=False),
        "others_reads": p.may_see_study_progress,
        "others_plans": p.may_see_study_progress,
        "others_audit": p.may_see_other_readers and p.may_see_study_progress,
        "own_reads": True,
        "reference_after_read": p.may_see_study_progress or p.may_see_calibration_reference(own_read_done=True),
        "reference_before_read": p.may_see_study_progress or p.may_see_calibration_reference(own_read_done=False),
    }


SETTINGS = list(team.settings_grid())


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: f"{s.model_suggestion.value}-others"
                         f"{int(s.show_other_raters_to_annotators)}-names{int(s.hide_reader_names_from_reviewers)}")
def test_what_each_role_reads_on_the_server_is_what_the_policy_allows(project: Project,
                                                                      settings: ProjectSettings) -> None:
    fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
              if f.name in dict(team.policy_settings_fields())}
    people.update_settings(project.db, None, **fields)
    for who in ("ann", "rev", "adm"):
        with project.connect(who) as conn:
            rules = Policy.of(project.raters[who], people.get_settings(project.db))
            assert _server_view(conn, project, who) == _policy_view(rules), (who, settings)


def test_the_grid_covers_every_setting_the_policy_reads() -> None:
    names = dict(team.policy_settings_fields())
    assert set(names) == {"model_suggestion", "show_other_raters_to_annotators", "hide_reader_names_from_reviewers"}
    assert len(SETTINGS) == 3 * 2 * 2
    # and the compiled function holds exactly the policy's yes-answers
    assert len(team.rights_rows()) == sum(ask(Policy(role, s)) for role in Role for s in SETTINGS
                                          for ask in team.RIGHTS.values())


def _attempt(conn: psycopg.Connection, sql: str, *args: object) -> str:
    """'ok', or the SQLSTATE class of the refusal; nothing it does is kept."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql, args)
        return "ok"
    except errors.InsufficientPrivilege:
        return "refused"
    except psycopg.Error as exc:
        return f"error {exc.sqlstate}: {exc}"


ACT_SQL: dict[Action, list[str]] = {
    Action.ADJUDICATE: ["INSERT INTO adjudications (image_id, reviewer_id, version, status, source, scale_code, "
                        "reason, created_at) VALUES ({img}, {me}, 99, 'decided', '', 'lee', 'x', now())"],
    Action.TRAIN: ["UPDATE model_versions SET active = NOT active",
                   "INSERT INTO predictions (model_version_id, image_id, created_at) "
                   "SELECT id, {img}, now() FROM model_versions WHERE name = 'm1' AND false"],
    Action.MANAGE_SETTINGS: ["UPDATE project_settings SET name = 'renamed'"],
    Action.MANAGE_RATERS: ["INSERT INTO raters (name, role, simulated, created_at) VALUES ('new', 'annotator', "
                           "false, now())"],
    Action.MANAGE_STUDIES: ["INSERT INTO reader_studies (name, definition, scale_code, created_at) "
                            "VALUES ('s', '{{}}', 'lee', now())", "UPDATE images SET level = 'L4-L5'"],
}


@pytest.mark.parametrize("who", ["ann", "rev", "adm"])
def test_only_roles_the_policy_lets_act_may_write_for_the_act(project: Project, who: str) -> None:
    rules = Policy.of(project.raters[who], people.get_settings(project.db))
    with project.connect(who) as conn:
        for action, statements in ACT_SQL.items():
            for sql in statements:
                got = _attempt(conn, sql.format(img=project.images[0], me=project.raters[who].id))
                assert got == ("ok" if rules.may(action) else "refused"), (who, action, sql, got)


def _forbidden(p: Project, who: str) -> list[str]:
    me, other = p.raters[who].id, p.raters["ann2"].id
    img = p.images[3]
    with p.db.engine.connect() as c:  # the owner looks up ann2's next item (a rater cannot see it)
        plan_of_other, study, image = c.exec_driver_sql(
            f"SELECT id, study_id, image_id FROM reader_plan_items p WHERE rater_id = {other} AND NOT EXISTS "
            "(SELECT 1 FROM reads r WHERE r.plan_item_id = p.id) ORDER BY seq LIMIT 1").one()
    out = []
    for table in ("annotations", "reads", "audit_log", "adjudications"):
        out += [f"UPDATE {table} SET id = id", f"DELETE FROM {table}", f"TRUNCATE {table}"]
    out += [
        # writing in another's name
        f"INSERT INTO annotations (image_id, rater_id, version, grade, scale_code, action, created_at) "
        f"VALUES ({img}, {other}, 50, 1, 'lee', 'set', now())",
        "INSERT INTO annotations (image_id, rater_id, version, grade, scale_code, action, created_at) "
        f"VALUES ({img}, NULL, 50, 1, 'lee', 'set', now())",
        f"INSERT INTO audit_log (at, rater_id, action, entity, entity_id) VALUES (now(), {other}, 'x', 'x', '1')",
        "INSERT INTO audit_log (at, rater_id, action, entity, entity_id) VALUES (now(), NULL, 'x', 'x', '1')",
        f"INSERT INTO reads (plan_item_id, study_id, rater_id, image_id, comment, scale_code, created_at) "
        f"VALUES ({plan_of_other}, {study}, {other}, {image}, '', 'lee', now())",
        # her own name on another's plan item
        f"INSERT INTO reads (plan_item_id, study_id, rater_id, image_id, comment, scale_code, created_at) "
        f"VALUES ({plan_of_other}, {study}, {me}, {image}, '', 'lee', now())",
        "INSERT INTO adjudications (image_id, reviewer_id, version, status, source, scale_code, reason, created_at) "
        f"VALUES ({img}, {other}, 77, 'decided', '', 'lee', 'x', now())",
        # who a connection is, and the rules themselves
        f"UPDATE raters SET login = 'ann2' WHERE id = {me}",
        f"UPDATE raters SET role = 'admin' WHERE id = {me}",
        "INSERT INTO raters (name, role, simulated, created_at, login) VALUES ('x', 'admin', false, now(), 'x')",
        "ALTER TABLE annotations DISABLE ROW LEVEL SECURITY",
        "DROP POLICY annotator_read ON annotations",
        "CREATE TABLE mine (id int)",
        "CREATE OR REPLACE FUNCTION annotator_me() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$",
        "DROP TRIGGER annotations_insert_only ON annotations",
        "UPDATE alembic_version SET version_num = 'x'",
        "DELETE FROM raters",
        "DELETE FROM predictions",
        "DELETE FROM model_versions",
        "DELETE FROM reader_studies",
        "DELETE FROM project_secrets",
        "UPDATE project_secrets SET deid_salt = 'x'",
    ]
    if not Policy.of(p.raters[who], people.get_settings(p.db)).may(Action.EXPORT):
        out.append("SELECT deid_salt FROM project_secrets")  # the salt is for exporters only
    return out


@pytest.mark.parametrize("who", ["ann", "rev", "adm"])
def test_every_forbidden_write_is_refused_by_the_server(project: Project, who: str) -> None:
    with project.connect(who) as conn:
        results = {sql: _attempt(conn, sql) for sql in _forbidden(project, who)}
    assert {sql: r for sql, r in results.items() if r != "refused"} == {}


def test_a_blinded_annotator_reads_nothing_more_in_plain_sql(project: Project) -> None:
    people.update_settings(project.db, None, **dataclasses.asdict(ProjectSettings()))
    me = project.raters["ann"].id
    with project.connect("ann") as conn:
        assert {r[0] for r in conn.execute("SELECT DISTINCT rater_id FROM annotations")} == {me}
        assert conn.execute("SELECT count(*) FROM predictions").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM adjudications").fetchone() == (0,)
        assert {r[0] for r in conn.execute("SELECT DISTINCT rater_id FROM reads")} == {me}
        assert {r[0] for r in conn.execute("SELECT DISTINCT rater_id FROM audit_log")} == {me}
        assert [r[0] for r in conn.execute("SELECT name FROM reader_studies")] == ["everyone"]
        # switching to the group role, or turning row security off, shows nothing more
        group = team.group_role(project.name, Role.ANNOTATOR)
        conn.execute(f'SET ROLE "{group}"')
        assert {r[0] for r in conn.execute("SELECT DISTINCT rater_id FROM annotations")} == {me}
        conn.execute("RESET ROLE")
        conn.execute("SET row_security = off")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM annotations")


def test_the_server_answer_follows_a_settings_change_at_once(project: Project) -> None:
    people.update_settings(project.db, None, **dataclasses.asdict(ProjectSettings()))
    with project.connect("ann") as conn:
        before = _count(conn, "SELECT count(*) FROM annotations")
        people.update_settings(project.db, None, show_other_raters_to_annotators=True)
        assert _count(conn, "SELECT count(*) FROM annotations") > before
        people.update_settings(project.db, None, show_other_raters_to_annotators=False)
        assert _count(conn, "SELECT count(*) FROM annotations") == before


@pytest.mark.parametrize("who", ["ann", "rev", "adm"])
def test_only_exporters_read_the_de_identification_salt(project: Project, who: str) -> None:
    from annotator.storage import secrets

    salt = secrets.deid_salt(project.db)  # team init created it, as the owner
    may_export = Policy.of(project.raters[who], people.get_settings(project.db)).may(Action.EXPORT)
    with project.connect(who) as conn:
        got = _attempt(conn, "SELECT deid_salt FROM project_secrets")
        assert got == ("ok" if may_export else "refused")
        if may_export:
            assert conn.execute("SELECT deid_salt FROM project_secrets").fetchone() == (salt,)
