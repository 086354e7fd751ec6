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
        form = QtWidgets.QFormLayout()
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
        form.addRow("Class", self.lesion_class)
        form.addRow("Count", self.count)
        form.addRow("Seed", self.seed)
        form.addRow("Truncation", self.truncation)
        layout.addLayout(form)
        self.generate = QtWidgets.QPushButton("Generate")
        self.generate.clicked.connect(self._generate)
        layout.addWidget(self.generate)
        self.zoom = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.zoom.setRange(32, 256)
        self.zoom.setValue(72)
        self.zoom.setToolTip("Patch size in the grid")
        self.zoom.valueChanged.connect(lambda v: self.grid.setIconSize(QtCore.QSize(v, v)))
        layout.addWidget(self.zoom)
        self.grid = QtWidgets.QListWidget()
        self.grid.setViewMode(QtWidgets.QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QtWidgets.QListView.ResizeMode.Adjust)
        self.grid.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.grid.setIconSize(QtCore.QSize(72, 72))
        layout.addWidget(self.grid, 1)
        self.export = QtWidgets.QPushButton("Export selected...")
        self.export.clicked.connect(self._export)
        layout.addWidget(self.export)
        self._inputs = [self.lesion_class, self.count, self.seed, self.truncation, self.generate, self.zoom,
                        self.grid, self.export]
        self._tips = {widget: widget.toolTip() for widget in self._inputs}
        self.set_available(False, "")

    def set_classes(self, classes: list[str]) -> None:
        """The classes of the bundle that generates (the bundle's, never a fixed list)."""
        current = self.lesion_class.currentText()
        self.lesion_class.clear()
        self.lesion_class.addItems([c for c in classes])
        if current in classes:
            self.lesion_class.setCurrentText(current)

    def set_available(self, available: bool, reason: str) -> None:
        for widget in self._inputs:
            widget.setEnabled(available)
            widget.setToolTip(self._tips[widget] if available else reason)
        self.setToolTip("" if available else reason)

    def _generate(self) -> None:
        self.generate_requested.emit(self.lesion_class.currentText(), self.count.value(), self.seed.value(),
                                     self.truncation.value())

    def show_patches(self, patches: np.ndarray, captions: list[str]) -> None:
        """(N, h, w) patches in [0, 1]."""
        self.grid.clear()
        for pixels, caption in zip(patches, captions):
            grey = np.ascontiguousarray(np.clip(pixels, 0, 1) * 255 + 0.5, dtype=np.uint8)
            h, w = grey.shape
            image = QtGui.QImage(grey.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()
            item = QtWidgets.QListWidgetItem(QtGui.QIcon(QtGui.QPixmap.fromImage(image)), caption)
            self.grid.addItem(item)

    def selected(self) -> list[int]:
        return sorted(self.grid.row(item) for item in self.grid.selectedItems())

    def _export(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export patches to")
        if folder:
            self.export_requested.emit(chosen, folder)
