"""The review queue as a table: one row per slice to review, most severe first, with its counts line."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem, QWidget

from annotator.domain.entities import ImageRef, QueueStatus
from annotator.services.review import QueueItem

STATUSES = ("to decide", "open", "reopened", "decided", "all")
STATUS_MATCHES: dict[str, frozenset[QueueStatus] | None] = {  # "to decide": never decided, or reopened since
    "to decide": frozenset({QueueStatus.OPEN, QueueStatus.REOPENED}), "open": frozenset({QueueStatus.OPEN}),
    "reopened": frozenset({QueueStatus.REOPENED}), "decided": frozenset({QueueStatus.DECIDED}), "all": None}
REASONS = (("all reasons", None), ("grades differ", "grades"), ("centres apart", "centres"),
           ("missing rater", "missing"), ("model disagrees", "model"))
COUNT_KEYS = ("grades differ", "centres apart", "missing rater", "model disagrees")
QUEUE_COLUMNS = ("slice", "grade Δ", "mm", "status", "reasons")  # reasons last: it is the long one
IMAGE_ID_ROLE = Qt.ItemDataRole.UserRole


def counts_text(counts: dict[str, int], status: str, shown: int | None = None) -> str:
    """'23 open · 12 grades differ · 8 centres apart · 3 missing rater' (from ``queue_counts``)."""
    parts = [f"{counts.get('total', 0)} {'in queue' if status == 'all' else status}"]
    parts += [f"{counts[k]} {k}" for k in COUNT_KEYS if counts.get(k)]
    text = " · ".join(parts)
    return text if shown is None or shown == counts.get("total", 0) else f"{text} — {shown} shown"


def matches_reason(item: QueueItem, reason: str | None) -> bool:
    """The service's reason filter: one of the item's reasons starts with the prefix."""
    return reason is None or any(w.startswith(reason) for w in item.reasons)


def slice_name(ref: ImageRef | None, image_id: int) -> str:
    return f"{ref.patient_key} · slice {ref.slice_index + 1}" if ref is not None else f"image {image_id}"


class QueueTable(QTableWidget):
    """Rows in the order given; filling and selecting from code emit no selection signal."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(QUEUE_COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(QUEUE_COLUMNS))
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)

    def fill(self, rows: list[QueueItem], refs: dict[int, ImageRef]) -> None:
        self.blockSignals(True)
        self.clearSelection()
        self.setRowCount(len(rows))
        for r, it in enumerate(rows):
            ref = refs.get(it.image_id)
            mm = "–" if it.mm_distance is None else f"{it.mm_distance:.1f}"
            for c, text in enumerate((slice_name(ref, it.image_id), str(it.grade_distance), mm, it.status,
                                      "; ".join(it.reasons))):
                cell = QTableWidgetItem(text)
                cell.setData(IMAGE_ID_ROLE, it.image_id)
                if c == 0:
                    cell.setToolTip(f"image {it.image_id}" + (f" · {ref.path}" if ref else ""))
                elif c == 4:
                    cell.setToolTip(text)
                self.setItem(r, c, cell)
        self.resizeColumnsToContents()
        self.blockSignals(False)

    def select_quietly(self, row: int | None) -> None:
        self.blockSignals(True)
        if row is None:
            self.clearSelection()
        else:
            self.selectRow(row)
            self.scrollTo(self.model().index(row, 0))
        self.blockSignals(False)

    def selected_row(self) -> int | None:
        rows = {i.row() for i in self.selectedIndexes()}
        return min(rows) if rows else None
