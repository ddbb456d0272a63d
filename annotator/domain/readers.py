"""Readers are addressed uniformly: ``rater:NAME``, ``model:ID`` or ``consensus``."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from annotator.domain.errors import InputError


class ReaderKind(enum.StrEnum):
    RATER = "rater"
    MODEL = "model"
    CONSENSUS = "consensus"


@dataclass(frozen=True, slots=True)
class ReaderRef:
    kind: ReaderKind
    key: str = ""

    def __str__(self) -> str:
        return self.kind.value if self.kind is ReaderKind.CONSENSUS else f"{self.kind.value}:{self.key}"

    @classmethod
    def parse(cls, text: str) -> ReaderRef:
        t = text.strip()
        if t == "consensus":
            return cls(ReaderKind.CONSENSUS)
        kind, sep, key = t.partition(":")
        if not sep or not key or kind not in ("rater", "model"):
            raise InputError(f"reader {text!r} must be rater:NAME, model:ID or consensus")
        if kind == "model" and not key.isdigit():
            raise InputError(f"reader {text!r}: a model is addressed by its numeric id (model:3)")
        return cls(ReaderKind(kind), key)


@dataclass(frozen=True, slots=True)
class ReaderMark:
    """What one reader says about one slice: a point and/or a grade (and a model's probabilities)."""

    image_id: int
    x_px: float | None
    y_px: float | None
    grade: int | None
    probabilities: tuple[float, ...] | None = None
    version: int | None = None
    labelled_at: str | None = None
