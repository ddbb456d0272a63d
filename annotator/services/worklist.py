"""Use case: a signed-in rater's worklist — studies, series and slices with that rater's progress.

Progress and filters are per rater: "done" means this rater's current label on the slice has both a
canal point and a grade; a label with only one of them is "incomplete". Only the rater's own labels
are read here, so the worklist never leaks another reader's work to a blinded annotator.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from annotator.domain.entities import ImageRef, Label, ProjectSettings, Rater, Role, Series
from annotator.domain.errors import InputError, NotFound, PermissionDenied
from annotator.domain.scales import GradingScale, load_scale
from annotator.services import auth, strategies
from annotator.storage import catalog, labels, people
from annotator.storage.database import Database


class SliceState(enum.StrEnum):
    UNLABELLED = "unlabelled"
    INCOMPLETE = "incomplete"
    DONE = "done"


class WorklistFilter(enum.StrEnum):
    """Which slices a worklist shows; series and studies with no slice left are hidden."""

    ALL = "all"
    UNLABELLED = "unlabelled"  # no label of mine
    MINE = "mine"  # slices I have labelled, complete or not
    INCOMPLETE = "incomplete"  # a point without a grade, or a grade without a point

    def keeps(self, state: SliceState) -> bool:
        if self is WorklistFilter.UNLABELLED:
            return state is SliceState.UNLABELLED
        if self is WorklistFilter.MINE:
            return state is not SliceState.UNLABELLED
        if self is WorklistFilter.INCOMPLETE:
            return state is SliceState.INCOMPLETE
        return True


def slice_state(label: Label | None) -> SliceState:
    if label is None or label.empty:
        return SliceState.UNLABELLED
    return SliceState.DONE if label.complete else SliceState.INCOMPLETE


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int

    def __str__(self) -> str:
        return f"{self.done}/{self.total}"

    @staticmethod
    def of(states: Iterable[SliceState]) -> Progress:
        s = list(states)
        return Progress(sum(x is SliceState.DONE for x in s), len(s))


@dataclass(frozen=True, slots=True)
class WorklistSlice:
    image: ImageRef
    state: SliceState
    label: Label | None


@dataclass(frozen=True, slots=True)
class WorklistSeries:
    series: Series
    slices: tuple[WorklistSlice, ...]  # after the filter
    progress: Progress  # over every slice of the series, whatever the filter


@dataclass(frozen=True, slots=True)
class WorklistStudy:
    study_id: int
    study_instance_uid: str
    patient_key: str
    study_date: str
    description: str
    series: tuple[WorklistSeries, ...]
    progress: Progress


@dataclass(frozen=True, slots=True)
class RankedSlice:
    """A slice in a strategy's order: its rank (1 = label first), patient and score (None = unscored)."""

    rank: int
    slice: WorklistSlice
    patient_key: str
    score: float | None


@dataclass(frozen=True, slots=True)
class Worklist:
    rater: Rater
    studies: tuple[WorklistStudy, ...]
    progress: Progress  # over the whole project
    strategy: str = strategies.Sequential.name
    ranked: tuple[RankedSlice, ...] = ()  # the filtered slices in the strategy's order (not for sequential)


@dataclass(frozen=True, slots=True)
class ProjectRules:
    """The project's rules as the workstation needs them: stored in the database, never in widgets."""

    settings: ProjectSettings
    scale: GradingScale


def to_grade(images: list[ImageRef]) -> list[ImageRef]:
    """The slices a reader grades: where the catalogue knows vertebral levels, the slices at a level
    (the axial stacks at the discs; not the localizer or the sagittal series of the same exam); in a
    catalogue without levels, every slice."""
    at_level = [im for im in images if im.level is not None]
    return at_level or images


def project_rules(db: Database) -> ProjectRules:
    settings = people.get_settings(db)
    return ProjectRules(settings=settings, scale=load_scale(settings.scale_code))


def sign_in(db: Database, *, rater_id: int | None = None, new_name: str | None = None,
            new_role: Role = Role.ANNOTATOR, password: str | None = None) -> Rater:
    """Pick an existing rater by id (with its password, if it has one), or create one (``password``, if
    given, protects it); simulated raters cannot be signed in as. Every sign-in is audited."""
    if (rater_id is None) == (new_name is None):
        raise InputError("sign in either as an existing rater or as a new one")
    if new_name is not None:
        new_role = Role(new_role)  # a role may come back from a widget as its plain string
        if new_role not in auth.self_enrolment_roles(db):
            raise PermissionDenied(f"only an admin adds a {new_role.value} to this project "
                                   f"(`annotator raters add NAME --role {new_role.value}`); "
                                   "here you may add an annotator")
        hashed = auth.hash_password(password) if password else None
        rater = people.add_rater(db, new_name, new_role, actor_id=None, password_hash=hashed)
    else:
        assert rater_id is not None
        rater = people.rater_by_id(db, rater_id)
        if rater.simulated:
            raise InputError(f"rater {rater.name!r} is simulated: a person cannot sign in as it")
        auth.verify(db, rater, password)
    people.record_sign_in(db, rater.id, ok=True)
    return rater


def human_raters(db: Database) -> list[Rater]:
    return [r for r in people.list_raters(db) if not r.simulated]


@dataclass
class WorklistService:
    """One rater's worklist; ``strategy`` (a name in :mod:`strategies`) orders "next" and the ranked list."""

    db: Database
    rater: Rater
    strategy: str = strategies.Sequential.name
    seed: int = 0

    def set_strategy(self, name: str) -> None:
        strategies.get(name)  # unknown -> InputError naming the available ones
        self.strategy = name

    def _context(self) -> strategies.StrategyContext:
        return strategies.StrategyContext(self.db, self.rater, self.seed)

    def available_strategies(self) -> list[strategies.Strategy]:
        return strategies.available(self._context())

    def _ordered(self, images: list[ImageRef]) -> tuple[list[ImageRef], dict[int, float]]:
        """Images in the strategy's order with its scores; a strategy the rater may not use -> sequential."""
        strat = strategies.get(self.strategy)
        ctx = self._context()
        if not ctx.allows(strat):
            return images, {}
        return strat.rank(images, ctx)

    def _own_labels(self, image_ids: Iterable[int] | None = None) -> dict[int, Label]:
        found = labels.current(self.db, rater_ids=[self.rater.id],
                               image_ids=list(image_ids) if image_ids is not None else None, include_empty=True)
        return {lab.image_id: lab for lab in found}

    def load(self, flt: WorklistFilter = WorklistFilter.ALL) -> Worklist:
        """The whole worklist, in patient / study / series / slice order, with this rater's progress over
        the slices to grade (``to_grade``: a localizer or sagittal series is listed but owes no grade)."""
        mine = self._own_labels()
        every = catalog.images(self.db)
        graded = {im.id for im in to_grade(every)}
        by_series: dict[int, list[ImageRef]] = {}
        for im in every:
            by_series.setdefault(im.series_id, []).append(im)
        studies = catalog.study_summaries(self.db)
        grouped: dict[int, list[WorklistSeries]] = {}
        all_states: list[SliceState] = []
        for series in catalog.list_series(self.db):
            items = [WorklistSlice(im, slice_state(mine.get(im.id)), mine.get(im.id))
                     for im in by_series.get(series.id, [])]
            states = [i.state for i in items if i.image.id in graded]
            all_states.extend(states)
            kept = tuple(i for i in items if flt.keeps(i.state))
            grouped.setdefault(series.study_id, []).append(WorklistSeries(series, kept, Progress.of(states)))
        out = []
        for study_id, series_list in grouped.items():
            info = studies.get(study_id)
            progress = Progress(sum(s.progress.done for s in series_list), sum(s.progress.total for s in series_list))
            visible = tuple(s for s in series_list if s.slices)
            if not visible:
                continue
            out.append(WorklistStudy(study_id=study_id,
                                     study_instance_uid=info.study_instance_uid if info else "",
                                     patient_key=info.patient_key if info else series_list[0].series.patient_key,
                                     study_date=info.study_date if info else "",
                                     description=info.description if info else "",
                                     series=visible, progress=progress))
        ranked: tuple[RankedSlice, ...] = ()
        if self.strategy != strategies.Sequential.name:
            kept_slices = {sl.image.id: (sl, st.patient_key) for st in out for se in st.series for sl in se.slices}
            # the whole catalogue is ranked, then filtered: the list and "next" (Enter) follow one order
            order, scores = self._ordered(every)
            kept_order = [im for im in order if im.id in kept_slices]
            ranked = tuple(RankedSlice(k, kept_slices[im.id][0], kept_slices[im.id][1], scores.get(im.id))
                           for k, im in enumerate(kept_order, start=1))
        return Worklist(rater=self.rater, studies=tuple(out), progress=Progress.of(all_states),
                        strategy=self.strategy, ranked=ranked)

    def image(self, image_id: int) -> ImageRef | None:
        """One slice of the catalogue by id (None when there is none): one query, not the worklist."""
        try:
            return catalog.image_by_id(self.db, image_id)
        except NotFound:
            return None

    def series_images(self, series_id: int) -> list[ImageRef]:
        """The slices of one series in order along the slice normal."""
        return catalog.images(self.db, series_id)

    def next_unlabelled(self, after_image_id: int | None = None) -> ImageRef | None:
        """The next slice this rater has not finished (unlabelled or incomplete), in the strategy's order,
        among the slices to grade (``to_grade``: a localizer or a sagittal series is not graded).

        Searches forward from ``after_image_id`` and wraps around to the start; ``None`` when every
        slice is done. The current slice itself comes last, so it is returned only if it is the only
        slice left to finish.
        """
        order, _scores = self._ordered(catalog.images(self.db))
        order = to_grade(order)
        mine = self._own_labels()
        start = 0
        if after_image_id is not None:
            for i, im in enumerate(order):
                if im.id == after_image_id:
                    start = i + 1
                    break
        for k in range(len(order)):
            im = order[(start + k) % len(order)]
            if slice_state(mine.get(im.id)) is not SliceState.DONE:
                return im
        return None
