"""The review queue table: a new list of rows updates the rows that changed, keeping selection and scroll.

After each decision the queue is listed again; resetting the model cleared the selection and scroll
position and made Qt ask Python for every visible cell again. These tests show a real table offscreen.
"""

from __future__ import annotations

import dataclasses

import pytest

from annotator.domain.entities import QueueStatus
from annotator.gui.review_queue import QueueTable
from annotator.services.review import QueueItem


def _items(n: int) -> list[QueueItem]:
    return [QueueItem(100 + i, ("grades differ by 1",), 1, float(i), QueueStatus.OPEN, 0) for i in range(n)]


class _Signals:
    """What the table's model told its views."""

    def __init__(self, table: QueueTable) -> None:
        m = table.queue_model
        self.resets = 0
        self.removed: list[tuple[int, int]] = []
        self.inserted: list[tuple[int, int]] = []
        self.changed: list[tuple[int, int]] = []
        m.modelReset.connect(self._reset)
        m.rowsRemoved.connect(lambda _parent, first, last: self.removed.append((first, last)))
        m.rowsInserted.connect(lambda _parent, first, last: self.inserted.append((first, last)))
        m.dataChanged.connect(lambda a, b, _roles=(): self.changed.append((a.row(), b.row())))

    def _reset(self) -> None:
        self.resets += 1


@pytest.fixture
def table(qtbot) -> QueueTable:  # type: ignore[no-untyped-def]
    t = QueueTable()
    qtbot.addWidget(t)
    t.resize(500, 400)
    t.fill(_items(300), {})
    t.show()
    qtbot.waitExposed(t)
    return t


def _selected_id(t: QueueTable) -> int | None:
    row = t.selected_row()
    return None if row is None else t.queue_model.rows[row].image_id


def test_a_decided_row_leaving_the_queue_is_removed_alone(qtbot, table: QueueTable) -> None:  # type: ignore[no-untyped-def]
    table.select_quietly(150)
    scroll = table.verticalScrollBar().value()
    assert scroll > 0 and _selected_id(table) == 250
    sig = _Signals(table)
    rows = list(table.queue_model.rows)
    table.fill(rows[:200] + rows[201:], {})  # the slice at row 200 was decided: it leaves "to decide"
    assert sig.resets == 0 and sig.removed == [(200, 200)] and sig.inserted == [] and sig.changed == []
    assert table.rowCount() == 299 and table.cell_text(200, 1) == "1"
    assert _selected_id(table) == 250 and table.selected_row() == 150  # the selection stayed on its slice
    assert table.verticalScrollBar().value() == scroll  # and the view did not jump


def test_a_changed_row_is_repainted_alone_and_nothing_moves(qtbot, table: QueueTable) -> None:  # type: ignore[no-untyped-def]
    table.select_quietly(40)
    scroll = table.verticalScrollBar().value()
    sig = _Signals(table)
    rows = list(table.queue_model.rows)
    rows[41] = dataclasses.replace(rows[41], status=QueueStatus.DECIDED, adjudication_version=1)
    rows[42] = dataclasses.replace(rows[42])  # a new object, equal: not a change
    table.fill(rows, {})
    assert sig.resets == 0 and sig.removed == sig.inserted == [] and sig.changed == [(41, 41)]
    assert table.cell_text(41, 3) == "decided" and table.selected_row() == 40
    assert table.verticalScrollBar().value() == scroll


def test_rows_removed_and_added_elsewhere_keep_the_selected_slice(qtbot, table: QueueTable) -> None:  # type: ignore[no-untyped-def]
    table.select_quietly(100)
    sig = _Signals(table)
    rows = list(table.queue_model.rows)
    fewer = [it for i, it in enumerate(rows) if i not in {3, 4, 5, 120}]  # another reviewer decided four
    table.fill(fewer, {})
    assert sig.removed == [(120, 120), (3, 5)] and sig.resets == 0
    assert _selected_id(table) == 200 and table.selected_row() == 97
    table.fill(rows, {})  # reopened: back in the queue
    assert sig.inserted == [(3, 5), (120, 120)] and sig.resets == 0
    assert [it.image_id for it in table.queue_model.rows] == [it.image_id for it in rows]
    assert _selected_id(table) == 200


def test_a_different_list_is_a_new_list(qtbot, table: QueueTable) -> None:  # type: ignore[no-untyped-def]
    sig = _Signals(table)
    rows = list(table.queue_model.rows)
    table.fill(list(reversed(rows[:50])), {})  # another filter, another order
    assert sig.resets == 1 and table.rowCount() == 50 and table.queue_model.rows[0].image_id == 149
