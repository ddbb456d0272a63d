"""The table of trained model versions: id, active marker, kind, preset, target, date, figures, data snapshot.

Figures come from :func:`annotator.services.models.figures` (the rule lives there): the pooled out-of-fold
ones of a cross-validated model (or held-out ones, if a card has them); for a plain ``train`` model, those
of the cross-validation that estimates it (marked "≈" and named in the tooltip), else its accuracy on its
own training slices, marked "train". For a blinded annotator, a version built on other
readers' labels shows neither its target, nor its slice count, nor its figures (they describe the others'
work); ``set_models`` takes the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem, QWidget

from annotator.domain.entities import ModelVersion
from annotator.gui.theme import MODEL_COLOUR
from annotator.services import models as model_service

COLUMNS = ("id", "active", "kind", "preset", "target", "created", "slices", "accuracy", "F1 macro",
           "centre median mm", "centre p95 mm", "data snapshot")
ACTIVE_MARK = "●"
BLINDED = "(blinded)"
BLINDED_TIP = "Whose labels this model learnt from, and how well it agrees with them, are for reviewers"


def fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * float(v):.1f}%" if pct else f"{float(v):.2f}"


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

    def set_models(self, versions: list[ModelVersion], details_visible: Callable[[ModelVersion], bool]) -> None:
        """Show ``versions`` (newest first), keeping the selection on the same version if it is still there.
        ``details_visible`` is the viewer's right (the policy's); there is no unblinded default.

        A version for which ``details_visible`` is False shows id, state, kind, preset, date and snapshot only.
        """
        selected = self.selected()
        self.models = sorted(versions, key=lambda v: v.id, reverse=True)
        self.clearSelection()
        self.setRowCount(len(self.models))
        for r, v in enumerate(self.models):
            shown = details_visible(v)
            f = model_service.figures(v, self.models) if shown else model_service.ModelFigures()
            mark = "≈ " if f.estimated_by is not None else ""
            snapshot = str(v.card.get("data_snapshot_sha256") or "")
            accuracy = fmt(f.accuracy, True)
            if f.accuracy is None and f.train_accuracy is not None:
                accuracy = f"train {fmt(f.train_accuracy, True)}"
            cells = [str(v.id), ACTIVE_MARK if v.active else "", v.kind, v.preset, v.target if shown else BLINDED,
                     v.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
                     str(v.card.get("n_training_slices", "–")) if shown else "–",
                     mark + accuracy, mark + fmt(f.f1_macro, True), mark + fmt(f.median_mm),
                     mark + fmt(f.p95_mm), snapshot[:10] or "–"]
            cells = [c.replace("≈ –", "–") for c in cells]
            items = [QTableWidgetItem(text) for text in cells]
            items[0].setToolTip(v.name if shown else BLINDED_TIP)  # the name contains the target
            items[4].setToolTip("" if shown else BLINDED_TIP)
            items[11].setToolTip(snapshot)
            if f.estimated_by is not None:
                for c in (7, 8, 9, 10):
                    items[c].setToolTip(f"estimated by cross-validation {f.estimated_by} (same target, preset, "
                                        "epochs and data)")
            elif f.accuracy is None and f.train_accuracy is not None:
                items[7].setToolTip("no held-out figures (cross-validate the same target and preset for them); "
                                    "accuracy on the training slices at the last epoch")
            for c, item in enumerate(items):
                self.setItem(r, c, item)
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
