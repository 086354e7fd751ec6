"""Linked zoom and pan for the hanging: one camera, every view placed by it.

Four images of different widths cannot share a ViewBox range, and a plain pyqtgraph link would
pull the chest walls away from the centre line. Instead the views share one
:class:`~viewer.canvas.Camera` (zoom in mm per screen pixel, distance from the chest wall at the
inner edge, distance from the top) and each view turns it into its own range. A wheel zoom or a
drag in any view becomes the camera, and the others follow mirrored: the right breast's chest
wall stays as far left of the centre line as the left breast's is right of it. The one-view mode
uses the same class with a single canvas, so fit and 1:1 behave the same there.
"""
from __future__ import annotations

from functools import partial

from PySide6 import QtCore

from viewer.canvas import Camera, ImageCanvas


class ViewLink(QtCore.QObject):
    camera_changed = QtCore.Signal()

    def __init__(self, canvases: list[ImageCanvas], parent=None):
        super().__init__(parent)
        self.canvases = list(canvases)
        self.camera: Camera | None = None
        self.fitting = True  # follow the window's size until the user zooms or pans
        self._applying = False
        for canvas in self.canvases:
            canvas.link = self
            canvas.view.sigRangeChangedManually.connect(partial(self._moved_by_user, canvas))
            canvas.view.sigResized.connect(partial(self._resized, canvas))

    def _shown(self) -> list[ImageCanvas]:
        return [c for c in self.canvases if c.frame_shape is not None]

    def fit(self) -> None:
        """The same zoom for all, small enough for the largest image; chest walls on the inner
        edges, images centred vertically on the tallest."""
        shown = self._shown()
        zooms = [c.fit_zoom() for c in shown]
        if not zooms:
            return
        zoom = max(zooms)
        tallest = max(c.size_mm()[0] for c in shown)
        height = min(c._view_size()[1] for c in shown)
        self.fitting = True
        self._set(Camera(zoom=zoom, inner=0.0, top=-(zoom * height - tallest) / 2))

    def refit(self, canvas: ImageCanvas) -> None:
        """A canvas got an image of another size: fit again, or place it by the current camera."""
        if self.fitting or self.camera is None:
            self.fit()
        else:
            self._place(canvas)

    def one_to_one(self, reference: ImageCanvas | None = None) -> None:
        """One image pixel per screen pixel (of ``reference``, else the first view), keeping the
        chest wall where it is and the vertical centre."""
        shown = self._shown()
        if not shown:
            return
        reference = reference if reference in shown else shown[0]
        current = self.camera or reference.camera()
        height = reference._view_size()[1]
        centre = current.top + current.zoom * height / 2
        zoom = reference.mm_per_px
        self.fitting = False
        self._set(Camera(zoom=zoom, inner=current.inner, top=centre - zoom * height / 2))

    def zoom_by(self, factor: float) -> None:
        """Zoom about the cells' centres (keyboard zoom)."""
        shown = self._shown()
        if not shown or self.camera is None:
            return
        w, h = shown[0]._view_size()
        cam = self.camera
        cx, cy = cam.inner + cam.zoom * w / 2, cam.top + cam.zoom * h / 2
        zoom = cam.zoom / factor
        self.fitting = False
        self._set(Camera(zoom=zoom, inner=cx - zoom * w / 2, top=cy - zoom * h / 2))

    def _set(self, camera: Camera) -> None:
        self.camera = camera
        for canvas in self._shown():
            self._place(canvas)
        self.camera_changed.emit()

    def _place(self, canvas: ImageCanvas) -> None:
        if self.camera is None:
            return
        self._applying = True
        try:
            canvas.apply_camera(self.camera)
        finally:
            self._applying = False

    def _moved_by_user(self, canvas: ImageCanvas, *args) -> None:
        if self._applying or canvas.frame_shape is None:
            return
        camera = canvas.camera()
        if camera is None:
            return
        self.fitting = False
        self.camera = camera
        for other in self._shown():
            if other is not canvas:
                self._place(other)
        self.camera_changed.emit()

    def _resized(self, canvas: ImageCanvas, *args) -> None:
        if self.fitting:
            self.fit()
        else:
            self._place(canvas)
