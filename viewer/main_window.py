"""The main window: study browser, the 2 x 2 hanging (or one view), DBT slice bar, toolbars for
methods, display and tools, side panels, the status bar with the running job.

Widgets show what ``app`` hands them and emit signals; the controller in :mod:`app.gui` does the
loading, runs the jobs and keeps the :class:`app.session.Session` in step. Every frequent action
is a QAction with a shortcut, so the Help list of shortcuts is built from the actions themselves.
"""
from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.browser import StudyBrowser
from viewer.canvas import ImageCanvas
from viewer.hanging import ViewLink
from viewer.panels import InfoPane, MeasurementsPane, OverlayPanel, SliceBar
from viewer.synthesis import SynthesisPane

#: Grid positions of the screening views: right breast on the left of the screen.
HANGING_CELLS = {("R", "CC"): (0, 0), ("L", "CC"): (0, 1), ("R", "MLO"): (1, 0), ("L", "MLO"): (1, 1)}
SCOPES = ("current view", "all views")
TOOL_NAMES = {"pan": "Pan / zoom", "rect": "Rectangle", "ellipse": "Ellipse", "line": "Distance"}

# name: (menu text, shortcuts, what it does); the Help list is generated from these
ACTIONS = {
    "open_file": ("Open &file / DICOMDIR...", ["Ctrl+O"], "Open a DICOM file, an image or a DICOMDIR"),
    "open_folder": ("Open f&older...", ["Ctrl+Shift+O"], "Open every image under a folder"),
    "open_labels": ("Open &labels file...", ["Ctrl+L"], "Ground-truth boxes from a labels CSV"),
    "open_pacs": ("Open from &PACS...", [], "Query a PACS, retrieve studies into the local cache and open them"),
    "open_demo": ("Open &demo study", [], "The bundled phantom study: 4 views and a DBT volume"),
    "export_view": ("&Export view...", ["Ctrl+E"], "The current view with its overlay as PNG, the map as .npy"),
    "export_dicom": ("Export &DICOM results...", [], "The current view's map, its region at or above the calibrated "
                     "threshold and the scores as DICOM Parametric Map, SEG and SR (with the source's identifiers)"),
    "quit": ("&Quit", ["Ctrl+Q"], "Close the window"),
    "toggle_layout": ("&Hanging / one view", ["H"], "Switch between the 2 x 2 hanging and the current view alone"),
    "fit": ("&Fit", ["F"], "Fit the images to their views"),
    "one_to_one": ("&1:1 pixels", ["1"], "One image pixel per screen pixel"),
    "zoom_in": ("Zoom &in", ["+", "="], "Zoom in (all linked views)"),
    "zoom_out": ("Zoom &out", ["-"], "Zoom out (all linked views)"),
    "auto_window": ("&Auto window", ["A"], "Window from the breast's histogram (1st to 99th percentile)"),
    "invert": ("&Invert", ["I"], "Invert the grey scale of the current view"),
    "reset_display": ("&Reset display", ["R"], "The file's first VOI preset, no inversion, no slab"),
    "overlay_planes": ("DICOM &overlay planes", ["O"], "Show the file's own overlay planes (60xx graphics) and the SEGs opened beside it"),
    "next_slice": ("Next slice", ["Down", "Right"], "DBT: next slice (also the mouse wheel)"),
    "previous_slice": ("Previous slice", ["Up", "Left"], "DBT: previous slice"),
    "next_slices": ("10 slices on", ["PgDown"], "DBT: ten slices on"),
    "previous_slices": ("10 slices back", ["PgUp"], "DBT: ten slices back"),
    "first_slice": ("First slice", ["Home"], "DBT: first slice"),
    "last_slice": ("Last slice", ["End"], "DBT: last slice"),
    "play": ("&Play / pause", ["Space"], "DBT: cine through the slices"),
    "tool_pan": ("&Pan / zoom", ["P"], "Left-drag pans, wheel zooms, right-drag sets window / level"),
    "tool_rect": ("&Rectangle", ["M"], "Draw a rectangle: mean, std, min, max, area"),
    "tool_ellipse": ("&Ellipse", ["E"], "Draw an ellipse: mean, std, min, max, area"),
    "tool_line": ("&Distance", ["D"], "Draw a line: its length in mm"),
    "inpaint": ("&Inpaint rectangle", ["Shift+I"], "Complete the last rectangle with the inpainting model"),
    "clear_shapes": ("&Clear shapes", ["Delete"], "Remove the shapes drawn on the current image"),
    "run_volume": ("Run on all &slices", ["Ctrl+R"], "Run the current method over the whole DBT volume"),
    "cancel_job": ("&Cancel job", ["Esc"], "Stop the running background job"),
    "threshold_up": ("Threshold up", ["]"], "Raise the overlay threshold by 1/50 of its range"),
    "threshold_down": ("Threshold down", ["["], "Lower the overlay threshold by 1/50 of its range"),
    "shortcuts": ("&Keyboard shortcuts", ["F1"], "This list"),
    "about": ("&About mammolens", [], "Version, model bundles found, ONNX Runtime providers, where settings and models live"),
}
# keys that mean something else while typing in the browser or a number box: only while the
# images have the focus
_IMAGE_AREA_ONLY = {"next_slice", "previous_slice", "next_slices", "previous_slices", "first_slice", "last_slice"}


class MainWindow(QtWidgets.QMainWindow):
    open_requested = QtCore.Signal(str)
    open_demo_requested = QtCore.Signal()
    open_labels_requested = QtCore.Signal(str)
    export_requested = QtCore.Signal(str)  # folder
    export_dicom_requested = QtCore.Signal(str)  # folder
    frame_requested = QtCore.Signal(int)
    method_toggled = QtCore.Signal(int, bool)  # index into the bundles handed to set_methods, on / off
    tool_chosen = QtCore.Signal(str)
    preset_chosen = QtCore.Signal(int)
    function_chosen = QtCore.Signal(str)
    about_requested = QtCore.Signal()

    def __init__(self, colormaps: tuple[str, ...] = ("viridis",)):
        super().__init__()
        self.setWindowTitle("mammolens")
        self.resize(1400, 900)
        self.setAcceptDrops(True)
        self.actions: dict[str, QtGui.QAction] = {}

        self.browser = StudyBrowser()
        self.studies_dock = self._dock("Studies", "studies", self.browser, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)

        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        self.stack = QtWidgets.QStackedWidget()
        grid_page = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(grid_page)
        grid.setSpacing(2)
        grid.setContentsMargins(0, 0, 0, 0)
        self.cells: dict[tuple[str, str], ImageCanvas] = {}
        for key, (row, col) in HANGING_CELLS.items():
            canvas = ImageCanvas()
            grid.addWidget(canvas, row, col)
            self.cells[key] = canvas
        self.single = ImageCanvas()
        self.stack.addWidget(grid_page)
        self.stack.addWidget(self.single)
        self.hanging_link = ViewLink(list(self.cells.values()), self)
        self.single_link = ViewLink([self.single], self)
        layout.addWidget(self.stack, 1)
        self.slice_bar = SliceBar()
        self.slice_bar.frame_requested.connect(self.frame_requested.emit)
        self.slice_slider = self.slice_bar.slider
        self.slice_label = self.slice_bar.label
        self.slice_bar.setVisible(False)
        layout.addWidget(self.slice_bar)
        self.setCentralWidget(central)
        self.image_area = central

        self.overlay_panel = OverlayPanel(colormaps)
        overlay_area = self._scrolling(self.overlay_panel)
        overlay_area.setMinimumHeight(380)  # at 720 px the larger share (score, card, style, colour bar), the rest scrolls
        self.overlay_dock = self._dock("Overlay", "overlay", overlay_area, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.info = InfoPane()
        self.info_dock = self._dock("Image info", "info", self.info, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.measurements = MeasurementsPane()
        self.measurements_dock = self._dock("Measurements", "measurements", self.measurements,
                                            QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.synthesis = SynthesisPane()
        self.synthesis_dock = self._dock("Synthesis", "synthesis", self.synthesis,
                                         QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.info_dock, self.measurements_dock)
        self.info_dock.raise_()
        # the synthesis pane shares the Overlay's (larger) place, its grid of patches needs the
        # height; tabified once the window is shown (a second tab group made before that leaves a
        # stray copy of its tab bar in the window, Qt 6)
        self.synthesis_dock.hide()
        self.docks_arranged = False  # the app sets it when it restored the user's own layout
        self.resizeDocks([self.studies_dock, self.overlay_dock], [230, 340], QtCore.Qt.Orientation.Horizontal)
        self.resizeDocks([self.overlay_dock, self.info_dock], [560, 300], QtCore.Qt.Orientation.Vertical)

        for name, (text, keys, tip) in ACTIONS.items():
            action = QtGui.QAction(text, self)
            action.setObjectName(name)
            action.setShortcuts([QtGui.QKeySequence(k) for k in keys])
            action.setToolTip(f"{tip} ({', '.join(keys)})" if keys else tip)
            action.setStatusTip(tip)
            if name in _IMAGE_AREA_ONLY:
                action.setShortcutContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
                self.image_area.addAction(action)
            else:
                self.addAction(action)
            self.actions[name] = action
        self.actions["open_file"].triggered.connect(self._open_file_dialog)
        self.actions["open_folder"].triggered.connect(self._open_folder_dialog)
        self.actions["open_labels"].triggered.connect(self._open_labels_dialog)
        self.actions["open_demo"].triggered.connect(self.open_demo_requested.emit)
        self.actions["export_view"].triggered.connect(self._export_dialog)
        self.actions["export_dicom"].triggered.connect(self._export_dicom_dialog)
        self.actions["quit"].triggered.connect(self.close)
        self.actions["shortcuts"].triggered.connect(self.show_shortcuts)
        self.actions["about"].triggered.connect(self.about_requested.emit)
        self.actions["play"].setCheckable(True)
        self.actions["play"].toggled.connect(self.slice_bar.play_button.setChecked)
        self.slice_bar.play_button.toggled.connect(self.actions["play"].setChecked)
        self.actions["invert"].setCheckable(True)
        self.actions["overlay_planes"].setCheckable(True)
        self.export_folder = ""  # where the export dialog starts (the controller keeps it in settings)

        self._build_toolbars()
        self._build_menus()
        self._build_status_bar()
        self.welcome = self._welcome_page()
        self.stack.addWidget(self.welcome)
        self.stack.setCurrentWidget(self.welcome)  # until a study is open: say what to do

    # ------------------------------------------------------------------ construction
    def _dock(self, title: str, name: str, widget, area) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    @staticmethod
    def _scrolling(widget) -> QtWidgets.QScrollArea:
        area = QtWidgets.QScrollArea()
        area.setWidget(widget)
        area.setWidgetResizable(True)
        area.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # wrap, never clip sideways
        return area

    def _build_toolbars(self) -> None:
        methods = self.addToolBar("Methods")
        methods.setObjectName("methods_toolbar")
        methods.addWidget(QtWidgets.QLabel(" Overlay on "))
        self.scope = QtWidgets.QComboBox()
        self.scope.addItems(list(SCOPES))
        self.scope.setToolTip("Toggle a method on the current view only, or on all views of the hanging")
        methods.addWidget(self.scope)
        self.methods_toolbar = methods
        self.method_actions: list[QtGui.QAction] = []
        self.no_methods = methods.addAction("(no model bundles)")
        self.no_methods.setEnabled(False)

        display = self.addToolBar("Display")
        display.setObjectName("display_toolbar")
        self.display_toolbar = display
        self.preset = QtWidgets.QComboBox()
        self.preset.setMinimumContentsLength(22)
        self.preset.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)  # never clipped
        self.preset.setToolTip("VOI presets of the file (window with its explanation, or VOI LUT)")
        self.preset.activated.connect(self.preset_chosen.emit)
        self.voi_function = QtWidgets.QComboBox()
        self.voi_function.addItems(["LINEAR", "LINEAR_EXACT", "SIGMOID"])
        self.voi_function.setToolTip("VOI LUT function of the window (DICOM PS3.3 C.11.2.1.2)")
        self.voi_function.activated.connect(lambda i: self.function_chosen.emit(self.voi_function.itemText(i)))
        display.addWidget(self.preset)
        display.addWidget(self.voi_function)
        for name in ("auto_window", "invert", "reset_display", "fit", "one_to_one", "toggle_layout"):
            display.addAction(self.actions[name])

        tools = self.addToolBar("Tools")  # at the top: the images keep the window's width
        tools.setObjectName("tools_toolbar")
        self.tools_toolbar = tools
        self.insertToolBar(display, tools)  # beside the method toggles: two rows at 1280 px, not three
        group = QtGui.QActionGroup(self)
        for tool in TOOL_NAMES:
            action = self.actions[f"tool_{tool}"]
            action.setCheckable(True)
            group.addAction(action)
            tools.addAction(action)
            action.triggered.connect(lambda checked, t=tool: self.tool_chosen.emit(t))
        self.actions["tool_pan"].setChecked(True)
        tools.addAction(self.actions["inpaint"])

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for name in ("open_file", "open_folder", "open_labels"):
            file_menu.addAction(self.actions[name])
        file_menu.addAction(self.actions["open_pacs"])
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addAction(self.actions["open_demo"])
        file_menu.addSeparator()
        file_menu.addAction(self.actions["export_view"])
        file_menu.addAction(self.actions["export_dicom"])
        file_menu.addSeparator()
        file_menu.addAction(self.actions["quit"])
        view_menu = bar.addMenu("&View")
        for name in ("toggle_layout", "fit", "one_to_one", "zoom_in", "zoom_out", None, "auto_window", "invert",
                     "reset_display", "overlay_planes", None, "next_slice", "previous_slice", "next_slices", "previous_slices",
                     "first_slice", "last_slice", "play"):
            view_menu.addSeparator() if name is None else view_menu.addAction(self.actions[name])
        view_menu.addSeparator()
        for dock in (self.studies_dock, self.overlay_dock, self.info_dock, self.measurements_dock, self.synthesis_dock):
            view_menu.addAction(dock.toggleViewAction())
        tools_menu = bar.addMenu("&Tools")
        for name in ("tool_pan", "tool_rect", "tool_ellipse", "tool_line", "inpaint", "clear_shapes"):
            tools_menu.addAction(self.actions[name])
        self.methods_menu = bar.addMenu("&Methods")
        self._methods_menu_tail = [self.actions[n] for n in ("run_volume", "threshold_up", "threshold_down",
                                                             "cancel_job")]
        self.methods_menu.addActions(self._methods_menu_tail)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.actions["shortcuts"])
        help_menu.addAction(self.actions["about"])

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.cursor_label = QtWidgets.QLabel("")
        self.provider_label = QtWidgets.QLabel("")
        self.provider_label.setToolTip("Where the last model ran (ONNX Runtime execution provider)")
        self.job_label = QtWidgets.QLabel("")
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(160)
        self.cancel_button = QtWidgets.QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop the running job (Esc)")
        self.cancel_button.clicked.connect(self.actions["cancel_job"].trigger)
        self.empty_hint = QtWidgets.QPushButton("Open demo study")
        self.empty_hint.clicked.connect(self.open_demo_requested.emit)
        for widget in (self.cursor_label, self.provider_label, self.job_label, self.progress, self.cancel_button,
                       self.empty_hint):
            status.addPermanentWidget(widget)
        self.set_job(None)

    # ------------------------------------------------------------------ fitting the screen
    def resizeEvent(self, event):  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self.fit_toolbars()

    def fit_toolbars(self) -> None:
        """The top toolbars fill rows in order, a new row where the next one would not fit, so
        nothing of them moves into an overflow menu; fewer rows again when the window widens."""
        used = 0
        for bar in (self.methods_toolbar, self.tools_toolbar, self.display_toolbar):
            if self.toolBarArea(bar) != QtCore.Qt.ToolBarArea.TopToolBarArea or not bar.isVisibleTo(self):
                continue  # moved elsewhere or hidden by the user: theirs
            width = bar.sizeHint().width() + 24  # the handle and the layout's spacing
            wrap = used > 0 and used + width > self.width()
            if wrap != self.toolBarBreak(bar):
                (self.insertToolBarBreak if wrap else self.removeToolBarBreak)(bar)
            used = width if wrap or used == 0 else used + width

    def showEvent(self, event):  # noqa: N802 (Qt naming)
        super().showEvent(event)
        if not self.docks_arranged:
            self.docks_arranged = True
            self.synthesis_dock.show()
            self.tabifyDockWidget(self.overlay_dock, self.synthesis_dock)
            self.overlay_dock.raise_()

    # ------------------------------------------------------------------ methods toolbar
    def set_methods(self, entries: list[tuple[str, str, bool]]) -> None:
        """One toggle per bundle: (text, tooltip, enabled)."""
        for action in self.method_actions:
            self.methods_toolbar.removeAction(action)
            self.methods_menu.removeAction(action)
            action.deleteLater()
        self.method_actions = []
        self.no_methods.setVisible(not entries)
        self.methods_menu.clear()
        for index, (text, tip, enabled) in enumerate(entries):
            action = QtGui.QAction(text, self)
            action.setCheckable(True)
            action.setEnabled(enabled)
            action.setObjectName(f"method_{index}")
            if index < 9:
                action.setShortcut(QtGui.QKeySequence(f"Alt+{index + 1}"))
            action.setToolTip(tip + (f" (Alt+{index + 1})" if index < 9 else ""))
            action.toggled.connect(lambda on, i=index: self.method_toggled.emit(i, on))
            self.methods_toolbar.addAction(action)
            self.methods_menu.addAction(action)
            self.method_actions.append(action)
        self.methods_menu.addSeparator()
        self.methods_menu.addActions(self._methods_menu_tail)
        self.fit_toolbars()

    def set_method_checked(self, index: int | None) -> None:
        """Show which bundle's overlay the current view has, without emitting toggles."""
        for i, action in enumerate(self.method_actions):
            action.blockSignals(True)
            action.setChecked(i == index)
            action.blockSignals(False)

    def scope_all(self) -> bool:
        return self.scope.currentIndex() == 1

    # ------------------------------------------------------------------ layout
    def show_grid(self) -> None:
        self.stack.setCurrentIndex(0)

    def show_single(self) -> None:
        self.stack.setCurrentIndex(1)

    def showing_single(self) -> bool:
        return self.stack.currentIndex() == 1

    def canvases(self) -> list[ImageCanvas]:
        return list(self.cells.values()) + [self.single]

    def set_slices(self, count: int, current: int, text: str, slab: int = 1) -> None:
        self.slice_bar.set_slices(count, current, text, slab)

    def set_presets(self, labels: list[str], current: int, function: str | None) -> None:
        """The current image's presets; ``function`` None when the preset is a VOI LUT."""
        self.preset.blockSignals(True)
        self.preset.clear()
        self.preset.addItems(labels)
        self.preset.setCurrentIndex(current)
        self.preset.blockSignals(False)
        self.voi_function.setEnabled(function is not None)
        if function is not None:
            self.voi_function.setCurrentText(function)

    def set_recent(self, paths: list[str]) -> None:
        self.recent_menu.clear()
        for path in paths:
            action = self.recent_menu.addAction(Path(path).name or path)
            action.setToolTip(path)
            action.triggered.connect(lambda checked=False, p=path: self.open_requested.emit(p))
        self.recent_menu.setEnabled(bool(paths))

    # ------------------------------------------------------------------ status
    def set_job(self, text: str | None, done: int = 0, total: int = 0) -> None:
        """The running job in the status bar (None: nothing runs)."""
        running = text is not None
        for widget in (self.job_label, self.progress, self.cancel_button):
            widget.setVisible(running)
        self.actions["cancel_job"].setEnabled(running)
        if running:
            self.job_label.setText(text)
            self.progress.setRange(0, max(total, 0))  # total 0: busy indicator
            self.progress.setValue(done)

    def show_error(self, message: str, details: str = "") -> None:
        """The error as a message in the window (never a crash), with details on request."""
        self.statusBar().showMessage(message, 15000)
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "mammolens", message, parent=self)
        if details:
            box.setDetailedText(details)
        box.setModal(False)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.last_error = (message, details)

    def shortcut_rows(self) -> list[tuple[str, str]]:
        rows = []
        for name, (text, keys, tip) in ACTIONS.items():
            if keys:
                rows.append((", ".join(keys), tip))
        for action in self.method_actions[:9]:
            rows.append((action.shortcut().toString(), f"Toggle the overlay of {action.text()}"))
        rows += [("Mouse wheel", "Zoom (2D) or next / previous slice (DBT; Ctrl+wheel zooms)"),
                 ("Left drag", "Pan, or draw with the rectangle / ellipse / distance tool"),
                 ("Right drag", "Window / level: right-left width, up-down centre"),
                 ("Double click", "One view / back to the hanging")]
        return rows

    def _welcome_page(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(page)
        layout.addStretch(1)
        text = QtWidgets.QLabel(
            "<h2>mammolens</h2><p>Open a DICOM file, a folder or a DICOMDIR (File menu, Ctrl+O), drop one "
            "here, or start with the bundled demo study (four screening views and a DBT volume).</p>"
            "<p>Then toggle a method in the toolbar to overlay its map; Help lists every shortcut.</p>")
        text.setWordWrap(True)
        text.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        text.setFixedWidth(600)  # wraps as a paragraph, not a narrow column
        layout.addWidget(text, 0, QtCore.Qt.AlignmentFlag.AlignHCenter)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addStretch(1)
        for name in ("open_file", "open_folder", "open_demo"):
            button = QtWidgets.QPushButton(self.actions[name].text().replace("&", "").rstrip("."))
            button.clicked.connect(self.actions[name].trigger)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addStretch(2)
        return page

    def show_about(self, rows: list[tuple[str, str]]) -> QtWidgets.QDialog:
        """What this installation is and where its files are: rows handed over by the app."""
        dialog = QtWidgets.QDialog(self)
        dialog.setWindowTitle("About mammolens")
        form = QtWidgets.QFormLayout(dialog)
        for name, value in rows:
            label = QtWidgets.QLabel(value)
            label.setWordWrap(True)
            label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(name, label)
        dialog.resize(640, 320)
        dialog.show()
        return dialog

    def show_shortcuts(self) -> None:
        dialog = QtWidgets.QDialog(self)
        dialog.setWindowTitle("Keyboard shortcuts")
        table = QtWidgets.QTableWidget(0, 2, dialog)
        table.setHorizontalHeaderLabels(["Keys", "Action"])
        table.verticalHeader().setVisible(False)
        rows = self.shortcut_rows()
        table.setRowCount(len(rows))
        for r, (keys, text) in enumerate(rows):
            table.setItem(r, 0, QtWidgets.QTableWidgetItem(keys))
            table.setItem(r, 1, QtWidgets.QTableWidgetItem(text))
        table.resizeColumnsToContents()
        QtWidgets.QVBoxLayout(dialog).addWidget(table)
        dialog.resize(620, 560)
        dialog.show()

    # ------------------------------------------------------------------ files
    def _open_file_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open DICOM / image / DICOMDIR")
        if path:
            self.open_requested.emit(path)

    def _open_folder_dialog(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open folder")
        if path:
            self.open_requested.emit(path)

    def _open_labels_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open labels file", "", "Labels (*.csv)")
        if path:
            self.open_labels_requested.emit(path)

    def _export_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export the current view to", self.export_folder)
        if folder:
            self.export_requested.emit(folder)

    def _export_dicom_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export DICOM results to", self.export_folder)
        if folder:
            self.export_dicom_requested.emit(folder)

    def dragEnterEvent(self, event):  # noqa: N802 (Qt naming)
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_requested.emit(paths[0])
