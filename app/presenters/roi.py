"""ROI tools: drawing and editing shapes, their measurements (listed, copied, exported as CSV),
completing a rectangle with the inpainting engine, and exporting the current view."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from app.jobs_qt import JobKey
from app.presenters.base import Context, Presenter
from inference.files import atomic_write_bytes, atomic_write_text, safe_file_name
from inference.studies.image import Image


class RoiPresenter(Presenter):
    def __init__(self, context: Context):
        super().__init__(context)
        self.engines = context.engines
        self.last_export: list[Path] = []
        self.completion = None  # the last "Inpaint rectangle" dialog
        self._captions: dict[tuple, str] = {}  # (image id, shape, frame) -> measurement text
        s, w = self.session, self.window
        s.opened.connect(lambda studies: self._captions.clear())
        s.shapes_changed.connect(self._on_shapes_changed)
        s.current_changed.connect(lambda image: self._update_panel())
        s.bundles_changed.connect(self._update_tools)
        s.layout_changed.connect(self._redraw_all)
        w.tool_chosen.connect(self.set_tool)
        w.export_requested.connect(self.export_view)
        w.overlay_panel.export_requested.connect(w.actions["export_view"].trigger)
        w.measurements.clear_requested.connect(self._clear_shapes)
        w.measurements.export_requested.connect(self.export_measurements)
        w.actions["inpaint"].triggered.connect(self.inpaint_roi)
        w.actions["clear_shapes"].triggered.connect(self._clear_shapes)
        w.export_folder = str(self.settings.value("export/folder", "") or Path.home())  # never the working folder
        for canvas in w.canvases():
            canvas.view.shape_drawn.connect(lambda tool, geom, c=canvas: self._on_shape_drawn(c, tool, geom))
            canvas.shape_edited.connect(lambda sid, geom, c=canvas: self._on_shape_edited(c, sid, geom))

    # ------------------------------------------------------------------ shapes
    def set_tool(self, tool: str) -> None:
        for canvas in self.window.canvases():
            canvas.set_tool(tool)
        self.window.actions[f"tool_{tool}"].setChecked(True)

    def _on_shape_drawn(self, canvas, tool: str, geometry) -> None:
        image = self.image_on(canvas)
        if image is None:
            return
        x0, y0, x1, y1 = geometry
        if math.hypot(x1 - x0, y1 - y0) < 2:  # a click, not a shape
            return
        if image is not self.session.current:
            self.session.set_current(image)
        self.session.add_shape(image, tool, x0, y0, x1, y1)

    def _on_shape_edited(self, canvas, shape_id: int, geometry) -> None:
        image = self.image_on(canvas)
        if image is not None:
            self.session.move_shape(image, shape_id, *geometry)

    def caption(self, image: Image, shape) -> str:
        frame = self.session.state(image).frame
        key = (id(image), shape.id, shape.kind, shape.x0, shape.y0, shape.x1, shape.y1, frame)
        if key not in self._captions:
            self._captions[key] = self.session.measure(image, shape)
        return self._captions[key]

    def _draw(self, canvas, image: Image) -> None:
        canvas.set_shapes([(s.id, s.kind, (s.x0, s.y0, s.x1, s.y1), self.caption(image, s))
                           for s in self.session.shapes_of(image)])

    def _redraw_all(self) -> None:
        for canvas, image in self.placed():
            self._draw(canvas, image)

    def _on_shapes_changed(self, image: Image) -> None:
        for canvas in self.canvases_showing(image):
            self._draw(canvas, image)
        if image is self.session.current:
            self._update_panel()

    def _update_panel(self) -> None:
        image = self.session.current
        if image is not None:
            self.window.measurements.set_lines([f"#{s.id} {image.name}: {self.caption(image, s)}"
                                                for s in self.session.shapes_of(image)])
        self._update_tools()

    def _clear_shapes(self) -> None:
        if self.session.current is not None:
            self.session.clear_shapes(self.session.current)

    def measurements_csv(self) -> str:
        """Every shape of the opened images: view, kind, geometry in pixels, what it measures."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["shape", "image", "kind", "x0", "y0", "x1", "y1", "measurement"])
        for image in (self.session.studies.images() if self.session.studies else []):
            for s in self.session.shapes_of(image):
                writer.writerow([s.id, self.session.export_stem(image), s.kind, f"{s.x0:.1f}", f"{s.y0:.1f}",
                                 f"{s.x1:.1f}", f"{s.y1:.1f}", self.caption(image, s)])
        return text.getvalue()

    def export_measurements(self, path: str) -> Path:
        path = Path(path)
        atomic_write_text(path, self.measurements_csv())
        self.status(f"Measurements written to {path.name}", 8000)
        return path

    # ------------------------------------------------------------------ inpainting a rectangle
    def _update_tools(self) -> None:
        """Inpaint needs an inpainting engine, a bundle for it and a rectangle on the current view."""
        from inference.methods import first_usable, unavailable_reason

        bundles = self.session.bundles
        action = self.window.actions["inpaint"]
        bundle = first_usable(bundles, "completes_roi")
        rect = self._last_rectangle()
        action.setEnabled(bundle is not None and rect is not None)
        if bundle is None:
            action.setToolTip(unavailable_reason(bundles, "completes_roi"))
        elif rect is None:
            action.setToolTip("Draw a rectangle first (M), then inpaint it")
        else:
            action.setToolTip(f"Complete rectangle #{rect.id} with {bundle.name} (Shift+I)")

    def _last_rectangle(self):
        if self.session.current is None:
            return None
        rects = [s for s in self.session.shapes_of(self.session.current) if s.kind == "rect"]
        return rects[-1] if rects else None

    def inpaint_roi(self):
        """Complete the last rectangle from its surroundings (inpainting engine, paper 002)."""
        from inference.methods import first_usable

        bundle = first_usable(self.session.bundles, "completes_roi")
        image, rect = self.session.current, self._last_rectangle()
        if bundle is None or image is None or rect is None:
            return None
        frame = self.session.state(image).frame
        device = self.session.parameters(bundle.method).get("device", "auto")
        laterality = self.session.laterality(image)

        def work(job):
            engine = self.engines.get(bundle, device)
            display = image.display(frame)
            return display, engine.complete(display, laterality, rect.box(), progress=job.report, cancel=job.token)

        def done(value):
            from viewer.panels import show_completion

            display, result = value
            self.completion = show_completion(self.window, display, rect.box(), result)
            self.completion.in_place.toggled.connect(lambda on: self.lay_in_place(image, frame, result, on))
            self.completion.finished.connect(lambda code: self.lay_in_place(image, frame, result, False))

        return self.jobs.submit(f"Inpainting rectangle #{rect.id}", work, key=JobKey("inpaint", id(image), rect.id),
                                on_result=done, on_error=self.failed)

    def lay_in_place(self, image: Image, frame: int, result, on: bool) -> None:
        """Show the completed rectangle in the view itself (the file's window, the user's inversion),
        or the frame as it is again."""
        if self.session.state(image).frame != frame:
            return
        if on:
            completed = np.asarray(result.maps["completion"], dtype=np.float32)
            if self.session.state(image).invert:
                completed = 1.0 - completed
            pixels = (np.clip(completed, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
        else:
            pixels = self.session.screen_frame(image)
        for canvas in self.canvases_showing(image):
            canvas.set_pixels(pixels)

    # ------------------------------------------------------------------ export
    def export_view(self, folder) -> object | None:
        """The current view (its window, slab and inversion) with its overlay as a PNG, and the raw
        map as .npy, in the original pixel grid; named from the pseudonymous patient key and view
        only. Runs as a job: encoding a full-field PNG takes longer than the UI may stall."""
        from app.heatmap import npy_bytes, overlay_png

        image = self.session.current
        if image is None:
            self.status("Nothing to export: open a study first")
            return None
        folder = Path(folder)
        self.settings.setValue("export/folder", str(folder))
        self.window.export_folder = str(folder)
        state = self.session.state(image)
        frame, bundle = state.frame, state.overlay
        stem = self.session.export_stem(image, frame)
        result = self.session.result(image, frame, bundle) if bundle is not None else None
        style = self.session.style(bundle) if result is not None else None
        if style is not None:
            from app.heatmap import map_label
            from inference.methods import METHODS

            label = map_label(METHODS[bundle.method], self.session.parameters(bundle.method),
                              style.map_name)[0].replace(" ", "-")  # "DMSE", not the key "difference"
        display = self.session.displayed(image)
        boxes = [box for box, _ in self.session.boxes_on(image, frame)]  # as drawn on the view

        def work(job):
            folder.mkdir(parents=True, exist_ok=True)
            if result is None:
                atomic_write_bytes(folder / f"{stem}.png", overlay_png(display, None, None, boxes))
                return [folder / f"{stem}.png"]
            value_map = np.asarray(result.maps[style.map_name], dtype=np.float32)
            base = f"{stem}_{safe_file_name(bundle.name)}_{safe_file_name(label)}"
            atomic_write_bytes(folder / f"{base}.png", overlay_png(display, value_map, style, boxes))
            atomic_write_bytes(folder / f"{base}.npy", npy_bytes(value_map))
            return [folder / f"{base}.png", folder / f"{base}.npy"]

        def done(paths):
            self.last_export = paths
            self.status("Exported " + ", ".join(p.name for p in paths), 10000)

        return self.jobs.submit(f"Export {stem}", work, key=JobKey("export", stem), on_result=done, on_error=self.failed)
