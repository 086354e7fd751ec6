"""Side panels and bars: DBT slice navigation, the overlay controls with their colour bar, the
image information and the measurement list. They show what the controller hands them and emit
what the user changed; none of them holds state of its own beyond the widgets."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

THRESHOLD_STEPS = 1000  # slider resolution over 0..vmax


class SliceBar(QtWidgets.QWidget):
    """Slice slider with number and position, cine play with its speed, MIP slab thickness."""

    frame_requested = QtCore.Signal(int)
    play_toggled = QtCore.Signal(bool)
    fps_changed = QtCore.Signal(int)
    slab_changed = QtCore.Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(4, 0, 4, 0)
        self.play_button = QtWidgets.QToolButton()
        self.play_button.setText("Play")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Cine: play through the slices (Space)")
        self.play_button.toggled.connect(lambda on: self.play_button.setText("Pause" if on else "Play"))
        self.play_button.toggled.connect(self.play_toggled.emit)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.valueChanged.connect(self.frame_requested.emit)
        self.label = QtWidgets.QLabel("")
        self.label.setMinimumWidth(190)
        self.fps = QtWidgets.QSpinBox()
        self.fps.setRange(1, 60)
        self.fps.setValue(10)
        self.fps.setSuffix(" fps")
        self.fps.setToolTip("Cine speed, slices per second")
        self.fps.valueChanged.connect(self.fps_changed.emit)
        self.slab = QtWidgets.QSpinBox()
        self.slab.setRange(1, 15)
        self.slab.setSingleStep(2)
        self.slab.setSuffix(" slices")
        self.slab.setToolTip("Slab thickness: maximum-intensity projection over this many slices")
        self.slab.valueChanged.connect(self.slab_changed.emit)
        row.addWidget(self.play_button)
        row.addWidget(QtWidgets.QLabel("Slice"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        row.addWidget(self.fps)
        row.addWidget(QtWidgets.QLabel("MIP slab"))
        row.addWidget(self.slab)

    def set_slices(self, count: int, current: int, text: str, slab: int = 1) -> None:
        self.setVisible(count > 1)
        for widget, value in ((self.slider, current), (self.slab, slab)):
            widget.blockSignals(True)
            if widget is self.slider:
                widget.setRange(0, max(0, count - 1))
            widget.setValue(value)
            widget.blockSignals(False)
        self.label.setText(text)
        if count <= 1 and self.play_button.isChecked():
            self.play_button.setChecked(False)


class ColourBar(pg.GraphicsLayoutWidget):
    """The overlay's colour scale in the map's units, transparent below the threshold (shown
    over grey, as the map is over the image), with the threshold marked."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground((40, 40, 40))
        self.setFixedHeight(78)
        self.plot = self.addPlot()
        self.plot.hideAxis("left")
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.backdrop = pg.ImageItem(np.full((1, 1), 0.5, np.float32), levels=(0, 1))
        self.gradient = pg.ImageItem(axisOrder="row-major")
        self.line = pg.InfiniteLine(angle=90, pen=pg.mkPen((255, 255, 255), width=2))
        axis = self.plot.getAxis("bottom")
        axis.enableAutoSIPrefix(False)  # the map's own units, never rescaled
        axis.setTextPen((235, 235, 235))  # light on the dark backdrop
        axis.setPen((200, 200, 200))
        for item in (self.backdrop, self.gradient, self.line):
            self.plot.addItem(item)

    def set_scale(self, table: np.ndarray, vmax: float, threshold: float, opacity: float, units: str) -> None:
        values = np.linspace(0.0, vmax, len(table), endpoint=False, dtype=np.float32)[None, :] + vmax / len(table) / 2
        self.gradient.setImage(values, levels=(0.0, vmax), lut=table, autoLevels=False)
        self.gradient.setRect(QtCore.QRectF(0.0, 0.0, vmax, 1.0))
        self.gradient.setOpacity(max(opacity, 0.35))
        self.backdrop.setRect(QtCore.QRectF(0.0, 0.0, vmax, 1.0))
        self.line.setPos(threshold)
        self.plot.setXRange(0.0, vmax, padding=0)
        self.plot.setYRange(0.0, 1.0, padding=0)
        # the units' short form under the scale (the full text is beside the threshold, wrapped)
        self.plot.getAxis("bottom").setLabel(units.split(" (")[0] if len(units) > 28 else units)


class OverlayPanel(QtWidgets.QWidget):
    """Controls of the overlay on the current view: map, colours, opacity, threshold in the map's
    units, range, contour; the score against the calibrated cut-off; the method's parameters."""

    style_edited = QtCore.Signal(str, object)  # OverlayStyle field, value
    parameter_edited = QtCore.Signal(str, object)  # method parameter, value
    run_volume_requested = QtCore.Signal()
    export_requested = QtCore.Signal()
    send_requested = QtCore.Signal()  # the current result to the PACS, as DICOM objects

    def __init__(self, colormaps: tuple[str, ...], parent=None):
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        self.title = QtWidgets.QLabel("No overlay on this view")
        self.title.setWordWrap(True)
        self.title.setStyleSheet("font-weight: bold")
        self.score = QtWidgets.QLabel("")
        self.score.setWordWrap(True)
        self.score.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        # what the model is: its evaluation card's key line (so nobody takes a CPU demonstration
        # model for a detector)
        self.card = QtWidgets.QLabel("")
        self.card.setWordWrap(True)
        self.card.setObjectName("model_card")
        # readable, not a footnote: the line that says what the model can and cannot do
        self.card.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.card.setMargin(4)
        self.card.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.title)
        layout.addWidget(self.score)
        layout.addWidget(self.card)
        # the actions under what the map is, above its style: in view on a short screen
        self.run_volume = QtWidgets.QPushButton("Run on all slices")
        self.run_volume.setToolTip("One background job over the whole DBT volume; the overlay fills in as it goes")
        self.run_volume.clicked.connect(self.run_volume_requested.emit)
        self.export = QtWidgets.QPushButton("Export view (PNG + map)")
        self.export.setToolTip("The current view with its overlay as PNG and the map as .npy (Ctrl+E)")
        self.export.clicked.connect(self.export_requested.emit)
        self.send = QtWidgets.QPushButton("Send to PACS (map, SEG, SR)")
        self.send.setToolTip("The map of this view as a DICOM Parametric Map, its region above the calibrated "
                             "threshold as a SEG and the scores as an SR, sent to the PACS last used")
        self.send.clicked.connect(self.send_requested.emit)
        actions = QtWidgets.QGridLayout()
        actions.addWidget(self.export, 0, 0)
        actions.addWidget(self.run_volume, 0, 1)
        actions.addWidget(self.send, 1, 0, 1, 2)
        layout.addLayout(actions)

        self.style_box = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(self.style_box)
        form.setContentsMargins(0, 0, 0, 0)
        self.colormap = QtWidgets.QComboBox()
        self.colormap.addItems(list(colormaps))
        self.colormap.setToolTip("Perceptually uniform colour maps, readable with colour-vision deficiencies")
        self.colormap.currentTextChanged.connect(lambda v: self.style_edited.emit("colormap", v))
        self.opacity = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.valueChanged.connect(lambda v: self.style_edited.emit("opacity", v / 100.0))
        self.threshold = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.threshold.setRange(0, THRESHOLD_STEPS)
        self.threshold.setToolTip("Below the threshold the map is transparent ([ and ] step it)")
        self.threshold.valueChanged.connect(self._threshold_moved)
        self.threshold_value = QtWidgets.QLabel("")
        self.threshold_value.setWordWrap(True)
        self.vmax = QtWidgets.QDoubleSpinBox()
        self.vmax.setDecimals(4)
        self.vmax.setRange(1e-4, 1e6)
        self.vmax.setSingleStep(0.01)
        self.vmax.setToolTip("Top of the colour scale, in the map's units")
        self.vmax.valueChanged.connect(lambda v: self.style_edited.emit("vmax", float(v)))
        self.contour = QtWidgets.QCheckBox("Contour at the threshold")
        self.contour.toggled.connect(lambda v: self.style_edited.emit("contour", bool(v)))
        form.addRow("Colour map", self.colormap)
        form.addRow("Opacity", self.opacity)
        form.addRow("Threshold", self.threshold)
        form.addRow("", self.threshold_value)
        form.addRow("Range max", self.vmax)
        form.addRow("", self.contour)
        self.colour_bar = ColourBar()
        form.addRow(self.colour_bar)
        layout.addWidget(self.style_box)

        self.parameters_box = QtWidgets.QGroupBox("Method parameters")
        self.parameters_form = QtWidgets.QFormLayout(self.parameters_box)
        layout.addWidget(self.parameters_box)
        layout.addStretch(1)
        self._vmax = 1.0
        self._units = ""
        self._controls = [self.style_box, self.parameters_box]
        self.show_style(None)

    def _threshold_moved(self, step: int) -> None:
        value = self._vmax * step / THRESHOLD_STEPS
        self.threshold_value.setText(f"{value:.4g} {self._units}")
        self.style_edited.emit("threshold", value)

    def show_style(self, style, table: np.ndarray | None = None, units: str = "") -> None:
        """Put an OverlayStyle's values into the controls (None: disable them)."""
        for widget in self._controls:
            widget.setVisible(style is not None)
        if style is None:
            return
        self._vmax, self._units = max(style.vmax, 1e-12), units
        widgets = (self.colormap, self.opacity, self.threshold, self.vmax, self.contour)
        for widget in widgets:
            widget.blockSignals(True)
        self.colormap.setCurrentText(style.colormap)
        self.opacity.setValue(int(round(style.opacity * 100)))
        self.threshold.setValue(int(round(THRESHOLD_STEPS * min(style.threshold / self._vmax, 1.0))))
        self.vmax.setValue(style.vmax)
        self.contour.setChecked(style.contour)
        for widget in widgets:
            widget.blockSignals(False)
        self.threshold_value.setText(f"{style.threshold:.4g} {units}")
        if table is not None:
            self.colour_bar.set_scale(table, style.vmax, style.threshold, style.opacity, units)

    def show_parameters(self, parameters, values: dict) -> None:
        """A form row per method Parameter (``choices``: a drop-down, else a number box)."""
        while self.parameters_form.rowCount():
            self.parameters_form.removeRow(0)
        for p in parameters:
            if p.choices:
                widget = QtWidgets.QComboBox()
                widget.addItems([str(c) for c in p.choices])
                widget.setCurrentText(str(values.get(p.name, p.default)))
                widget.currentTextChanged.connect(
                    lambda text, p=p: self.parameter_edited.emit(p.name, type(p.default)(text)))
            else:
                widget = QtWidgets.QDoubleSpinBox() if isinstance(p.default, float) else QtWidgets.QSpinBox()
                widget.setRange(p.minimum if p.minimum is not None else 0, p.maximum if p.maximum is not None else 1e6)
                widget.setValue(values.get(p.name, p.default))
                widget.valueChanged.connect(lambda v, p=p: self.parameter_edited.emit(p.name, v))
            widget.setToolTip(p.help)
            widget.setObjectName(f"parameter_{p.name}")
            self.parameters_form.addRow(p.label, widget)


class InfoPane(QtWidgets.QWidget):
    """The current image's DICOM header fields; identifiers only when the user asks."""

    identifiers_toggled = QtCore.Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        self.table = QtWidgets.QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Field", "Value"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(True)  # long values ("JPEG 2000 Image Compression (Lossless Only)") wrap
        self.table.setTextElideMode(QtCore.Qt.TextElideMode.ElideNone)
        # rows grow to the wrapped text whenever the value column changes width (dock resized)
        self.table.horizontalHeader().sectionResized.connect(lambda *args: self.table.resizeRowsToContents())
        self.show_identifiers = QtWidgets.QCheckBox("Show patient identifiers")
        self.show_identifiers.setToolTip("Off by default: names, IDs and UIDs stay hidden")
        self.show_identifiers.toggled.connect(self.identifiers_toggled.emit)
        layout.addWidget(self.table)
        layout.addWidget(self.show_identifiers)

    def set_fields(self, fields: list[tuple[str, str]]) -> None:
        self.table.setRowCount(len(fields))
        for row, (name, value) in enumerate(fields):
            self.table.setItem(row, 0, QtWidgets.QTableWidgetItem(name))
            item = QtWidgets.QTableWidgetItem(value)
            item.setToolTip(value)
            self.table.setItem(row, 1, item)
        self.table.resizeColumnToContents(0)
        self.table.resizeRowsToContents()

    def fields(self) -> list[tuple[str, str]]:
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text()) for r in range(self.table.rowCount())]


class MeasurementsPane(QtWidgets.QWidget):
    clear_requested = QtCore.Signal()
    export_requested = QtCore.Signal(str)  # CSV path for every shape of the opened images

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        self.list = QtWidgets.QListWidget()
        self.list.setWordWrap(True)
        self.list.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        buttons = QtWidgets.QHBoxLayout()
        copy = QtWidgets.QPushButton("Copy")
        copy.setToolTip("Copy the selected lines (all when none is selected) to the clipboard")
        copy.clicked.connect(self.copy)
        export = QtWidgets.QPushButton("Export CSV...")
        export.setToolTip("Every shape of the opened images with its measurement, as a CSV file")
        export.clicked.connect(self._export_dialog)
        clear = QtWidgets.QPushButton("Clear shapes on this image")
        clear.clicked.connect(self.clear_requested.emit)
        for button in (copy, export, clear):
            buttons.addWidget(button)
        layout.addWidget(self.list)
        layout.addLayout(buttons)

    def copy(self) -> str:
        chosen = [item.text() for item in self.list.selectedItems()] or self.lines()
        text = "\n".join(chosen)
        QtWidgets.QApplication.clipboard().setText(text)
        return text

    def _export_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export measurements", "measurements.csv",
                                                        "CSV files (*.csv)")
        if path:
            self.export_requested.emit(path)

    def set_lines(self, lines: list[str]) -> None:
        self.list.clear()
        self.list.addItems(lines)

    def lines(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]


def show_completion(parent, display: np.ndarray, box: tuple[float, float, float, float], result) -> QtWidgets.QDialog:
    """Original, completion and error of an inpainted rectangle side by side, with the scores
    (``result.maps["completion"]`` and ``["error"]`` on the original grid; MSE, critic and DMSE in
    ``result.parameters``). Its ``in_place`` check box lays the completion into the view."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    pad = max(8, (x1 - x0) // 2, (y1 - y0) // 2)
    rows = slice(max(0, y0 - pad), min(display.shape[0], y1 + pad))
    cols = slice(max(0, x0 - pad), min(display.shape[1], x1 + pad))
    dialog = QtWidgets.QDialog(parent)
    dialog.setWindowTitle(f"Inpainting: score {result.score:.4f}")
    layout = QtWidgets.QVBoxLayout(dialog)
    view = pg.GraphicsLayoutWidget()
    panels = (("original", display, (0, 1)), ("completion", result.maps["completion"], (0, 1)),
              ("error", result.maps["error"], None))
    for title, array, levels in panels:
        box_view = view.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        crop = np.asarray(array, dtype=np.float32)[rows, cols]
        item = pg.ImageItem(crop, axisOrder="row-major", levels=levels or (0, float(crop.max()) or 1.0))
        box_view.addItem(item)
        label = pg.TextItem(title, color=(230, 230, 120), fill=pg.mkBrush(0, 0, 0, 170))
        label.setParentItem(box_view)
    layout.addWidget(view)
    p = result.parameters
    scores = ", ".join(f"{name} {p[name]:.4g}" for name in ("mse", "critic", "dmse") if name in p)
    text = f"{scores}; score ({p.get('score', 'error')}) {result.score:.4f}" if scores else f"score {result.score:.4f}"
    if result.threshold is not None:
        text += f", calibrated cut-off {result.threshold:.4f} -> {result.decision}"
    elif result.no_decision:
        text += f"; {result.no_decision}"
    dialog.scores = QtWidgets.QLabel(text)
    dialog.scores.setWordWrap(True)
    layout.addWidget(dialog.scores)
    dialog.in_place = QtWidgets.QCheckBox("Show the completion in place on the view")
    layout.addWidget(dialog.in_place)
    dialog.resize(900, 380)
    dialog.show()
    return dialog