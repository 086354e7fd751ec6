"""One image view: the windowed frame, the method map above it, ground-truth boxes, the user's
shapes, and the mouse: pan / zoom, right-drag window / level, wheel through DBT slices, drawing.

The canvas only shows arrays it is handed (already windowed to [0, 1] by ``app``) and emits what
the mouse did; it never reads files or runs models. Every item lives in image pixel coordinates
(x = column, y = row); a mirrored view inverts the ViewBox's x axis instead of flipping pixels,
so overlays, boxes and shapes stay in the stored image's coordinates whatever the hanging does.

The camera (:class:`Camera`) describes what a view shows in the hanging's own terms -- zoom in
mm per screen pixel, distance from the chest wall at the cell's inner edge, distance from the
top -- so :class:`viewer.hanging.ViewLink` can give four images of different sizes the same zoom
and a mirrored pan while their chest walls stay on the centre line.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

TOOLS = ("pan", "rect", "ellipse", "line")
_SHAPE_PEN = pg.mkPen((0, 229, 255), width=2, cosmetic=True)
_LINE_PEN = pg.mkPen((255, 214, 0), width=2, cosmetic=True)
_TEXT_BACKING = pg.mkBrush(0, 0, 0, 170)
_PLANE_TABLE = np.array([[0, 0, 0, 0], [255, 235, 59, 255]], dtype=np.uint8)
_BOX_PEN = pg.mkPen((255, 96, 64), width=2, style=QtCore.Qt.PenStyle.DashLine, cosmetic=True)
_CONTOUR_PEN = pg.mkPen((255, 255, 255), width=1.5, cosmetic=True)
_CURRENT_PEN = pg.mkPen((200, 180, 0), width=2)


@dataclass(frozen=True)
class Camera:
    zoom: float  # mm (or pixels, without spacing) per screen pixel
    inner: float  # mm from the chest wall at the view's inner edge; 0 puts the wall on it
    top: float  # mm from the image's top row at the view's top edge


class _EllipseShape(pg.EllipseROI):
    """An axis-aligned ellipse: scale handles only (the measurement is over its bounding box)."""

    def _addHandles(self):  # noqa: N802 (pyqtgraph naming)
        self.addScaleHandle([1, 1], [0, 0])
        self.addScaleHandle([0, 0], [1, 1])


class ImageViewBox(pg.ViewBox):
    """A ViewBox whose right-drag sets the window, whose wheel can step slices and whose
    left-drag draws the current tool's shape."""

    window_dragged = QtCore.Signal(float, float)  # screen pixels moved with the right button
    slice_wheel = QtCore.Signal(int)  # wheel steps (+1: next slice)
    shape_drawn = QtCore.Signal(str, object)  # tool, (x0, y0, x1, y1) in image coordinates
    clicked = QtCore.Signal()

    def __init__(self):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.disableAutoRange()
        self.tool = "pan"
        self.wheel_steps_slices = False
        self._wheel_accum = 0.0
        self._rubber: QtWidgets.QGraphicsItem | None = None

    def mouseClickEvent(self, ev):  # noqa: N802
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            self.clicked.emit()
        ev.accept()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802
        if ev.button() == QtCore.Qt.MouseButton.RightButton:
            ev.accept()
            if ev.isStart():
                self.clicked.emit()
            delta = ev.screenPos() - ev.lastScreenPos()
            if delta.x() or delta.y():
                self.window_dragged.emit(float(delta.x()), float(delta.y()))
            return
        if ev.button() == QtCore.Qt.MouseButton.LeftButton and self.tool != "pan":
            ev.accept()
            p0 = self.mapSceneToView(ev.buttonDownScenePos(QtCore.Qt.MouseButton.LeftButton))
            p1 = self.mapSceneToView(ev.scenePos())
            if ev.isStart():
                self.clicked.emit()
            if ev.isFinish():
                self._drop_rubber()
                self.shape_drawn.emit(self.tool, (p0.x(), p0.y(), p1.x(), p1.y()))
            else:
                self._show_rubber(p0, p1)
            return
        super().mouseDragEvent(ev, axis)

    def _show_rubber(self, p0, p1) -> None:
        if self._rubber is None:
            if self.tool == "line":
                self._rubber = QtWidgets.QGraphicsLineItem()
            elif self.tool == "ellipse":
                self._rubber = QtWidgets.QGraphicsEllipseItem()
            else:
                self._rubber = QtWidgets.QGraphicsRectItem()
            self._rubber.setPen(_LINE_PEN if self.tool == "line" else _SHAPE_PEN)
            self.addItem(self._rubber, ignoreBounds=True)
        if self.tool == "line":
            self._rubber.setLine(p0.x(), p0.y(), p1.x(), p1.y())
        else:
            self._rubber.setRect(QtCore.QRectF(p0, p1).normalized())

    def _drop_rubber(self) -> None:
        if self._rubber is not None:
            self.removeItem(self._rubber)
            self._rubber = None

    def wheelEvent(self, ev, axis=None):  # noqa: N802
        ctrl = bool(ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier)
        if self.wheel_steps_slices and not ctrl:
            self._wheel_accum += ev.delta()
            steps = int(self._wheel_accum / 120)
            if steps:
                self._wheel_accum -= steps * 120
                self.slice_wheel.emit(-steps)  # wheel towards the user: deeper (next) slice
            ev.accept()
            return
        super().wheelEvent(ev, axis)



def caption_lines(text: str, width: int = 30) -> str:
    """A measurement's caption on short lines (broken after its commas and colon), so it stays
    inside a view of the hanging instead of running past its edge."""
    lines: list[str] = []
    for part in text.replace(": ", ":\n", 1).split("\n"):
        line = ""
        for piece in part.split(", "):
            candidate = f"{line}, {piece}" if line else piece
            if line and len(candidate) > width:
                lines.append(line + ",")
                line = piece
            else:
                line = candidate
        lines.append(line)
    return "\n".join(lines)

class ImageCanvas(pg.GraphicsLayoutWidget):
    double_clicked = QtCore.Signal()
    activated = QtCore.Signal()  # clicked: becomes the current view
    cursor_moved = QtCore.Signal(float, float)  # image coordinates under the mouse
    cursor_left = QtCore.Signal()
    shape_edited = QtCore.Signal(int, object)  # shape id, (x0, y0, x1, y1) after a move / resize

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground("k")
        self.view = ImageViewBox()
        self.addItem(self.view)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(10)
        self.contour_item = pg.PlotCurveItem(pen=_CONTOUR_PEN, connect="finite")
        self.contour_item.setZValue(11)
        self.planes_item = pg.ImageItem(axisOrder="row-major")  # the file's DICOM overlay planes (60xx)
        self.planes_item.setZValue(12)
        for item in (self.image_item, self.overlay_item, self.contour_item, self.planes_item):
            self.view.addItem(item)
        # texts on a dark backing: readable over bright tissue and the pectoral muscle
        self.label = pg.TextItem(color=(230, 230, 120), anchor=(0, 0), fill=_TEXT_BACKING)
        self.readout = pg.TextItem(color=(220, 220, 220), anchor=(0, 1), fill=_TEXT_BACKING)
        self.overlay_text = pg.TextItem(color=(255, 255, 255), anchor=(0, 0), fill=_TEXT_BACKING)
        # ground truth: a number at each box, the classes listed once under the view's texts, so
        # labels of neighbouring boxes never overlap each other, the map or the view's own texts
        self.box_legend = pg.TextItem(color=(255, 96, 64), anchor=(0, 0), fill=_TEXT_BACKING)
        self.box_legend.setVisible(False)
        for item in (self.label, self.readout, self.overlay_text, self.box_legend):
            item.setParentItem(self.view)  # outside the view's child group: never mirrored or zoomed
        self.label.setPos(6, 4)
        self.overlay_text.setPos(6, 24)  # under the view's label
        self.link = None  # the ViewLink that places this view, when there is one
        self.wall_x: float | None = None  # image column of the chest wall (0 or cols), if known
        self.mm_per_px = 1.0
        self.inner_side = "right"  # the screen edge the chest wall goes to
        self._mirror = False
        self._shape: tuple[int, int] | None = None
        self._boxes: list[QtWidgets.QGraphicsItem] = []
        self._shapes: dict[int, tuple[pg.ROI, pg.TextItem]] = {}
        self._shape_kinds: dict[int, str] = {}
        self.view.sigResized.connect(self._place_texts)
        self.view.sigResized.connect(self._fit_captions)
        self.view.sigRangeChanged.connect(self._fit_captions)
        self.view.clicked.connect(self.activated.emit)
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)

    # ------------------------------------------------------------------ frame
    def show_frame(self, frame: np.ndarray | None, label: str = "", readout: str = "", mirror: bool = False) -> None:
        """Show a windowed frame: 8-bit grey (drawn as it is) or float in [0, 1]; ``mirror``
        flips the view left-right."""
        if frame is None:
            self.image_item.clear()
            self.clear_overlay()
            self._shape = None
        else:
            levels = (0, 255) if frame.dtype == np.uint8 else (0.0, 1.0)
            self.image_item.setImage(frame, levels=levels, autoLevels=False)
            if frame.shape != self._shape or mirror != self._mirror:
                self._shape = frame.shape
                self.view.invertX(mirror)
                self._mirror = mirror
                if self.link is not None:
                    self.link.refit(self)
                else:
                    self.view.autoRange(padding=0.0)
        self.label.setText(label)
        self.readout.setText(readout)
        self._place_texts()

    def set_pixels(self, frame: np.ndarray) -> None:
        """Swap the grey pixels only (same size, texts and camera kept): a completion laid in place."""
        levels = (0, 255) if frame.dtype == np.uint8 else (0.0, 1.0)
        self.image_item.setImage(frame, levels=levels, autoLevels=False)

    def set_texts(self, label: str | None = None, readout: str | None = None) -> None:
        if label is not None:
            self.label.setText(label)
        if readout is not None:
            self.readout.setText(readout)
        self._place_texts()

    def displayed_array(self) -> np.ndarray | None:
        """The frame as it appears on screen (mirrored when the view is), float in [0, 1]."""
        image = self.image_item.image
        if image is None:
            return None
        image = image[:, ::-1] if self._mirror else image
        return image.astype(np.float32) / 255 if image.dtype == np.uint8 else image

    @property
    def frame_shape(self) -> tuple[int, int] | None:
        return self._shape

    @property
    def mirrored(self) -> bool:
        return self._mirror

    def _place_texts(self, *args) -> None:
        self.readout.setPos(6, self.view.height() - 4)
        below = 24 + (self.overlay_text.boundingRect().height() + 2 if self.overlay_text.isVisible() else 0)
        self.box_legend.setPos(6, below)

    def set_current(self, current: bool) -> None:
        self.view.setBorder(_CURRENT_PEN if current else None)

    # ------------------------------------------------------------------ camera
    def set_chest_wall(self, wall_x: float | None, mm_per_px: float = 1.0, inner_side: str = "right") -> None:
        """Where the chest wall is (image column) and which screen edge it belongs to."""
        self.wall_x, self.mm_per_px, self.inner_side = wall_x, float(mm_per_px), inner_side

    def _view_size(self) -> tuple[float, float]:
        return max(float(self.view.width()), 1.0), max(float(self.view.height()), 1.0)

    def _wall(self) -> float:
        if self.wall_x is not None:
            return self.wall_x
        # no chest wall known: the inner screen edge of the image stands in for it
        cols = self._shape[1] if self._shape else 0
        inner_is_high = (self.inner_side == "right") != self._mirror
        return float(cols) if inner_is_high else 0.0

    def camera(self) -> Camera | None:
        if self._shape is None:
            return None
        (x0, x1), (y0, y1) = self.view.viewRange()
        w, _ = self._view_size()
        left_x, right_x = (x1, x0) if self._mirror else (x0, x1)
        inner_x = right_x if self.inner_side == "right" else left_x
        wall = self._wall()
        direction = 1.0 if wall <= 0 else -1.0
        s = self.mm_per_px
        return Camera(zoom=(x1 - x0) * s / w, inner=(inner_x - wall) * direction * s, top=y0 * s)

    def apply_camera(self, camera: Camera) -> None:
        if self._shape is None:
            return
        w, h = self._view_size()
        wall = self._wall()
        direction = 1.0 if wall <= 0 else -1.0
        s = self.mm_per_px
        x_inner = wall + camera.inner * direction / s
        x_outer = wall + (camera.inner + camera.zoom * w) * direction / s
        y0 = camera.top / s
        self.view.setRange(xRange=sorted((x_inner, x_outer)), yRange=(y0, y0 + camera.zoom * h / s), padding=0)

    def fit_zoom(self) -> float | None:
        """The zoom at which the whole image fits this view."""
        if self._shape is None:
            return None
        w, h = self._view_size()
        rows, cols = self._shape
        return max(cols * self.mm_per_px / w, rows * self.mm_per_px / h)

    def size_mm(self) -> tuple[float, float]:
        rows, cols = self._shape or (0, 0)
        return rows * self.mm_per_px, cols * self.mm_per_px

    # ------------------------------------------------------------------ overlay
    def set_overlay(self, indices: np.ndarray, table: np.ndarray, opacity: float) -> None:
        """The method's map as entries (uint8) of an RGBA table: Qt draws it as an indexed image
        whose colours are the table, so a new table re-colours it without touching the pixels."""
        self.overlay_item.setImage(indices, lut=table, levels=None, autoLevels=False)
        self.overlay_item.setOpacity(float(opacity))
        self.overlay_item.setVisible(True)

    def set_overlay_table(self, table: np.ndarray, opacity: float) -> None:
        """Re-colour the map already shown (threshold, colour map, opacity): no new data."""
        self.overlay_item.setLookupTable(table)
        self.overlay_item.setOpacity(float(opacity))

    def set_planes(self, mask: np.ndarray | None) -> None:
        """The file's overlay planes (a boolean mask on the image grid) in yellow, or none."""
        if mask is None or not mask.any():
            self.planes_item.clear()
            self.planes_item.setVisible(False)
            return
        self.planes_item.setImage(mask.astype(np.uint8), lut=_PLANE_TABLE, levels=(0, 1), autoLevels=False)
        self.planes_item.setVisible(True)

    def has_planes(self) -> bool:
        return self.planes_item.isVisible() and self.planes_item.image is not None

    def clear_overlay(self) -> None:
        self.overlay_item.clear()
        self.overlay_item.setVisible(False)
        self.overlay_source = None
        self.contour_item.setData([], [])
        self.set_overlay_text("")

    def has_overlay(self) -> bool:
        return self.overlay_item.isVisible() and self.overlay_item.image is not None

    def set_contour(self, xy: np.ndarray | None) -> None:
        if xy is None or len(xy) == 0:
            self.contour_item.setData([], [])
        else:
            self.contour_item.setData(xy[:, 0], xy[:, 1], connect="finite")

    def set_overlay_text(self, text: str) -> None:
        self.overlay_text.setText(text)
        self.overlay_text.setVisible(bool(text))
        self._place_texts()

    # ------------------------------------------------------------------ ground truth
    def set_boxes(self, boxes: list[tuple[tuple[float, float, float, float], str]]) -> None:
        """Ground-truth boxes with their labels: each box numbered, the numbers explained in a
        legend in the view's top-right corner."""
        for item in self._boxes:
            self.view.removeItem(item)
        self._boxes = []
        for number, ((x0, y0, x1, y1), _) in enumerate(boxes, 1):
            rect = QtWidgets.QGraphicsRectItem(QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))
            rect.setPen(_BOX_PEN)
            rect.setZValue(15)
            tag = pg.TextItem(str(number), color=(255, 96, 64), anchor=(0, 1), fill=_TEXT_BACKING)
            tag.setPos(min(x0, x1) if not self._mirror else max(x0, x1), min(y0, y1))
            tag.setZValue(15)
            for item in (rect, tag):
                self.view.addItem(item, ignoreBounds=True)
                self._boxes.append(item)
        self.box_legend.setText("\n".join(f"{n}  {text}" for n, (_, text) in enumerate(boxes, 1)))
        self.box_legend.setVisible(bool(boxes))
        self._place_texts()

    def box_labels(self) -> list[str]:
        return self.box_legend.toPlainText().splitlines() if self.box_legend.isVisible() else []

    def box_count(self) -> int:
        return len(self._boxes) // 2

    # ------------------------------------------------------------------ shapes
    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self.view.tool = tool

    def set_shapes(self, shapes: list[tuple[int, str, tuple[float, float, float, float], str]]) -> None:
        """(id, kind, (x0, y0, x1, y1), caption) of every shape on the shown image."""
        wanted = {sid for sid, *_ in shapes}
        for sid in [s for s in self._shapes if s not in wanted]:
            roi, caption = self._shapes.pop(sid)
            self._shape_kinds.pop(sid, None)
            self.view.removeItem(roi)
            self.view.removeItem(caption)
        for sid, kind, (x0, y0, x1, y1), text in shapes:
            if sid not in self._shapes:
                self._shapes[sid] = self._make_shape(sid, kind, x0, y0, x1, y1)
                self._shape_kinds[sid] = kind
            roi, caption = self._shapes[sid]
            caption.setText(caption_lines(text))
            ys = y0 if kind == "line" else max(y0, y1)
            caption.ends = ((min(x0, x1), ys), (max(x0, x1), ys))  # its shape's two ends, image pixels
        self._fit_captions()

    def _fit_captions(self, *args) -> None:
        """Each caption under its shape, from the shape's left end on screen; from its right end,
        leftwards, where it would run past the view's right edge (a shape near the edge)."""
        right_edge = self.view.sceneBoundingRect().right() - 4
        for sid, (roi, caption) in self._shapes.items():
            ends = getattr(caption, "ends", None)
            if ends is None:
                continue
            (xa, ya), (xb, yb) = ends
            scene = [self.view.mapViewToScene(QtCore.QPointF(x, y)) for x, y in ends]
            left, right = (ends[0], ends[1]) if scene[0].x() <= scene[1].x() else (ends[1], ends[0])
            width = caption.boundingRect().width()
            start = min(scene[0].x(), scene[1].x())
            if start + width > right_edge and max(scene[0].x(), scene[1].x()) - width >= self.view.sceneBoundingRect().left():
                caption.setAnchor((1, 0))
                caption.setPos(*right)
            else:
                caption.setAnchor((0, 0))
                caption.setPos(*left)

    def _make_shape(self, sid: int, kind: str, x0, y0, x1, y1):
        if kind == "line":
            roi = pg.LineSegmentROI([(x0, y0), (x1, y1)], pen=_LINE_PEN)
        else:
            cls = _EllipseShape if kind == "ellipse" else pg.RectROI
            lo_x, lo_y = min(x0, x1), min(y0, y1)
            roi = cls((lo_x, lo_y), (max(abs(x1 - x0), 1.0), max(abs(y1 - y0), 1.0)), pen=_SHAPE_PEN)
        roi.setZValue(20)
        roi.sigRegionChangeFinished.connect(lambda r, i=sid: self.shape_edited.emit(i, self.shape_geometry(i)))
        caption = pg.TextItem("", color=(0, 229, 255) if kind != "line" else (255, 214, 0),
                              anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 160))
        caption.setZValue(21)
        self.view.addItem(roi, ignoreBounds=True)
        self.view.addItem(caption, ignoreBounds=True)
        return roi, caption

    def shape_geometry(self, sid: int) -> tuple[float, float, float, float]:
        roi, _ = self._shapes[sid]
        if self._shape_kinds[sid] == "line":
            p0, p1 = (roi.mapToParent(h.pos()) for h in roi.getHandles())
            return p0.x(), p0.y(), p1.x(), p1.y()
        pos, size = roi.pos(), roi.size()
        return pos.x(), pos.y(), pos.x() + size.x(), pos.y() + size.y()

    def shape_ids(self) -> list[int]:
        return list(self._shapes)

    def shape_caption(self, sid: int) -> str:
        return self._shapes[sid][1].toPlainText()

    # ------------------------------------------------------------------ mouse
    def _mouse_moved(self, scene_pos) -> None:
        if self._shape is None or not self.view.sceneBoundingRect().contains(scene_pos):
            self.cursor_left.emit()
            return
        p = self.view.mapSceneToView(scene_pos)
        self.cursor_moved.emit(p.x(), p.y())

    def leaveEvent(self, event):  # noqa: N802
        self.cursor_left.emit()
        super().leaveEvent(event)

    def mouseDoubleClickEvent(self, event):  # noqa: N802 (Qt naming)
        self.double_clicked.emit()
        event.accept()

    def to_image(self) -> QtGui.QImage:
        """What the canvas shows, rendered now (screenshots, tests)."""
        return self.grab().toImage()
