"""The review queue as a table: one row per slice to review, most severe first, with its counts line."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from annotator.domain.entities import ImageRef
from annotator.gui.review_state import (
    COUNT_KEYS,
    STATUS_MATCHES,
    STATUSES,
    counts_text,
    matches_reason,
    slice_name,
)
from annotator.services.review import QueueItem

__all__ = ["COUNT_KEYS", "REASONS", "STATUSES", "STATUS_MATCHES", "QueueModel", "QueueTable", "counts_text",
           "matches_reason", "slice_name"]

REASONS = (("all reasons", None), ("grades differ", "grades"), ("centres apart", "centres"),
           ("missing rater", "missing"), ("model disagrees", "model"))
QUEUE_COLUMNS = ("slice", "grade Δ", "mm", "status", "reasons")  # reasons last: it is the long one
IMAGE_ID_ROLE = Qt.ItemDataRole.UserRole
SIZE_FROM_ROWS = 60  # the columns are sized to fit the first rows (the most severe), not all of them


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs of consecutive rows."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and runs[-1][1] == r - 1:
            runs[-1] = (runs[-1][0], r)
        else:
            runs.append((r, r))
    return runs


def _dropped(longer: list[int], shorter: list[int]) -> list[tuple[int, int]] | None:
    """The runs of positions in ``longer`` whose ids are not in ``shorter``, when ``shorter`` is
    ``longer`` with just those left out (same order); else None."""
    out, j = [], 0
    for i, image_id in enumerate(longer):
        if j < len(shorter) and shorter[j] == image_id:
            j += 1
        else:
            out.append(i)
    return _runs(out) if j == len(shorter) else None


class QueueModel(QAbstractTableModel):
    """The listed queue items as table rows; Qt asks only for the cells it paints."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[QueueItem] = []
        self.refs: dict[int, ImageRef] = {}

    def set_rows(self, rows: list[QueueItem], refs: dict[int, ImageRef]) -> None:
        """Show ``rows``: as the rows removed, inserted and changed when they are the rows shown with some
        taken out or some added (a decision, another reviewer's decisions), so the view keeps its
        selection and scroll position and repaints only what changed; else as a new list (a reset)."""
        old, new = [it.image_id for it in self.rows], [it.image_id for it in rows]
        self.rows, self.refs = list(self.rows), refs  # edited below: never a list someone else holds
        if old == new:
            self._update(rows)
        elif len(new) < len(old) and (gone := _dropped(old, new)) is not None:
            for start, end in reversed(gone):
                self.beginRemoveRows(QModelIndex(), start, end)
                del self.rows[start:end + 1]
                self.endRemoveRows()
            self._update(rows)
        elif len(new) > len(old) and (added := _dropped(new, old)) is not None:
            for start, end in added:
                self.beginInsertRows(QModelIndex(), start, end)
                self.rows[start:start] = rows[start:end + 1]
                self.endInsertRows()
            self._update(rows)
        else:
            self.beginResetModel()
            self.rows = list(rows)
            self.endResetModel()

    def _update(self, rows: list[QueueItem]) -> None:
        """Take ``rows`` (the same slices in the same order); tell the view which rows changed."""
        changed = [r for r, (was, now) in enumerate(zip(self.rows, rows, strict=True)) if was is not now and was != now]
        self.rows = list(rows)
        for start, end in _runs(changed):
            self.dataChanged.emit(self.index(start, 0), self.index(end, len(QUEUE_COLUMNS) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(QUEUE_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> str | None:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return QUEUE_COLUMNS[section]
        return None

    def text(self, row: int, column: int) -> str:
        it = self.rows[row]
        if column == 0:
            return slice_name(self.refs.get(it.image_id), it.image_id)
        if column == 1:
            return str(it.grade_distance)
        if column == 2:
            return "–" if it.mm_distance is None else f"{it.mm_distance:.1f}"
        return it.status if column == 3 else "; ".join(it.reasons)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        r, c = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(r, c)
        if role == IMAGE_ID_ROLE:
            return self.rows[r].image_id
        if role == Qt.ItemDataRole.ToolTipRole:
            it = self.rows[r]
            if c == 0:
                ref = self.refs.get(it.image_id)
                return f"image {it.image_id}" + (f" · {ref.path}" if ref else "")
            if c == 4:
                return self.text(r, c)
        return None


class QueueTable(QTableView):
    """Rows in the order given; filling and selecting from code emit no ``rowSelected``.

    A view over :class:`QueueModel`, so listing a queue of hundreds of slices after each decision
    costs no widget per cell (it took about 30 ms as a table of items).
    """

    rowSelected = Signal()  # noqa: N815 (Qt naming) - the user selected a row

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.queue_model = QueueModel(self)
        self.setModel(self.queue_model)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.horizontalHeader().setResizeContentsPrecision(SIZE_FROM_ROWS)  # not every row: Qt asks Python per cell
        self._quiet = False
        self._sized = False
        self.selectionModel().selectionChanged.connect(self._on_selection)

    def _on_selection(self, *_args: object) -> None:
        if not self._quiet:
            self.rowSelected.emit()

    def rowCount(self) -> int:  # noqa: N802 (as QTableWidget)
        return self.queue_model.rowCount()

    def columnCount(self) -> int:  # noqa: N802
        return self.queue_model.columnCount()

    def cell_text(self, row: int, column: int) -> str:
        return self.queue_model.text(row, column)

    def fill(self, rows: list[QueueItem], refs: dict[int, ImageRef]) -> None:
        self._quiet = True
        try:
            self.queue_model.set_rows(rows, refs)
        finally:
            self._quiet = False
        if rows and not self._sized:  # once: later fills keep the widths (and the user's)
            self.resizeColumnsToContents()
            self._sized = True

    def select_quietly(self, row: int | None) -> None:
        self._quiet = True
        try:
            if row is None:
                self.clearSelection()
            else:
                self.selectRow(row)
                self.scrollTo(self.queue_model.index(row, 0))
        finally:
            self._quiet = False

    def selected_row(self) -> int | None:
        rows = {i.row() for i in self.selectionModel().selectedRows()}
        return min(rows) if rows else None
