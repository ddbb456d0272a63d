"""The table of trained model versions: id, active marker, kind, preset, target, date, figures, data snapshot.

Figures come from each version's card: the pooled out-of-fold ones of a cross-validated model (or held-out
ones, if a card has them). A plain ``train`` model learns from every slice, so it has none of its own: it
shows those of a cross-validation of the same recipe (target, preset, epochs) on the same data snapshot (the estimate of
how it generalises, marked "≈" and named in the tooltip), else its accuracy on its own training slices,
marked "train". For a blinded annotator, a version built on other
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

COLUMNS = ("id", "active", "kind", "preset", "target", "created", "slices", "accuracy", "F1 macro",
           "centre median mm", "centre p95 mm", "data snapshot")
ACTIVE_MARK = "●"
BLINDED = "(blinded)"
BLINDED_TIP = "Whose labels this model learnt from, and how well it agrees with them, are for reviewers"


def fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * float(v):.1f}%" if pct else f"{float(v):.2f}"


def cv_sibling(v: ModelVersion, versions: list[ModelVersion]) -> ModelVersion | None:
    """The newest cross-validation of the same recipe (target, preset, hyper-parameters and epochs) on the
    same data snapshot as ``v``: its out-of-fold figures estimate how ``v`` generalises."""
    snap = v.card.get("data_snapshot_sha256")
    same = [c for c in versions if c.kind == "cv" and c.target == v.target and c.preset == v.preset
            and snap and c.card.get("data_snapshot_sha256") == snap
            and c.card.get("hyper_parameters") == v.card.get("hyper_parameters")
            and c.card.get("epochs") == v.card.get("epochs")]
    return max(same, key=lambda c: c.id) if same else None


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

    def set_models(self, versions: list[ModelVersion],
                   details_visible: Callable[[ModelVersion], bool] = lambda _v: True) -> None:
        """Show ``versions`` (newest first), keeping the selection on the same version if it is still there.

        A version for which ``details_visible`` is False shows id, state, kind, preset, date and snapshot only.
        """
        selected = self.selected()
        self.models = sorted(versions, key=lambda v: v.id, reverse=True)
        self.clearSelection()
        self.setRowCount(len(self.models))
        for r, v in enumerate(self.models):
            shown = details_visible(v)
            f = model_figures(v) if shown else dict.fromkeys(("accuracy", "f1_macro", "median_mm", "p95_mm",
                                                               "train_accuracy"))
            sibling = cv_sibling(v, self.models) if shown and f["accuracy"] is None else None
            mark = ""
            if sibling is not None:
                f, mark = {**model_figures(sibling), "train_accuracy": None}, "≈ "
            snapshot = str(v.card.get("data_snapshot_sha256") or "")
            accuracy = fmt(f["accuracy"], True)
            if f["accuracy"] is None and f["train_accuracy"] is not None:
                accuracy = f"train {fmt(f['train_accuracy'], True)}"
            cells = [str(v.id), ACTIVE_MARK if v.active else "", v.kind, v.preset, v.target if shown else BLINDED,
                     v.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
                     str(v.card.get("n_training_slices", "–")) if shown else "–",
                     mark + accuracy, mark + fmt(f["f1_macro"], True), mark + fmt(f["median_mm"]),
                     mark + fmt(f["p95_mm"]), snapshot[:10] or "–"]
            cells = [c.replace("≈ –", "–") for c in cells]
            items = [QTableWidgetItem(text) for text in cells]
            items[0].setToolTip(v.name if shown else BLINDED_TIP)  # the name contains the target
            items[4].setToolTip("" if shown else BLINDED_TIP)
            items[11].setToolTip(snapshot)
            if sibling is not None:
                for c in (7, 8, 9, 10):
                    items[c].setToolTip(f"estimated by cross-validation {sibling.id} (same target, preset, epochs "
                                        "and data)")
            elif f["accuracy"] is None and f["train_accuracy"] is not None:
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
