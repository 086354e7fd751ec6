"""What each canvas shows: the layout (2 x 2 hanging or one view), frames with the user's
window, the chest wall and mirroring, ground-truth boxes, the current view, window / level."""
from __future__ import annotations

import numpy as np

from app.presenters.base import SINGLE, Context, Presenter, readout
from inference.studies.image import Image


def undecodable(exc: BaseException) -> str:
    """The line a view shows when its pixels cannot be decoded: the loader's sentence, never a dump."""
    from inference.errors import MammolensError

    if isinstance(exc, MammolensError):
        return str(getattr(exc, "reason", exc))
    return f"the pixels cannot be decoded ({type(exc).__name__})"


class DisplayPresenter(Presenter):
    def __init__(self, context: Context):
        super().__init__(context)
        self._shown: dict[int, int | None] = {}  # id(canvas) -> id(image) it was last fitted for
        self._preset_list: list = []
        s, w = self.session, self.window
        s.layout_changed.connect(self._on_layout_changed)
        s.current_changed.connect(self._on_current_changed)
        s.view_changed.connect(self._on_view_changed)
        s.labels_changed.connect(self._refresh_boxes)
        w.preset_chosen.connect(self._on_preset_chosen)
        w.function_chosen.connect(self._on_function_chosen)
        a = w.actions
        a["toggle_layout"].triggered.connect(self.session.toggle_single)
        a["fit"].triggered.connect(lambda: self.link().fit())
        a["one_to_one"].triggered.connect(lambda: self.link().one_to_one(self.current_canvas()))
        a["zoom_in"].triggered.connect(lambda: self.link().zoom_by(1.25))
        a["zoom_out"].triggered.connect(lambda: self.link().zoom_by(0.8))
        a["auto_window"].triggered.connect(lambda: self._on_current(s.auto_window))
        a["invert"].triggered.connect(lambda: self._on_current(lambda im: s.set_invert(im, not s.state(im).invert)))
        a["reset_display"].triggered.connect(lambda: self._on_current(s.reset_display))
        a["overlay_planes"].toggled.connect(self._on_planes_toggled)
        for canvas in w.canvases():
            canvas.double_clicked.connect(lambda c=canvas: self._on_double_click(c))
            canvas.activated.connect(lambda c=canvas: self._on_activated(c))
            canvas.view.window_dragged.connect(lambda dx, dy, c=canvas: self._on_window_drag(c, dx, dy))

    # ------------------------------------------------------------------ layout
    def link(self):
        return self.window.single_link if self.session.single else self.window.hanging_link

    def current_canvas(self):
        if self.session.single:
            return self.window.single
        return next((self.canvas(cell) for cell in self.session.cells_showing(self.session.current)
                     if cell != SINGLE), None)

    def _on_layout_changed(self) -> None:
        refit = False
        for cell, image in self.session.cells.items():
            canvas = self.canvas(cell)
            if self._shown.get(id(canvas)) != (id(image) if image is not None else None):
                self._shown[id(canvas)] = id(image) if image is not None else None
                self.show_on(canvas, image)
                refit = refit or (cell == SINGLE) == self.session.single
        if self.session.single:
            self.window.show_single()
            self.window.single.setFocus()
        else:
            self.window.show_grid()
        if refit:  # a new image: fit, even when it has the size of the last one
            self.link().fit()

    def _on_double_click(self, canvas) -> None:
        if canvas is self.window.single:
            self.session.toggle_single()
        elif self.image_on(canvas) is not None:
            self.session.show_single(self.image_on(canvas))

    def _on_activated(self, canvas) -> None:
        image = self.image_on(canvas)
        if image is not None and image is not self.session.current:
            self.session.set_current(image)

    def _on_current_changed(self, image: Image | None) -> None:
        for cell, shown in self.session.cells.items():
            self.canvas(cell).set_current(not self.session.single and image is not None and shown is image
                                          and cell != SINGLE)
        if image is not None:
            self._update_presets()

    def _on_current(self, change) -> None:
        if self.session.current is not None:
            change(self.session.current)

    # ------------------------------------------------------------------ frames
    def _inner_side(self, canvas, image: Image) -> str:
        """The screen edge the chest wall belongs to: the centre line in the hanging (right
        breasts on the left), and the same side in one view; unknown laterality keeps the file's."""
        cell = self.cell_of(canvas)
        if cell != SINGLE:
            return "right" if cell[0] == "R" else "left"
        if image.laterality in ("R", "L"):
            return "right" if image.laterality == "R" else "left"
        return "left" if self.session.wall_side(image) == "L" else "right"

    def mirror_for(self, image: Image, canvas) -> bool:
        """Mirror when the stored chest wall is on the other side than the view wants it."""
        return (self.session.wall_side(image) == "L") == (self._inner_side(canvas, image) == "right")

    def label(self, image: Image) -> str:
        state = self.session.state(image)
        preset = state.preset or image.default_preset()
        return (image.name + (" DBT" if image.is_volume else "") + f"  {preset.label}"
                + ("  inverted" if state.invert else ""))

    def show_on(self, canvas, image: Image | None) -> None:
        if image is None:
            canvas.show_frame(None, "", "no image")
            canvas.set_boxes([])
            canvas.set_planes(None)
            canvas.view.wheel_steps_slices = False
            return
        try:
            frame = self._preview(image)
            if frame is None:
                frame = self.session.screen_frame(image)
        except Exception as exc:  # noqa: BLE001 (pixels that cannot be decoded: this view says so, the others show)
            canvas.show_frame(None, image.name, undecodable(exc))
            canvas.set_boxes([])
            return
        spacing = image.pixel_spacing[1] if image.pixel_spacing else 1.0
        wall_x = 0.0 if self.session.wall_side(image) == "L" else float(image.cols)
        canvas.set_chest_wall(wall_x, spacing, self._inner_side(canvas, image))
        canvas.view.wheel_steps_slices = image.is_volume
        canvas.show_frame(frame, self.label(image), readout(self.session, image), self.mirror_for(image, canvas))
        canvas.set_boxes(self.session.boxes_on(image))
        self._draw_planes(canvas, image)

    def _preview(self, image: Image):
        """A JPEG 2000 frame not decoded yet: its reduced-resolution levels now (a fraction of the
        decode), the full frame decoded in the background and shown when it is there."""
        preview = self.session.preview_frame(image)
        if preview is None:
            return None
        frame = self.session.state(image).frame

        def shown(_value) -> None:
            if self.session.state(image).frame == frame:
                for canvas in self.canvases_showing(image):
                    self.show_on(canvas, image)

        def failed(message: str, _details: str) -> None:
            for canvas in self.canvases_showing(image):
                canvas.show_frame(None, image.name, message)

        key = ("full frame", id(image), frame)
        if not self.jobs.running(key):
            self.jobs.submit(f"decoding {image.name}", lambda job: self.session.screen_frame(image, frame),
                             key=key, on_result=shown, quiet=True, on_error=failed)
        return preview

    def _draw_planes(self, canvas, image: Image | None) -> None:
        """The file's overlay planes and the SEG layers beside it (on the shown frame), in yellow."""
        masks = []
        if image is not None and self.window.actions["overlay_planes"].isChecked():
            masks = [p.mask for p in getattr(image, "overlay_planes", None) or []]
            frame = self.session.state(image).frame
            for layer in getattr(image, "layers", []):
                try:
                    mask = layer.values(frame) if layer.is_segmentation else None
                except Exception as exc:  # noqa: BLE001 (an undecodable SEG: said in the status bar, the image shows)
                    self.status(f"{layer.name}: cannot be read ({type(exc).__name__})")
                    mask = None
                if mask is not None:
                    masks.append(mask)
        canvas.set_planes(np.logical_or.reduce(masks) if masks else None)

    def _on_planes_toggled(self, shown: bool) -> None:
        for canvas, image in self.placed():
            self._draw_planes(canvas, image)
        current = self.session.current
        if shown and current is not None and not getattr(current, "overlay_planes", None) \
                and not any(layer.is_segmentation for layer in getattr(current, "layers", [])):
            self.status(f"{current.name} has no DICOM overlay planes and no SEG beside it")

    def _on_view_changed(self, image: Image) -> None:
        for canvas in self.canvases_showing(image):
            try:
                frame = self.session.screen_frame(image)
            except Exception as exc:  # noqa: BLE001 (one undecodable slice: said on its view)
                canvas.show_frame(None, image.name, undecodable(exc))
                continue
            canvas.show_frame(frame, self.label(image), readout(self.session, image), canvas.mirrored)
            if image.is_volume:
                canvas.set_boxes(self.session.boxes_on(image))
                if getattr(image, "layers", None):
                    self._draw_planes(canvas, image)  # a SEG's slice
        if image is self.session.current:
            self._update_presets()

    def _refresh_boxes(self) -> None:
        for canvas, image in self.placed():
            canvas.set_boxes(self.session.boxes_on(image))

    # ------------------------------------------------------------------ window / level
    def _update_presets(self) -> None:
        image = self.session.current
        state = self.session.state(image)
        presets = list(image.presets) or [image.default_preset()]
        labels = [p.label for p in presets]
        chosen = state.preset or presets[0]
        if chosen in presets:
            current = presets.index(chosen)
        else:
            labels.append(chosen.label)
            current = len(labels) - 1
        self._preset_list = presets
        function = None if chosen.kind == "lut" else (chosen.function if chosen.kind == "window" else "LINEAR_EXACT")
        self.window.set_presets(labels, current, function)
        self.window.actions["invert"].setChecked(state.invert)

    def _on_preset_chosen(self, index: int) -> None:
        if self.session.current is not None and index < len(self._preset_list):
            self.session.set_preset(self.session.current, self._preset_list[index])

    def _on_function_chosen(self, function: str) -> None:
        if self.session.current is not None:
            self.session.set_voi_function(self.session.current, function)

    def _on_window_drag(self, canvas, dx: float, dy: float) -> None:
        image = self.image_on(canvas)
        if image is None:
            return
        if image is not self.session.current:
            self.session.set_current(image)
        preset = self.session.drag_window(image, dx, dy)
        self.status(f"{image.name}: window C {preset.center:.0f} / W {preset.width:.0f}", 2000)
