"""The rule book, as a table: every role x blinding setting x own-grade state, every right.

The expected values are written out by hand from the project's rules (README, domain.md), not derived from
the implementation, so a change to any rule fails here first. A second test proves no role or blinding
condition is decided outside the policy module.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from annotator.domain.entities import ModelSuggestion, ProjectSettings, Rater, Role
from annotator.domain.errors import PermissionDenied
from annotator.domain.policy import (
    Action,
    ModelWithheld,
    Policy,
    ReaderNames,
    describe_blinding,
    describe_reader_names,
    is_study_reader,
    needs_password,
    project_locked,
    reader_alias,
    reader_names,
    self_enrolment_roles,
)
from annotator.domain.readers import ReaderKind, ReaderRef

A, R, D = Role.ANNOTATOR, Role.REVIEWER, Role.ADMIN
H, G, W = ModelSuggestion.HIDDEN, ModelSuggestion.AFTER_OWN_GRADE, ModelSuggestion.ALWAYS

# role, show other raters, model suggestion ->
#   other readers, model unprompted, model before own grade, model after own grade, model ever, compare useful
SEEING = {
    (A, False, H): (False, False, False, False, False, False),
    (A, False, G): (False, False, False, True, True, True),
    (A, False, W): (False, True, True, True, True, True),
    (A, True, H): (True, False, False, False, False, True),
    (A, True, G): (True, False, False, True, True, True),
    (A, True, W): (True, True, True, True, True, True),
}
for _show, _sugg in itertools.product((False, True), (H, G, W)):
    for _role in (R, D):  # reviewers and admins read unblinded whatever the settings
        SEEING[(_role, _show, _sugg)] = (True, True, True, True, True, True)

# role, show other raters to annotators, hide reader names from reviewers -> sees other raters' names
NAMES = {
    (A, False, False): False, (A, False, True): False,  # a blinded annotator sees nobody else at all
    (A, True, False): True, (A, True, True): False,  # never more than a reviewer would
    (R, False, False): True, (R, True, False): True,
    (R, False, True): False, (R, True, True): False,  # blind adjudication
    (D, False, False): True, (D, False, True): True, (D, True, False): True, (D, True, True): True,
}

# role -> adjudicate, train (and activate), export, manage raters, change settings, manage reader studies,
#   import labels
ACTING = {
    A: (False, False, False, False, False, False, False),
    R: (True, True, True, False, False, False, False),
    D: (True, True, True, True, True, True, True),
}
ACTIONS = (Action.ADJUDICATE, Action.TRAIN, Action.EXPORT, Action.MANAGE_RATERS, Action.MANAGE_SETTINGS,
           Action.MANAGE_STUDIES, Action.IMPORT_LABELS)

# role -> see an assigned study, see an unassigned study, see a study's design and progress,
#   read where assigned, read where not assigned
STUDIES = {
    A: (True, False, False, True, False),
    R: (True, True, True, True, False),
    D: (True, True, True, True, False),
}


def _policy(role: Role, show: bool, suggestion: ModelSuggestion, name: str = "ann") -> Policy:
    return Policy.of(Rater(1, name, role), ProjectSettings(model_suggestion=suggestion,
                                                           show_other_raters_to_annotators=show))


def test_the_table_covers_every_role_and_setting() -> None:
    assert set(SEEING) == set(itertools.product(Role, (False, True), ModelSuggestion))
    assert set(ACTING) == set(Role) and set(ACTIONS) == set(Action)
    assert set(NAMES) == set(itertools.product(Role, (False, True), (False, True)))


@pytest.mark.parametrize(("role", "show", "hide"), sorted(NAMES, key=str))
def test_who_sees_reader_names(role: Role, show: bool, hide: bool) -> None:
    settings = ProjectSettings(show_other_raters_to_annotators=show, hide_reader_names_from_reviewers=hide)
    viewer = Rater(9, "viewer", role)
    p = Policy.of(viewer, settings)
    assert p.may_see_reader_names is NAMES[(role, show, hide)]
    # the option changes names only, never what may be seen or done
    assert p.may_see_other_readers is SEEING[(role, show, H)][0]
    assert tuple(p.may(a) for a in ACTIONS) == ACTING[role]
    raters = [Rater(1, "boss", D), Rater(2, "zoe", A), Rater(3, "adam", A), viewer, Rater(12, "rev2", R)]
    names = reader_names(p, raters)
    if NAMES[(role, show, hide)]:
        assert names == ReaderNames() and names.reader("rater:zoe") == "rater:zoe"
    else:  # by the order raters joined, never by name: zoe joined before adam
        # the viewer keeps her own place in the order (the same aliases for every viewer)
        expected = {"zoe": "Reader A", "adam": "Reader B", "boss": "Reviewer 1",
                    "rev2": "Reviewer 2" if role is A else "Reviewer 3"}
        assert names.name("viewer") == "viewer"  # her own name is always her own
        assert {n: names.name(n) for n in expected} == expected
        assert names.reader("rater:adam") == "Reader B" and names.reader("model:3") == "model:3"
        assert names.resolve("reader b") == ReaderRef(ReaderKind.RATER, "adam")
        with pytest.raises(PermissionDenied, match="hidden"):
            names.resolve("rater:zoe")


def test_aliases_are_stable_as_raters_join() -> None:
    reviewer = Rater(5, "rev", R)
    p = Policy.of(reviewer, ProjectSettings(hide_reader_names_from_reviewers=True))
    before = reader_names(p, [Rater(2, "zoe", A), Rater(3, "adam", A), reviewer])
    after = reader_names(p, [Rater(2, "zoe", A), Rater(3, "adam", A), reviewer, Rater(7, "aaron", A)])
    assert dict(before.aliases).items() <= dict(after.aliases).items()
    assert after.name("aaron") == "Reader C"
    assert [reader_alias(i) for i in (0, 25, 26, 27)] == ["Reader A", "Reader Z", "Reader AA", "Reader AB"]


@pytest.mark.parametrize(("role", "show", "suggestion"), sorted(SEEING, key=str))
def test_what_each_role_may_see(role: Role, show: bool, suggestion: ModelSuggestion) -> None:
    p = _policy(role, show, suggestion)
    others, unprompted, before, after, ever, compare = SEEING[(role, show, suggestion)]
    assert p.may_see_other_readers is others
    assert p.may_see_model_unprompted is unprompted
    assert p.may_see_model(own_graded=False) is before
    assert p.may_see_model(own_graded=True) is after
    assert p.may_see_model_ever is ever
    assert p.compare_useful is compare
    # the reason a withheld suggestion gives: "after your grade" only where grading would reveal it
    withheld = p.model_withheld(own_graded=False)
    assert withheld is (None if before else ModelWithheld.AFTER_GRADE if after else ModelWithheld.HIDDEN)
    # a model's details (target, figures) describe its target reader's work
    assert p.may_see_model_details("rater:ann") is True  # her own labels' model
    assert p.may_see_model_details("rater:bob") is others
    assert p.may_see_model_details("consensus") is others


@pytest.mark.parametrize(("role", "show", "suggestion"), sorted(SEEING, key=str))
def test_what_each_role_may_do_does_not_depend_on_blinding(role: Role, show: bool,
                                                           suggestion: ModelSuggestion) -> None:
    p = _policy(role, show, suggestion)
    expected = ACTING[role]
    assert tuple(p.may(a) for a in ACTIONS) == expected
    assert (p.may_adjudicate, p.may_train, p.may_export, p.may_manage_raters) == expected[:4]
    for action, allowed in zip(ACTIONS, expected, strict=True):
        if allowed:
            p.require(action)
        else:
            with pytest.raises(PermissionDenied, match=f"ann is an? {role.value} and cannot {action.value}: only"):
                p.require(action)


@pytest.mark.parametrize(("role", "show", "suggestion"), sorted(SEEING, key=str))
def test_reader_study_rights_do_not_depend_on_blinding_settings(role: Role, show: bool,
                                                                suggestion: ModelSuggestion) -> None:
    p = _policy(role, show, suggestion)
    assert (p.may_see_study(assigned=True), p.may_see_study(assigned=False), p.may_see_study_progress,
            p.may_read_in_study(assigned=True), p.may_read_in_study(assigned=False)) == STUDIES[role]
    # while reading, whoever reads: a repeat is not announced and shows nothing of the first read;
    # a calibration reference appears only once her own read of that slice is stored
    assert p.may_see_read_kind_while_reading() is False
    assert p.may_see_first_read_on_repeat() is False
    assert p.may_see_calibration_reference(own_read_done=False) is False
    assert p.may_see_calibration_reference(own_read_done=True) is True


@pytest.mark.parametrize(("role", "has_password", "locked", "needed"), [
    (A, False, False, False), (A, False, True, False), (A, True, False, True), (A, True, True, True),
    (R, False, False, False), (R, False, True, True), (R, True, False, True), (R, True, True, True),
    (D, False, False, False), (D, False, True, True), (D, True, False, True), (D, True, True, True),
])
def test_who_needs_a_password(role: Role, has_password: bool, locked: bool, needed: bool) -> None:
    assert needs_password(role, has_password, locked) is needed


def test_locking_enrolment_and_study_readers() -> None:
    admin, protected_admin = Rater(1, "boss", D), Rater(2, "boss2", D, protected=True)
    protected_reviewer = Rater(3, "rev", R, protected=True)
    assert not project_locked([admin, protected_reviewer])
    assert project_locked([admin, protected_admin])
    assert self_enrolment_roles(False) == [A, R, D] and self_enrolment_roles(True) == [A]
    assert [is_study_reader(Rater(9, "x", role)) for role in (A, R, D)] == [True, False, False]


def test_the_sign_in_screen_states_the_rules_in_words() -> None:
    text = {s: describe_blinding(ProjectSettings(model_suggestion=s, show_other_raters_to_annotators=show))
            for s in ModelSuggestion for show in (False, True)}
    assert len({t[0] for t in text.values()}) == 3
    assert describe_blinding(ProjectSettings())[1] == "hidden from annotators (blinded)"
    assert describe_reader_names(ProjectSettings()) == "shown to reviewers"
    assert "hidden from reviewers" in describe_reader_names(ProjectSettings(hide_reader_names_from_reviewers=True))


# Patterns that decide a right from a role or a blinding setting. Outside the policy they may appear only
# where the settings are defined, stored or parsed.
RULE_PATTERNS = [
    re.compile(r"\.role\s+(is|==|!=|in|not in)\b"),
    re.compile(r"\bsees_all\b"),
    re.compile(r"show_other_raters_to_annotators"),
    re.compile(r"hide_reader_names_from_reviewers"),
    re.compile(r"model_suggestion\s+(is|==|!=|in)\b"),
    re.compile(r"ModelSuggestion\.(HIDDEN|AFTER_OWN_GRADE|ALWAYS)"),
    re.compile(r"(\bis\b|==|!=|\bin\b)\s*(not\s+)?\(?Role\."),
]
ALLOWED = {"domain/policy.py", "domain/entities.py", "storage/tables.py", "storage/people.py", "storage/convert.py"}


def test_the_scan_recognises_a_rule() -> None:
    rules = ["if rater.role is Role.ANNOTATOR:", "ok = viewer.role.sees_all",
             "if settings.model_suggestion is ModelSuggestion.ALWAYS:", "x = s.show_other_raters_to_annotators",
             "if role in (Role.REVIEWER, Role.ADMIN):", "if r.role != Role.ADMIN:"]
    assert all(any(p.search(line) for p in RULE_PATTERNS) for line in rules)
    assert not any(p.search("people.add_rater(db, name, Role.ANNOTATOR)") for p in RULE_PATTERNS)


def test_no_rule_lives_outside_the_policy() -> None:
    root = Path(__file__).resolve().parents[2] / "annotator"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in ALLOWED:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(p.search(line) for p in RULE_PATTERNS):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


def test_blind_adjudication_hides_which_rater_a_model_learnt_from() -> None:
    """A model's name and figures name its target: under hidden reader names a reviewer sees them only for a
    model that names no rater (the consensus); an admin always."""
    hidden = ProjectSettings(hide_reader_names_from_reviewers=True)
    reviewer, admin = Policy.of(Rater(1, "rev", R), hidden), Policy.of(Rater(2, "boss", D), hidden)
    assert not reviewer.may_see_model_details("rater:bob") and reviewer.may_see_model_details("consensus")
    assert reviewer.may_see_model_details("rater:rev")  # a model of her own labels names only her
    assert admin.may_see_model_details("rater:bob")
    assert Policy.of(Rater(1, "rev", R), ProjectSettings()).may_see_model_details("rater:bob")
