"""The worklist: studies -> series -> slices with the signed-in rater's progress, filters, and the
order to label in.

With the sequential strategy the list is the study / series / slice tree; with another strategy
(random, most uncertain, most disagreement) it is a flat ranked list of the slices in that strategy's
order, each with its patient and score, and "Next unfinished" follows the same order.

Built from a :class:`Worklist` the service computed; updated in place after each label action
(a slice changes state, its series' and study's done counts follow) so labelling never waits for a
full reload. A slice that stops matching the filter stays listed until the next reload, so the list
does not jump under the rater's hand.
"""

from __future__ import annotations

import functools

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from annotator.domain.entities import ImageRef
from annotator.gui.theme import DONE_COLOUR, INCOMPLETE_COLOUR, UNLABELLED_COLOUR
from annotator.services.strategies import Strategy
from annotator.services.worklist import Progress, RankedSlice, SliceState, Worklist, WorklistFilter

ROLE = Qt.ItemDataRole.UserRole
MARK = {SliceState.DONE: ("✓", DONE_COLOUR), SliceState.INCOMPLETE: ("◐", INCOMPLETE_COLOUR),
        SliceState.UNLABELLED: ("○", UNLABELLED_COLOUR)}
FILTER_NAMES = {WorklistFilter.ALL: "All slices", WorklistFilter.UNLABELLED: "Unlabelled by me",
                WorklistFilter.MINE: "Labelled by me", WorklistFilter.INCOMPLETE: "Incomplete"}


def positions(worklist: Worklist) -> dict[int, str]:
    """Each listed slice's position text, by image id: computed with the worklist on a worker thread,
    so that listing 2,000 slices does not also compute 2,000 positions on the GUI thread."""
    return {sl.image.id: _position(sl.image) for st in worklist.studies for se in st.series for sl in se.slices}


def layout(worklist: Worklist) -> tuple[object, ...]:
    """What a worklist lists, in order: its slices' ids in their studies and series, or in rank order."""
    if worklist.ranked:
        return ("ranked", worklist.strategy, tuple(r.slice.image.id for r in worklist.ranked))
    return ("tree", tuple((st.study_id, tuple((se.series.id, tuple(sl.image.id for sl in se.slices))
                                              for se in st.series)) for st in worklist.studies))


def _position(image: ImageRef) -> str:
    g = image.geometry
    try:
        return f"{g.position_along_normal():+.1f} mm"
    except Exception:
        return f"#{image.instance_number}" if image.instance_number is not None else ""


def _level(image: ImageRef) -> str:
    return f"  {image.level}" if image.level else ""


def _set_text(item: QTreeWidgetItem, column: int, text: str) -> None:
    if item.text(column) != text:
        item.setText(column, text)


@functools.cache
def _brush(colour: str) -> QBrush:
    return QBrush(QColor(colour))


class WorklistPanel(QWidget):
    sliceActivated = Signal(object)  # ImageRef
    seriesActivated = Signal(int)  # series id
    filterChanged = Signal(object)  # WorklistFilter
    strategyChanged = Signal(str)  # strategy name
    setLevelRequested = Signal(list)  # noqa: N815 (Qt naming) - image ids of the chosen slices

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter_box = QComboBox()
        for f, name in FILTER_NAMES.items():
            self.filter_box.addItem(name, f)
        self.filter_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.filter_box.currentIndexChanged.connect(lambda _i: self.filterChanged.emit(self.current_filter))
        self.order_box = QComboBox()
        self.order_box.setObjectName("orderBox")
        self.order_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.order_box.setToolTip("The order of the list and of “Next unfinished slice” (Enter)")
        self.order_box.currentIndexChanged.connect(lambda _i: self.strategyChanged.emit(self.current_strategy))
        self._score_names: dict[str, str] = {}
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m slices done")
        self.progress.setTextVisible(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Study / series / slice", "Done"])
        self.tree.setColumnWidth(0, 210)
        self.tree.setUniformRowHeights(True)
        self.tree.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.tree.itemClicked.connect(self._on_clicked)
        self.tree.itemActivated.connect(self._on_clicked)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self._may_set_level = False
        self.shown: Worklist | None = None  # the worklist listed last (update_slice changes marks since)
        top = QHBoxLayout()
        top.addWidget(QLabel("Show"))
        top.addWidget(self.filter_box, 1)
        order = QHBoxLayout()
        order.addWidget(QLabel("Order"))
        order.addWidget(self.order_box, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(order)
        layout.addWidget(self.progress)
        layout.addWidget(self.tree, 1)
        self._slices: dict[int, QTreeWidgetItem] = {}
        self._series: dict[int, QTreeWidgetItem] = {}
        self._study_of_series: dict[int, QTreeWidgetItem] = {}
        self._progress: dict[int, Progress] = {}  # by series id
        self._study_progress: dict[int, Progress] = {}  # by id() of the study item
        self._total = Progress(0, 0)
        self._texts: dict[int, str] = {}
        self._layout: tuple[object, ...] = ()  # what is listed, in order (see :func:`layout`)

    @property
    def current_filter(self) -> WorklistFilter:
        return WorklistFilter(self.filter_box.currentData())

    def set_filter(self, flt: WorklistFilter) -> None:
        self.filter_box.setCurrentIndex(list(FILTER_NAMES).index(flt))

    @property
    def current_strategy(self) -> str:
        return str(self.order_box.currentData() or "sequential")

    def set_strategies(self, available: list[Strategy], current: str) -> None:
        """The strategies this rater may order by (blinding decided by the service), without emitting."""
        self.order_box.blockSignals(True)
        try:
            self.order_box.clear()
            for strat in available:
                self.order_box.addItem(strat.label, strat.name)
            self._score_names = {s.name: s.score_name for s in available}
            index = self.order_box.findData(current)
            self.order_box.setCurrentIndex(max(index, 0))
        finally:
            self.order_box.blockSignals(False)

    def slice_item(self, image_id: int) -> QTreeWidgetItem | None:
        return self._slices.get(image_id)

    def slice_state(self, image_id: int) -> SliceState | None:
        """The state the list shows for a slice (None when the slice is not listed)."""
        item = self._slices.get(image_id)
        return SliceState(item.data(1, ROLE)) if item is not None else None

    def set_worklist(self, worklist: Worklist, current_image_id: int | None = None,
                     texts: dict[int, str] | None = None) -> None:
        """List ``worklist``; ``texts`` (from :func:`positions`) saves computing the slice positions here."""
        self.shown = worklist
        self._texts = texts or {}
        self.tree.setUpdatesEnabled(False)
        try:
            self._fill(worklist)
        finally:
            self.tree.setUpdatesEnabled(True)
        if current_image_id is not None:
            self.select_image(current_image_id)

    def _position(self, image: ImageRef) -> str:
        text = self._texts.get(image.id)
        return text if text is not None else _position(image)

    def refresh_states(self, worklist: Worklist, texts: dict[int, str] | None = None) -> bool:
        """Show ``worklist``'s states and progress in place when it lists the same slices in the same order
        (labels committed elsewhere): the selection, scroll position and expanded rows stay. False when
        the list itself changed (slices imported, a filter's or strategy's order): then nothing is touched
        and the caller lists it anew."""
        if layout(worklist) != self._layout:
            return False
        self.shown = worklist
        if texts:
            self._texts = texts
        self._total = worklist.progress
        self._show_total()
        if worklist.ranked:
            for r in worklist.ranked:
                item = self._slices[r.slice.image.id]
                self._restate(item, r.slice.state, self._ranked_text(r))
                _set_text(item, 2, "" if r.score is None else f"{r.score:.2f}")
            return True
        for i in range(self.tree.topLevelItemCount()):
            st_item = self.tree.topLevelItem(i)
            study = worklist.studies[i]  # same layout: same studies in the same order
            self._study_progress[id(st_item)] = study.progress
            _set_text(st_item, 1, str(study.progress))
            for ser in study.series:
                self._progress[ser.series.id] = ser.progress
                _set_text(self._series[ser.series.id], 1, str(ser.progress))
                for sl in ser.slices:
                    item = self._slices[sl.image.id]
                    if item.data(0, ROLE)[1] != sl.image:  # its level was set, or its file moved
                        item.setData(0, ROLE, ("slice", sl.image))
                    self._restate(item, sl.state, self._slice_text(sl.image))
        return True

    def _restate(self, item: QTreeWidgetItem, state: SliceState, text: str) -> None:
        """Touch only what changed: a refresh of 2,000 unchanged slices costs comparisons, not repaints."""
        if item.data(1, ROLE) != state.value:
            self._mark(item, state)
        _set_text(item, 0, text)

    def _ranked_text(self, r: RankedSlice) -> str:
        return f"{r.rank}. {r.patient_key}  slice {r.slice.image.slice_index + 1}{_level(r.slice.image)}"

    def _slice_text(self, image: ImageRef) -> str:
        return f"Slice {image.slice_index + 1}  {self._position(image)}{_level(image)}"

    def _fill(self, worklist: Worklist) -> None:
        self._layout = layout(worklist)
        self.tree.clear()
        self._slices.clear()
        self._series.clear()
        self._study_of_series.clear()
        self._progress.clear()
        self._study_progress.clear()
        self._total = worklist.progress
        self._show_total()
        if worklist.ranked:
            self._set_ranked(worklist)
        else:
            self._set_tree(worklist)

    def _set_ranked(self, worklist: Worklist) -> None:
        score_name = self._score_names.get(worklist.strategy, "")
        self.tree.setHeaderLabels([f"Slice, in {self.order_box.currentText().split(' (')[0].lower()} order",
                                   "Done", score_name.capitalize()])
        self.tree.setColumnCount(3 if score_name else 2)
        self.tree.setRootIsDecorated(False)
        for r in worklist.ranked:
            sl = r.slice
            item = QTreeWidgetItem(self.tree, [self._ranked_text(r), "", "" if r.score is None else f"{r.score:.2f}"])
            item.setData(0, ROLE, ("slice", sl.image))
            item.setToolTip(0, f"{self._position(sl.image)}; series {sl.image.series_id}")
            self._slices[sl.image.id] = item
            self._mark(item, sl.state)

    def _set_tree(self, worklist: Worklist) -> None:
        self.tree.setHeaderLabels(["Study / series / slice", "Done"])
        self.tree.setColumnCount(2)
        self.tree.setRootIsDecorated(True)
        for study in worklist.studies:
            label = "  ".join(t for t in (study.patient_key, study.study_date, study.description) if t)
            st_item = QTreeWidgetItem(self.tree, [label, str(study.progress)])
            st_item.setData(0, ROLE, ("study", study.study_id))
            st_item.setToolTip(0, study.study_instance_uid)
            self._study_progress[id(st_item)] = study.progress
            for ser in study.series:
                s = ser.series
                text = " ".join(t for t in (f"#{s.series_number}" if s.series_number is not None else "",
                                            s.description or s.modality or "series") if t)
                se_item = QTreeWidgetItem(st_item, [text, str(ser.progress)])
                se_item.setData(0, ROLE, ("series", s.id))
                se_item.setToolTip(0, s.series_instance_uid)
                self._series[s.id] = se_item
                self._study_of_series[s.id] = st_item
                self._progress[s.id] = ser.progress
                for sl in ser.slices:
                    item = QTreeWidgetItem(se_item, [self._slice_text(sl.image), ""])
                    item.setData(0, ROLE, ("slice", sl.image))
                    self._slices[sl.image.id] = item
                    self._mark(item, sl.state)
        self.tree.expandAll()

    def _mark(self, item: QTreeWidgetItem, state: SliceState) -> None:
        mark, colour = MARK[state]
        item.setText(1, mark)
        item.setForeground(1, _brush(colour))
        item.setToolTip(1, state.value)
        item.setData(1, ROLE, state.value)

    def _show_total(self) -> None:
        self.progress.setMaximum(max(self._total.total, 1))
        self.progress.setValue(self._total.done)

    def update_slice(self, image: ImageRef, before: SliceState, after: SliceState) -> None:
        """One slice changed state for this rater: update its mark and the done counts above it."""
        item = self._slices.get(image.id)
        if item is not None:
            self._mark(item, after)
        delta = int(after is SliceState.DONE) - int(before is SliceState.DONE)
        if delta == 0:
            return
        self._total = Progress(self._total.done + delta, self._total.total)
        self._show_total()
        se_item = self._series.get(image.series_id)
        if se_item is not None:
            p = self._progress[image.series_id]
            self._progress[image.series_id] = p = Progress(p.done + delta, p.total)
            se_item.setText(1, str(p))
            st_item = self._study_of_series[image.series_id]
            sp = self._study_progress[id(st_item)]
            self._study_progress[id(st_item)] = sp = Progress(sp.done + delta, sp.total)
            st_item.setText(1, str(sp))

    def select_image(self, image_id: int) -> None:
        item = self._slices.get(image_id)
        self.tree.blockSignals(True)
        try:
            if item is not None:
                self.tree.setCurrentItem(item)
                self.tree.scrollToItem(item)
            else:
                self.tree.clearSelection()
        finally:
            self.tree.blockSignals(False)

    def allow_set_level(self, allowed: bool) -> None:
        """Offer "Set level…" on chosen slices (the policy decides; the service checks again)."""
        self._may_set_level = allowed

    def selected_image_ids(self) -> list[int]:
        return [v.id for kind, v in (it.data(0, ROLE) for it in self.tree.selectedItems()) if kind == "slice"]

    def _context_menu(self, pos: QPoint) -> None:
        self.context_menu().popup(self.tree.viewport().mapToGlobal(pos))

    def context_menu(self) -> QMenu:
        """The worklist's context menu for the chosen slices."""
        ids = self.selected_image_ids()
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        act = menu.addAction(f"Set level of {len(ids)} slices…" if len(ids) != 1 else "Set level…",
                             lambda: self.setLevelRequested.emit(ids))
        act.setEnabled(self._may_set_level and bool(ids))
        if not self._may_set_level:
            act.setToolTip("For admins")
        return menu

    def _on_clicked(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        kind, value = item.data(0, ROLE)
        if kind == "slice":
            self.sliceActivated.emit(value)
        elif kind == "series":
            self.seriesActivated.emit(int(value))
