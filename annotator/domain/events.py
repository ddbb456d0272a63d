"""Typed events of a long model run (train, cross-validate, predict, activate) and their one JSON encoding.

The services emit these through an ``OnEvent`` callback; ``annotator train … --json-progress`` writes
each as one JSON line (:func:`encode`), and the GUI, which runs that command as a child process, reads
them back with :func:`decode`. Both ends use this module, so the wire format has one definition. A line
that is not a known event raises :class:`EventFormatError` naming the line and the fault, so a reader
can report it and go on. Counting is 0-based for folds (as stored) and 1-based for epochs.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from annotator.domain.entities import ModelKind
from annotator.domain.errors import InputError


class Phase(enum.StrEnum):
    READ = "read"  # reading and preparing the target's labelled slices
    TRAIN = "train"  # fitting the networks (once per fold in cross-validation)
    PREDICT = "predict"  # predicting every slice
    ACTIVATE = "activate"  # checking the weights and making the model the active one


@dataclass(frozen=True, slots=True)
class Figures:
    """A model's agreement with its target on ``n`` slices: grades (accuracy, F1) and centre error in mm."""

    n: int
    accuracy: float | None = None
    f1_macro: float | None = None
    f1_weighted: float | None = None
    median_mm: float | None = None
    p95_mm: float | None = None

    @classmethod
    def from_card(cls, block: Mapping[str, Any] | None) -> Figures:
        """From a model card's ``{"grades": {...}, "points": {...}}`` block (pooled, per fold, held out)."""
        block = block or {}
        g, p = block.get("grades") or {}, block.get("points") or {}
        return cls(int(g.get("n") or 0), _opt_float(g.get("accuracy")), _opt_float(g.get("f1_macro")),
                   _opt_float(g.get("f1_weighted")), _opt_float(p.get("median_mm")), _opt_float(p.get("p95_mm")))


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    tag: ClassVar[str] = "phase"
    phase: Phase
    fold: int | None = None


@dataclass(frozen=True, slots=True)
class StepProgress:
    """``done`` of ``total`` slices read or predicted."""

    tag: ClassVar[str] = "progress"
    phase: Phase
    done: int
    total: int
    fold: int | None = None


@dataclass(frozen=True, slots=True)
class EpochEnded:
    tag: ClassVar[str] = "epoch"
    fold: int | None
    epoch: int
    epochs: int
    loss: float  # the classifier's
    localizer_loss: float
    train_accuracy: float
    val_accuracy: float | None  # on the held-out fold (cross-validation only)
    seconds: float


@dataclass(frozen=True, slots=True)
class FoldEnded:
    tag: ClassVar[str] = "fold"
    fold: int
    folds: int
    n_train: int
    figures: Figures  # the fold's out-of-fold predictions against the target


@dataclass(frozen=True, slots=True)
class ModelSaved:
    """The version is published and registered: from here on a cancelled run leaves it behind."""

    tag: ClassVar[str] = "saved"
    model_id: int
    name: str
    kind: ModelKind


@dataclass(frozen=True, slots=True)
class PredictionsWritten:
    tag: ClassVar[str] = "predicted"
    model_id: int
    written: int
    skipped: int  # slices without PixelSpacing
    other_plane: int = 0  # slices in another plane than the model learnt from (sagittal, localizers)


@dataclass(frozen=True, slots=True)
class ModelActivated:
    tag: ClassVar[str] = "activated"
    model_id: int


@dataclass(frozen=True, slots=True)
class Done:
    """The run's last event on success."""

    tag: ClassVar[str] = "done"
    model_id: int
    name: str
    kind: ModelKind
    active: bool
    pooled: Figures | None = None  # cross-validation: every fold's out-of-fold predictions together


@dataclass(frozen=True, slots=True)
class Failed:
    """The run's last event when it stops on an error (``cancelled``: the user stopped it)."""

    tag: ClassVar[str] = "error"
    message: str
    cancelled: bool = False


Event = Union[PhaseStarted, StepProgress, EpochEnded, FoldEnded, ModelSaved, PredictionsWritten,  # noqa: UP007
              ModelActivated, Done, Failed]
OnEvent = Callable[[Event], None]
EVENT_TYPES: dict[str, type[Any]] = {cls.tag: cls for cls in typing.get_args(Event)}


def no_event(event: Event) -> None:
    """An event callback that ignores everything."""


class EventFormatError(InputError):
    """A progress line that is not one well-formed event."""


def encode(event: Event) -> str:
    """One JSON line (no newline): ``{"event": TAG, field: value, ...}``."""
    return json.dumps({"event": event.tag, **_plain(event)}, allow_nan=True)


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: _plain_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _plain_value(v: Any) -> Any:
    if isinstance(v, enum.Enum):
        return v.value
    if dataclasses.is_dataclass(v):
        return _plain(v)
    return v


def decode(line: str) -> Event:
    """The event encoded in ``line``; EventFormatError (naming the line) if it is not one."""
    shown = line if len(line) <= 200 else line[:200] + "…"
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise EventFormatError(f"progress line {shown!r} is not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise EventFormatError(f"progress line {shown!r} is not a JSON object")
    obj = dict(obj)
    tag = obj.pop("event", None)
    cls = EVENT_TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise EventFormatError(f"progress line {shown!r}: unknown event {tag!r} "
                               f"(known: {', '.join(sorted(EVENT_TYPES))})")
    try:
        event: Event = _build(cls, obj)
    except (TypeError, ValueError) as exc:
        raise EventFormatError(f"progress line {shown!r}: {exc}") from None
    return event


def _build(cls: type[Any], obj: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise ValueError(f"{cls.tag if hasattr(cls, 'tag') else cls.__name__}: unexpected field(s) "
                         f"{', '.join(unknown)}")
    values = {}
    for name, f in fields.items():
        if name in obj:
            values[name] = _coerce(obj[name], hints[name], name)
        elif f.default is dataclasses.MISSING:
            raise ValueError(f"field {name!r} is missing")
    return cls(**values)


def _coerce(v: Any, hint: Any, name: str) -> Any:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(v, inner, name)
    if hint is bool:
        if isinstance(v, bool):
            return v
    elif hint is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    elif hint is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    elif hint is str:
        if isinstance(v, str):
            return v
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(v)
        except ValueError:
            raise ValueError(f"field {name!r}: {v!r} is not one of "
                             f"{', '.join(str(m.value) for m in hint)}") from None
    elif dataclasses.is_dataclass(hint) and isinstance(v, dict):
        return _build(hint, v)  # type: ignore[arg-type]
    raise ValueError(f"field {name!r}: {v!r} is not {_KINDS.get(hint, 'an object')}")


_KINDS: dict[Any, str] = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def describe(event: Event) -> str:
    """One line of plain text for a log or a terminal."""
    match event:
        case PhaseStarted():
            return f"{_fold(event.fold)}{event.phase} started"
        case StepProgress():
            return f"{_fold(event.fold)}{event.phase} {event.done}/{event.total}"
        case EpochEnded():
            val = "" if event.val_accuracy is None else f" val acc {event.val_accuracy:.3f}"
            return (f"{_fold(event.fold)}epoch {event.epoch}/{event.epochs} loss {event.loss:.3f} "
                    f"acc {event.train_accuracy:.3f}{val}")
        case FoldEnded():
            return f"fold {event.fold} done: {_figures_text(event.figures)}"
        case ModelSaved():
            return f"registered {event.kind} model {event.model_id} ({event.name})"
        case PredictionsWritten():
            extra = f"; {event.skipped} slices without PixelSpacing skipped" if event.skipped else ""
            if event.other_plane:
                extra += f"; {event.other_plane} slices in another plane than its training slices left out"
            return f"model {event.model_id}: wrote {event.written} predictions{extra}"
        case ModelActivated():
            return f"model {event.model_id} is now active"
        case Done():
            return f"model {event.model_id} ({event.name}) done" + (", active" if event.active else "")
        case Failed():
            return ("cancelled: " if event.cancelled else "error: ") + event.message


def _fold(fold: int | None) -> str:
    return "" if fold is None else f"fold {fold} "


def _figures_text(f: Figures) -> str:
    def num(v: float | None) -> str:
        return "n/a" if v is None or math.isnan(v) else f"{v:.3f}"

    return (f"accuracy {num(f.accuracy)}, F1 macro {num(f.f1_macro)}, centre error median "
            f"{num(f.median_mm)} mm (n={f.n})")
