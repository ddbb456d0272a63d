"""The training events' one JSON encoding: every event type round-trips; bad lines raise a named error."""

from __future__ import annotations

import json
import math
import typing

import pytest

from annotator.domain.entities import ModelKind
from annotator.domain.events import (
    EVENT_TYPES,
    Done,
    EpochEnded,
    Event,
    EventFormatError,
    Failed,
    Figures,
    FoldEnded,
    ModelActivated,
    ModelSaved,
    Phase,
    PhaseStarted,
    PredictionsWritten,
    StepProgress,
    decode,
    describe,
    encode,
)

FIGURES = Figures(12, accuracy=0.75, f1_macro=0.5, f1_weighted=0.6, median_mm=1.25, p95_mm=3.5)
EXAMPLES: list[Event] = [
    PhaseStarted(Phase.READ),
    PhaseStarted(Phase.TRAIN, fold=3),
    StepProgress(Phase.PREDICT, 25, 32),
    StepProgress(Phase.READ, 1, 2, fold=0),
    EpochEnded(None, 1, 2, 0.6931, 1.5, 0.5, None, 0.42),
    EpochEnded(1, 3, 12, 0.25, 0.125, 0.875, 0.8125, 1.0),
    FoldEnded(0, 2, 16, FIGURES),
    FoldEnded(1, 2, 0, Figures(0)),
    ModelSaved(7, "20261130T081200Z-fast-train-rater-a-abc123", ModelKind.TRAIN),
    PredictionsWritten(7, 30, 2),
    ModelActivated(7),
    Done(7, "m7", ModelKind.TRAIN, True),
    Done(8, "m8", ModelKind.CV, False, FIGURES),
    Failed("rater:a has 1 slices with a point and a grade; training needs at least 2"),
    Failed("training cancelled; nothing was saved", cancelled=True),
]


def test_every_event_type_has_an_example() -> None:
    assert {type(e) for e in EXAMPLES} == set(typing.get_args(Event)) == set(EVENT_TYPES.values())


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_one_json_line(event: Event) -> None:
    line = encode(event)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["event"] == event.tag  # the wire names the event type for any JSON reader
    back = decode(line)
    assert back == event and type(back) is type(event)
    assert describe(back)  # every type renders as one line of text


def test_the_wire_format_is_plain_json_with_enum_values() -> None:
    assert json.loads(encode(Done(8, "m8", ModelKind.CV, False, FIGURES))) == {
        "event": "done", "model_id": 8, "name": "m8", "kind": "cv", "active": False,
        "pooled": {"n": 12, "accuracy": 0.75, "f1_macro": 0.5, "f1_weighted": 0.6, "median_mm": 1.25,
                   "p95_mm": 3.5}}
    assert json.loads(encode(StepProgress(Phase.READ, 3, 4))) == {"event": "progress", "phase": "read", "done": 3,
                                                                    "total": 4, "fold": None}


def test_a_nan_loss_survives_the_trip() -> None:
    back = decode(encode(EpochEnded(None, 1, 1, math.nan, 0.0, 0.0, None, 0.0)))
    assert isinstance(back, EpochEnded) and math.isnan(back.loss)


def test_an_int_where_a_float_is_expected_is_accepted() -> None:
    back = decode('{"event": "epoch", "fold": null, "epoch": 1, "epochs": 2, "loss": 1, "localizer_loss": 0, '
                  '"train_accuracy": 1, "val_accuracy": null, "seconds": 3}')
    assert back == EpochEnded(None, 1, 2, 1.0, 0.0, 1.0, None, 3.0) and isinstance(back.loss, float)  # type: ignore[union-attr]


@pytest.mark.parametrize(("line", "why"), [
    ("not json at all", "is not JSON"),
    ("", "is not JSON"),
    ('{"event": "epoch"', "is not JSON"),
    ("[1, 2]", "is not a JSON object"),
    ('{"model_id": 3}', "unknown event None"),
    ('{"event": "celebrate"}', "unknown event 'celebrate'"),
    ('{"event": "activated"}', "field 'model_id' is missing"),
    ('{"event": "activated", "model_id": "7"}', "field 'model_id': '7' is not an integer"),
    ('{"event": "activated", "model_id": true}', "field 'model_id': True is not an integer"),
    ('{"event": "activated", "model_id": 7, "extra": 1}', "unexpected field(s) extra"),
    ('{"event": "phase", "phase": "dance"}', "field 'phase': 'dance' is not one of read, train, predict, activate"),
    ('{"event": "saved", "model_id": 1, "name": "m", "kind": "magic"}', "'magic' is not one of train, cv"),
    ('{"event": "fold", "fold": 0, "folds": 2, "n_train": 3, "figures": {"n": "x"}}',
     "field 'n': 'x' is not an integer"),
    ('{"event": "fold", "fold": 0, "folds": 2, "n_train": 3, "figures": 5}', "field 'figures': 5 is not an object"),
])
def test_a_garbled_line_raises_an_error_that_quotes_it(line: str, why: str) -> None:
    with pytest.raises(EventFormatError) as err:
        decode(line)
    message = str(err.value)
    assert why in message and repr(line[:200]) in message


def test_figures_come_from_a_card_block() -> None:
    block = {"grades": {"n": 12, "accuracy": 0.75, "f1_macro": 0.5, "f1_weighted": 0.6, "confusion": [[1]]},
             "points": {"n": 12, "median_mm": 1.25, "p95_mm": 3.5, "max_mm": 9.0}}
    assert Figures.from_card(block) == FIGURES
    assert Figures.from_card({"grades": {"n": 0}, "points": {"n": 0}}) == Figures(0) == Figures.from_card(None)
