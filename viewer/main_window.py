"""The main window: study browser, the 2 x 2 hanging (or one view), DBT slice slider.

Widgets show what ``app`` hands them and emit signals; the controller in :mod:`app.gui` does the
loading and keeps the :class:`app.session.Session` in step.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.canvas import ImageCanvas

#: Grid positions of the screening views: right breast on the left of the screen.
HANGING_CELLS = {("R", "CC"): (0, 0), ("L", "CC"): (0, 1), ("R", "MLO"): (1, 0), ("L", "MLO"): (1, 1)}


class StudyBrowser(QtWidgets.QTreeWidget):
    image_activated = QtCore.Signal(object)  # the item's payload (an image or a study)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setHeaderLabels(["Study / series / view", "Size"])
        self.setColumnWidth(0, 230)
        self.itemActivated.connect(lambda item, col: self._activate(item))
        self.itemClicked.connect(lambda item, col: self._activate(item))

    def _activate(self, item) -> None:
        payload = item.data(0, QtCore.Qt.UserRole)
        if payload is not None:
            self.image_activated.emit(payload)

    def populate(self, tree: list[tuple[str, object, list]], failures: list[str]) -> None:
        """``tree``: nested (text, payload, children) rows; failures: one sentence each."""
        self.clear()

        def add(parent, rows):
            for text, payload, size, children in rows:
                item = QtWidgets.QTreeWidgetItem(parent, [text, size])
                item.setData(0, QtCore.Qt.UserRole, payload)
                add(item, children)
                item.setExpanded(True)

        add(self, tree)
        if failures:
            bad = QtWidgets.QTreeWidgetItem(self, [f"Unreadable files ({len(failures)})", ""])
            bad.setForeground(0, QtGui.QBrush(QtGui.QColor(220, 90, 90)))
            for text in failures:
                child = QtWidgets.QTreeWidgetItem(bad, [text, ""])
                child.setToolTip(0, text)
            bad.setExpanded(True)


class MainWindow(QtWidgets.QMainWindow):
    open_requested = QtCore.Signal(str)
    open_demo_requested = QtCore.Signal()
    frame_requested = QtCore.Signal(int)

    def __init__(self):
        super().__init__()
        self.setWindowTitle("mammolens")
        self.resize(1400, 900)
        self.browser = StudyBrowser()
        dock = QtWidgets.QDockWidget("Studies", self)
        dock.setObjectName("studies")
        dock.setWidget(self.browser)
        self.addDockWidget(QtCore.Qt.LeftDockWidgetArea, dock)

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
        layout.addWidget(self.stack, 1)

        slider_row = QtWidgets.QHBoxLayout()
        self.slice_label = QtWidgets.QLabel("")
        self.slice_slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.slice_slider.valueChanged.connect(self.frame_requested.emit)
        slider_row.addWidget(QtWidgets.QLabel("Slice"))
        slider_row.addWidget(self.slice_slider, 1)
        slider_row.addWidget(self.slice_label)
        self.slice_bar = QtWidgets.QWidget()
        self.slice_bar.setLayout(slider_row)
        self.slice_bar.setVisible(False)
        layout.addWidget(self.slice_bar)
        self.setCentralWidget(central)

        self.empty_hint = QtWidgets.QPushButton("Open demo study")
        self.empty_hint.clicked.connect(self.open_demo_requested.emit)
        self.statusBar().addPermanentWidget(self.empty_hint)
        self._build_menu()

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        act = menu.addAction("Open &file...", self._open_file_dialog)
        act.setShortcut(QtGui.QKeySequence.Open)
        menu.addAction("Open f&older...", self._open_folder_dialog)
        menu.addAction("Open &demo study", self.open_demo_requested.emit)
        menu.addSeparator()
        quit_action = menu.addAction("&Quit", self.close)
        quit_action.setShortcut(QtGui.QKeySequence.Quit)

    def _open_file_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open DICOM / image / DICOMDIR")
        if path:
            self.open_requested.emit(path)

    def _open_folder_dialog(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open folder")
        if path:
            self.open_requested.emit(path)

    def show_grid(self) -> None:
        self.stack.setCurrentIndex(0)

    def show_single(self) -> None:
        self.stack.setCurrentIndex(1)

    def set_slices(self, count: int, current: int, text: str) -> None:
        self.slice_bar.setVisible(count > 1)
        self.slice_slider.blockSignals(True)
        self.slice_slider.setRange(0, max(0, count - 1))
        self.slice_slider.setValue(current)
        self.slice_slider.blockSignals(False)
        self.slice_label.setText(text)

    def show_error(self, message: str) -> None:
        self.statusBar().showMessage(message, 15000)
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Warning, "mammolens", message, parent=self)
        box.setModal(False)
        box.show()
