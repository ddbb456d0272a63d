"""What to label next: strategies that order slices, behind one typed interface and a registry.

A strategy takes the slices still to label (for one rater) and returns them in the order to work
through. ``most_uncertain`` uses the entropy of the active model's grade probabilities (ilastik /
MONAI Label style uncertainty sampling); ``most_disagreement`` uses how far the other readers' grades
and clicks are apart (visible to reviewers only; for a blinded annotator it falls back to sequential
so it leaks nothing).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from annotator.domain.entities import ImageRef, Rater
from annotator.storage import labels, models_repo
from annotator.storage.database import Database


@dataclass(frozen=True)
class StrategyContext:
    db: Database
    rater: Rater
    seed: int = 0


class Strategy(Protocol):
    name: str
    label: str

    def __call__(self, images: Sequence[ImageRef], ctx: StrategyContext) -> list[ImageRef]: ...


REGISTRY: dict[str, Strategy] = {}


def register(cls: type) -> type:
    inst = cls()
    REGISTRY[inst.name] = inst
    return cls


def get(name: str) -> Strategy:
    from annotator.domain.errors import InputError

    try:
        return REGISTRY[name]
    except KeyError:
        raise InputError(f"strategy {name!r} is unknown (available: {', '.join(REGISTRY)})") from None


def entropy(probabilities: Sequence[float]) -> float:
    return -sum(p * math.log(p) for p in probabilities if p > 0)


@register
class Sequential:
    name = "sequential"
    label = "Sequential (study, series, slice)"

    def __call__(self, images: Sequence[ImageRef], ctx: StrategyContext) -> list[ImageRef]:
        return list(images)


@register
class RandomOrder:
    name = "random"
    label = "Random (seeded)"

    def __call__(self, images: Sequence[ImageRef], ctx: StrategyContext) -> list[ImageRef]:
        out = list(images)
        random.Random(f"{ctx.seed}:{ctx.rater.id}").shuffle(out)
        return out


def _by_score(images: Sequence[ImageRef], score: Callable[[ImageRef], float | None]) -> list[ImageRef]:
    """Highest score first; slices without a score keep their order at the end."""
    scored = [(s, i, im) for i, im in enumerate(images) if (s := score(im)) is not None]
    rest = [im for im in images if score(im) is None]
    return [im for _s, _i, im in sorted(scored, key=lambda t: (-t[0], t[1]))] + rest


@register
class MostUncertain:
    name = "most_uncertain"
    label = "Most uncertain (model entropy)"

    def __call__(self, images: Sequence[ImageRef], ctx: StrategyContext) -> list[ImageRef]:
        model = models_repo.active(ctx.db)
        if model is None:
            return list(images)
        probs = {p.image_id: p.probabilities for p in models_repo.predictions(ctx.db, model.id)}
        return _by_score(images, lambda im: entropy(probs[im.id]) if probs.get(im.id) else None)


@register
class MostDisagreement:
    name = "most_disagreement"
    label = "Most disagreement between readers"

    def __call__(self, images: Sequence[ImageRef], ctx: StrategyContext) -> list[ImageRef]:
        if not ctx.rater.role.sees_all:
            return list(images)  # blinded: other readers' labels must not steer an annotator
        grades: dict[int, list[int]] = {}
        for lab in labels.current(ctx.db, image_ids=[im.id for im in images]):
            if lab.grade is not None:
                grades.setdefault(lab.image_id, []).append(lab.grade)
        return _by_score(images, lambda im: float(max(g) - min(g)) + 0.01 * len(g)
                         if len(g := grades.get(im.id, [])) >= 2 else None)
