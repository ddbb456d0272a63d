"""Grading scales: an ordinal integer per grade plus the scale's code.

Scales ship as JSON in ``resources/scales``; a project stores the code of the one it uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from annotator.domain.errors import InputError, NotFound


@dataclass(frozen=True, slots=True)
class Grade:
    ordinal: int
    label: str
    key: str
    name: str
    definition: str


@dataclass(frozen=True, slots=True)
class GradingScale:
    code: str
    name: str
    grades: tuple[Grade, ...]

    @property
    def n_grades(self) -> int:
        return len(self.grades)

    @property
    def ordinals(self) -> tuple[int, ...]:
        return tuple(g.ordinal for g in self.grades)

    def grade(self, ordinal: int) -> Grade:
        for g in self.grades:
            if g.ordinal == ordinal:
                return g
        raise InputError(f"grade {ordinal!r} is not on the {self.code} scale (valid: {self.ordinals})")

    def label(self, ordinal: int) -> str:
        return self.grade(ordinal).label

    def parse(self, text: str) -> int:
        """Turn a label, key or ordinal written as text into the ordinal; raise naming the scale."""
        t = text.strip()
        for g in self.grades:
            if t.casefold() in (g.label.casefold(), g.key.casefold(), g.name.casefold()):
                return g.ordinal
        if t.lstrip("-").isdigit() and int(t) in self.ordinals:
            return int(t)
        raise InputError(f"grade {text!r} is not on the {self.code} scale (valid: {[g.label for g in self.grades]})")

    def ordinal_for_key(self, key: str) -> int | None:
        for g in self.grades:
            if g.key.casefold() == key.casefold():
                return g.ordinal
        return None


def _scales_dir() -> resources.abc.Traversable:
    return resources.files("annotator.resources") / "scales"


@cache
def available_scales() -> tuple[str, ...]:
    return tuple(sorted(p.name.removesuffix(".json") for p in _scales_dir().iterdir() if p.name.endswith(".json")))


@cache
def load_scale(code: str) -> GradingScale:
    path = _scales_dir() / f"{code}.json"
    if not path.is_file():
        raise NotFound(f"grading scale {code!r} is unknown (available: {', '.join(available_scales())})")
    data = json.loads(path.read_text(encoding="utf-8"))
    grades = tuple(
        Grade(int(g["ordinal"]), str(g["label"]), str(g["key"]), str(g["name"]), str(g["definition"]))
        for g in data["grades"]
    )
    return GradingScale(code=str(data["code"]), name=str(data["name"]), grades=grades)
