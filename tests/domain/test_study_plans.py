"""Pure parts of reader studies: levels read from a SeriesDescription, orientation from
ImageOrientationPatient, definitions that round-trip through JSON, and the planning of a sequence."""

from __future__ import annotations

import math

import pytest

from annotator.domain.errors import InputError
from annotator.domain.studies import (
    Answer,
    Calibration,
    CannotGrade,
    Orientation,
    ReadItem,
    ReadKind,
    ReadOrder,
    SelectionRule,
    StudyDefinition,
    StudyDesign,
    VertebralLevel,
    assign_slices,
    level_in_text,
    orientation_of,
    plan_reader,
)

L45, L5S1 = VertebralLevel.L4_L5, VertebralLevel.L5_S1


@pytest.mark.parametrize(("text", "level"), [
    ("AX T2 L4-L5", L45), ("ax t2 l4-5", L45), ("AX T2 L4/5", L45), ("AX T2 L45", L45), ("L4 L5 axial", L45),
    ("AX T2 L5-S1", L5S1), ("ax l5/s1", L5S1), ("AX_T2_L5S1", L5S1), ("L5-S", L5S1),
    ("AX T2 L1-2", VertebralLevel.L1_L2),
    ("AX T2 L3-L4", VertebralLevel.L3_L4), ("SAG T2", None), ("AX T2 L4-L6", None), ("L4 only", None),
    ("LOCALIZER", None), ("AX T2 FL4-5", None), ("L4-56", None), ("", None), ("AX T2 L4 5mm", None),
    ("L5-SAG", None), ("AX T2 L4-L5_fs", L45),
])
def test_level_from_a_series_description(text: str, level: VertebralLevel | None) -> None:
    assert level_in_text(text) is level


def test_a_level_as_a_user_writes_it() -> None:
    assert VertebralLevel.parse("L4-L5") is L45 and VertebralLevel.parse("l4/5") is L45
    assert VertebralLevel.parse("none") is None
    with pytest.raises(InputError, match="not a lumbar level"):
        VertebralLevel.parse("AX T2 L4-5")  # a whole description is not a level
    with pytest.raises(InputError, match="not a lumbar level"):
        VertebralLevel.parse("C5-C6")


def _tilted(deg: float) -> tuple[float, ...]:
    """An axial slice tilted by ``deg`` about the left-right axis."""
    r = math.radians(deg)
    return (1.0, 0.0, 0.0, 0.0, math.cos(r), math.sin(r))


def test_orientation_within_the_tolerance() -> None:
    assert orientation_of((1, 0, 0, 0, 1, 0), 10) is Orientation.AXIAL
    assert orientation_of((0, 1, 0, 0, 0, -1), 10) is Orientation.SAGITTAL
    assert orientation_of((1, 0, 0, 0, 0, -1), 10) is Orientation.CORONAL
    assert orientation_of(_tilted(9.5), 10) is Orientation.AXIAL
    assert orientation_of(_tilted(10.5), 10) is None  # oblique beyond the tolerance
    assert orientation_of(_tilted(10.5), 15) is Orientation.AXIAL
    assert orientation_of(None, 10) is None and orientation_of((0, 0, 0, 0, 0, 0), 10) is None


def test_a_definition_round_trips_through_json_and_checks_its_fields() -> None:
    d = StudyDefinition("L4-L5 axial", SelectionRule("AX.*T2", Orientation.AXIAL, 12.0, L45, "MR"),
                        ("ann", "bob"), StudyDesign.SPLIT, 1, ReadOrder.SEQUENTIAL, 3, 0.1, 20,
                        Calibration("rater:x", count=4))
    assert StudyDefinition.from_json(d.to_json()) == d
    s = SelectionRule(sop_uids=("1.2", "1.3"))
    assert SelectionRule.from_json(s.to_json()) == s
    for bad, field in ((dict(readers=()), "--readers"), (dict(repeat_fraction=1.5), "--repeat-fraction"),
                       (dict(washout=-1), "--washout"), (dict(design=StudyDesign.SPLIT, readers_per_slice=3),
                                                         "--readers-per-slice")):
        with pytest.raises(InputError, match=field):
            StudyDefinition(**{**dict(name="x", rule=SelectionRule(), readers=("a", "b")), **bad})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="--series-description"):
        SelectionRule(series_description="AX(")
    with pytest.raises(InputError, match="--tolerance-deg"):
        SelectionRule(tolerance_deg=60)


def test_split_assignment_is_balanced_for_any_size() -> None:
    for n in (7, 10, 31):
        got = assign_slices(list(range(n)), ["a", "b", "c"], StudyDesign.SPLIT, 2, seed=1)
        sizes = sorted(len(v) for v in got.values())
        assert sizes[-1] - sizes[0] <= 1 and sum(sizes) == 2 * n
        assert all(sum(i in v for v in got.values()) == 2 for i in range(n))
        assert all(v == sorted(v) for v in got.values())  # kept in the given order


def test_plan_puts_calibration_first_and_repeats_after_the_washout() -> None:
    slices = list(range(100, 160))
    for seed in range(20):
        plan = plan_reader("ann", slices, [1, 2, 3], order=ReadOrder.RANDOM, seed=seed, repeat_fraction=0.1,
                           washout=20)
        assert [it.seq for it in plan] == list(range(1, 70))
        assert {it.image_id for it in plan[:3]} == {1, 2, 3} and all(it.kind is ReadKind.CALIBRATION
                                                                     for it in plan[:3])
        first = {it.image_id: it.seq for it in plan if it.kind is ReadKind.FIRST}
        repeats = [it for it in plan if it.kind is ReadKind.REPEAT]
        assert sorted(first) == slices and len(repeats) == 6
        assert all(it.seq - first[it.image_id] - 1 >= 20 for it in repeats)
    a = plan_reader("ann", slices, [], order=ReadOrder.RANDOM, seed=5, repeat_fraction=0.1, washout=20)
    assert a == plan_reader("ann", slices, [], order=ReadOrder.RANDOM, seed=5, repeat_fraction=0.1, washout=20)
    assert a != plan_reader("bob", slices, [], order=ReadOrder.RANDOM, seed=5, repeat_fraction=0.1, washout=20)


def test_repeats_are_not_given_away_by_their_position() -> None:
    """Over many seeds, repeats land across the whole second part of the sequence, not in one block."""
    tail = []
    for seed in range(200):
        plan = plan_reader("ann", list(range(60)), [], order=ReadOrder.RANDOM, seed=seed, repeat_fraction=0.1,
                           washout=20)
        tail += [it.seq for it in plan if it.kind is ReadKind.REPEAT]
    assert min(tail) <= 25 and max(tail) == 66 and len(set(tail)) > 30


def test_answers_and_items_say_what_a_reader_may_know() -> None:
    with pytest.raises(InputError, match="--cannot-grade"):
        Answer(1.0, 2.0)
    with pytest.raises(InputError, match="both --x and --y"):
        Answer(1.0, None, 2)
    with pytest.raises(InputError, match="not both"):
        Answer(1.0, 2.0, 1, cannot_grade=CannotGrade.OTHER)
    with pytest.raises(InputError, match="--seconds"):
        Answer(1.0, 2.0, 1, seconds=-1)
    assert Answer(cannot_grade=CannotGrade.MOTION).grade is None
    item = ReadItem("s", "1.2.3", 4, False, 5, 10)
    assert set(item.to_json()) == {"study", "finished", "sop_uid", "image_id", "calibration", "number", "total"}
