"""The method overlay in the real window (offscreen): toggle, cache, threshold, DBT, export.

The session's tiny HealthyGAN bundle (tests/conftest.py) is handed to the viewer as its models folder.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_models(tiny_healthygan):
    return tiny_healthygan[0] / "models"


@pytest.fixture
def viewer(qtbot, tiny_models, tmp_path, monkeypatch):
    from app.gui import build_window, demo_study_path

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    window, controller = build_window(models_dirs=[tiny_models])
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    assert controller.studies.open(demo_study_path()) is not None
    bundle = controller.overlays.bundle_named("tiny")
    assert bundle is not None, [b.name for b in controller.overlays.method_bundles]
    return window, controller, bundle


def wait_jobs(qtbot, controller, timeout=30000):
    qtbot.waitUntil(lambda: not controller.jobs.running(), timeout=timeout)


def rgb(canvas) -> np.ndarray:
    from PySide6 import QtGui

    image = canvas.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8).reshape(h, image.bytesPerLine())
    return data[:, : w * 3].reshape(h, w, 3).copy()


def coloured_pixels(canvas) -> int:
    """Pixels with colour (the map) rather than grey (the mammogram); the text rows excluded."""
    pixels = rgb(canvas).astype(int)[50:-30]
    return int((pixels.max(axis=2) - pixels.min(axis=2) > 40).sum())


def test_the_first_map_is_drawn_once_from_the_workers_indices(viewer, qtbot, monkeypatch):
    """The defect: style_changed fired before the worker's table indices were stored, so the
    first map of a bundle was indexed again on the UI thread and drawn twice."""
    import threading

    import app.heatmap

    win, ctl, bundle = viewer
    ui = threading.get_ident()
    indexed_on_ui = []
    real_index = app.heatmap.table_index
    monkeypatch.setattr(app.heatmap, "table_index",
                        lambda *a, **k: (indexed_on_ui.append(threading.get_ident() == ui), real_index(*a, **k))[1])
    canvas = win.cells[("R", "CC")]
    drawn = []
    real_set = canvas.set_overlay
    monkeypatch.setattr(canvas, "set_overlay", lambda *a: (drawn.append(1), real_set(*a)))
    ctl.overlays.toggle_method(bundle, True, all_views=False)
    wait_jobs(qtbot, ctl)
    qtbot.waitUntil(canvas.has_overlay, timeout=5000)
    assert drawn == [1], "drawn once"
    assert not any(indexed_on_ui), "no per-pixel indexing on the UI thread"


def test_toggle_all_views_threshold_recolours_and_cache_is_instant(viewer, qtbot):
    win, ctl, bundle = viewer
    win.scope.setCurrentIndex(1)  # all views
    win.method_actions[ctl.overlays.method_bundles.index(bundle)].trigger()
    wait_jobs(qtbot, ctl)
    for key, canvas in win.cells.items():
        assert canvas.has_overlay(), key
        assert "cut-off" in canvas.overlay_text.toPlainText(), key
    style = ctl.session.style(bundle)
    assert style.calibrated and 0 < style.threshold < style.vmax
    results_before = {key: ctl.session.result(ctl.display.image_on(c), 0, bundle) for key, c in win.cells.items()}
    assert all(r is not None and r.maps["difference"].shape == (1024, 832) for r in results_before.values())

    canvas = win.cells[("L", "MLO")]
    before = coloured_pixels(canvas)
    win.overlay_panel.threshold.setValue(0)
    low = coloured_pixels(canvas)
    win.overlay_panel.threshold.setValue(950)
    high = coloured_pixels(canvas)
    assert low > before > high, (low, before, high)
    assert not ctl.jobs.running(), "moving the threshold re-colours, it does not recompute"
    assert ctl.session.style(bundle).threshold == pytest.approx(0.95 * style.vmax)
    # the on-screen table: transparent below the threshold, opaque above
    table = canvas.overlay_item.lut
    assert table[0, 3] == 0 and table[-1, 3] == 255

    # off and on again: from the cache, no job, the same result object
    win.method_actions[0].trigger()
    assert not canvas.has_overlay() or ctl.session.current is not ctl.display.image_on(canvas)
    win.method_actions[0].trigger()
    assert not ctl.jobs.running()
    assert all(c.has_overlay() for c in win.cells.values())
    assert ctl.session.result(ctl.display.image_on(canvas), 0, bundle) is results_before[("L", "MLO")]
    assert "ran on CPU" in win.provider_label.text() or "ran on CUDA" in win.provider_label.text()

    win.overlay_panel.threshold.setValue(500)
    win.overlay_panel.contour.setChecked(True)
    assert len(canvas.contour_item.getData()[0]) > 0, "a contour at the threshold"

    # another map of the same results (HealthyGAN's mask M): its own scale, nothing recomputed
    shown = canvas.overlay_item.image.copy()
    from PySide6 import QtWidgets

    win.overlay_panel.findChild(QtWidgets.QComboBox, "parameter_map").setCurrentText("mask")
    assert not ctl.jobs.running() and ctl.session.style(bundle).map_name == "mask"
    assert not np.array_equal(shown, canvas.overlay_item.image)
    assert "mask M" in win.overlay_panel.colour_bar.plot.getAxis("bottom").labelText
    win.overlay_panel.colormap.setCurrentText("cividis")
    assert ctl.settings.value("overlay/colormap") == "cividis", "the choice persists as the default"


def test_dbt_overlay_follows_the_slice_and_a_volume_run_fills_in(viewer, qtbot):
    win, ctl, bundle = viewer
    volume = ctl.session.study.volumes()[0]
    ctl.session.show_single(volume)
    ctl.overlays.toggle_method(bundle, True)
    wait_jobs(qtbot, ctl)
    first_frame = ctl.session.state(volume).frame
    shown = win.single.overlay_item.image.copy()
    win.slice_slider.setValue(first_frame + 5)
    assert not win.single.has_overlay(), "a slice without its map shows none, never the last slice's"
    wait_jobs(qtbot, ctl)
    assert win.single.has_overlay() and not np.array_equal(shown, win.single.overlay_item.image)

    seen = []
    ctl.session.result_added.connect(lambda image, frame, b: seen.append(frame))
    job = ctl.overlays.run_volume()
    wait_jobs(qtbot, ctl, timeout=60000)
    assert job.outcome == "succeeded"
    assert ctl.session.cached_frames(volume, bundle) == list(range(volume.n_frames))
    assert len(seen) == volume.n_frames - 2, "the volume job skipped the slices already computed"
    assert f"{volume.n_frames}/{volume.n_frames} slices computed" in win.overlay_panel.score.text()
    win.slice_slider.setValue(0)
    assert win.single.has_overlay() and not ctl.jobs.running(), "every slice is now instant"


def test_cancel_a_volume_run(viewer, qtbot):
    win, ctl, bundle = viewer
    volume = ctl.session.study.volumes()[0]
    ctl.session.show_single(volume)
    ctl.overlays.toggle_method(bundle, True)
    job = ctl.overlays.run_volume()
    assert win.cancel_button.isVisibleTo(win)
    win.cancel_button.click()
    wait_jobs(qtbot, ctl)
    assert job.outcome == "cancelled"
    assert len(ctl.session.cached_frames(volume, bundle)) < volume.n_frames
    assert not win.cancel_button.isVisibleTo(win)


def test_export_view_png_and_map_without_identifiers(viewer, qtbot, tmp_path):
    from skimage import io

    win, ctl, bundle = viewer
    mlo = ctl.display.image_on(win.cells[("L", "MLO")])
    ctl.session.set_current(mlo)
    ctl.overlays.toggle_method(bundle, True)
    wait_jobs(qtbot, ctl)
    job = ctl.roi.export_view(tmp_path / "out")
    wait_jobs(qtbot, ctl)
    assert job.outcome == "succeeded", win.statusBar().currentMessage()
    names = sorted(p.name for p in ctl.roi.last_export)
    assert names == ["Patient-1_study1_L-MLO_tiny_difference.npy", "Patient-1_study1_L-MLO_tiny_difference.png"]
    png = io.imread(tmp_path / "out" / names[1])
    assert png.shape == (1024, 832, 3)
    raw = np.load(tmp_path / "out" / names[0])
    assert raw.shape == (1024, 832) and raw.dtype == np.float32
    from app.heatmap import BOX_RGB

    # the demo's labels.csv boxes the L-MLO mass (x 380-513, y 619-760): outlined as on the view
    box = (png == BOX_RGB).all(axis=2)
    assert box[619, 380:514].all() and box[619:761, 513].all() and not box[:600].any()
    coloured = (np.ptp(png.astype(int), axis=2) > 30) & ~box
    assert coloured.any() and (raw[coloured] >= ctl.session.style(bundle).threshold * 0.99).all(), \
        "the PNG is coloured exactly where the map reaches the threshold"
    for p in (tmp_path / "out").iterdir():
        assert "PHANTOM" not in p.name.upper() and "MG_LMLO" not in p.name
    # with the contour on, the export outlines the thresholded region in white, as the view does
    win.overlay_panel.contour.setChecked(True)
    ctl.roi.export_view(tmp_path / "contour")
    wait_jobs(qtbot, ctl)
    outlined = io.imread(tmp_path / "contour" / names[1])
    white = (outlined == 255).all(axis=2) & ~(png == 255).all(axis=2)
    above = raw >= ctl.session.style(bundle).threshold
    assert white.any() and above[white].all() and white.sum() < above.sum()


def test_a_broken_bundle_is_listed_not_fatal(qtbot, tmp_path, monkeypatch, tiny_models):
    import shutil

    from app.gui import build_window

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    broken = tmp_path / "models" / "broken"
    shutil.copytree(tiny_models / "tiny", broken)
    (broken / "model.json").write_text((broken / "model.json").read_text().replace('"method"', '"methd"'))
    win, ctl = build_window(models_dirs=[tmp_path / "models", tiny_models])
    qtbot.addWidget(win)
    texts = [a.text() for a in win.methods_menu.actions()]
    assert any(t.startswith("Not loaded: broken") for t in texts), texts
    assert ctl.overlays.bundle_named("tiny") is not None


def test_inpainting_overlay_shows_its_preview_then_the_fine_map_and_completes_a_rectangle(qtbot, tmp_path,
                                                                                         monkeypatch, tiny_inpainting):
    from app.gui import build_window, demo_study_path

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    win, ctl = build_window(models_dirs=[tiny_inpainting[2].parent])
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    ctl.studies.open(demo_study_path())
    bundle = ctl.overlays.bundle_named("tiny-inpainting")
    assert bundle is not None and bundle.method == "inpainting"
    image = ctl.session.current
    seen = []
    ctl.session.result_added.connect(
        lambda im, frame, b: seen.append(bool(ctl.session.result(im, frame, b).parameters.get("preview"))))
    ctl.overlays.toggle_method(bundle, True, all_views=False)
    wait_jobs(qtbot, ctl)
    assert seen[0] is True and seen[-1] is False, "the coarse preview first, the fine map replaces it"
    canvas = ctl.display.current_canvas()
    assert canvas.has_overlay() and "preview" not in canvas.overlay_text.toPlainText()

    # Inpaint rectangle: original, completion and error with the three scores; laid in place on request
    ctl.session.add_shape(image, "rect", 300, 400, 360, 460)
    assert win.actions["inpaint"].isEnabled()
    win.actions["inpaint"].trigger()
    wait_jobs(qtbot, ctl)
    dialog = ctl.roi.completion
    assert dialog is not None and all(name in dialog.scores.text() for name in ("mse", "critic", "dmse"))
    before = canvas.image_item.image.copy()
    dialog.in_place.setChecked(True)
    laid = canvas.image_item.image
    assert not np.array_equal(laid[400:460, 300:360], before[400:460, 300:360]), "the box shows the completion"
    assert np.array_equal(laid[:300], before[:300]), "nothing else changes"
    dialog.in_place.setChecked(False)
    assert np.array_equal(canvas.image_item.image, before)


def test_the_shipped_inpainting_overlay_is_visible_on_its_first_toggle(qtbot, tmp_path, monkeypatch):
    """Fresh start, first toggle: the preview shows coloured windows and so does the final map; the
    first threshold is the bundle's calibrated cut-off, the range is the final map's, and a drawn
    box gets its error without a borrowed decision."""
    from app.gui import build_window, demo_study_path
    from inference.bundle import bundled_models_dir

    shipped = bundled_models_dir() / "inpainting-phantom"
    if not shipped.is_dir():
        pytest.skip("inpainting-phantom is not bundled")
    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    win, ctl = build_window(models_dirs=[])
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    ctl.studies.open(demo_study_path())
    bundle = ctl.overlays.bundle_named("inpainting-phantom")
    canvas = ctl.display.current_canvas()
    seen = []

    def on_result(image, frame, b):
        qtbot.wait(1)  # let the presenter draw it
        seen.append((bool(ctl.session.result(image, frame, b).parameters.get("preview")), canvas.has_overlay()))

    ctl.session.result_added.connect(on_result)
    ctl.overlays.toggle_method(bundle, True, all_views=False)
    qtbot.waitUntil(lambda: any(p is True for p, _ in seen), timeout=60000)
    qtbot.waitUntil(canvas.has_overlay, timeout=5000)
    assert coloured_pixels(canvas) > 50, "the preview is visible"
    wait_jobs(qtbot, ctl, timeout=120000)
    assert seen[-1][0] is False
    style = ctl.session.style(bundle)
    final = ctl.session.result(ctl.session.current, 0, bundle)
    assert style.threshold == pytest.approx(bundle.calibration.threshold) and style.threshold < style.vmax
    assert style.vmax == pytest.approx(float(np.nanpercentile(final.maps["difference"][final.maps["difference"] > 0],
                                                               99.9)), rel=0.05), "the range is the final map's"
    assert coloured_pixels(canvas) > 50, "the final map is visible"

    ctl.session.add_shape(ctl.session.current, "rect", 300, 400, 360, 460)
    win.actions["inpaint"].trigger()
    wait_jobs(qtbot, ctl)
    assert "no cut-off for a drawn box" in ctl.roi.completion.scores.text()
    assert "abnormal" not in ctl.roi.completion.scores.text()
