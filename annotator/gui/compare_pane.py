"""The second view: the same slice, zoom, pan and window as the main view, with what the rater may
compare against — the active model's point, grade and class probabilities, and (where the project
allows) the other readers' points and grades, each in its own colour, named in a legend.

It only draws what :class:`SliceOverlays` holds; the blinding decisions were made by the service.
"""

from __future__ import annotations

import html

from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from annotator.domain.scales import GradingScale
from annotator.gui.reader_marks import Mark, ReaderMarks
from annotator.gui.slice_view import SliceView
from annotator.gui.theme import MODEL_COLOUR, OWN_COLOUR, slice_styles
from annotator.services.viewing import SliceOverlays, SuggestionStatus

BAR_WIDTH = 16


def grade_text(scale: GradingScale, grade: int | None) -> str:
    if grade is None:
        return "no grade"
    try:
        return scale.grade(grade).label
    except Exception:  # a grade from another scale
        return str(grade)


def probability_rows(scale: GradingScale, probabilities: tuple[float, ...]) -> list[str]:
    """One line per grade: label, a bar and the probability."""
    rows = []
    for g, p in zip(scale.grades, probabilities, strict=False):
        bar = "█" * round(p * BAR_WIDTH)
        rows.append(f"{g.label:>3} {g.name[:10]:<10} {bar:<{BAR_WIDTH}} {p:4.2f}")
    return rows


class ComparePane(QWidget):
    def __init__(self, scale: GradingScale, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale = scale
        self.view = SliceView(editable=False, follower=True)
        self.marks = ReaderMarks(self.view)
        self.info = QLabel()
        self.info.setObjectName("compareInfo")
        self.info.setWordWrap(True)
        self.info.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.info.setStyleSheet("QLabel#compareInfo { padding: 6px; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.info)
        self.set_overlays(None)

    @property
    def legend_names(self) -> list[str]:
        return self.marks.names

    def set_overlays(self, ov: SliceOverlays | None) -> None:
        if ov is None:
            self.marks.clear()
            self.info.setText("")
            return
        lines: list[str] = []
        marks: list[Mark] = []
        if ov.own is not None and not ov.own.empty:
            marks.append(Mark(ov.own.x_px, ov.own.y_px, f"you: {grade_text(self.scale, ov.own.grade)}", OWN_COLOUR,
                              "+"))
        sug = ov.suggestion
        if sug.status is SuggestionStatus.SHOWN and sug.prediction is not None:
            pred = sug.prediction
            name = ov.model_label or "model"
            marks.append(Mark(pred.x_px, pred.y_px, f"model: {grade_text(self.scale, pred.grade)}", MODEL_COLOUR, "x",
                              16))
            lines.append(f"<b>Model</b> {html.escape(name)}: grade {html.escape(grade_text(self.scale, pred.grade))}")
            if pred.probabilities:
                rows = probability_rows(self.scale, pred.probabilities)
                lines.append("<pre style='margin:0'>" + html.escape("\n".join(rows)) + "</pre>")
        elif sug.status is SuggestionStatus.NO_MODEL:
            lines.append("<b>Model</b>: no active model")
        else:
            name = f" {html.escape(ov.model_label)}" if ov.model_label else ""
            lines.append(f"<b>Model</b>{name}: {html.escape(sug.status.value)}")
        if not ov.others_visible:
            lines.append("<b>Other readers</b>: hidden (blinded reading)")
        elif not ov.others:
            lines.append("<b>Other readers</b>: none has labelled this slice")
        for reader, (colour, symbol) in zip(ov.others, slice_styles([r.ordinal for r in ov.others]), strict=True):
            lab = reader.label
            name = f"{reader.shown}: {grade_text(self.scale, lab.grade)}"
            marks.append(Mark(lab.x_px, lab.y_px, name, colour, symbol))
        self.marks.show(marks)
        self.info.setText("<br>".join(lines))
