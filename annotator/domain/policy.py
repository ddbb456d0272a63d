"""The project's one rule book: who may see and do what.

Every blinding and permission decision in the application is a question to :class:`Policy`, built from
the signed-in rater's role and the project's settings. Services ask it before they return data or act;
widgets ask it only to decide what to offer (a disabled menu entry, a hidden column) and never hold a
rule of their own. The server-side rules of a team database must be generated from, or tested against,
this same table.

The rights, and why each is what it is:

- **see other readers** (their points, grades, the consensus, agreement figures, who labelled how much):
  reviewers and admins always; annotators only in a project that lifts blinding
  (``show_other_raters_to_annotators``).
- **see the model** on a slice: reviewers and admins always; annotators per the project's
  ``model_suggestion`` policy: never (hidden), once they have graded that slice themselves (after own
  grade), or always. Anything that would reveal the model's opinion *before* the reader grades (ranking
  slices by the model's uncertainty, comparing with ``model:N`` readers on the agreement screen) needs
  the unconditional right (:attr:`Policy.may_see_model_unprompted`).
- **see a model's details** (its target, training-set size, figures): they describe other readers' work,
  so a blinded annotator sees them only for a model trained on her own labels.
- **see other readers' names**: admins always; reviewers unless the project hides reader names from
  reviewers (``hide_reader_names_from_reviewers``, for blind adjudication); annotators whenever they may
  see other readers at all, except under that same option (an annotator never learns more than a
  reviewer). Whoever may not sees each other rater under a stable alias (:func:`reader_names`); her
  own name is always her own. Audit entries and stored references keep the real ids.
- **adjudicate**, **train and activate models**, **export label sets**: reviewers and admins.
- **manage raters and project settings**, **create reader studies and set slice levels**: admins.
- **import labels** made elsewhere: admins (an import writes label versions under raters' names and creates
  the raters a file names).
- **reader studies**: a rater sees only the studies she is assigned to read (reviewers and admins see
  every study, its design and every reader's progress) and reads only where she is assigned, whatever
  her role. While reading, nobody sees whether an item is a first or a repeat read, and a repeat shows
  nothing of the first read; a calibration slice's reference appears only after her own read of it.
- **sign in without a password**: everybody, except a reviewer or admin once the project has a protected
  admin ("locked"), so that a blinded reader cannot borrow an unblinded account; and the sign-in screen
  then creates annotators only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from annotator.domain.entities import ModelSuggestion, ProjectSettings, Rater, Role
from annotator.domain.errors import InputError, PermissionDenied
from annotator.domain.readers import ReaderKind, ReaderRef


class ModelWithheld(enum.StrEnum):
    """Why the model's suggestion is not shown to a rater on a slice."""

    HIDDEN = "model suggestion hidden by project policy"
    AFTER_GRADE = "model suggestion appears after you grade this slice"


class Action(enum.StrEnum):
    """Acts that need a right (as opposed to things to see)."""

    ADJUDICATE = "adjudicate"
    TRAIN = "train and activate models"
    EXPORT = "export label sets"
    MANAGE_RATERS = "manage raters"
    MANAGE_SETTINGS = "change project settings"
    MANAGE_STUDIES = "create reader studies and set slice levels"
    IMPORT_LABELS = "import labels"


_ACTION_ROLES: dict[Action, frozenset[Role]] = {
    Action.ADJUDICATE: frozenset({Role.REVIEWER, Role.ADMIN}),
    Action.TRAIN: frozenset({Role.REVIEWER, Role.ADMIN}),
    Action.EXPORT: frozenset({Role.REVIEWER, Role.ADMIN}),
    Action.MANAGE_RATERS: frozenset({Role.ADMIN}),
    Action.MANAGE_SETTINGS: frozenset({Role.ADMIN}),
    Action.MANAGE_STUDIES: frozenset({Role.ADMIN}),
    Action.IMPORT_LABELS: frozenset({Role.ADMIN}),
}


@dataclass(frozen=True, slots=True)
class Policy:
    """The rights of one rater in one project (role + settings). Pure: no I/O, cheap to build."""

    role: Role
    settings: ProjectSettings
    rater_name: str = ""

    @classmethod
    def of(cls, rater: Rater, settings: ProjectSettings) -> Policy:
        return cls(rater.role, settings, rater.name)

    @property
    def unblinded(self) -> bool:
        """Reviewers and admins read unblinded; annotators are blinded unless the settings say otherwise."""
        return self.role is not Role.ANNOTATOR

    # ----- seeing -----------------------------------------------------------------------------------
    @property
    def may_see_other_readers(self) -> bool:
        return self.unblinded or self.settings.show_other_raters_to_annotators

    @property
    def may_see_reader_names(self) -> bool:
        """Do other raters appear to her by name (else as "Reader A", "Reader B", …)?"""
        if self.role is Role.ADMIN:
            return True
        return self.may_see_other_readers and not self.settings.hide_reader_names_from_reviewers

    @property
    def may_see_model_unprompted(self) -> bool:
        """May the model's opinion reach this rater before she grades a slice herself?"""
        return self.unblinded or self.settings.model_suggestion is ModelSuggestion.ALWAYS

    def model_withheld(self, own_graded: bool) -> ModelWithheld | None:
        """None when the rater may see the model's suggestion on a slice now, else why it is withheld.
        ``own_graded``: has this rater graded that slice?"""
        if self.may_see_model_unprompted:
            return None
        if self.settings.model_suggestion is ModelSuggestion.AFTER_OWN_GRADE:
            return None if own_graded else ModelWithheld.AFTER_GRADE
        return ModelWithheld.HIDDEN

    def may_see_model(self, own_graded: bool) -> bool:
        return self.model_withheld(own_graded) is None

    @property
    def may_see_model_ever(self) -> bool:
        """Is there any slice on which this rater may see the model (a compare pane worth showing)?"""
        return self.unblinded or self.settings.model_suggestion is not ModelSuggestion.HIDDEN

    @property
    def compare_useful(self) -> bool:
        """Is there anything besides her own label this rater may see next to the slice?"""
        return self.may_see_other_readers or self.may_see_model_ever

    def may_see_model_details(self, model_target: str) -> bool:
        """Target, training-set size and figures of a model trained on ``model_target`` (a reader's text).
        They describe the target reader's work, and the target names her: a blinded annotator sees them only
        for a model of her own labels, and a reviewer who adjudicates blind to names not for a model of one
        named rater (a consensus model names nobody)."""
        try:
            target: ReaderRef | None = ReaderRef.parse(model_target)
        except InputError:
            target = None
        if target == ReaderRef(ReaderKind.RATER, self.rater_name):
            return True
        names_a_rater = target is None or target.kind is ReaderKind.RATER
        return self.may_see_other_readers and (self.may_see_reader_names or not names_a_rater)

    # ----- doing ------------------------------------------------------------------------------------
    def may(self, action: Action) -> bool:
        return self.role in _ACTION_ROLES[action]

    def require(self, action: Action) -> None:
        """Raise PermissionDenied naming the rater, the role and the act, unless it is allowed."""
        if not self.may(action):
            who = f"{self.rater_name} is an {self.role.value}" if self.role is Role.ANNOTATOR else \
                f"{self.rater_name} is a {self.role.value}"
            allowed = " and ".join(sorted(r.value + "s" for r in _ACTION_ROLES[action]))
            raise PermissionDenied(f"{who} and cannot {action.value}: only {allowed} may")

    # ----- reader studies ---------------------------------------------------------------------------
    def may_see_study(self, assigned: bool) -> bool:
        """Does this study exist for her? ``assigned``: is she one of its readers?"""
        return self.unblinded or assigned

    @property
    def may_see_study_progress(self) -> bool:
        """The admin's view of a study: its design, which items are repeats, every reader's progress."""
        return self.unblinded

    @staticmethod
    def may_read_in_study(assigned: bool) -> bool:
        """Only a study's own readers read in it, whatever their role."""
        return assigned

    @staticmethod
    def may_see_read_kind_while_reading() -> bool:
        """Whether a reader-facing item may say first / repeat: never (hidden repeats)."""
        return False

    @staticmethod
    def may_see_first_read_on_repeat() -> bool:
        """Whether anything of her first read shows on a repeat: never (intra-rater blinding)."""
        return False

    @staticmethod
    def may_see_calibration_reference(own_read_done: bool) -> bool:
        """The reference's point and grade on a calibration slice: only after her own read of it."""
        return own_read_done

    @property
    def may_adjudicate(self) -> bool:
        return self.may(Action.ADJUDICATE)

    @property
    def may_train(self) -> bool:
        return self.may(Action.TRAIN)

    @property
    def may_export(self) -> bool:
        return self.may(Action.EXPORT)

    @property
    def may_manage_raters(self) -> bool:
        return self.may(Action.MANAGE_RATERS)


# ----- signing in (the project as a whole, before anybody is signed in) ---------------------------------
def needs_password(role: Role, has_password: bool, project_locked: bool) -> bool:
    """Must a rater of ``role`` give a password to sign in? Always when she has one; a reviewer or admin
    without one cannot sign in at all in a locked project (an admin sets one first)."""
    return has_password or (role is not Role.ANNOTATOR and project_locked)


def self_enrolment_roles(project_locked: bool) -> list[Role]:
    """The roles the sign-in screen may create: all, until the project has a protected admin."""
    return [Role.ANNOTATOR] if project_locked else list(Role)


def project_locked(raters: Iterable[Rater]) -> bool:
    """A project is locked once it has an admin with a password."""
    return any(r.role is Role.ADMIN and r.protected for r in raters)


def is_study_reader(rater: Rater) -> bool:
    """Whose labels a study compares when the project names no required raters: its annotators
    (reviewers adjudicate and admins manage; their labels, if any, never decide the queue)."""
    return rater.role is Role.ANNOTATOR


# ----- reader names (blind adjudication) -----------------------------------------------------------------
def reader_alias(position: int) -> str:
    """The alias of the study reader at ``position`` (0-based): Reader A … Reader Z, Reader AA, …."""
    letters = ""
    n = position + 1
    while n:
        n, r = divmod(n - 1, 26)
        letters = chr(ord("A") + r) + letters
    return f"Reader {letters}"


@dataclass(frozen=True)
class ReaderNames:
    """How raters' names appear to one viewer: ``aliases`` maps a real name to what she sees (empty: every
    name as it is). References (``ReaderRef``) keep the real name; only what is shown changes."""

    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def hidden(self) -> bool:
        return bool(self.aliases)

    def name(self, rater_name: str) -> str:
        return self.aliases.get(rater_name, rater_name)

    def reader(self, ref: ReaderRef | str) -> str:
        """``rater:alice`` -> ``Reader A`` (or ``rater:alice`` when names show); models and consensus as they are."""
        r = ReaderRef.parse(ref) if isinstance(ref, str) else ref
        if r.kind is ReaderKind.RATER and r.key in self.aliases:
            return self.aliases[r.key]
        return str(r)

    def resolve(self, shown: str) -> ReaderRef:
        """The reader behind what she was shown (an alias, or ``rater:NAME`` / ``model:ID`` / ``consensus``).
        While names are hidden an alias is the only way to address another rater."""
        text = shown.strip()
        for real, alias in self.aliases.items():
            if alias.casefold() == text.casefold():
                return ReaderRef(ReaderKind.RATER, real)
        ref = ReaderRef.parse(text)
        if ref.kind is ReaderKind.RATER and ref.key in self.aliases:
            raise PermissionDenied(f"reader names are hidden in this project: address {ref.key!r} by alias")
        return ref


def reader_names(policy: Policy, raters: Iterable[Rater]) -> ReaderNames:
    """The names this viewer sees for ``raters`` (the project's raters). When she may not see names, each
    other rater gets an alias by position, never by name: study readers (annotators) are Reader A, B, … in
    the order they joined the project, reviewers and admins Reviewer 1, 2, … likewise. Positions only
    grow as raters join, so an alias means the same rater on every screen, for every viewer, across
    restarts."""
    if policy.may_see_reader_names:
        return ReaderNames()
    ordered = sorted(raters, key=lambda r: r.id)
    readers = [r for r in ordered if is_study_reader(r)]
    others = [r for r in ordered if not is_study_reader(r)]
    aliases = {r.name: reader_alias(i) for i, r in enumerate(readers)}
    aliases |= {r.name: f"Reviewer {i + 1}" for i, r in enumerate(others)}
    aliases.pop(policy.rater_name, None)
    return ReaderNames(aliases)


_SUGGESTION_TEXT = {ModelSuggestion.HIDDEN: "hidden from annotators",
                    ModelSuggestion.AFTER_OWN_GRADE: "shown to annotators after their own grade",
                    ModelSuggestion.ALWAYS: "always shown"}


def describe_blinding(settings: ProjectSettings) -> tuple[str, str]:
    """(model suggestion, other readers) in words, as the sign-in screen states the project's rules."""
    others = ("visible to annotators" if settings.show_other_raters_to_annotators
              else "hidden from annotators (blinded)")
    return _SUGGESTION_TEXT[settings.model_suggestion], others


def describe_reader_names(settings: ProjectSettings) -> str:
    """Whether reviewers see readers' names, in words, for the sign-in screen's project rules."""
    return ("hidden from reviewers (Reader A, B, …)" if settings.hide_reader_names_from_reviewers
            else "shown to reviewers")
