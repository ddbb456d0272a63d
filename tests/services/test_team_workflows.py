"""The app works for each role of a team database under the server's rules: every service below runs on
a connection opened with the rater's own login and SCRAM password (no sign-in of the app's own)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from annotator.domain.entities import LabelAction, ModelKind, ModelSuggestion, Prediction, Rater, Role
from annotator.domain.errors import DatabaseError, PermissionDenied
from annotator.domain.studies import Answer, Calibration, ReadOrder, SelectionRule, StudyDefinition, StudyDesign
from annotator.services import project
from annotator.services import team as team_service
from annotator.services.labelling import LabelService
from annotator.services.levels import set_image_levels
from annotator.services.reading import ReadingSession
from annotator.services.review import ReviewService, disagreement_queue
from annotator.services.studies import create_study, list_studies
from annotator.services.viewing import SuggestionStatus, ViewingService
from annotator.services.worklist import WorklistService
from annotator.storage import audit, catalog, labels, models_repo, people
from annotator.storage.database import Database
from tests.factories import instance
from tests.team_server import TeamServer, team_server

pytestmark = pytest.mark.postgres

PASSWORD = "correct horse"
RULE = SelectionRule(series_description="AX", modality="MR")


@dataclass
class Team:
    server: TeamServer
    name: str
    owner: Database
    raters: dict[str, Rater]
    images: list[int]

    def open_as(self, who: str, password: str | None = PASSWORD) -> Database:
        return project.open_project(self.server.rater_url(self.name, who, password))


@pytest.fixture
def team() -> Iterator[Team]:
    server = team_server()
    name = server.new_database()
    team_service.init(server.owner_url(name))
    owner = project.open_project(server.owner_url(name))
    raters = {n: team_service.add_rater(owner, n, role, PASSWORD)
              for n, role in {"ann": Role.ANNOTATOR, "ann2": Role.ANNOTATOR, "rev": Role.REVIEWER,
                              "adm": Role.ADMIN}.items()}
    catalog.import_instances(owner, [instance(i) for i in range(6)])
    ims = [im.id for im in catalog.images(owner)]
    for who, grade in (("ann2", 3), ("rev", 1)):  # ann2 and the reference's labels, written by the owner
        for im in ims:
            labels.add_version(owner, image_id=im, rater_id=raters[who].id, x_px=20.0, y_px=20.0, grade=grade,
                               scale_code="lee", action=LabelAction.SET)
    model = models_repo.register(owner, name="m", preset="fast", target="consensus", kind=ModelKind.TRAIN,
                                 weights_path="/nonexistent", weights_sha256="0" * 64, card={})
    models_repo.write_predictions(owner, model.id, [Prediction(model.id, i, 21.0, 21.0, 2, (0.1, 0.2, 0.6, 0.1))
                                                    for i in ims])
    models_repo.activate(owner, model.id)
    yield Team(server, name, owner, raters, ims)
    owner.close()


def test_an_annotator_labels_reads_and_sees_only_her_own_work(team: Team) -> None:
    db = team.open_as("ann")
    try:
        me = project.connected_rater(db)
        assert me == team.raters["ann"]
        assert project.acting(db, None) == me and project.acting(db, "ann") == me
        with pytest.raises(PermissionDenied, match="connected as ann"):
            project.acting(db, "adm")
        first, second = team.images[0], team.images[1]
        service = LabelService(db, me)
        service.set_point(first, 10.0, 11.0)
        service.set_grade(first, 1)
        service.set_grade(second, 2)
        service.undo(second)  # a new version without the grade
        assert {lab.rater_id for lab in service.visible_labels()} == {me.id}
        assert WorklistService(db, me).load().progress.done == 1
        views = ViewingService(db, me).overlays(team.images[:2])
        assert views[first].others == () and views[first].suggestion.status is SuggestionStatus.HIDDEN
        project.change_settings(team.owner, team.raters["adm"], model_suggestion=ModelSuggestion.AFTER_OWN_GRADE)
        views = ViewingService(db, me).overlays(team.images[:2])
        assert views[first].suggestion.status is SuggestionStatus.SHOWN
        assert views[first].suggestion.prediction is not None
        assert views[second].suggestion.status is SuggestionStatus.AFTER_GRADE
        assert audit.entries(db) and {e.rater_id for e in audit.entries(db)} == {me.id}
        # what the app refuses, and what the server refuses even when the app is bypassed
        with pytest.raises(PermissionDenied):
            project.change_settings(db, me, show_other_raters_to_annotators=True)
        with pytest.raises(PermissionDenied):
            disagreement_queue(db, me)
        with pytest.raises(PermissionDenied, match="server refused"):
            labels.add_version(db, image_id=first, rater_id=team.raters["ann2"].id, x_px=1.0, y_px=1.0, grade=0,
                               scale_code="lee", action=LabelAction.SET)
        with pytest.raises(PermissionDenied, match="server refused"):
            people.update_settings(db, me.id, show_other_raters_to_annotators=True)
    finally:
        db.close()


def test_an_annotator_reads_in_her_study_and_sees_no_other(team: Team) -> None:
    create_study(team.owner, team.raters["adm"], StudyDefinition(
        "mine", RULE, ("ann", "ann2"), StudyDesign.CROSSED, order=ReadOrder.SEQUENTIAL,
        calibration=Calibration("rater:rev", count=1)))
    create_study(team.owner, team.raters["adm"], StudyDefinition("not mine", RULE, ("ann2",)))
    db = team.open_as("ann")
    try:
        me = project.connected_rater(db)
        assert me is not None
        assert [s.name for s in list_studies(db, me)] == ["mine"]
        session = ReadingSession.open(db, me, "mine")
        item = session.next()
        assert item is not None and item.calibration
        outcome = session.answer(item.sop_instance_uid, Answer(20.0, 20.0, 1, seconds=3.0))
        assert outcome.feedback is not None and outcome.feedback.grade_difference == 0  # the reference, after
        item = session.next()
        assert item is not None and not item.calibration
        session.answer(item.sop_instance_uid, Answer(20.0, 20.0, 2))
        assert session.progress()[0] == 2
    finally:
        db.close()


def test_a_reviewer_sees_the_queue_and_adjudicates(team: Team) -> None:
    ann = team.open_as("ann")
    for im in team.images:
        LabelService(ann, team.raters["ann"]).set_label(im, 20.0, 20.0, 0)
    ann.close()
    db = team.open_as("rev")
    try:
        me = project.connected_rater(db)
        assert me == team.raters["rev"]
        queue = disagreement_queue(db, me)
        assert {q.image_id for q in queue} == set(team.images)  # ann and ann2 disagree everywhere
        decision = ReviewService(db, me).decide(queue[0].image_id, 20.0, 20.0, 2, queue[0].adjudication_version,
                                                reason="looked again")
        assert decision.reviewer_id == me.id
        with pytest.raises(PermissionDenied):
            project.change_settings(db, me, hide_reader_names_from_reviewers=True)
    finally:
        db.close()


def test_an_admin_manages_settings_raters_and_studies(team: Team) -> None:
    db = team.open_as("adm")
    ann = team.open_as("ann")
    try:
        me = project.connected_rater(db)
        assert me is not None
        annotator = team.raters["ann"]
        assert LabelService(ann, annotator).visible_labels() == []
        project.change_settings(db, me, show_other_raters_to_annotators=True)
        assert {lab.rater_id for lab in LabelService(ann, annotator).visible_labels()} == {
            team.raters["ann2"].id, team.raters["rev"].id}  # at once, on the server too
        added = project.add_rater(db, "walk-in", Role.ANNOTATOR, actor=me)
        assert added.name == "walk-in" and project.connected_rater(db) == me
        study = create_study(db, me, StudyDefinition("by admin", RULE, ("ann",)))
        assert study.name == "by admin"
        from annotator.domain.studies import VertebralLevel

        assert set_image_levels(db, me, team.images[:2], VertebralLevel.L4_L5) == 2
    finally:
        db.close()
        ann.close()


def test_a_wrong_password_or_a_removed_rater_cannot_connect_and_her_work_stays(team: Team) -> None:
    with pytest.raises(DatabaseError, match="password authentication failed"):
        team.open_as("ann", "wrong password")
    db = team.open_as("ann2")
    db.close()
    before = len(labels.current(team.owner))
    team_service.remove_rater(team.owner, "ann2")
    with pytest.raises(DatabaseError, match="not permitted to log in"):
        team.open_as("ann2")
    assert len(labels.current(team.owner)) == before
    assert team_service.login_enabled(team.owner, team.raters["ann2"]) is False
    team_service.add_rater(team.owner, "ann2", Role.ANNOTATOR, "a new password")  # enabled again
    team.open_as("ann2", "a new password").close()
