"""The table of trained model versions: id, active marker, kind, preset, target, date, figures, data snapshot.

Figures come from each version's card: the pooled out-of-fold ones of a cross-validated model (or held-out
ones, if a card has them). A plain ``train`` model has none; its cell says so in a tooltip and shows the
accuracy on its own training slices there instead.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem, QWidget

from annotator.domain.entities import ModelVersion
from annotator.gui.theme import MODEL_COLOUR

COLUMNS = ("id", "active", "kind", "preset", "target", "created", "slices", "accuracy", "F1 macro",
           "centre median mm", "centre p95 mm", "data snapshot")
ACTIVE_MARK = "●"


def fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * float(v):.1f}%" if pct else f"{float(v):.2f}"


def model_figures(v: ModelVersion) -> dict[str, Any]:
    """Accuracy, F1 macro and centre errors from the card: cross-validated (pooled) or held-out, if any."""
    metrics = v.card.get("metrics") or {}
    block = metrics.get("pooled") or metrics.get("held_out") or {}
    grades, points = block.get("grades") or {}, block.get("points") or {}
    return {"accuracy": grades.get("accuracy"), "f1_macro": grades.get("f1_macro"),
            "median_mm": points.get("median_mm"), "p95_mm": points.get("p95_mm"),
            "train_accuracy": metrics.get("last_epoch_train_accuracy")}


class ModelTable(QTableWidget):
    """Read-only, one selectable row per version, newest first."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.models: list[ModelVersion] = []
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)

    def set_models(self, versions: list[ModelVersion]) -> None:
        """Show ``versions`` (newest first), keeping the selection on the same version if it is still there."""
        selected = self.selected()
        self.models = sorted(versions, key=lambda v: v.id, reverse=True)
        self.clearSelection()
        self.setRowCount(len(self.models))
        for r, v in enumerate(self.models):
            f = model_figures(v)
            snapshot = str(v.card.get("data_snapshot_sha256") or "")
            cells = [str(v.id), ACTIVE_MARK if v.active else "", v.kind, v.preset, v.target,
                     v.created_at.astimezone().strftime("%Y-%m-%d %H:%M"), str(v.card.get("n_training_slices", "–")),
                     fmt(f["accuracy"], True), fmt(f["f1_macro"], True), fmt(f["median_mm"]), fmt(f["p95_mm"]),
                     snapshot[:10] or "–"]
            for c, text in enumerate(cells):
                self.setItem(r, c, QTableWidgetItem(text))
            self.item(r, 0).setToolTip(v.name)
            self.item(r, 11).setToolTip(snapshot)
            if f["accuracy"] is None and f["train_accuracy"] is not None:
                self.item(r, 7).setToolTip("no held-out figures (cross-validate for them); accuracy on the "
                                           f"training slices at the last epoch: {fmt(f['train_accuracy'], True)}")
            if v.active:
                self.item(r, 1).setForeground(QColor(MODEL_COLOUR))
                self.item(r, 1).setToolTip("the active model: its predictions are the ones shown")
        self.resizeColumnsToContents()
        if selected is not None:
            self.select(selected.id)

    def model_ids(self) -> list[int]:
        return [v.id for v in self.models]

    def selected(self) -> ModelVersion | None:
        rows = {i.row() for i in self.selectedIndexes()}
        if not rows or min(rows) >= len(self.models):
            return None
        return self.models[min(rows)]

    def select(self, model_id: int) -> None:
        for r, v in enumerate(self.models):
            if v.id == model_id:
                self.selectRow(r)
                return
        self.clearSelection()

    def row_texts(self, row: int) -> list[str]:
        return [self.item(row, c).text() for c in range(self.columnCount())]
