"""What to label next: strategies that order slices, behind one typed interface and a registry.

A strategy scores the slices (higher = label sooner) or, for the score-less ones, orders them
directly; ``rank`` gives the order to work through with the scores behind it. ``most_uncertain`` uses the
entropy of the active model's grade probabilities (uncertainty sampling, as in MONAI Label's active
learning); ``most_disagreement`` uses how far the other readers' grades are apart.

Blinding: a strategy is offered only to readers allowed to see what it reads. One that reads other
readers' labels needs a reviewer or admin, or a project that shows other raters to annotators; one that
reads the model needs a reviewer or admin, or a project that shows the model's suggestion always: an
order by the model's uncertainty tells a reader where the model hesitates before she grades, which a
study that hides the model, or shows it only after her own grade, must not. A strategy a reader may
not use ranks in sequential order, so it leaks nothing. Slices without a score (no prediction, fewer
than two readers) keep their sequential order after the scored ones.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from annotator.domain.entities import ImageRef, Rater
from annotator.domain.errors import InputError
from annotator.services.project import policy
from annotator.storage import labels, models_repo
from annotator.storage.database import Database


@dataclass(frozen=True)
class StrategyContext:
    db: Database
    rater: Rater
    seed: int = 0

    @property
    def sees_others(self) -> bool:
        """May this rater's ordering depend on other readers' labels (blinding)?"""
        return policy(self.db, self.rater).may_see_other_readers

    @property
    def sees_model(self) -> bool:
        """May this rater's ordering depend on the model before she grades (model-suggestion policy "always")?"""
        return policy(self.db, self.rater).may_see_model_unprompted

    def may_read(self, other_readers: bool, model: bool) -> bool:
        """Blinding: may this rater's order depend on these (other readers' labels, the model)?"""
        return (not other_readers or self.sees_others) and (not model or self.sees_model)

    def allows(self, strategy: Strategy) -> bool:
        return self.may_read(strategy.reads_other_readers, strategy.reads_model)


class Strategy(Protocol):
    name: str
    label: str
    score_name: str  # what the score means, shown next to each slice ("" = no score)
    reads_other_readers: bool
    reads_model: bool

    def scores(self, images: Sequence[ImageRef], ctx: StrategyContext) -> dict[int, float]:
        """Score per image id (higher first); images left out have no score."""
        ...

    def rank(self, images: Sequence[ImageRef], ctx: StrategyContext) -> tuple[list[ImageRef], dict[int, float]]:
        """The images in the order to label them, and the scores that gave it."""
        ...

    def __call__(self, images: Sequence[ImageRef], ctx: StrategyContext) -> list[ImageRef]: ...


REGISTRY: dict[str, Strategy] = {}


def register(cls: type) -> type:
    inst = cls()
    REGISTRY[inst.name] = inst
    return cls


def get(name: str) -> Strategy:
    try:
        return REGISTRY[name]
    except KeyError:
        raise InputError(f"strategy {name!r} is unknown (available: {', '.join(REGISTRY)})") from None


def available(ctx: StrategyContext) -> list[Strategy]:
    """The strategies this rater may pick (what a strategy reads, the rater must be allowed to see)."""
    return [s for s in REGISTRY.values() if ctx.allows(s)]


def entropy(probabilities: Sequence[float]) -> float:
    return -sum(p * math.log(p) for p in probabilities if p > 0)


class _Scored:
    """Base of score-driven strategies: highest score first, unscored slices after in their given order."""

    score_name: ClassVar[str] = ""
    reads_other_readers: ClassVar[bool] = False
    reads_model: ClassVar[bool] = False

    def scores(self, images: Sequence[ImageRef], ctx: StrategyContext) -> dict[int, float]:
        return {}

    def rank(self, images: Sequence[ImageRef], ctx: StrategyContext) -> tuple[list[ImageRef], dict[int, float]]:
        if not ctx.may_read(self.reads_other_readers, self.reads_model):
            return list(images), {}  # blinded: what the rater may not see must not steer the order
        score = self.scores(images, ctx)
        scored = sorted((i for i, im in enumerate(images) if im.id in score),
                        key=lambda i: (-score[images[i].id], i))
        return [images[i] for i in scored] + [im for im in images if im.id not in score], score

    def __call__(self, images: Sequence[ImageRef], ctx: StrategyContext) -> list[ImageRef]:
        return self.rank(images, ctx)[0]


@register
class Sequential(_Scored):
    name = "sequential"
    label = "Sequential (study, series, slice)"


@register
class RandomOrder(_Scored):
    name = "random"
    label = "Random (seeded, per rater)"

    def rank(self, images: Sequence[ImageRef], ctx: StrategyContext) -> tuple[list[ImageRef], dict[int, float]]:
        out = list(images)
        random.Random(f"{ctx.seed}:{ctx.rater.id}").shuffle(out)
        return out, {}


@register
class MostUncertain(_Scored):
    name = "most_uncertain"
    label = "Most uncertain (model entropy)"
    score_name = "entropy"
    reads_model = True

    def scores(self, images: Sequence[ImageRef], ctx: StrategyContext) -> dict[int, float]:
        model = models_repo.active(ctx.db)
        if model is None:
            return {}
        wanted = {im.id for im in images}
        return {p.image_id: entropy(p.probabilities) for p in models_repo.predictions(ctx.db, model.id)
                if p.image_id in wanted and p.probabilities}


@register
class MostDisagreement(_Scored):
    name = "most_disagreement"
    label = "Most disagreement between readers"
    score_name = "grade spread"
    reads_other_readers = True

    def scores(self, images: Sequence[ImageRef], ctx: StrategyContext) -> dict[int, float]:
        if not ctx.sees_others:
            return {}
        wanted = {im.id for im in images}
        grades: dict[int, list[int]] = {}
        for lab in labels.current(ctx.db):  # every current label, filtered here: no SQL variable per slice
            if lab.grade is not None and lab.rater_id != ctx.rater.id and lab.image_id in wanted:
                grades.setdefault(lab.image_id, []).append(lab.grade)
        # spread of the grades; among equal spreads, slices more readers graded come first
        return {i: float(max(g) - min(g)) + 0.01 * len(g) for i, g in grades.items() if len(g) >= 2}
