"""The study browser: patient / study / series / view rows with thumbnails, and the files that
could not be read, each with its reason."""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

THUMBNAIL = 56  # px, the long side


def thumbnail_icon(pixels: np.ndarray) -> QtGui.QIcon:
    """An icon from a small uint8 grey image."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = pixels.shape
    image = QtGui.QImage(pixels.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()
    return QtGui.QIcon(QtGui.QPixmap.fromImage(image))


LINE_CHARS = 15  # a row's lines are broken here: the dock's narrowest width beside a thumbnail


def _lines(text: str, size: str = "") -> str:
    """The row's text as explicit lines of at most LINE_CHARS characters (the tree sizes its rows
    by explicit lines; text it wraps itself would be cut at the row's height)."""
    import textwrap

    lines = [part for line in text.split("\n") for part in textwrap.wrap(line, LINE_CHARS) or [""]]
    return "\n".join(lines + ([size] if size else []))


class StudyBrowser(QtWidgets.QTreeWidget):
    image_activated = QtCore.Signal(object)  # the item's payload (an image or a study)

    def __init__(self, parent=None):
        super().__init__(parent)
        # one column whose rows wrap (view, series, size on lines of their own), so a narrow dock
        # cuts no label; the full text is each row's tooltip
        self.setColumnCount(1)
        self.setHeaderLabels(["Study / series / view"])
        self.header().setStretchLastSection(True)
        self.setIndentation(12)
        self.setTextElideMode(QtCore.Qt.TextElideMode.ElideNone)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(190)
        self.setIconSize(QtCore.QSize(THUMBNAIL, THUMBNAIL))
        self.itemActivated.connect(lambda item, col: self._activate(item))
        self.itemClicked.connect(lambda item, col: self._activate(item))
        self._items: dict[int, QtWidgets.QTreeWidgetItem] = {}  # id(payload) -> item

    def _activate(self, item) -> None:
        payload = item.data(0, QtCore.Qt.ItemDataRole.UserRole)
        if payload is not None:
            self.image_activated.emit(payload)

    def populate(self, tree: list[tuple[str, object, str, list]], failures: list[str]) -> None:
        """``tree``: nested (text, payload, size, children) rows (a newline in the text starts a
        line of its own; the size goes on the last line); failures: one sentence each."""
        self.clear()
        self._items.clear()

        def add(parent, rows):
            for text, payload, size, children in rows:
                item = QtWidgets.QTreeWidgetItem(parent, [_lines(text, size)])
                item.setToolTip(0, f"{text.replace(chr(10), ' ')} {size}".strip())
                item.setData(0, QtCore.Qt.ItemDataRole.UserRole, payload)
                if payload is not None:
                    self._items[id(payload)] = item
                add(item, children)
                item.setExpanded(True)

        add(self, tree)
        if failures:
            bad = QtWidgets.QTreeWidgetItem(self, [f"Unreadable files ({len(failures)})"])
            bad.setForeground(0, QtGui.QBrush(QtGui.QColor(220, 90, 90)))
            for text in failures:
                child = QtWidgets.QTreeWidgetItem(bad, [text])
                child.setToolTip(0, text)
            bad.setExpanded(True)

    def set_thumbnail(self, payload: object, pixels: np.ndarray) -> None:
        item = self._items.get(id(payload))
        if item is not None:
            item.setIcon(0, thumbnail_icon(pixels))

    def has_thumbnail(self, payload: object) -> bool:
        item = self._items.get(id(payload))
        return item is not None and not item.icon(0).isNull()
