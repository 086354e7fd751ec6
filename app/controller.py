"""The controller that keeps the viewer widgets in step with the session.

This is where ``app`` meets Qt: it loads through the Qt-free :class:`app.session.Session`, runs
every method through the :class:`app.jobs_qt.JobRunner` and hands arrays to :mod:`viewer`
widgets. The widgets never decode, run models or write files.

Settings (recent files, overlay scope, cine speed, window layout, export folder) persist with
QSettings in an ini file; ``$MAMMOLENS_SETTINGS`` names another file (tests point it at a temp
folder).
"""
from __future__ import annotations

import math
import os
import traceback
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from app.gui import demo_study_path
from app.session import ResultCache, Session
from inference.errors import MammolensError
from inference.files import safe_file_name
from inference.studies.image import Image
from inference.studies.study import Study, StudySet

SETTINGS_ENV = "MAMMOLENS_SETTINGS"
RECENT_MAX = 10
READ_AHEAD = 3  # DBT slices prepared ahead of the one shown


def app_settings() -> QtCore.QSettings:
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QtCore.QSettings(path, QtCore.QSettings.Format.IniFormat)
    return QtCore.QSettings(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope,
                            "mammolens", "mammolens")


def _as_list(value) -> list[str]:
    """QSettings hands a one-element list back as a plain string."""
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


class Controller(QtCore.QObject):
    def __init__(self, session: Session, window, models_dirs=(), settings: QtCore.QSettings | None = None):
        super().__init__(window)
        from app.jobs_qt import JobRunner
        from inference.methods import EngineCache

        self.session = session
        self.window = window
        self.settings = settings or app_settings()
        self.models_dirs = [Path(d) for d in models_dirs]
        self.jobs = JobRunner(threads=2, parent=self)
        self.engines = EngineCache()
        self.single_image: Image | None = None
        self.current_image: Image | None = None
        self.images_on: dict = {}  # canvas -> image it shows
        self.method_bundles: list = []  # the bundles behind the method toggles, in order
        self.last_export: list[Path] = []
        self.show_identifiers = False
        self._walls: dict[int, str] = {}  # image id -> chest-wall side of the stored image
        self._captions: dict[tuple, str] = {}  # (image id, shape, frame) -> measurement text
        self._modality: tuple[tuple, np.ndarray] | None = None  # last frame's modality values (readout)
        self._tables: dict[str, np.ndarray] = {}
        self._panel_method: str | None = None
        self._last_frame: dict[int, int] = {}  # image id -> last frame shown (scroll direction)
        self._ahead: dict[int, list[tuple]] = {}  # image id -> what the read-ahead prepares (key, make)
        self.cine = QtCore.QTimer(self)
        self.cine.timeout.connect(self._cine_step)

        session.opened.connect(self._on_opened)
        session.study_changed.connect(self._on_study_changed)
        session.view_changed.connect(self._refresh_image)
        session.overlay_changed.connect(self._refresh_overlay)
        session.result_added.connect(self._on_result_added)
        session.style_changed.connect(self._on_style_changed)
        session.labels_changed.connect(self._refresh_all_boxes)
        session.shapes_changed.connect(self._refresh_shapes)
        session.bundles_changed.connect(self._on_bundles_changed)
        self._connect_window()
        self.jobs.changed.connect(self._on_jobs_changed)
        window.installEventFilter(self)
        self._restore_settings()
        self.reload_bundles()
        self._update_tools()

    # ------------------------------------------------------------------ wiring
    def _connect_window(self) -> None:
        w = self.window
        w.open_requested.connect(self.open)
        w.open_demo_requested.connect(lambda: self.open(demo_study_path()))
        w.open_labels_requested.connect(self.open_labels)
        w.export_requested.connect(self.export_view)
        w.browser.image_activated.connect(self._on_activated)
        w.frame_requested.connect(self._on_frame_requested)
        w.method_toggled.connect(self._on_method_toggled)
        w.tool_chosen.connect(self.set_tool)
        w.preset_chosen.connect(self._on_preset_chosen)
        w.function_chosen.connect(self._on_function_chosen)
        w.slice_bar.play_toggled.connect(self._on_play)
        w.slice_bar.fps_changed.connect(self._on_fps)
        w.slice_bar.slab_changed.connect(self._on_slab)
        w.overlay_panel.style_edited.connect(self._on_style_edited)
        w.overlay_panel.parameter_edited.connect(self._on_parameter_edited)
        w.overlay_panel.run_volume_requested.connect(self.run_volume)
        w.overlay_panel.export_requested.connect(w.actions["export_view"].trigger)
        w.info.identifiers_toggled.connect(self._on_identifiers)
        w.measurements.clear_requested.connect(self._clear_shapes)
        w.synthesis.generate_requested.connect(self.generate_patches)
        w.synthesis.export_requested.connect(self.export_patches)
        w.scope.currentIndexChanged.connect(lambda i: self.settings.setValue("overlay/scope", i))
        a = w.actions
        a["toggle_layout"].triggered.connect(self.toggle_layout)
        a["fit"].triggered.connect(lambda: self._link().fit())
        a["one_to_one"].triggered.connect(lambda: self._link().one_to_one(self._current_canvas()))
        a["zoom_in"].triggered.connect(lambda: self._link().zoom_by(1.25))
        a["zoom_out"].triggered.connect(lambda: self._link().zoom_by(0.8))
        a["auto_window"].triggered.connect(lambda: self._on_current(self.session.auto_window))
        a["invert"].triggered.connect(
            lambda: self._on_current(lambda im: self.session.set_invert(im, not self.session.state(im).invert)))
        a["reset_display"].triggered.connect(lambda: self._on_current(self.session.reset_display))
        for name, delta in (("next_slice", 1), ("previous_slice", -1), ("next_slices", 10), ("previous_slices", -10),
                            ("first_slice", -10**6), ("last_slice", 10**6)):
            a[name].triggered.connect(lambda checked=False, d=delta: self.step_slice(d))
        a["inpaint"].triggered.connect(self.inpaint_roi)
        a["clear_shapes"].triggered.connect(self._clear_shapes)
        a["run_volume"].triggered.connect(self.run_volume)
        a["cancel_job"].triggered.connect(self.cancel_job)
        a["threshold_up"].triggered.connect(lambda: self._nudge_threshold(+1))
        a["threshold_down"].triggered.connect(lambda: self._nudge_threshold(-1))
        for canvas in w.canvases():
            self.images_on[canvas] = None
            canvas.double_clicked.connect(lambda c=canvas: self._toggle_single(c))
            canvas.activated.connect(lambda c=canvas: self._set_current_canvas(c))
            canvas.view.window_dragged.connect(lambda dx, dy, c=canvas: self._on_window_drag(c, dx, dy))
            canvas.view.slice_wheel.connect(lambda steps, c=canvas: self._on_wheel(c, steps))
            canvas.view.shape_drawn.connect(lambda tool, geom, c=canvas: self._on_shape_drawn(c, tool, geom))
            canvas.shape_edited.connect(lambda sid, geom, c=canvas: self._on_shape_edited(c, sid, geom))
            canvas.cursor_moved.connect(lambda x, y, c=canvas: self._on_cursor(c, x, y))
            canvas.cursor_left.connect(lambda: self.window.cursor_label.setText(""))

    def eventFilter(self, obj, event):  # noqa: N802 (Qt naming)
        if obj is self.window and event.type() == QtCore.QEvent.Type.Close:
            self.shutdown()
        return False

    def shutdown(self) -> None:
        self.cine.stop()
        self.jobs.cancel_all()
        self.jobs.wait(5000)
        self.settings.setValue("window/geometry", self.window.saveGeometry())
        self.settings.setValue("window/state", self.window.saveState())
        self.settings.sync()

    def _restore_settings(self) -> None:
        s, w = self.settings, self.window
        if s.value("window/geometry") is not None:
            w.restoreGeometry(s.value("window/geometry"))
            w.restoreState(s.value("window/state"))
        w.set_recent(_as_list(s.value("recent")))
        w.scope.setCurrentIndex(int(s.value("overlay/scope", 0)))
        w.slice_bar.fps.setValue(int(s.value("cine/fps", 10)))
        w.export_folder = str(s.value("export/folder", ""))
        from app.heatmap import COLORMAPS

        colormap = str(s.value("overlay/colormap", COLORMAPS[0]))
        self.session.style_defaults = {"colormap": colormap if colormap in COLORMAPS else COLORMAPS[0],
                                       "opacity": float(s.value("overlay/opacity", 0.6))}

    # ------------------------------------------------------------------ loading
    def open(self, path) -> StudySet | None:
        """Open a file, folder or DICOMDIR; errors become a message in the window."""
        self.cine.stop()
        try:
            studies = self.session.open(path)
        except MammolensError as exc:
            self.window.show_error(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 (a bad input must never take the window down)
            self.window.show_error(f"{Path(path).name}: cannot be opened ({type(exc).__name__}: {exc}).",
                                   traceback.format_exc())
            return None
        self._remember(path)
        self._make_thumbnails(studies)
        return studies

    def _remember(self, path) -> None:
        text = str(Path(path).resolve())
        recent = [p for p in _as_list(self.settings.value("recent")) if p != text]
        recent = [text] + recent[: RECENT_MAX - 1]
        self.settings.setValue("recent", recent)
        self.window.set_recent(recent)

    def open_labels(self, path) -> int | None:
        from inference.labels import LabelsError

        try:
            matched = self.session.open_labels(path)
        except LabelsError as exc:
            self.window.show_error(str(exc))
            return None
        self.window.statusBar().showMessage(f"{Path(path).name}: {matched} lesion box(es) on the opened images", 8000)
        return matched

    def _on_opened(self, studies: StudySet) -> None:
        self._walls.clear()
        self._captions.clear()
        self._modality = None
        tree = []
        for patient in studies.patients:
            study_rows = []
            for s_index, study in enumerate(patient.studies, 1):
                series_rows = []
                for series in study.series:
                    image_rows = [(im.name + (f" (DBT, {im.n_frames} slices)" if im.is_volume else ""), im,
                                   f"{im.cols}x{im.rows}", []) for im in series.images]
                    series_rows.append((f"Series {series.number} {series.description}".strip(), None, "", image_rows))
                study_rows.append((f"Study {s_index} {study.date}".strip(), study, "", series_rows))
            tree.append((patient.key, None, "", study_rows))
        self.window.browser.populate(tree, [str(f) for f in studies.failures])
        self.window.empty_hint.setVisible(False)
        labelled = sum(1 for im in studies.images() if any(r.box() for r in self.session.labels_for(im)))
        self.window.statusBar().showMessage(
            f"{len(studies.images())} image(s) in {len(studies.studies())} study(ies)"
            + (f"; {len(studies.failures)} file(s) could not be read" if studies.failures else "")
            + (f"; ground-truth boxes on {labelled} image(s)" if labelled else ""))

    def _make_thumbnails(self, studies: StudySet) -> None:
        images = studies.images()

        def work(job):
            for i, image in enumerate(images):
                job.token.raise_if_cancelled()
                frame = image.n_frames // 2
                step = max(1, int(math.ceil(max(image.rows, image.cols) / 56)))
                small = image.display(frame)[::step, ::step]
                job.deliver((image, (small * 255 + 0.5).astype(np.uint8)))
                job.report(i + 1, len(images), "thumbnails")
            return len(images)

        self.jobs.submit("Thumbnails", work, key=("thumbnails",), quiet=True,
                         on_partial=lambda value: self.window.browser.set_thumbnail(*value),
                         on_error=self._job_failed)

    def _on_activated(self, payload) -> None:
        if isinstance(payload, Study):
            self.session.show_study(payload)
        elif isinstance(payload, Image):
            self.show_single(payload)

    def _on_study_changed(self, study: Study) -> None:
        hanging = study.hanging()
        if self._hangs(study):
            for key, canvas in self.window.cells.items():
                image = hanging.get(key)
                self.images_on[canvas] = image
                self._show_on(canvas, image)
            self.single_image = None
            self.images_on[self.window.single] = None
            self.window.show_grid()
            self.window.hanging_link.fit()
            first = next(hanging[k] for k in (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")) if k in hanging)
            self._set_current(first)
        elif study.images():
            self.show_single(study.images()[0])

    @staticmethod
    def _hangs(study: Study) -> bool:
        """Two screening views or more go to the 2 x 2; one alone reads better in one view."""
        return len(study.hanging()) > 1

    # ------------------------------------------------------------------ display
    def wall_side(self, image: Image) -> str:
        """"L" when the stored image has its chest wall on the left edge, "R" on the right."""
        key = id(image)
        if key not in self._walls:
            from inference.studies.plain_io import infer_laterality

            state = self.session.state(image)
            untouched = state.preset is None and not state.invert and state.slab == 1
            # the 8-bit frame about to be shown serves when the user has not changed its display yet
            pixels = self.session.screen_frame(image) if untouched else image.display(state.frame)
            self._walls[key] = infer_laterality(pixels) or "L"
        return self._walls[key]

    def _inner_side(self, canvas, image: Image) -> str:
        """The screen edge the chest wall belongs to: the centre line in the hanging (right
        breasts on the left), and the same side in one view; unknown laterality keeps the file's."""
        for key, cell in self.window.cells.items():
            if cell is canvas:
                return "right" if key[0] == "R" else "left"
        if image.laterality in ("R", "L"):
            return "right" if image.laterality == "R" else "left"
        return "left" if self.wall_side(image) == "L" else "right"

    def mirror_for(self, image: Image, canvas=None) -> bool:
        """Mirror when the stored chest wall is on the other side than the view wants it."""
        inner = self._inner_side(canvas, image)
        return (self.wall_side(image) == "L") == (inner == "right")

    def _readout(self, image: Image) -> str:
        size = f"{image.cols} x {image.rows}"
        if image.pixel_spacing:
            size += f", {image.pixel_spacing[1]:.3g} mm/px"
        if not image.is_volume:
            return size
        state = self.session.state(image)
        text = f"slice {state.frame + 1}/{image.n_frames}"
        if image.slice_positions:
            text += f", z = {image.slice_positions[state.frame]:.1f} mm"
        if state.slab > 1:
            lo, hi = self.session.slab_range(image)
            text += f", MIP slab {lo + 1}-{hi + 1}"
        return text

    def _label(self, image: Image) -> str:
        state = self.session.state(image)
        preset = state.preset or image.default_preset()
        return (image.name + (" DBT" if image.is_volume else "") + f"  {preset.label}"
                + ("  inverted" if state.invert else ""))

    def _show_on(self, canvas, image: Image | None) -> None:
        if image is None:
            canvas.show_frame(None, "", "no image")
            canvas.set_boxes([])
            canvas.set_shapes([])
            canvas.view.wheel_steps_slices = False
            return
        spacing = image.pixel_spacing[1] if image.pixel_spacing else 1.0
        wall_x = 0.0 if self.wall_side(image) == "L" else float(image.cols)
        canvas.set_chest_wall(wall_x, spacing, self._inner_side(canvas, image))
        canvas.view.wheel_steps_slices = image.is_volume
        canvas.show_frame(self.session.screen_frame(image), self._label(image), self._readout(image),
                          self.mirror_for(image, canvas))
        canvas.set_boxes(self.session.boxes_on(image))
        self._draw_overlay(canvas, image)
        self._draw_shapes(canvas, image)

    def canvases_showing(self, image: Image) -> list:
        return [c for c, im in self.images_on.items() if im is image]

    def _refresh_image(self, image: Image) -> None:
        for canvas in self.canvases_showing(image):
            canvas.show_frame(self.session.screen_frame(image), self._label(image), self._readout(image),
                              canvas.mirrored)
            if image.is_volume:
                canvas.set_boxes(self.session.boxes_on(image))
                self._draw_overlay(canvas, image)
        if image is self.current_image:
            self._update_slice_bar()
            self._update_presets()
            self._update_overlay_panel()
        if image.is_volume:
            self._read_ahead(image)

    def _read_ahead(self, image: Image) -> None:
        """Decode and window the next slices in the direction of travel on a worker, so the
        next slice change only draws. One worker per image follows the newest plan."""
        frame = self.session.state(image).frame
        last = self._last_frame.get(id(image))
        self._last_frame[id(image)] = frame
        if last is None or not 0 < abs(frame - last) <= 2:
            return  # a jump, not stepping through the slices: nothing to guess
        step = 1 if frame > last else -1
        ahead = [frame + step * k for k in range(1, READ_AHEAD + 1)]
        self._ahead[id(image)] = self.session.read_ahead_plan(image, ahead)
        key = ("read ahead", id(image))
        if self._ahead[id(image)] and not self.jobs.running(key):
            self.jobs.submit("Reading ahead", lambda job: self._read_ahead_work(image, job), key=key, quiet=True)

    def _read_ahead_work(self, image: Image, job) -> None:
        """Worker: prepare the first slice of the current plan not ready yet, until none is left."""
        while not job.is_cancelled:
            plan = self._ahead.get(id(image), [])  # replaced (not mutated) by the UI thread
            todo = next((item for item in plan if item[0] not in self.session.frames_shown), None)
            if todo is None:
                return
            self.session.read_ahead([todo])

    def show_single(self, image: Image) -> None:
        self.single_image = image
        canvas = self.window.single
        self.images_on[canvas] = image
        self._show_on(canvas, image)
        self.window.show_single()
        self.window.single_link.fit()  # a new image: fit, even when it has the size of the last one
        self._set_current(image)
        canvas.setFocus()

    def _toggle_single(self, canvas) -> None:
        if canvas is self.window.single:
            if self.session.study is not None and self._hangs(self.session.study):
                self.single_image = None
                self.images_on[self.window.single] = None
                self.window.show_grid()
                current = self.current_image
                cell = next((c for c in self.window.cells.values() if self.images_on[c] is current), None)
                self._set_current(current if cell is not None else self.grid_images()[0])
        elif self.images_on.get(canvas) is not None:
            self.show_single(self.images_on[canvas])

    def toggle_layout(self) -> None:
        if self.window.showing_single():
            self._toggle_single(self.window.single)
        elif self.current_image is not None:
            self.show_single(self.current_image)

    def grid_images(self) -> list[Image]:
        return [im for c, im in self.images_on.items() if im is not None and c is not self.window.single]

    def _link(self):
        return self.window.single_link if self.window.showing_single() else self.window.hanging_link

    def _current_canvas(self):
        if self.window.showing_single():
            return self.window.single
        return next((c for c in self.window.cells.values() if self.images_on[c] is self.current_image), None)

    # ------------------------------------------------------------------ the current view
    def _set_current_canvas(self, canvas) -> None:
        image = self.images_on.get(canvas)
        if image is not None:
            self._set_current(image)

    def _set_current(self, image: Image | None) -> None:
        self.current_image = image
        single = self.window.showing_single()
        for canvas in self.window.canvases():
            canvas.set_current(not single and image is not None and self.images_on[canvas] is image)
        if image is None:
            return
        self._update_slice_bar()
        self._update_presets()
        self._update_info()
        self._update_overlay_panel()
        self._update_measurements()
        self._update_tools()
        overlay = self.session.state(image).overlay
        self.window.set_method_checked(self.method_bundles.index(overlay) if overlay in self.method_bundles else None)

    def _on_current(self, change) -> None:
        if self.current_image is not None:
            change(self.current_image)

    def _update_slice_bar(self) -> None:
        image = self.current_image
        if image is None or not image.is_volume:
            self.window.set_slices(0, 0, "")
            self.cine.stop()
            return
        state = self.session.state(image)
        self.window.set_slices(image.n_frames, state.frame, self._readout(image), state.slab)

    def _update_presets(self) -> None:
        image = self.current_image
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
        if self.current_image is not None and index < len(self._preset_list):
            self.session.set_preset(self.current_image, self._preset_list[index])

    def _on_function_chosen(self, function: str) -> None:
        if self.current_image is not None:
            self.session.set_voi_function(self.current_image, function)

    def _on_window_drag(self, canvas, dx: float, dy: float) -> None:
        image = self.images_on.get(canvas)
        if image is None:
            return
        if image is not self.current_image:
            self._set_current(image)
        preset = self.session.drag_window(image, dx, dy)
        self.window.statusBar().showMessage(f"{image.name}: window C {preset.center:.0f} / W {preset.width:.0f}", 2000)

    def _update_info(self) -> None:
        image = self.current_image
        fields = [("View", image.name), ("Frames", str(image.n_frames)), ("Size", f"{image.cols} x {image.rows}")]
        if image.pixel_spacing:
            fields.append(("Pixel spacing (mm)", f"{image.pixel_spacing[0]:.4g} x {image.pixel_spacing[1]:.4g} "
                                                 f"({image.spacing_source})"))
        fields += [("Photometric", image.photometric), ("Bits stored", str(image.bits_stored)),
                   ("Transfer syntax", image.transfer_syntax)]
        fields += [(k, str(v)) for k, v in image.header.items()]
        if self.show_identifiers:
            fields += [(f"[identifier] {k}", str(v)) for k, v in image.identity.items()]
        self.window.info.set_fields(fields)

    def _on_identifiers(self, shown: bool) -> None:
        self.show_identifiers = bool(shown)
        if self.current_image is not None:
            self._update_info()

    # ------------------------------------------------------------------ DBT
    def _volume(self) -> Image | None:
        image = self.current_image
        return image if image is not None and image.is_volume else None

    def _on_frame_requested(self, frame: int) -> None:
        image = self._volume()
        if image is not None:
            self.session.set_frame(image, frame)

    def step_slice(self, delta: int) -> None:
        image = self._volume()
        if image is not None:
            self.session.step_frame(image, delta)

    def _on_wheel(self, canvas, steps: int) -> None:
        image = self.images_on.get(canvas)
        if image is not None and image.is_volume:
            if image is not self.current_image:
                self._set_current(image)
            self.session.step_frame(image, steps)

    def _on_play(self, playing: bool) -> None:
        if playing and self._volume() is not None:
            self.cine.start(int(1000 / max(1, self.window.slice_bar.fps.value())))
        else:
            self.cine.stop()
            if playing:
                self.window.slice_bar.play_button.setChecked(False)

    def _on_fps(self, fps: int) -> None:
        self.settings.setValue("cine/fps", fps)
        if self.cine.isActive():
            self.cine.start(int(1000 / max(1, fps)))

    def _cine_step(self) -> None:
        image = self._volume()
        if image is None:
            self.window.slice_bar.play_button.setChecked(False)
            return
        self.session.step_frame(image, 1, wrap=True)

    def _on_slab(self, slices: int) -> None:
        image = self._volume()
        if image is not None:
            self.session.set_slab(image, slices)

    # ------------------------------------------------------------------ ground truth
    def _refresh_all_boxes(self) -> None:
        for canvas, image in self.images_on.items():
            if image is not None:
                canvas.set_boxes(self.session.boxes_on(image))

    # ------------------------------------------------------------------ cursor
    def _on_cursor(self, canvas, x: float, y: float) -> None:
        image = self.images_on.get(canvas)
        if image is None:
            return
        col, row = int(math.floor(x)), int(math.floor(y))
        if not (0 <= row < image.rows and 0 <= col < image.cols):
            self.window.cursor_label.setText("")
            return
        frame = self.session.state(image).frame
        key = (id(image), frame)
        if self._modality is None or self._modality[0] != key:
            self._modality = (key, image.modality_values(frame))  # once per frame, then per-pixel reads
        stored = image.stored(frame)[row, col]
        text = f"x {col}  y {row} px"
        if image.pixel_spacing:
            text += f"  ({x * image.pixel_spacing[1]:.1f}, {y * image.pixel_spacing[0]:.1f} mm)"
        shown = canvas.image_item.image  # 8-bit grey
        text += f"   stored {stored}  value {self._modality[1][row, col]:g}  shown {shown[row, col] / 255:.3f}"
        bundle = self.session.state(image).overlay
        result = self.session.result(image, frame, bundle) if bundle is not None else None
        if result is not None:
            name = self.session.map_name(bundle)
            text += f"   {name} {float(result.maps[name][row, col]):.4f}"
        self.window.cursor_label.setText(text)

    # ------------------------------------------------------------------ shapes
    def set_tool(self, tool: str) -> None:
        for canvas in self.window.canvases():
            canvas.set_tool(tool)
        self.window.actions[f"tool_{tool}"].setChecked(True)

    def _on_shape_drawn(self, canvas, tool: str, geometry) -> None:
        image = self.images_on.get(canvas)
        if image is None:
            return
        x0, y0, x1, y1 = geometry
        if math.hypot(x1 - x0, y1 - y0) < 2:  # a click, not a shape
            return
        if image is not self.current_image:
            self._set_current(image)
        self.session.add_shape(image, tool, x0, y0, x1, y1)

    def _on_shape_edited(self, canvas, shape_id: int, geometry) -> None:
        image = self.images_on.get(canvas)
        if image is not None:
            self.session.move_shape(image, shape_id, *geometry)

    def _caption(self, image: Image, shape) -> str:
        frame = self.session.state(image).frame
        key = (id(image), shape.id, shape.kind, shape.x0, shape.y0, shape.x1, shape.y1, frame)
        if key not in self._captions:
            self._captions[key] = self.session.measure(image, shape)
        return self._captions[key]

    def _draw_shapes(self, canvas, image: Image) -> None:
        canvas.set_shapes([(s.id, s.kind, (s.x0, s.y0, s.x1, s.y1), self._caption(image, s))
                           for s in self.session.shapes_of(image)])

    def _refresh_shapes(self, image: Image) -> None:
        for canvas in self.canvases_showing(image):
            self._draw_shapes(canvas, image)
        if image is self.current_image:
            self._update_measurements()
            self._update_tools()

    def _update_measurements(self) -> None:
        image = self.current_image
        lines = [f"#{s.id} {image.name}: {self._caption(image, s)}" for s in self.session.shapes_of(image)]
        self.window.measurements.set_lines(lines)

    def _clear_shapes(self) -> None:
        if self.current_image is not None:
            self.session.clear_shapes(self.current_image)

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
        synthesis = first_usable(bundles, "generates_patches")
        self.window.synthesis.set_available(synthesis is not None,
                                            "" if synthesis else unavailable_reason(bundles, "generates_patches"))

    def _last_rectangle(self):
        if self.current_image is None:
            return None
        rects = [s for s in self.session.shapes_of(self.current_image) if s.kind == "rect"]
        return rects[-1] if rects else None

    def inpaint_roi(self):
        """Complete the last rectangle from its surroundings (inpainting engine, paper 002)."""
        from inference.methods import first_usable

        bundle = first_usable(self.session.bundles, "completes_roi")
        image, rect = self.current_image, self._last_rectangle()
        if bundle is None or image is None or rect is None:
            return None
        frame = self.session.state(image).frame
        device = self.session.parameters(bundle.method).get("device", "auto")
        laterality = image.laterality or self.wall_side(image)

        def work(job):
            engine = self.engines.get(bundle, device)
            display = image.display(frame)
            result = engine.complete(display, laterality, rect.box(), progress=job.report, cancel=job.token)
            return display, result

        def done(value):
            display, result = value
            from viewer.panels import show_completion

            show_completion(self.window, display, rect.box(), result)
            self._show_provider(result)

        return self.jobs.submit(f"Inpainting rectangle #{rect.id}", work, key=("inpaint", id(image), rect.id),
                                on_result=done, on_error=self._job_failed)

    # ------------------------------------------------------------------ methods
    def reload_bundles(self) -> None:
        self.session.load_bundles(self.models_dirs)

    def _on_bundles_changed(self) -> None:
        from inference.methods import METHODS

        self.method_bundles = [b for b in self.session.bundles
                               if b.method in METHODS and METHODS[b.method].produces_map]
        entries = []
        for bundle in self.method_bundles:
            spec = METHODS[bundle.method]
            tip = f"{spec.title}: {bundle.name} {bundle.version}"
            if bundle.calibration is not None:
                tip += f"; calibrated cut-off {bundle.calibration.threshold:.4g}"
                if bundle.calibration.auc is not None:
                    tip += f" (AUC {bundle.calibration.auc:.2f})"
            if not spec.has_engine:
                tip += f"; this version has no {bundle.method} engine yet"
            entries.append((bundle.name, tip, spec.has_engine))
        self.window.set_methods(entries)
        for error in self.session.bundle_errors:
            action = self.window.methods_menu.addAction(f"Not loaded: {error}")
            action.setEnabled(False)
        if self.session.bundle_errors:
            self.window.statusBar().showMessage(
                f"{len(self.session.bundle_errors)} model bundle(s) could not be loaded (see the Methods menu)", 10000)
        self._update_tools()

    def bundle_named(self, name: str):
        return next((b for b in self.method_bundles if b.name == name), None)

    def _on_method_toggled(self, index: int, on: bool) -> None:
        self.toggle_method(self.method_bundles[index], on)

    def toggle_method(self, bundle, on: bool, all_views: bool | None = None) -> None:
        """Show (or hide) a bundle's map on the current view, or on every view of the hanging."""
        if self.current_image is None:
            self.window.set_method_checked(None)
            return
        all_views = self.window.scope_all() if all_views is None else all_views
        targets = [self.current_image]
        if all_views and not self.window.showing_single():
            targets = self.grid_images()
        for image in targets:
            current = self.session.state(image).overlay
            if on:
                self.session.set_overlay(image, bundle)
            elif current is bundle:
                self.session.set_overlay(image, None)
        self.window.set_method_checked(self.method_bundles.index(bundle) if on and bundle in self.method_bundles
                                       else None)
        self._update_overlay_panel()

    def _table(self, style) -> np.ndarray:
        from app.heatmap import rgba_table
        from viewer.colormaps import colour_table

        if style.colormap not in self._tables:
            self._tables[style.colormap] = colour_table(style.colormap)
        return rgba_table(self._tables[style.colormap], style.vmax, style.threshold)

    def _refresh_overlay(self, image: Image) -> None:
        for canvas in self.canvases_showing(image):
            self._draw_overlay(canvas, image)
        if image is self.current_image:
            self._update_overlay_panel()

    def _draw_overlay(self, canvas, image: Image) -> None:
        """The cached map of the shown frame, or a job to compute it."""
        state = self.session.state(image)
        bundle = state.overlay
        if bundle is None:
            canvas.clear_overlay()
            return
        result = self.session.result(image, state.frame, bundle)
        if result is None:
            canvas.clear_overlay()
            canvas.set_overlay_text(f"{bundle.name}: computing...")
            self._request(image, state.frame, bundle)
            return
        style = self.session.style(bundle)
        indices = self.session.overlay_indices(image, state.frame, bundle)
        if indices is None:
            canvas.clear_overlay()
            canvas.set_overlay_text(f"{bundle.name}: no '{style.map_name}' map")
            return
        canvas.set_overlay(indices, self._table(style), style.opacity)
        canvas.overlay_source = (id(result), style.map_name, style.vmax)
        canvas.set_contour(self._contour(result.maps[style.map_name], style))
        canvas.set_overlay_text(self._score_text(result))

    def _contour(self, value_map, style):
        from app.heatmap import contour_lines

        return contour_lines(value_map, style.threshold) if style.contour else None

    @staticmethod
    def _score_text(result) -> str:
        """The image score against the bundle's calibrated cut-off, and the decision."""
        text = f"score {result.score:.4f}"
        if result.threshold is not None:
            text += f" {'≥' if result.score >= result.threshold else '<'} cut-off {result.threshold:.4f}"
        if result.decision:
            text += f" → {result.decision}"
        return text

    def _request(self, image: Image, frame: int, bundle) -> None:
        """Compute one frame's map in the background; for DBT the newest slice wins."""
        from inference.methods import METHODS

        key = self.session.result_key(image, frame, bundle)
        if self.jobs.running(key):
            return
        for job in self.jobs.running():  # older single-slice requests of this view are stale now
            k = job.key
            if isinstance(k, tuple) and len(k) == 4 and k[0] == key[0] and k[2] == bundle and k[1] != frame:
                job.cancel()
        spec = METHODS[bundle.method]
        parameters = self.session.parameters(bundle.method)
        device = parameters.get("device", "auto")
        run_args = spec.run_arguments(parameters)
        laterality = image.laterality or self.wall_side(image)

        prepare = self._prepare_for_drawing(bundle)

        def work(job):
            engine = self.engines.get(bundle, device)
            job.token.raise_if_cancelled()
            display = image.display(frame)  # the file's own window: the preprocessing contract's input
            result = engine.run_many([display], [laterality], frames=[frame if image.is_volume else None],
                                     progress=job.report, cancel=job.token, **run_args)[0]
            return prepare(ResultCache.slim(result, spec.maps))

        title = f"{bundle.name} on {image.name}" + (f" slice {frame + 1}" if image.is_volume else "")
        self.jobs.submit(title, work, key=key,
                         on_result=lambda value: self._store(image, frame, bundle, *value),
                         on_error=lambda message, details: self._method_failed(image, bundle, message, details))

    def _prepare_for_drawing(self, bundle):
        """What a worker does to a fresh result besides computing it: the maps' robust ranges
        and the shown map as colour-table indices (the style's range when it is set, else the
        range this map will set), so showing it costs the UI thread no per-pixel work."""
        from app.heatmap import summarise, table_index

        style = self.session.style(bundle)
        map_name, vmax = style.map_name, (style.vmax if style.calibrated else None)

        def prepare(result):
            summaries = {name: summarise(m) for name, m in result.maps.items()}
            indices = None
            if map_name in result.maps:
                used = vmax if vmax is not None else summaries[map_name].vmax
                indices = (map_name, used, table_index(result.maps[map_name], used))
            return result, summaries, indices

        return prepare

    def _store(self, image: Image, frame: int, bundle, result, summaries, indices=None) -> None:
        if self.session.studies is None or not any(im is image for im in self.session.studies.images()):
            return  # another study was opened meanwhile
        self.session.add_result(image, frame, bundle, result, summaries, indices)
        self._show_provider(result)

    def _show_provider(self, result) -> None:
        label = self.window.provider_label
        label.setText(f"ran on {result.provider}" + (" (GPU fallback)" if result.fallback_reason else ""))
        label.setToolTip(result.fallback_reason or "Where the last model ran (ONNX Runtime execution provider)")

    def _method_failed(self, image: Image, bundle, message: str, details: str) -> None:
        # switch the overlay off so a broken model is not asked again at every slice
        for im in (self.session.studies.images() if self.session.studies else []):
            if self.session.state(im).overlay is bundle:
                self.session.set_overlay(im, None)
        if image is self.current_image:
            self.window.set_method_checked(None)
        self.window.show_error(message, details)

    def _job_failed(self, message: str, details: str) -> None:
        self.window.show_error(message, details)

    def _on_result_added(self, image: Image, frame: int, bundle) -> None:
        state = self.session.state(image)
        if state.overlay is not bundle:
            return
        if state.frame == frame:
            for canvas in self.canvases_showing(image):
                self._draw_overlay(canvas, image)
        if image is self.current_image:  # the score, or how many slices are done
            self._update_overlay_panel()

    def run_volume(self):
        """The current method over every slice of the current DBT volume, as one job; slices fill
        in batch by batch as they come."""
        from inference.methods import METHODS

        image = self._volume()
        bundle = self.session.state(image).overlay if image is not None else None
        if image is None or bundle is None:
            self.window.statusBar().showMessage("Show a method's overlay on a DBT volume first", 5000)
            return None
        spec = METHODS[bundle.method]
        parameters = self.session.parameters(bundle.method)
        device, run_args = parameters.get("device", "auto"), spec.run_arguments(parameters)
        laterality = image.laterality or self.wall_side(image)
        todo = [k for k in range(image.n_frames) if k not in set(self.session.cached_frames(image, bundle))]

        prepare = self._prepare_for_drawing(bundle)

        def work(job):
            engine = self.engines.get(bundle, device)
            batch = max(1, int(getattr(engine, "batch_size", 4)))
            for start in range(0, len(todo), batch):
                job.token.raise_if_cancelled()
                chunk = todo[start : start + batch]
                results = engine.run_many([image.display(k) for k in chunk], [laterality] * len(chunk), frames=chunk,
                                          cancel=job.token, **run_args)
                job.deliver([(k,) + prepare(ResultCache.slim(r, spec.maps)) for k, r in zip(chunk, results)])
                job.report(start + len(chunk), len(todo), f"{bundle.name}: {image.name} volume")
            return len(todo)

        def deliver(batch):
            for frame, result, summaries, indices in batch:
                self._store(image, frame, bundle, result, summaries, indices)

        return self.jobs.submit(f"{bundle.name} on all {image.n_frames} slices", work,
                                key=("volume", id(image), bundle),
                                on_partial=deliver, on_error=self._job_failed)

    def cancel_job(self) -> None:
        """Cancel the job the status bar shows (the newest that is not housekeeping)."""
        running = [j for j in self.jobs.running() if not j.quiet]
        if running:
            running[-1].cancel()
            self.window.statusBar().showMessage(f"Cancelled: {running[-1].title}", 5000)

    def _on_jobs_changed(self) -> None:
        running = [j for j in self.jobs.running() if not j.quiet]
        if not running:
            self.window.set_job(None)
            return
        job = running[-1]
        done, total, message = job.progress_state
        more = f" (+{len(running) - 1} more)" if len(running) > 1 else ""
        self.window.set_job(f"{job.title}{more}", done, total)

    # ------------------------------------------------------------------ overlay style
    def _overlay_bundle(self):
        image = self.current_image
        return self.session.state(image).overlay if image is not None else None

    def _update_overlay_panel(self) -> None:
        from inference.methods import METHODS

        panel = self.window.overlay_panel
        image, bundle = self.current_image, self._overlay_bundle()
        panel.run_volume.setVisible(image is not None and image.is_volume)
        if bundle is None:
            panel.title.setText(self._no_overlay_text())
            panel.score.setText("")
            panel.card.setText("")
            panel.show_style(None)
            self._panel_method = None
            return
        spec = METHODS[bundle.method]
        style = self.session.style(bundle)
        panel.title.setText(f"{spec.title}: {bundle.name} {bundle.version}")
        card = bundle.card_line
        panel.card.setText(f"Model card: {card}" if card else
                           "No evaluation card: `mammolens evaluate --method "
                           f"{bundle.method} --model {bundle.name} --labels CSV` writes one")
        state = self.session.state(image)
        result = self.session.result(image, state.frame, bundle)
        if result is None:
            panel.score.setText("computing...")
        else:
            where = f" on slice {state.frame + 1}" if image.is_volume else ""
            seconds = sum(result.timings.values())
            text = self._score_text(result) + where
            if image.is_volume:
                text += f"; {len(self.session.cached_frames(image, bundle))}/{image.n_frames} slices computed"
            panel.score.setText(f"{text}\n{result.provider}, {seconds:.2f} s")
        panel.show_style(style, self._table(style), spec.units.get(style.map_name, ""))
        if self._panel_method != bundle.method:  # rebuilt only when the method changes: a combo
            self._panel_method = bundle.method   # must not be deleted while it emits
            panel.show_parameters(spec.parameters, self.session.parameters(bundle.method))

    def _no_overlay_text(self) -> str:
        """The empty state: what to toggle, or how to get a model when there is nothing to toggle."""
        if self.method_bundles:
            return "No overlay on this view: toggle a method in the toolbar"
        from inference.bundle import user_models_dir
        from inference.methods import trainable

        names = ", ".join(n for spec in trainable() for n in spec.names[-1:])
        return ("No model bundle found. Train one with `mammolens train METHOD --labels CSV --out RUN` "
                f"(methods: {names}), export it with `mammolens export RUN --out {user_models_dir()}/NAME`, "
                "or open a folder of bundles with `mammolens view --models DIR`.")

    def _on_style_edited(self, name: str, value) -> None:
        bundle = self._overlay_bundle()
        if bundle is not None:
            self.session.update_style(bundle, **{name: value})
        if name in ("colormap", "opacity"):  # the user's taste: the default for the next maps
            self.session.style_defaults[name] = value
            self.settings.setValue(f"overlay/{name}", value)

    def _nudge_threshold(self, direction: int) -> None:
        bundle = self._overlay_bundle()
        if bundle is not None:
            style = self.session.style(bundle)
            self.session.update_style(bundle, threshold=float(np.clip(style.threshold + direction * style.vmax / 50,
                                                                      0.0, style.vmax)))

    def _on_style_changed(self, bundle) -> None:
        """Re-colour every view showing ``bundle``: a new table over the same map. Only a new
        colour range (or another map) re-indexes the map."""
        style = self.session.style(bundle)
        table = self._table(style)
        for canvas, image in self.images_on.items():
            if image is None or self.session.state(image).overlay is not bundle:
                continue
            frame = self.session.state(image).frame
            result = self.session.result(image, frame, bundle)
            if result is None or not canvas.has_overlay() or style.map_name not in result.maps:
                self._draw_overlay(canvas, image)
                continue
            if canvas.overlay_source != (id(result), style.map_name, style.vmax):
                canvas.set_overlay(self.session.overlay_indices(image, frame, bundle), table, style.opacity)
            else:
                canvas.set_overlay_table(table, style.opacity)
            canvas.overlay_source = (id(result), style.map_name, style.vmax)
            canvas.set_contour(self._contour(result.maps[style.map_name], style))
        if bundle is self._overlay_bundle():
            self._update_overlay_panel()

    def _on_parameter_edited(self, name: str, value) -> None:
        bundle = self._overlay_bundle()
        if bundle is None:
            return
        self.session.set_parameter(bundle.method, name, value)
        for image in {id(im): im for im in self.images_on.values() if im is not None}.values():
            overlay = self.session.state(image).overlay
            if overlay is not None and overlay.method == bundle.method:
                self._refresh_overlay(image)

    # ------------------------------------------------------------------ export
    def export_view(self, folder) -> object | None:
        """The current view (its window, slab and inversion) with its overlay as a PNG, and the raw
        map as .npy, in the original pixel grid; named from the pseudonymous patient key and view
        only. Runs as a job: encoding a full-field PNG takes longer than the UI may stall."""
        from app.heatmap import compose
        from inference.files import atomic_write_bytes
        from inference.images import png_bytes

        image = self.current_image
        if image is None:
            self.window.statusBar().showMessage("Nothing to export: open a study first", 5000)
            return None
        folder = Path(folder)
        self.settings.setValue("export/folder", str(folder))
        self.window.export_folder = str(folder)
        state = self.session.state(image)
        frame, bundle = state.frame, state.overlay
        stem = self.session.export_stem(image, frame)
        result = self.session.result(image, frame, bundle) if bundle is not None else None
        style = self.session.style(bundle) if result is not None else None
        table = self._table(style) if style is not None else None
        display = self.session.displayed(image)
        boxes = [box for box, _ in self.session.boxes_on(image, frame)]  # as drawn on the view

        def work(job):
            import io

            from app.heatmap import draw_boxes

            folder.mkdir(parents=True, exist_ok=True)
            written = []
            if result is None:
                rgb = draw_boxes(compose(display, None, None, 1.0, 0.0), boxes)
                atomic_write_bytes(folder / f"{stem}.png", png_bytes(rgb))
                return [folder / f"{stem}.png"]
            value_map = np.asarray(result.maps[style.map_name], dtype=np.float32)
            base = f"{stem}_{safe_file_name(bundle.name)}_{style.map_name}"
            rgb = compose(display, value_map, table, style.vmax, style.opacity,
                          style.threshold if style.contour else None)
            atomic_write_bytes(folder / f"{base}.png", png_bytes(draw_boxes(rgb, boxes)))
            written.append(folder / f"{base}.png")
            buffer = io.BytesIO()
            np.save(buffer, value_map)
            atomic_write_bytes(folder / f"{base}.npy", buffer.getvalue())
            written.append(folder / f"{base}.npy")
            return written

        def done(paths):
            self.last_export = paths
            self.window.statusBar().showMessage("Exported " + ", ".join(p.name for p in paths), 10000)

        return self.jobs.submit(f"Export {stem}", work, key=("export", stem), on_result=done,
                                on_error=self._job_failed)

    # ------------------------------------------------------------------ synthesis
    def generate_patches(self, label: str, count: int, seed: int, truncation: float):
        """Lesion patches from the synthesis engine (paper 004), shown in the synthesis pane."""
        from inference.methods import first_usable

        bundle = first_usable(self.session.bundles, "generates_patches")
        if bundle is None:
            return None
        device = self.session.parameters(bundle.method).get("device", "auto")

        def work(job):
            engine = self.engines.get(bundle, device)
            return engine.generate(label, count, seed, truncation, progress=job.report, cancel=job.token)

        def done(patches):
            from app.patches import Patch

            self.patches = [Patch(np.asarray(p, dtype=np.float32), label, seed, i, truncation, bundle.label)
                            for i, p in enumerate(patches)]
            captions = [f"{label} {seed}:{i}" for i in range(len(patches))]
            self.window.synthesis.show_patches(np.asarray(patches), captions)

        return self.jobs.submit(f"Generating {count} {label} patches", work, key=("synthesis",), on_result=done,
                                on_error=self._job_failed)

    def export_patches(self, indices: list, folder: str):
        from app.patches import export_patches

        chosen = [self.patches[i] for i in indices if i < len(getattr(self, "patches", []))]
        if not chosen:
            return None
        return self.jobs.submit(f"Export {len(chosen)} patches", lambda job: export_patches(folder, chosen),
                                key=("patches", folder), on_error=self._job_failed,
                                on_result=lambda paths: self.window.statusBar().showMessage(
                                    f"Exported {len(chosen)} patch(es) and labels.csv to {Path(folder).name}", 10000))



