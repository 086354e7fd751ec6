"""One image view: a pyqtgraph ViewBox with the windowed frame, its label and a slice readout.

The canvas only shows arrays it is handed (already windowed to [0, 1] by ``app``); it never
reads files. ``mirror`` flips the display horizontally so a hanging can make the chest walls meet.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


class ImageCanvas(pg.GraphicsLayoutWidget):
    double_clicked = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground("k")
        self.view = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image_item)
        self.label = pg.TextItem(color=(230, 230, 120), anchor=(0, 0))
        self.readout = pg.TextItem(color=(200, 200, 200), anchor=(0, 1))
        for item in (self.label, self.readout):
            item.setParentItem(self.view)
        self.label.setPos(6, 4)
        self._mirror = False
        self._shape: tuple[int, int] | None = None
        self.view.sigResized.connect(self._place_readout)

    def _place_readout(self, *args) -> None:
        self.readout.setPos(6, self.view.height() - 4)

    def align(self, side: str) -> None:
        """Put the image's ``side`` edge ("left" / "right") on the view's edge, keeping the zoom.

        A hanging uses it so the chest walls of the right and left breasts meet in the middle.
        """
        if self._shape is None or side not in ("left", "right"):
            return
        (x0, x1), _ = self.view.viewRange()
        width, cols = x1 - x0, self._shape[1]
        self.view.setXRange(cols - width, cols, padding=0) if side == "right" else self.view.setXRange(0, width, padding=0)

    def show_frame(self, frame: np.ndarray | None, label: str = "", readout: str = "", mirror: bool = False) -> None:
        if frame is None:
            self.image_item.clear()
            self._shape = None
        else:
            if mirror:
                frame = frame[:, ::-1]
            self.image_item.setImage(frame, levels=(0.0, 1.0), autoLevels=False)
            if frame.shape != self._shape or mirror != self._mirror:
                self._shape = frame.shape
                self.view.autoRange(padding=0.0)
        self._mirror = mirror
        self.label.setText(label)
        self.readout.setText(readout)
        self._place_readout()

    def mouseDoubleClickEvent(self, event):  # noqa: N802 (Qt naming)
        self.double_clicked.emit()
        event.accept()

    def displayed_array(self) -> np.ndarray | None:
        return self.image_item.image
