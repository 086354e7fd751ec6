"""The synthesis pane: ask a class-conditional generator for lesion patches, look at them in a
zoomable grid, pick some and export them with a labels file.

The pane only collects the request and shows the patches it is handed; generating and writing
files are the controller's (through the job runner). Without a synthesis engine and bundle it
stays disabled, saying what it needs.
"""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets


class SynthesisPane(QtWidgets.QWidget):
    generate_requested = QtCore.Signal(str, int, int, float)  # class, count, seed, truncation
    export_requested = QtCore.Signal(list, str)  # selected patch indices, folder

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        form = QtWidgets.QGridLayout()  # two columns of settings: the grid of patches keeps the height
        self.lesion_class = QtWidgets.QComboBox()
        self.lesion_class.setToolTip("The classes the loaded synthesis bundle generates")
        self.count = QtWidgets.QSpinBox()
        self.count.setRange(1, 256)
        self.count.setValue(16)
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.truncation = QtWidgets.QDoubleSpinBox()
        self.truncation.setRange(0.05, 1.0)
        self.truncation.setSingleStep(0.05)
        self.truncation.setValue(1.0)
        self.truncation.setToolTip("Scale of the noise: below 1 gives more typical, less varied patches")
        for index, (text, widget) in enumerate((("Class", self.lesion_class), ("Count", self.count),
                                                ("Seed", self.seed), ("Truncation", self.truncation))):
            label = QtWidgets.QLabel(text)
            label.setBuddy(widget)
            form.addWidget(label, index // 2, (index % 2) * 2)
            form.addWidget(widget, index // 2, (index % 2) * 2 + 1)
        form.setColumnStretch(1, 1)
        form.setColumnStretch(3, 1)
        # what generates: the bundle and its evaluation card's line (a demonstration model says so)
        self.bundle_line = QtWidgets.QLabel("")
        self.bundle_line.setWordWrap(True)
        self.bundle_line.setObjectName("synthesis_bundle")
        self.bundle_line.setStyleSheet("color: palette(mid)")
        self.bundle_line.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.bundle_line)
        layout.addLayout(form)
        self.generate = QtWidgets.QPushButton("Generate")
        self.generate.clicked.connect(self._generate)
        layout.addWidget(self.generate)
        self.zoom = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.zoom.setRange(32, 256)
        self.zoom.setToolTip("Size of the patches in the grid (display only; the exports keep their pixels)")
        self.zoom_value = QtWidgets.QLabel("")
        self.zoom.valueChanged.connect(self._zoomed)
        size_row = QtWidgets.QHBoxLayout()
        size_label = QtWidgets.QLabel("Patch size")
        size_label.setBuddy(self.zoom)
        size_row.addWidget(size_label)
        size_row.addWidget(self.zoom, 1)
        size_row.addWidget(self.zoom_value)
        layout.addLayout(size_row)
        self.grid = QtWidgets.QListWidget()
        self.grid.setViewMode(QtWidgets.QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QtWidgets.QListView.ResizeMode.Adjust)
        self.grid.setMovement(QtWidgets.QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setSpacing(2)
        self.grid.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.grid.itemSelectionChanged.connect(self._selection_changed)
        layout.addWidget(self.grid, 1)
        self.export = QtWidgets.QPushButton("Export selected...")
        self.export.setToolTip("Select patches in the grid first (click, Shift / Ctrl + click, Ctrl+A)")
        self.export.clicked.connect(self._export)
        layout.addWidget(self.export)
        self.export_folder = ""  # where the export dialog starts (the controller keeps it in settings)
        self._available = False
        self._inputs = [self.lesion_class, self.count, self.seed, self.truncation, self.generate, self.zoom,
                        self.grid, self.export]
        self._tips = {widget: widget.toolTip() for widget in self._inputs}
        self.zoom.setValue(48)
        self._zoomed(48)
        self.set_available(False, "")

    def set_classes(self, classes: list[str]) -> None:
        """The classes of the bundle that generates (the bundle's, never a fixed list)."""
        current = self.lesion_class.currentText()
        self.lesion_class.clear()
        self.lesion_class.addItems([c for c in classes])
        if current in classes:
            self.lesion_class.setCurrentText(current)

    def set_available(self, available: bool, reason: str) -> None:
        self._available = available
        for widget in self._inputs:
            widget.setEnabled(available)
            widget.setToolTip(self._tips[widget] if available else reason)
        self.setToolTip("" if available else reason)
        self._selection_changed()

    def set_bundle_line(self, text: str, limit: int = 120) -> None:
        """The generating bundle and its card line (or how to get one): at most two lines here,
        the whole of it in the tooltip."""
        self.bundle_line.setText(text if len(text) <= limit else text[: limit - 1].rstrip(" ,;") + "…")
        self.bundle_line.setToolTip(text)

    def _zoomed(self, size: int) -> None:
        self.grid.setIconSize(QtCore.QSize(size, size))
        self.grid.setGridSize(QtCore.QSize(size + 8, size + 8))  # captions in the tooltips: more patches in view
        self.zoom_value.setText(f"{size} px")

    def _selection_changed(self) -> None:
        """Export is possible only with patches selected; the button says how many."""
        count = len(self.grid.selectedItems())
        self.export.setEnabled(self._available and count > 0)
        self.export.setText(f"Export {count} selected..." if count else "Export selected...")

    def _generate(self) -> None:
        self.generate_requested.emit(self.lesion_class.currentText(), self.count.value(), self.seed.value(),
                                     self.truncation.value())

    def show_patches(self, patches: np.ndarray, captions: list[str]) -> None:
        """(N, h, w) patches in [0, 1]."""
        self.grid.clear()
        self._selection_changed()
        for pixels, caption in zip(patches, captions):
            grey = np.ascontiguousarray(np.clip(pixels, 0, 1) * 255 + 0.5, dtype=np.uint8)
            h, w = grey.shape
            image = QtGui.QImage(grey.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()
            item = QtWidgets.QListWidgetItem(QtGui.QIcon(QtGui.QPixmap.fromImage(image)), "")
            item.setToolTip(caption)
            item.setData(QtCore.Qt.ItemDataRole.UserRole, caption)
            self.grid.addItem(item)

    def selected(self) -> list[int]:
        return sorted(self.grid.row(item) for item in self.grid.selectedItems())

    def _export(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export patches to", self.export_folder)
        if folder:
            self.export_requested.emit(chosen, folder)
