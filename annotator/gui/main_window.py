"""The annotation workstation window: worklist on the left, the slice (largest) in the middle, the
model and other readers side by side, grade buttons below, readouts in the status bar.

It wires widgets to an :class:`AnnotationSession` and holds no labelling logic of its own. Per-user
window state (geometry, docks, splitter, the side-by-side toggle) lives in QSettings; project rules
come from the database through the services.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from annotator.domain.changes import ChangeKind
from annotator.domain.connection import ConnectionState, ConnectionStatus
from annotator.domain.entities import ImageRef, Label, Rater
from annotator.domain.errors import AnnotatorError
from annotator.gui import readout, window_level
from annotator.gui.actions import HELP_TEXT, build_actions
from annotator.gui.agreement_panel import AgreementPanel
from annotator.gui.background import BackgroundOp
from annotator.gui.compare_pane import ComparePane
from annotator.gui.errors import show_error
from annotator.gui.grade_panel import GradePanel
from annotator.gui.interchange_dialogs import InterchangeMenu
from annotator.gui.live_updates import REVIEW_KINDS, SHOWN_KINDS, LiveUpdates
from annotator.gui.pixel_loader import PixelLoader
from annotator.gui.review_panel import ReviewPanel, open_review_panel
from annotator.gui.session import AnnotationSession, PendingAction
from annotator.gui.slice_view import SliceView
from annotator.gui.study_menu import StudyMenu
from annotator.gui.training_panel import TrainingPanel
from annotator.gui.view_sync import ViewSync
from annotator.gui.worklist_panel import WorklistPanel, positions
from annotator.services import connection
from annotator.services.project import Database
from annotator.services.viewing import DecodedSlice, SliceOverlays, Window
from annotator.services.worklist import SliceState, Worklist, WorklistFilter

ZOOM_STEP = 1.25
PROBE_MS = 2000  # while offline, ask the server this often whether it is back


class _ConnectionRelay(QObject):
    """Lives on the GUI thread; the storage layer's callback (any thread) is queued to it as a signal."""

    changed = Signal(object)  # ConnectionStatus


class MainWindow(QMainWindow):
    switchRaterRequested = Signal()
    worklistLoaded = Signal()  # noqa: N815 (Qt naming) - the worklist asked for last is listed
    liveRefreshed = Signal(object)  # noqa: N815 - frozenset[ChangeKind] committed elsewhere, re-read now

    def __init__(self, db: Database, rater: Rater, settings: QSettings, *, loader: PixelLoader | None = None,
                 open_first: bool = True, live: bool = True) -> None:
        """``live``: re-read what other workstations commit (labels, decisions, models) as they do it."""
        super().__init__()
        self.settings = settings
        self.session = AnnotationSession(db, rater, loader=loader, parent=self)
        rules = self.session.rules
        self.setWindowTitle(f"annotator — {rules.settings.name} — {rater.name} ({rater.role.value})")
        self.setObjectName("annotatorMainWindow")

        self.view = SliceView(editable=True)
        self.compare = ComparePane(rules.scale)
        self.sync = ViewSync(self.view.view_box, self.compare.view.view_box)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("viewSplitter")
        self.splitter.setHandleWidth(3)
        self.splitter.setStyleSheet("QSplitter#viewSplitter::handle { background: #2b2b2e; }")
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(self.compare)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.grades = GradePanel(rules.scale)
        centre = QWidget()
        col = QVBoxLayout(centre)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(self.splitter, 1)
        col.addWidget(self.grades)
        self.setCentralWidget(centre)

        self.worklist = WorklistPanel()
        self.worklist_dock = QDockWidget("Worklist", self)
        self.worklist_dock.setObjectName("worklistDock")
        self.worklist_dock.setWidget(self.worklist)
        self.worklist_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                       | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.worklist_dock)
        self.who = QLabel(self._who_text(rater, rules.scale.name))
        self.connection = QLabel()
        self.connection.setObjectName("connectionState")
        self.statusBar().addPermanentWidget(self.connection)
        self.statusBar().addPermanentWidget(self.who)
        self._relay = _ConnectionRelay(self)
        self._probe = QTimer(self)
        self._probe.setInterval(PROBE_MS)
        self._probe.timeout.connect(self._probe_server)
        self._probing = False

        self.actions = build_actions(self, rules.scale, {
            "switch_rater": self.switchRaterRequested.emit, "refresh": self.refresh, "quit": self.close,
            "undo": lambda: self._guarded(self.session.undo), "redo": lambda: self._guarded(self.session.redo),
            "next_unlabelled": lambda: self._guarded(self.session.next_unlabelled),
            "prev_slice": lambda: self.session.step(-1), "next_slice": lambda: self.session.step(+1),
            "first_slice": lambda: self.session.step(-10**6), "last_slice": lambda: self.session.step(10**6),
            "zoom_in": lambda: self.view.zoom(ZOOM_STEP), "zoom_out": lambda: self.view.zoom(1 / ZOOM_STEP),
            "fit": self.view.fit, "toggle_compare": self._toggle_compare, "keys": self._show_keys,
        }, grade=lambda o: self._guarded(lambda: self.session.set_grade(o)),
            preset=lambda n: self.session.apply_preset(n))
        self.agreement_dock: QDockWidget | None = None
        self.training_dock: QDockWidget | None = None
        self.review_window: ReviewPanel | None = None
        self._loading = 0  # background loads in flight (worklist, a slice asked for from another screen)
        self._add_agreement_action()
        self._add_review_actions()
        self.study_menu = StudyMenu(self)
        self.interchange = InterchangeMenu(self)  # File > Export…, Import labels…
        self._connect()
        self._restore_state()
        self.worklist.set_filter(WorklistFilter(self.settings.value("worklist/filter", WorklistFilter.ALL.value)))
        self._restore_strategy()
        self._commits = 0  # this window's label commits: a worklist read begun before the last one is old
        self.reload_worklist()
        self.live: LiveUpdates | None = None
        if live and not db.in_memory:
            self.live = LiveUpdates(db, self)
            self.live.changed.connect(self._on_live_change)
        if open_first:
            QTimer.singleShot(0, self._open_first)

    # ----- wiring ------------------------------------------------------------------------------
    def _connect(self) -> None:
        s = self.session
        s.sliceChanged.connect(self._on_slice_changed)
        s.pixelsShown.connect(self._on_pixels)
        s.overlaysChanged.connect(self._on_overlays)
        s.windowChanged.connect(self._on_window)
        s.labelCommitted.connect(self._on_committed)
        s.undoRedoChanged.connect(self.grades.set_undo_redo)
        s.loadFailed.connect(self._on_load_failed)
        s.errorRaised.connect(lambda exc: show_error(self, exc))
        s.message.connect(lambda text: self.statusBar().showMessage(text, 4000))
        s.pendingChanged.connect(lambda _pending: self._show_connection(connection.status(s.db)))
        self._relay.changed.connect(self._on_connection, Qt.ConnectionType.QueuedConnection)  # never mid-write
        self._tell_relay = self._relay.changed.emit  # kept: the same callable unsubscribes on close
        connection.watch(s.db, self._tell_relay)
        self._show_connection(connection.status(s.db))
        for v in (self.view, self.compare.view):
            v.windowDragged.connect(s.drag_window)
            v.sliceStepRequested.connect(s.step)
            v.cursorMoved.connect(self._on_cursor)
            v.cursorLeft.connect(lambda: self.view.set_corner_text("bottom_right", ""))
        self.view.canalClicked.connect(lambda x, y: self._guarded(lambda: s.place_point(x, y)))
        self.view.markerMoved.connect(lambda x, y: self._guarded(lambda: s.place_point(x, y)))
        self.grades.gradeChosen.connect(lambda o: self._guarded(lambda: s.set_grade(o)))
        self.grades.undoRequested.connect(lambda: self._guarded(s.undo))
        self.grades.redoRequested.connect(lambda: self._guarded(s.redo))
        self.grades.nextRequested.connect(lambda: self._guarded(s.next_unlabelled))
        self.worklist.sliceActivated.connect(lambda im: self._guarded(lambda: s.go_to(im)))
        self.worklist.seriesActivated.connect(lambda sid: self._guarded(lambda: s.open_series(sid)))
        self.worklist.filterChanged.connect(self._on_filter)
        self.worklist.strategyChanged.connect(self._on_strategy)

    def _guarded(self, fn):  # type: ignore[no-untyped-def]
        """Run a user action; an expected error (conflict, bad input, missing file) becomes the dialog."""
        try:
            return fn()
        except AnnotatorError as exc:
            show_error(self, exc)
            return None

    # ----- connection -------------------------------------------------------------------------
    def _on_connection(self, status: ConnectionStatus) -> None:
        """Render the state; until connected again, probe the server (nothing else may be asking it);
        once connected, store the pending action."""
        self._show_connection(status)
        if status.state is not ConnectionState.CONNECTED:
            if not self._probe.isActive():
                self._probe.start()
        else:
            self._probe.stop()
            if self.session.pending is not None:
                self._guarded(self.session.retry_pending)

    def _show_connection(self, status: ConnectionStatus) -> None:
        pending: PendingAction | None = self.session.pending
        text = status.describe()
        if pending is not None:
            text += f"  ·  not stored yet: {pending.what}"
        self.connection.setText(text)
        self.connection.setProperty("state", status.state.value)
        alarm = status.state is not ConnectionState.CONNECTED or pending is not None
        self.connection.setStyleSheet("color: #e0a030;" if alarm else "")
        self.connection.setVisible(alarm or self.session.db.dialect != "sqlite")

    def _probe_server(self) -> None:
        if self._probing:
            return
        self._probing = True
        db = self.session.db

        def done(*_args: object) -> None:
            self._probing = False

        BackgroundOp(self, lambda: connection.probe(db), lambda _ok: None, key="probe",
                     label="Checking the database connection…", on_settled=done).run()

    # ----- session -> widgets ------------------------------------------------------------------
    def _on_slice_changed(self, image: ImageRef, index: int, total: int) -> None:
        self.view.set_corner_text("top_left", f"{image.patient_key}\n{readout.slice_position(image, index, total)}")
        self.worklist.select_image(image.id)
        if not self.session.showing_current:
            self.view.clear("Loading…")
            self.compare.view.clear("Loading…")

    def _on_pixels(self, decoded: DecodedSlice) -> None:
        window = self.session.window or decoded.default_window
        fit = self.session.take_fit()
        self.view.set_slice(decoded.image, decoded.pixels, window, fit=fit, inverted=decoded.inverted)
        self.compare.view.set_slice(decoded.image, decoded.pixels, window, fit=fit, inverted=decoded.inverted)
        self.sync.sync_now()
        self._update_marker()

    def _update_marker(self) -> None:
        """The rater's canal marker, drawn only over the pixels of the slice it belongs to."""
        own = self.session.own_label
        if self.session.showing_current and own is not None and own.has_point:
            self.view.set_marker(own.x_px, own.y_px, complete=own.complete)
        else:
            self.view.set_marker(None, None)

    def _on_overlays(self, ov: SliceOverlays) -> None:
        self._update_marker()
        self.grades.show_label(ov.own)
        self.compare.set_overlays(ov)

    def _on_window(self, window: Window) -> None:
        self.view.set_window(window)
        self.compare.view.set_window(window)
        self.view.set_corner_text("top_right", window_level.describe(window))

    def _on_committed(self, label: Label, before: SliceState) -> None:
        self._commits += 1
        cur = self.session.current
        if cur is not None and cur.id == label.image_id:
            self.worklist.update_slice(cur, before, self.session.state_of_current())

    def _on_cursor(self, x: float, y: float) -> None:
        d = self.session.decoded
        if d is not None:
            self.view.set_corner_text("bottom_right", readout.cursor_readout(d.image, d.pixels, x, y))

    def _on_load_failed(self, image: ImageRef, exc: Exception) -> None:
        self.view.clear(f"Cannot show this slice:\n{image.path}")
        self.compare.view.clear("")
        show_error(self, exc)

    def _on_filter(self, flt: WorklistFilter) -> None:
        self.settings.setValue("worklist/filter", flt.value)
        self.reload_worklist()

    def _strategy_key(self) -> str:
        """The order is remembered per rater (several raters may share one workstation account)."""
        return f"worklist/strategy/{self.session.rater.name}"

    def _restore_strategy(self) -> None:
        """The remembered order, if this rater may still use it (else sequential)."""
        service = self.session.worklist
        available = service.available_strategies()
        wanted = str(self.settings.value(self._strategy_key(), "sequential"))
        service.set_strategy(wanted if wanted in {s.name for s in available} else "sequential")
        self.worklist.set_strategies(available, service.strategy)

    def _on_strategy(self, name: str) -> None:
        self._guarded(lambda: self.session.worklist.set_strategy(name))
        self.settings.setValue(self._strategy_key(), self.session.worklist.strategy)
        self.reload_worklist()

    # ----- commands ----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a worklist reload, a slice asked for from another screen or a series is being read."""
        return self._loading > 0 or self.session.busy

    def _background(self, work, on_success, *, key: str, label: str,  # type: ignore[no-untyped-def]
                    coalesce: bool = False) -> None:
        self._loading += 1
        BackgroundOp(self, work, on_success, key=key, label=label, on_settled=self._settled).run(coalesce=coalesce)

    def _settled(self) -> None:
        self._loading -= 1

    def reload_worklist(self, *, in_place: bool = False) -> None:
        """Read the worklist in the background (a newer reload drops an older one's answer). ``in_place``
        (a change elsewhere): show the states where the same slices are listed, keeping the selection and
        scroll; an answer read before this window's latest label is dropped (that label's notice re-reads).
        A worklist equal to the one listed is not listed again."""
        service, flt, commits = self.session.worklist, self.worklist.current_filter, self._commits
        shown = self.worklist.shown

        def load() -> tuple[Worklist, dict[int, str] | None]:
            """The worklist and its slices' positions; None for them when it is the one listed (a refresh
            after a model was activated, F5 with nothing new): listing ~5,000 slices again costs the GUI
            thread over 100 ms for nothing."""
            wl = service.load(flt)
            return wl, (None if wl == shown else positions(wl))

        def listed(result: tuple[Worklist, dict[int, str] | None]) -> None:
            if in_place and commits != self._commits:
                return
            cur = self.session.current
            wl, texts = result
            if texts is None and self.worklist.shown is shown:  # the same, and nothing listed meanwhile
                if cur is not None and not in_place:
                    self.worklist.select_image(cur.id)
            else:
                texts = texts if texts is not None else positions(wl)
                if not (in_place and self.worklist.refresh_states(wl, texts)):
                    self.worklist.set_worklist(wl, cur.id if cur is not None else None, texts=texts)
            self.worklistLoaded.emit()

        # a change elsewhere waits for a reload running (coalesced); the user's own reload replaces it
        self._background(load, listed, key="worklist", label="Loading the worklist…", coalesce=in_place)

    def _on_live_change(self, kinds: frozenset[ChangeKind]) -> None:
        """Another workstation (or this one) committed: re-read, in the background, the screens that show
        those kinds; each keeps what the user has chosen (slice, row, filters, input)."""
        review = self.review_window  # first: the background pool has two workers, the reviewer looks here
        if review is not None and not review.closed and kinds & REVIEW_KINDS:
            review.presenter.refresh()
        if kinds & SHOWN_KINDS:
            self.session.refresh()
            self.reload_worklist(in_place=True)
            if self.agreement_dock is not None and kinds & {ChangeKind.MODELS, ChangeKind.PREDICTIONS}:
                self.agreement_panel().reload_readers()
        if self.training_dock is not None and ChangeKind.MODELS in kinds:
            self.training_dock.widget().refresh()  # type: ignore[attr-defined]
        dashboard = self.study_menu.dashboard
        if dashboard is not None and ChangeKind.READS in kinds:
            dashboard.refresh()
        self.liveRefreshed.emit(kinds)

    def refresh(self) -> None:
        """Read again what others may have changed (F5; a model trained, activated or predicting): the
        worklist, the open series and, once built, the agreement screen's readers; all in the background."""
        self.reload_worklist()
        self.session.refresh()
        if self.agreement_dock is not None:
            self.agreement_panel().reload_readers()

    def _open_first(self) -> None:
        """Open the first slice this rater has not finished (else the first slice), found in the background."""
        if self.session.current is not None:
            return
        service = self.session.worklist

        def find() -> tuple[ImageRef | None, bool]:
            image = service.next_unlabelled(None)
            if image is not None:
                return image, False
            wl = service.load(WorklistFilter.ALL)
            return (wl.studies[0].series[0].slices[0].image if wl.studies else None), True

        def found(result: tuple[ImageRef | None, bool]) -> None:
            image, all_done = result
            if self.session.current is not None:
                return  # the rater has opened a slice meanwhile
            if image is None:
                self.view.clear("No slices yet: import DICOM files with `annotator import PATH`.")
                return
            if all_done:
                self.statusBar().showMessage("Every slice is done: nothing left to label.", 4000)
            self._guarded(lambda: self.session.go_to(image))

        self._background(find, found, key="open_first", label="Finding the first slice to label…")

    def _toggle_compare(self) -> None:
        show = self.compare.isHidden()
        self.compare.setVisible(show)
        self.actions["toggle_compare"].setChecked(show)
        self.sync.sync_now()

    def _show_keys(self) -> None:
        keys = "/".join(g.key for g in self.session.scale.grades)
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard and mouse", HELP_TEXT.format(keys=keys),
                          QMessageBox.StandardButton.Close, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    @staticmethod
    def _who_text(rater: Rater, scale_name: str) -> str:
        return f"Signed in as {rater.name} ({rater.role.value})  ·  {scale_name}"

    # ----- agreement -----------------------------------------------------------------------------
    def _add_agreement_action(self) -> None:
        """View > Agreement…: only for readers allowed to see other raters' labels (blinding)."""
        view = self._menu("&View")
        view.addSeparator()
        self.agreement_action = act = view.addAction("Agreement…", self.show_agreement)
        act.setEnabled(self.session.policy.may_see_other_readers)

    def show_agreement(self) -> AgreementPanel:
        """The agreement dock. Built the first time, and shown in the next event: building the panel and
        laying the window out around it took over 50 ms in one go (benchmarks/gui_stalls.py)."""
        dock = self.agreement_dock
        if dock is None:
            panel = AgreementPanel(self.session.db, self.session.scale, self.session.rater)
            panel.openImage.connect(self.open_image)
            dock = self.agreement_dock = self._dock("Agreement", "agreementDock", panel)
            dock.hide()
            QTimer.singleShot(0, dock, lambda: self._raise_dock(dock))
        else:
            self._raise_dock(dock)
        return self.agreement_panel()

    def agreement_panel(self) -> AgreementPanel:
        dock = self.agreement_dock
        panel = dock.widget() if dock is not None else None
        if not isinstance(panel, AgreementPanel):
            raise RuntimeError("the agreement screen has not been built")
        return panel

    @staticmethod
    def _raise_dock(dock: QDockWidget) -> None:
        dock.show()
        dock.raise_()

    # ----- review and models -------------------------------------------------------------------
    def _menu(self, text: str) -> QMenu:
        return next(a.menu() for a in self.menuBar().actions() if a.text() == text)

    def _add_review_actions(self) -> None:
        """Review > Disagreement queue… (reviewers and admins only) and Training and model versions…
        (annotators get it read-only)."""
        menu = self._menu("&Review")
        self.review_action = menu.addAction("Disagreement queue…", self.show_review)
        self.review_action.setShortcut(QKeySequence("Ctrl+R"))
        self.review_action.setEnabled(self.session.policy.may_adjudicate)
        if not self.session.policy.may_adjudicate:
            self.review_action.setToolTip("For reviewers and admins")
        self.training_action = menu.addAction("Training and model versions…", self.show_training)

    def show_review(self) -> ReviewPanel | None:
        """The review screen, in its own window (it has its own slice view, queue and keys).

        Closing the window deletes it; opening it again builds a fresh one (queue reloaded)."""
        if self.review_window is not None and self.review_window.closed:
            self.review_window = None
        if self.review_window is None:
            panel = open_review_panel(self.session.db, self.session.rater, self.session.scale, parent=self)
            if panel is None:
                return None
            panel.setWindowFlag(Qt.WindowType.Window, True)
            panel.setWindowTitle(f"Review — {self.session.rules.settings.name} — {self.session.rater.name}")
            panel.resize(1500, 920)
            panel.openImage.connect(self._open_from_review)
            panel.adjudicated.connect(lambda _adj: self.statusBar().showMessage("Decision stored", 3000))
            panel.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
            panel.destroyed.connect(self._review_window_gone)
            self.review_window = panel
        self.review_window.show()
        self.review_window.raise_()
        self.review_window.activateWindow()
        return self.review_window

    def _review_window_gone(self) -> None:
        """A closed panel was deleted; a fresh one opened meanwhile (quick Ctrl+R) stays tracked."""
        if self.review_window is not None and self.review_window.closed:
            self.review_window = None

    def _open_from_review(self, image_id: int) -> None:
        self.open_image(image_id)
        self.raise_()
        self.activateWindow()

    def show_training(self) -> TrainingPanel:
        if self.training_dock is None:
            url = self.session.db.url_with_password
            panel = TrainingPanel(self.session.db, url, self.session.rater)
            panel.modelsChanged.connect(self.refresh)
            panel.predictionsWritten.connect(lambda _model_id: self.refresh())
            self.training_dock = self._dock("Training and models", "trainingDock", panel)
        self.training_dock.show()
        self.training_dock.raise_()
        return self.training_dock.widget()  # type: ignore[return-value]

    def _dock(self, title: str, name: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        return dock

    def open_image(self, image_id: int) -> None:
        """Show the slice with this image id in the viewer (from the agreement or review screen); it is
        looked up by id in the background (one query), the slice opened when it is found."""
        service = self.session.worklist

        def find() -> ImageRef | None:
            return service.image(image_id)

        def found(image: ImageRef | None) -> None:
            if image is None:
                self.statusBar().showMessage(f"Image {image_id} is not in the worklist", 4000)
            else:
                self._guarded(lambda: self.session.go_to(image))

        self._background(find, found, key="open_image", label=f"Opening image {image_id}…")

    # ----- window state ------------------------------------------------------------------------
    def _compare_useful(self) -> bool:
        """False for a fully blinded annotator: no other reader and no model to compare with."""
        return self.session.policy.compare_useful

    def _compare_key(self) -> str:
        """Remembered apart for blinded reading, where the pane starts hidden (F9 shows it)."""
        return "window/compare" if self._compare_useful() else "window/compare_blinded"

    def _restore_state(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 950)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        split = self.settings.value("window/splitter")
        if isinstance(split, QByteArray):
            self.splitter.restoreState(split)
        default = "true" if self._compare_useful() else "false"
        show = str(self.settings.value(self._compare_key(), default)).lower() == "true"
        self.compare.setVisible(show)
        self.actions["toggle_compare"].setChecked(show)

    def save_state(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/splitter", self.splitter.saveState())
        self.settings.setValue(self._compare_key(), "false" if self.compare.isHidden() else "true")
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        connection.unwatch(self.session.db, self._tell_relay)
        self._probe.stop()
        if self.live is not None:
            self.live.close()
        if self.training_dock is not None:
            self.training_dock.widget().shutdown()  # type: ignore[attr-defined]  # no orphan child process
        if self.review_window is not None:
            self.review_window.shutdown()
            self.review_window.close()
        self.study_menu.close()
        self.interchange.close()
        self.save_state()
        self.session.close()
        super().closeEvent(event)
