"""The window as a new user meets it (offscreen, the bundled models): the overlay scope, a
1280 x 720 screen, preset names, the synthesis pane, About, the cursor readout over an
inpainting map."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

pytest.importorskip("PySide6")


@pytest.fixture
def viewer(qtbot, tmp_path, monkeypatch):
    from app.gui import build_window, demo_study_path

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.chdir(tmp_path)
    window, controller = build_window()
    qtbot.addWidget(window)
    window.resize(1280, 720)
    window.show()
    assert controller.studies.open(demo_study_path()) is not None
    qtbot.waitUntil(lambda: window.width() <= 1280, timeout=5000)
    return window, controller


def shipped(controller, method):
    bundle = next((b for b in controller.session.bundles if b.method == method), None)
    if bundle is None:
        pytest.skip(f"no {method} bundle in resources/models")
    return bundle


def wait_jobs(qtbot, controller, timeout=60000):
    qtbot.waitUntil(lambda: not controller.jobs.running(), timeout=timeout)


def test_all_views_applies_the_method_already_on_and_the_demo_says_so(viewer, qtbot):
    from app.gui import show_first_overlay

    win, ctl = viewer
    bundle = shipped(ctl, "translation")
    session = ctl.session
    assert not win.scope_all()
    ctl.overlays.toggle_method(bundle, True)  # current view only
    assert [session.state(im).overlay is bundle for im in session.grid_images()].count(True) == 1
    win.scope.setCurrentIndex(1)  # "all views": the method already on goes to the whole hanging
    assert all(session.state(im).overlay is bundle for im in session.grid_images())
    ctl.jobs.cancel_all()
    # the demo's overlay on four views: the combo says "all views"
    win.scope.setCurrentIndex(0)
    show_first_overlay(ctl)
    assert win.scope.currentText() == "all views"
    assert all(session.state(im).overlay is not None for im in session.grid_images())
    ctl.jobs.cancel_all()
    wait_jobs(qtbot, ctl)


def _toolbar_hides(win) -> list[str]:
    """Actions of the top toolbars pushed into an overflow menu (their buttons hidden)."""
    hidden = []
    for bar in (win.methods_toolbar, win.display_toolbar, win.tools_toolbar):
        for action in bar.actions():
            widget = bar.widgetForAction(action)
            if action.isVisible() and widget is not None and not widget.isVisible():
                hidden.append(action.text() or widget.objectName())
            elif widget is not None and widget.isVisible():
                right = widget.mapTo(win, QtCore.QPoint(widget.width(), 0)).x()
                if right > win.width():
                    hidden.append(action.text())
    return hidden


def test_the_window_works_at_1280_by_720(viewer, qtbot):
    from app.gui import show_first_overlay

    win, ctl = viewer
    assert win.width() <= 1280 and win.height() <= 720, win.size()
    show_first_overlay(ctl)
    wait_jobs(qtbot, ctl)
    QtWidgets.QApplication.processEvents()
    # nothing of the toolbars in an overflow menu: "Hanging / one view", the tools, the methods
    assert _toolbar_hides(win) == []
    assert win.display_toolbar.widgetForAction(win.actions["toggle_layout"]).isVisible()
    # one tab bar per group of tabbed panels (no stray copy drawn over another panel)
    bars = [tuple(bar.tabText(i) for i in range(bar.count())) for bar in win.findChildren(QtWidgets.QTabBar)
            if bar.isVisible()]
    assert len(bars) == len(set(bars)) == 2, bars
    # study tree: every line of every row fits its row (no "R-CC (Series 1 p...")
    browser = win.browser
    metrics = browser.fontMetrics()
    items = []
    stack = [browser.topLevelItem(i) for i in range(browser.topLevelItemCount())]
    while stack:
        item = stack.pop()
        items.append(item)
        stack += [item.child(i) for i in range(item.childCount())]
    assert len(items) >= 7
    for item in items:
        rect = browser.visualItemRect(item)
        text_width = rect.width() - (browser.iconSize().width() + 8 if not item.icon(0).isNull() else 0) - 8
        lines = item.text(0).split("\n")
        assert all(metrics.horizontalAdvance(line) <= text_width for line in lines), (item.text(0), text_width)
        assert rect.height() >= len(lines) * metrics.height() - 2, item.text(0)
        assert rect.right() <= browser.viewport().width()
    # the Overlay panel: its colour bar and the method parameters are in view or a scroll away, and
    # the panel has the larger share of the right side
    area = win.overlay_dock.widget()
    assert area.viewport().height() >= 330
    panel = win.overlay_panel
    top = panel.export.mapTo(area.viewport(), QtCore.QPoint(0, 0)).y()
    assert 0 <= top and top + panel.export.height() <= area.viewport().height(), "Export view without scrolling"
    reach = area.verticalScrollBar().maximum() + area.viewport().height()  # the panel's height a scroll shows
    for widget in (panel.colour_bar, panel.parameters_box):
        bottom = widget.mapTo(panel, QtCore.QPoint(0, widget.height())).y()
        assert widget.isVisible() and bottom <= reach, (widget, bottom, reach)
    # the views' own texts stay inside their views
    for canvas in win.cells.values():
        view = canvas.view.sceneBoundingRect()
        for item in (canvas.label, canvas.overlay_text):
            assert item.sceneBoundingRect().right() <= view.right() + 1, item.toPlainText()
    ctl.jobs.cancel_all()


def test_a_measurement_near_the_views_edge_keeps_its_caption_inside(viewer, qtbot):
    win, ctl = viewer
    image = ctl.session.current
    canvas = ctl.display.current_canvas()
    # a rectangle at the image's far side: on screen at the view's right edge (mirrored or not)
    x = image.cols - 60 if not canvas.mirrored else 10
    shape = ctl.session.add_shape(image, "rect", x, 500, x + 50, 560)
    QtWidgets.QApplication.processEvents()
    caption = canvas._shapes[shape.id][1]
    text = caption.toPlainText()
    assert "mean" in text and "mm²" in text and max(len(line) for line in text.splitlines()) <= 32
    view = canvas.view.sceneBoundingRect()
    box = caption.sceneBoundingRect()
    assert box.left() >= view.left() - 1 and box.right() <= view.right() + 1, (box, view)


def test_window_presets_cannot_be_read_as_a_finding(viewer):
    win, ctl = viewer
    labels = [win.preset.itemText(i) for i in range(win.preset.count())]
    assert labels and not any("NORMAL" in label.upper().split(" (")[0] for label in labels), labels
    for canvas in win.cells.values():
        assert "NORMAL" not in canvas.label.toPlainText()


def test_synthesis_pane_export_size_label_bundle_line_and_folder(viewer, qtbot, tmp_path, monkeypatch):
    win, ctl = viewer
    bundle = shipped(ctl, "synthesis")
    pane = win.synthesis
    win.synthesis_dock.raise_()
    assert bundle.name in pane.bundle_line.text() and ("model card" in pane.bundle_line.text()
                                                      or "no evaluation card" in pane.bundle_line.text())
    size_label = next(label for label in pane.findChildren(QtWidgets.QLabel) if label.text() == "Patch size")
    assert size_label.buddy() is pane.zoom and pane.zoom_value.text() == f"{pane.zoom.value()} px"
    pane.count.setValue(24)
    pane.generate.click()
    wait_jobs(qtbot, ctl)
    assert pane.grid.count() == 24
    QtWidgets.QApplication.processEvents()
    viewport = pane.grid.viewport().rect()
    shown = sum(viewport.contains(pane.grid.visualItemRect(pane.grid.item(i))) for i in range(pane.grid.count()))
    assert shown >= 12, f"only {shown} patches in view at 1280 x 720"
    # nothing selected: Export is disabled (not a button that does nothing)
    assert not pane.export.isEnabled()
    pane.grid.item(0).setSelected(True)
    pane.grid.item(3).setSelected(True)
    assert pane.export.isEnabled() and "2" in pane.export.text()
    # the dialog starts in the user's folder (home, or the last export), never the working folder
    asked = []
    out = tmp_path / "exported patches"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory",
                        staticmethod(lambda parent, title, start="": asked.append(start) or str(out)))
    pane.export.click()
    wait_jobs(qtbot, ctl)
    assert asked and asked[0] not in ("", ".", str(tmp_path)), asked
    assert str(out) in win.statusBar().currentMessage(), "the full path, not the folder's name"
    pane.export.click()
    assert asked[1] == str(out), "the next export starts where the last one went"
    wait_jobs(qtbot, ctl)


def test_about_lists_installed_providers_apart_from_where_models_run(viewer):
    from inference.runtime import available_providers

    win, ctl = viewer
    rows = dict(ctl.about_rows())
    assert rows["ONNX Runtime providers installed"] == ", ".join(available_providers())
    runs = rows["Models run here on"]
    assert runs.split(" (")[0] in ("CPU", "CUDA", "TensorRT", "ROCm", "DirectML", "CoreML", "OpenVINO"), runs
    if "CUDAExecutionProvider" in available_providers() and runs.startswith("CPU"):
        assert "could not enable" in runs or "failed" in runs, "an installed GPU provider that does not run says why"


def test_cursor_over_an_inpainting_map_reads_in_its_unit_and_no_nan(viewer, qtbot):
    from inference.result import Result

    win, ctl = viewer
    bundle = shipped(ctl, "inpainting")
    session = ctl.session
    image = session.current
    canvas = ctl.display.current_canvas()
    value_map = np.full((image.rows, image.cols), np.nan, np.float32)
    value_map[400:600, 300:500] = 0.0123  # the windows reached only here
    result = Result(method="inpainting", bundle_name=bundle.name, bundle_version=bundle.version, provider="CPU",
                    maps={"difference": value_map}, score=0.0123)
    session.add_result(image, 0, bundle, result)
    session.set_overlay(image, bundle)
    ctl.jobs.cancel_all()
    canvas.cursor_moved.emit(350.5, 450.5)
    inside = win.cursor_label.text()
    assert "DMSE 0.0123" in inside and "difference" not in inside
    canvas.cursor_moved.emit(5.5, 5.5)
    outside = win.cursor_label.text()
    assert "nan" not in outside.lower() and "no map here" in outside
    # the colour bar and threshold in the score's unit too
    assert "DMSE" in win.overlay_panel.threshold_value.text()
    wait_jobs(qtbot, ctl)
