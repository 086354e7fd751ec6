"""Method overlays: the toolbar's method toggles, computing maps in the background (the shown
slice first, or a whole DBT volume), drawing them through their style's colour table, the
Overlay panel (score, card, style, parameters) and where the model ran."""
from __future__ import annotations

import numpy as np

from app.heatmap import contour_lines, map_label, style_table, summarise, table_index
from app.jobs_qt import JobKey
from app.presenters.base import Context, Presenter
from app.session import ResultCache, ResultKey
from inference.studies.image import Image


def score_text(result) -> str:
    """The image score against the bundle's calibrated cut-off, and the decision."""
    text = f"score {result.score:.4f}"
    if result.threshold is not None:
        text += f" {'≥' if result.score >= result.threshold else '<'} cut-off {result.threshold:.4f}"
    if result.decision:
        text += f" → {result.decision}"
    elif result.no_decision:
        text += f" ({result.no_decision})"
    return text


class OverlayPresenter(Presenter):
    def __init__(self, context: Context):
        super().__init__(context)
        self.engines = context.engines
        self.method_bundles: list = []  # the bundles behind the method toggles, in order
        self._panel_method: str | None = None
        self._drawn: dict[int, tuple] = {}  # id(canvas) -> (id(result), map name, vmax) of its indices
        s, w = self.session, self.window
        s.bundles_changed.connect(self._on_bundles_changed)
        s.current_changed.connect(self._on_current_changed)
        s.layout_changed.connect(self._redraw_all)
        s.view_changed.connect(self._on_view_changed)
        s.overlay_changed.connect(self._refresh_overlay)
        s.result_added.connect(self._on_result_added)
        s.style_changed.connect(self._on_style_changed)
        s.parameters_changed.connect(self._on_parameters_changed)
        w.method_toggled.connect(lambda index, on: self.toggle_method(self.method_bundles[index], on))
        w.scope.currentIndexChanged.connect(self._on_scope_changed)
        p = w.overlay_panel
        p.style_edited.connect(self._on_style_edited)
        p.parameter_edited.connect(self._on_parameter_edited)
        p.run_volume_requested.connect(self.run_volume)
        a = w.actions
        a["run_volume"].triggered.connect(self.run_volume)
        a["threshold_up"].triggered.connect(lambda: self._nudge_threshold(+1))
        a["threshold_down"].triggered.connect(lambda: self._nudge_threshold(-1))
        from app.heatmap import COLORMAPS

        colormap = str(self.settings.value("overlay/colormap", COLORMAPS[0]))
        s.style_defaults = {"colormap": colormap if colormap in COLORMAPS else COLORMAPS[0],
                            "opacity": float(self.settings.value("overlay/opacity", 0.6))}

    # ------------------------------------------------------------------ bundles and toggles
    def _on_bundles_changed(self) -> None:
        from inference.methods import METHODS

        self.method_bundles = [b for b in self.session.bundles if b.method in METHODS and METHODS[b.method].produces_map]
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
            self.window.methods_menu.addAction(f"Not loaded: {error}").setEnabled(False)
        if self.session.bundle_errors:
            self.status(f"{len(self.session.bundle_errors)} model bundle(s) could not be loaded "
                        "(see the Methods menu)", 10000)
        self._update_panel()

    def bundle_named(self, name: str):
        return next((b for b in self.method_bundles if b.name == name), None)

    def toggle_method(self, bundle, on: bool, all_views: bool | None = None) -> None:
        """Show (or hide) a bundle's map on the current view, or on every view of the hanging."""
        current = self.session.current
        if current is None:
            self.window.set_method_checked(None)
            return
        all_views = self.window.scope_all() if all_views is None else all_views
        targets = self.session.grid_images() if all_views and not self.session.single else [current]
        for image in targets:
            if on:
                self.session.set_overlay(image, bundle)
            elif self.session.state(image).overlay is bundle:
                self.session.set_overlay(image, None)
        self._check_toolbar()
        self._update_panel()

    def _on_scope_changed(self, _index: int) -> None:
        """"all views" applies the method already on the current view to the whole hanging (and
        "current view" leaves the others as they are: the toggles then act on one view)."""
        bundle = self._overlay_bundle()
        if bundle is not None and self.window.scope_all():
            self.toggle_method(bundle, True, all_views=True)

    def _check_toolbar(self) -> None:
        image = self.session.current
        overlay = self.session.state(image).overlay if image is not None else None
        self.window.set_method_checked(self.method_bundles.index(overlay) if overlay in self.method_bundles else None)

    def _on_current_changed(self, image: Image | None) -> None:
        if image is not None:
            self._check_toolbar()
        self._update_panel()

    # ------------------------------------------------------------------ drawing
    def _redraw_all(self) -> None:
        for canvas, image in self.placed():
            self.draw(canvas, image)

    def _on_view_changed(self, image: Image) -> None:
        if image.is_volume:  # another slice: its own map
            for canvas in self.canvases_showing(image):
                self.draw(canvas, image)
        if image is self.session.current:
            self._update_panel()

    def _refresh_overlay(self, image: Image) -> None:
        for canvas in self.canvases_showing(image):
            self.draw(canvas, image)
        if image is self.session.current:
            self._update_panel()

    def draw(self, canvas, image: Image) -> None:
        """The cached map of the shown frame, or a job to compute it."""
        state = self.session.state(image)
        bundle = state.overlay
        if bundle is None:
            canvas.clear_overlay()
            self._drawn.pop(id(canvas), None)
            self._draw_layer(canvas, image, state.frame)
            return
        result = self.session.result(image, state.frame, bundle)
        if result is not None and result.parameters.get("preview"):
            self.request(image, state.frame, bundle)  # the fine pass (no-op while it runs)
        if result is None:
            canvas.clear_overlay()
            self._drawn.pop(id(canvas), None)
            canvas.set_overlay_text(f"{bundle.name}: computing...")
            self.request(image, state.frame, bundle)
            return
        style = self.session.style(bundle)
        if style.map_name not in result.maps:
            canvas.clear_overlay()
            self._drawn.pop(id(canvas), None)
            canvas.set_overlay_text(f"{bundle.name}: no '{style.map_name}' map")
            return
        source = (id(result), style.map_name, style.vmax)
        if canvas.has_overlay() and self._drawn.get(id(canvas)) == source:
            canvas.set_overlay_table(style_table(style), style.opacity)  # same indices: a new table only
        else:
            canvas.set_overlay(self.session.overlay_indices(image, state.frame, bundle), style_table(style), style.opacity)
            self._drawn[id(canvas)] = source
        canvas.set_contour(contour_lines(result.maps[style.map_name], style.threshold) if style.contour else None)
        # the preview note on a line of its own: one line would not fit a view of the hanging
        canvas.set_overlay_text(("preview, refining...\n" if result.parameters.get("preview") else "")
                                + score_text(result))

    def _draw_layer(self, canvas, image: Image, frame: int) -> None:
        """A Parametric Map found beside the image (another tool's, or analyze --dicom's), drawn as a
        method's map is when no method overlay is on; its name and unit in the view's overlay line."""
        from app.heatmap import calibrated_style

        layer = next((layer for layer in getattr(image, "layers", [])
                      if not layer.is_segmentation and layer.has_frame(frame)), None)
        if layer is None:
            return
        try:
            values = layer.values(frame)
        except Exception as exc:  # noqa: BLE001 (a layer that cannot be decoded: said on its view, nothing else)
            canvas.set_overlay_text(f"{layer.name}: cannot be read ({type(exc).__name__})")
            return
        style = calibrated_style(values, layer.label or "map", **self.session.style_defaults)
        canvas.set_overlay(table_index(values, style.vmax), style_table(style), style.opacity)
        canvas.set_overlay_text(f"{layer.name} ({layer.unit})" if layer.unit else layer.name)

    def _on_result_added(self, image: Image, frame: int, bundle) -> None:
        state = self.session.state(image)
        if state.overlay is not bundle:
            return
        if state.frame == frame:
            for canvas in self.canvases_showing(image):
                self.draw(canvas, image)
        if image is self.session.current:  # the score, or how many slices are done
            self._update_panel()

    def _on_style_changed(self, bundle) -> None:
        """Re-colour every view showing ``bundle``: a new table over the same map; only a new
        colour range (or another map) re-indexes the map."""
        for canvas, image in self.placed():
            if self.session.state(image).overlay is bundle:
                self.draw(canvas, image)
        if bundle is self._overlay_bundle():
            self._update_panel()

    # ------------------------------------------------------------------ computing
    def request(self, image: Image, frame: int, bundle) -> None:
        """Compute one frame's map in the background; for DBT the newest slice wins."""
        from inference.methods import METHODS

        key = self.session.result_key(image, frame, bundle)
        if self.jobs.running(key):
            return
        for job in self.jobs.running():  # older single-slice requests of this view are stale now
            if isinstance(job.key, ResultKey) and job.key.image == key.image and job.key.bundle == bundle \
                    and job.key.frame != frame:
                job.cancel()
        spec = METHODS[bundle.method]
        parameters = self.session.parameters(bundle.method)
        device, run_args = parameters.get("device", "auto"), spec.run_arguments(parameters)
        laterality = self.session.laterality(image)
        prepare = self._prepare_for_drawing(bundle)

        def work(job):
            engine = self.engines.get(bundle, device)
            job.token.raise_if_cancelled()
            display = image.display(frame)  # the file's own window: the preprocessing contract's input
            extra = {}
            if engine.supports_preview:  # a coarse map first, shown at once; the fine pass replaces it
                extra["partial"] = lambda preview: job.deliver(prepare(ResultCache.slim(preview, spec.maps)))
            result = engine.run_many([display], [laterality], frames=[frame if image.is_volume else None],
                                     progress=job.report, cancel=job.token, **run_args, **extra)[0]
            return prepare(ResultCache.slim(result, spec.maps))

        title = f"{bundle.name} on {image.name}" + (f" slice {frame + 1}" if image.is_volume else "")
        self.jobs.submit(title, work, key=key,
                         on_partial=lambda value: self._store(image, frame, bundle, *value),
                         on_result=lambda value: self._store(image, frame, bundle, *value),
                         on_error=lambda message, details: self._method_failed(image, bundle, message, details))

    def _prepare_for_drawing(self, bundle):
        """What a worker does to a fresh result besides computing it: the maps' robust ranges
        and the shown map as colour-table indices (the style's range when it is set, else the
        range this map will set), so showing it costs the UI thread no per-pixel work."""
        style = self.session.style(bundle)

        def prepare(result):
            map_name = style.map_name  # read when the map is ready: a preview may have set the range
            summaries = {name: summarise(m) for name, m in result.maps.items()}
            indices = None
            if map_name in result.maps:
                used = style.vmax if style.calibrated else summaries[map_name].vmax
                indices = (map_name, used, table_index(result.maps[map_name], used))
            return result, summaries, indices

        return prepare

    def _store(self, image: Image, frame: int, bundle, result, summaries, indices=None) -> None:
        if self.session.studies is None or not any(im is image for im in self.session.studies.images()):
            return  # another study was opened meanwhile
        self.session.add_result(image, frame, bundle, result, summaries, indices)
        self.show_provider(result)

    def show_provider(self, result) -> None:
        label = self.window.provider_label
        label.setText(f"ran on {result.provider}" + (" (GPU fallback)" if result.fallback_reason else ""))
        label.setToolTip(result.fallback_reason or "Where the last model ran (ONNX Runtime execution provider)")

    def _method_failed(self, image: Image, bundle, message: str, details: str) -> None:
        # switch the overlay off so a broken model is not asked again at every slice
        for im in (self.session.studies.images() if self.session.studies else []):
            if self.session.state(im).overlay is bundle:
                self.session.set_overlay(im, None)
        if image is self.session.current:
            self.window.set_method_checked(None)
        self.failed(message, details)

    def run_volume(self):
        """The current method over every slice of the current DBT volume, as one job; slices fill
        in batch by batch as they come."""
        from inference.methods import METHODS

        image = self.session.current if self.session.current is not None and self.session.current.is_volume else None
        bundle = self.session.state(image).overlay if image is not None else None
        if image is None or bundle is None:
            self.status("Show a method's overlay on a DBT volume first")
            return None
        spec = METHODS[bundle.method]
        parameters = self.session.parameters(bundle.method)
        device, run_args = parameters.get("device", "auto"), spec.run_arguments(parameters)
        laterality = self.session.laterality(image)
        todo = [k for k in range(image.n_frames) if k not in set(self.session.cached_frames(image, bundle))]
        style = self.session.style(bundle)

        def prepare(result):
            # only the shown map goes to the original grid, here on the worker, as colour-table
            # indices (a slice change then costs the UI thread no per-pixel work); the other maps
            # stay in model space until read; a summary only while the colour range is not set
            map_name = style.map_name
            if map_name not in result.maps:
                return result, {}, None
            value_map = result.maps[map_name]
            summaries = {} if style.calibrated else {map_name: summarise(value_map)}
            used = style.vmax if style.calibrated else summaries[map_name].vmax
            return result, summaries, (map_name, used, table_index(value_map, used))

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
                                key=JobKey("volume", id(image), bundle), on_partial=deliver, on_error=self.failed)

    # ------------------------------------------------------------------ the Overlay panel
    def _overlay_bundle(self):
        image = self.session.current
        return self.session.state(image).overlay if image is not None else None

    def _update_panel(self) -> None:
        from inference.methods import METHODS

        panel = self.window.overlay_panel
        image, bundle = self.session.current, self._overlay_bundle()
        panel.run_volume.setVisible(image is not None and image.is_volume)
        if bundle is None:
            panel.title.setText(self.no_overlay_text())
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
            text = score_text(result) + where
            if image.is_volume:
                text += f"; {len(self.session.cached_frames(image, bundle))}/{image.n_frames} slices computed"
            panel.score.setText(f"{text}\n{result.provider}, {sum(result.timings.values()):.2f} s")
        panel.show_style(style, style_table(style), map_label(spec, self.session.parameters(bundle.method),
                                                              style.map_name)[1])
        if self._panel_method != bundle.method:  # rebuilt only when the method changes: a combo
            self._panel_method = bundle.method   # must not be deleted while it emits
            panel.show_parameters(spec.parameters, self.session.parameters(bundle.method))

    def no_overlay_text(self) -> str:
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
            threshold = float(np.clip(style.threshold + direction * style.vmax / 50, 0.0, style.vmax))
            self.session.update_style(bundle, threshold=threshold)

    def _on_parameter_edited(self, name: str, value) -> None:
        bundle = self._overlay_bundle()
        if bundle is not None:
            self.session.set_parameter(bundle.method, name, value)

    def _on_parameters_changed(self, method: str, name: str) -> None:
        """A run parameter changed (from the panel, a test or a script): the overlays of that method
        show the results at the new values (computed when not cached)."""
        for image in {id(im): im for _, im in self.placed()}.values():
            overlay = self.session.state(image).overlay
            if overlay is not None and overlay.method == method:
                self._refresh_overlay(image)
