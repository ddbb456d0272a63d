"""Reader studies as data: which slices, who reads them, in which order, repeats and calibration.

Everything here is pure (no I/O): the vertebral level read from a SeriesDescription, the orientation
computed from ImageOrientationPatient, the selection rule and the study's definition (stored as JSON),
and the planning of each reader's sequence, seeded per reader so that the same definition always gives
the same plan. Storage keeps the plan once it is made; nothing recomputes it later.
"""

from __future__ import annotations

import enum
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from annotator.domain.errors import InputError


class VertebralLevel(enum.StrEnum):
    """The disc level a slice lies at (the stored strings never change)."""

    L1_L2 = "L1-L2"
    L2_L3 = "L2-L3"
    L3_L4 = "L3-L4"
    L4_L5 = "L4-L5"
    L5_S1 = "L5-S1"

    @classmethod
    def parse(cls, text: str) -> VertebralLevel | None:
        """A level as a user writes it (``L4-L5``, ``l4-5``, ``L4/5``, ``L45``, ``L5-S1``); ``none`` -> None.
        Anything else is an InputError naming the accepted forms."""
        if text.strip().casefold() in ("none", ""):
            return None
        found = level_in_text(text)
        if found is None or _LEVEL_RE.fullmatch(text.strip()) is None:
            raise InputError(f"level {text!r} is not a lumbar level: use one of "
                             f"{', '.join(v.value for v in cls)} (or L4-5, L4/5, L45), or none")
        return found


# L<n> then an optional separator, then L<n+1>, <n+1>, or S1/S after L5; not inside a longer word or number
# (so "L4 5mm" or "L5-SAG" name no level).
_LEVEL_RE = re.compile(r"(?<![A-Z0-9])L([1-5])\s*[-/_ ]?\s*(?:L?([1-5])|(S1?))(?![0-9A-Z])", re.IGNORECASE)


def level_in_text(text: str) -> VertebralLevel | None:
    """The first lumbar level named in a SeriesDescription (``AX T2 L4-5`` -> L4-L5), else None."""
    for m in _LEVEL_RE.finditer(text or ""):
        upper = int(m.group(1))
        if m.group(3) is not None:
            if upper == 5:
                return VertebralLevel.L5_S1
            continue
        if int(m.group(2)) == upper + 1:
            return VertebralLevel(f"L{upper}-L{upper + 1}")
    return None


class Orientation(enum.StrEnum):
    """The plane of a slice, from the direction of its normal in the patient frame (LPS)."""

    AXIAL = "axial"  # normal along the patient's feet-head axis (z)
    SAGITTAL = "sagittal"  # normal along left-right (x)
    CORONAL = "coronal"  # normal along anterior-posterior (y)


_AXIS_PLANE = (Orientation.SAGITTAL, Orientation.CORONAL, Orientation.AXIAL)


def orientation_of(iop: Sequence[float] | None, tolerance_deg: float) -> Orientation | None:
    """The plane whose normal lies within ``tolerance_deg`` of the slice's normal (cross product of the
    row and column directions of ImageOrientationPatient); None for an oblique slice or no IOP."""
    if iop is None or len(iop) != 6:
        return None
    r, c = iop[:3], iop[3:]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    norm = math.sqrt(n[0] ** 2 + n[1] ** 2 + n[2] ** 2)
    if norm == 0:
        return None
    axis = max(range(3), key=lambda i: abs(n[i]))
    angle = math.degrees(math.acos(min(1.0, abs(n[axis]) / norm)))
    return _AXIS_PLANE[axis] if angle <= tolerance_deg else None


class StudyDesign(enum.StrEnum):
    CROSSED = "crossed"  # every reader reads every slice
    SPLIT = "split"  # each slice goes to k readers, balanced


class ReadOrder(enum.StrEnum):
    RANDOM = "random"  # seeded per reader
    SEQUENTIAL = "sequential"  # patient, study, series, slice


class ReadKind(enum.StrEnum):
    """What a plan item is. Only admins and reviewers ever see it: a reader sees calibration flagged,
    and never whether an item is a first or a repeat read."""

    CALIBRATION = "calibration"
    FIRST = "first"
    REPEAT = "repeat"


class CannotGrade(enum.StrEnum):
    """Why a reader could not grade a slice: an answer, counted, never dropped."""

    MOTION = "motion"
    ARTEFACT = "artefact"
    WRONG_LEVEL = "wrong_level"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class SelectionRule:
    """Which catalogued slices a study reads: rules over the catalogue, or an explicit SOP list."""

    series_description: str | None = None  # a regular expression, searched (case-insensitive)
    orientation: Orientation | None = None
    tolerance_deg: float = 10.0
    level: VertebralLevel | None = None
    modality: str | None = None
    sop_uids: tuple[str, ...] | None = None  # an explicit list replaces the rules

    def __post_init__(self) -> None:
        if self.series_description is not None:
            try:
                re.compile(self.series_description)
            except re.error as exc:
                raise InputError(f"--series-description {self.series_description!r} is not a regular "
                                 f"expression: {exc}") from exc
        if not 0 <= self.tolerance_deg < 45:
            raise InputError(f"--tolerance-deg {self.tolerance_deg} must be at least 0 and below 45")
        if self.sop_uids is not None and not self.sop_uids:
            raise InputError("the SOP list is empty")

    @property
    def description_re(self) -> re.Pattern[str] | None:
        return None if self.series_description is None else re.compile(self.series_description, re.IGNORECASE)

    def to_json(self) -> dict[str, Any]:
        return {"series_description": self.series_description,
                "orientation": self.orientation.value if self.orientation else None,
                "tolerance_deg": self.tolerance_deg, "level": self.level.value if self.level else None,
                "modality": self.modality, "sop_uids": list(self.sop_uids) if self.sop_uids is not None else None}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SelectionRule:
        return cls(series_description=d.get("series_description"),
                   orientation=Orientation(d["orientation"]) if d.get("orientation") else None,
                   tolerance_deg=float(d.get("tolerance_deg", 10.0)),
                   level=VertebralLevel(d["level"]) if d.get("level") else None, modality=d.get("modality"),
                   sop_uids=tuple(d["sop_uids"]) if d.get("sop_uids") is not None else None)


@dataclass(frozen=True, slots=True)
class Calibration:
    """Calibration slices, read first with feedback: an explicit SOP list or N slices of the study's
    selection that the reference has labelled; ``reference`` names the rater whose labels are the truth."""

    reference: str
    sop_uids: tuple[str, ...] | None = None
    count: int = 0

    def __post_init__(self) -> None:
        if self.sop_uids is None and self.count <= 0:
            raise InputError("--calibration needs a SOP list file or a positive number of slices")


@dataclass(frozen=True, slots=True)
class StudyDefinition:
    """A reader study as its creator defined it; stored as JSON beside the resolved slices and plan."""

    name: str
    rule: SelectionRule
    readers: tuple[str, ...]
    design: StudyDesign = StudyDesign.CROSSED
    readers_per_slice: int = 1
    order: ReadOrder = ReadOrder.RANDOM
    seed: int = 0
    repeat_fraction: float = 0.0
    washout: int = 0
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InputError("a study needs a name")
        if not self.readers:
            raise InputError(f"study {self.name!r}: --readers names no reader")
        if len(set(self.readers)) != len(self.readers):
            raise InputError(f"study {self.name!r}: --readers names a reader twice")
        if self.design is StudyDesign.SPLIT and not 1 <= self.readers_per_slice <= len(self.readers):
            raise InputError(f"--readers-per-slice {self.readers_per_slice} must be between 1 and the "
                             f"{len(self.readers)} readers")
        if not 0 <= self.repeat_fraction <= 1:
            raise InputError(f"--repeat-fraction {self.repeat_fraction} must lie between 0 and 1")
        if self.washout < 0:
            raise InputError(f"--washout {self.washout} must not be negative")

    def to_json(self) -> dict[str, Any]:
        cal = self.calibration
        return {"name": self.name, "rule": self.rule.to_json(), "readers": list(self.readers),
                "design": self.design.value, "readers_per_slice": self.readers_per_slice,
                "order": self.order.value, "seed": self.seed, "repeat_fraction": self.repeat_fraction,
                "washout": self.washout,
                "calibration": None if cal is None else {
                    "reference": cal.reference, "count": cal.count,
                    "sop_uids": list(cal.sop_uids) if cal.sop_uids is not None else None}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StudyDefinition:
        c = d.get("calibration")
        cal = None if c is None else Calibration(c["reference"], tuple(c["sop_uids"]) if c.get("sop_uids")
                                                 is not None else None, int(c.get("count", 0)))
        return cls(name=d["name"], rule=SelectionRule.from_json(d["rule"]), readers=tuple(d["readers"]),
                   design=StudyDesign(d["design"]), readers_per_slice=int(d["readers_per_slice"]),
                   order=ReadOrder(d["order"]), seed=int(d["seed"]), repeat_fraction=float(d["repeat_fraction"]),
                   washout=int(d["washout"]), calibration=cal)


# ----- planning ------------------------------------------------------------------------------------------
def assign_slices(slices: Sequence[int], readers: Sequence[str], design: StudyDesign, k: int,
                  seed: int) -> dict[str, list[int]]:
    """reader -> the slices (in the given order) she reads. Split: each slice to ``k`` readers, dealt
    round-robin over a seeded shuffle, so every reader gets floor or ceil of n*k/R slices."""
    if design is StudyDesign.CROSSED:
        return {r: list(slices) for r in readers}
    shuffled = list(slices)
    random.Random(f"assign:{seed}").shuffle(shuffled)
    chosen: dict[str, set[int]] = {r: set() for r in readers}
    n = len(readers)
    for i, image_id in enumerate(shuffled):
        for j in range(k):
            chosen[readers[(i * k + j) % n]].add(image_id)
    return {r: [s for s in slices if s in chosen[r]] for r in readers}


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One step of one reader's sequence (1-based ``seq``); an admin's view, never a reader's."""

    seq: int
    image_id: int
    kind: ReadKind


def plan_reader(reader: str, slices: Sequence[int], calibration: Sequence[int], *, order: ReadOrder, seed: int,
                repeat_fraction: float, washout: int) -> list[PlanItem]:
    """The reader's whole sequence: calibration slices first, then her slices (shuffled with a seed of
    her own, or in the given order), with ``repeat_fraction`` of them coming back each after at least
    ``washout`` other items, at a seeded random place so that no position gives a repeat away."""
    rng = random.Random(f"plan:{seed}:{reader}")
    cal = list(calibration)
    first = list(slices)
    if order is ReadOrder.RANDOM:
        rng.shuffle(cal)
        rng.shuffle(first)
    n = len(first)
    n_repeats = 0 if repeat_fraction <= 0 or n == 0 else max(1, round(repeat_fraction * n))
    candidates = [p for p in range(n) if p + washout < n]  # room for `washout` slices after it
    if n_repeats > len(candidates):
        raise InputError(f"reader {reader}: {n_repeats} repeats (--repeat-fraction {repeat_fraction} of {n} "
                         f"slices) cannot each come back after --washout {washout} other slices; "
                         f"at most {len(candidates)} can")
    slots: dict[int, list[int]] = {}
    for p in sorted(rng.sample(candidates, n_repeats)):
        slots.setdefault(rng.randint(p + washout + 1, n), []).append(first[p])
    items = [(image_id, ReadKind.CALIBRATION) for image_id in cal]
    for q in range(n + 1):
        repeats = slots.get(q, [])
        rng.shuffle(repeats)
        items += [(image_id, ReadKind.REPEAT) for image_id in repeats]
        if q < n:
            items.append((first[q], ReadKind.FIRST))
    return [PlanItem(i, image_id, kind) for i, (image_id, kind) in enumerate(items, start=1)]


# ----- what a reader sees and answers ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReadItem:
    """The next slice a reader reads. Deliberately no kind: a repeat looks like any other item."""

    study: str
    sop_instance_uid: str
    image_id: int
    calibration: bool
    number: int  # 1-based position in her sequence
    total: int

    def to_json(self) -> dict[str, Any]:
        return {"study": self.study, "finished": False, "sop_uid": self.sop_instance_uid,
                "image_id": self.image_id, "calibration": self.calibration, "number": self.number,
                "total": self.total}


@dataclass(frozen=True, slots=True)
class Answer:
    """What a reader answers on one slice: a point and a grade, or cannot-grade with a reason."""

    x_px: float | None = None
    y_px: float | None = None
    grade: int | None = None
    cannot_grade: CannotGrade | None = None
    seconds: float | None = None
    comment: str = ""

    def __post_init__(self) -> None:
        if (self.x_px is None) != (self.y_px is None):
            raise InputError("an answer's point needs both --x and --y")
        if self.cannot_grade is None and (self.grade is None or self.x_px is None):
            raise InputError("an answer needs --x, --y and --grade, or --cannot-grade REASON")
        if self.cannot_grade is not None and self.grade is not None:
            raise InputError("an answer is either a grade or --cannot-grade, not both")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds >= 0):
            raise InputError(f"--seconds {self.seconds} must be a non-negative number")


@dataclass(frozen=True, slots=True)
class Read:
    """One stored read: the answer to one plan item (a repeat read is its own read)."""

    id: int
    study_id: int
    rater_id: int
    image_id: int
    seq: int
    kind: ReadKind
    x_px: float | None
    y_px: float | None
    grade: int | None
    cannot_grade: CannotGrade | None
    seconds: float | None
    comment: str
    scale_code: str
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReferenceMark:
    """The reference's point and grade on a calibration slice, frozen when the study is created."""

    image_id: int
    x_px: float | None
    y_px: float | None
    grade: int | None


@dataclass(frozen=True, slots=True)
class CalibrationFeedback:
    """Shown after a calibration read: the reference, and how far the reader's answer is from it."""

    reference: ReferenceMark
    distance_mm: float | None  # None: no point, or mm unavailable (no PixelSpacing)
    grade_difference: int | None  # reader minus reference; None when either has no grade


@dataclass(frozen=True, slots=True)
class CalibrationScore:
    n: int
    graded: int  # calibration reads with a grade (the rest were cannot-grade)
    exact: int  # grade equal to the reference's
    mean_abs_grade_difference: float | None
    median_distance_mm: float | None

    @property
    def accuracy(self) -> float | None:
        return self.exact / self.graded if self.graded else None


@dataclass(frozen=True, slots=True)
class StudySummary:
    id: int
    name: str
    definition: StudyDefinition
    n_slices: int
    n_calibration: int
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReaderProgress:
    """An admin's view of one reader's progress in a study."""

    reader: str
    assigned: int  # first reads planned (distinct study slices)
    done: int  # first reads done
    repeats_planned: int
    repeats_done: int
    calibration_planned: int
    calibration_done: int
    cannot_grade: int
