"""The viewer's hands-on parts in the real window (offscreen), driven by mouse and keys:
linked zoom, window / level, DBT navigation, ground truth, shapes and measurements, cursor
readout, settings, drops, and the method slots waiting for their engines."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402


@pytest.fixture
def viewer(qtbot, tmp_path, monkeypatch):
    from app.gui import build_window, demo_study_path

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("MAMMOLENS_MODELS", str(tmp_path / "no-models"))
    window, controller = build_window()
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    assert controller.studies.open(demo_study_path()) is not None
    return window, controller


def widget_point(canvas, x: float, y: float) -> QtCore.QPoint:
    """Where image pixel coordinate (x, y) is on the canvas's viewport."""
    scene = canvas.view.mapViewToScene(QtCore.QPointF(x, y))
    return canvas.mapFromScene(scene)


def drag(canvas, button, start: QtCore.QPoint, end: QtCore.QPoint, steps: int = 8) -> None:
    viewport = canvas.viewport()
    QTest.mousePress(viewport, button, QtCore.Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, steps + 1):
        time.sleep(0.012)  # pyqtgraph drops moves closer than 10 ms (its mouseRateLimit)
        p = start + (end - start) * (i / steps)
        event = QtGui.QMouseEvent(QtCore.QEvent.Type.MouseMove, QtCore.QPointF(p),
                                  QtCore.QPointF(viewport.mapToGlobal(p)), QtCore.Qt.MouseButton.NoButton, button,
                                  QtCore.Qt.KeyboardModifier.NoModifier)
        QtWidgets.QApplication.sendEvent(viewport, event)
    QTest.mouseRelease(viewport, button, QtCore.Qt.KeyboardModifier.NoModifier, end)


def wheel(canvas, at: QtCore.QPoint, clicks: int, modifiers=QtCore.Qt.KeyboardModifier.NoModifier) -> None:
    viewport = canvas.viewport()
    event = QtGui.QWheelEvent(QtCore.QPointF(at), QtCore.QPointF(viewport.mapToGlobal(at)), QtCore.QPoint(0, 0),
                              QtCore.QPoint(0, 120 * clicks), QtCore.Qt.MouseButton.NoButton, modifiers,
                              QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(viewport, event)


def wall_distance(canvas) -> float:
    """Screen pixels from the chest wall to the view's inner edge (the hanging's centre line)."""
    wall = canvas.view.mapViewToScene(QtCore.QPointF(canvas.wall_x, 0)).x()
    rect = canvas.view.sceneBoundingRect()
    return rect.right() - wall if canvas.inner_side == "right" else wall - rect.left()


def test_linked_zoom_and_pan_keep_the_chest_walls_mirrored(viewer, qtbot):
    win, ctl = viewer
    cells = win.cells
    for canvas in cells.values():
        assert abs(wall_distance(canvas)) < 1.5, "fit: the chest walls on the centre line"
    rcc = cells[("R", "CC")]
    zoom_before = rcc.camera().zoom
    wheel(rcc, widget_point(rcc, 500, 500), 3)
    cameras = [c.camera() for c in cells.values()]
    assert cameras[0].zoom < zoom_before * 0.95, "the wheel zoomed in"
    for cam in cameras[1:]:
        assert cam.zoom == pytest.approx(cameras[0].zoom, rel=1e-3)
        assert cam.inner == pytest.approx(cameras[0].inner, abs=0.05)
        assert cam.top == pytest.approx(cameras[0].top, abs=0.05)
    zoomed = [wall_distance(c) for c in cells.values()]
    assert max(zoomed) - min(zoomed) < 1.5, zoomed
    # a pan to the right in the left-breast view moves the right-breast view mirrored (to the left)
    lcc = cells[("L", "CC")]
    grab = widget_point(lcc, 300, 500)
    drag(lcc, QtCore.Qt.MouseButton.LeftButton, grab, grab + QtCore.QPoint(60, 0))
    panned = [wall_distance(c) for c in cells.values()]
    assert panned[0] - zoomed[0] == pytest.approx(60, abs=2) and max(panned) - min(panned) < 1.5, panned
    win.actions["fit"].trigger()
    assert all(abs(wall_distance(c)) < 1.5 for c in cells.values())
    win.actions["one_to_one"].trigger()
    screen_px_per_image_px = 1.0 / (rcc.camera().zoom / rcc.mm_per_px)
    assert screen_px_per_image_px == pytest.approx(1.0, rel=1e-3)


def test_window_level_by_right_drag_presets_auto_invert_reset(viewer, qtbot):
    win, ctl = viewer
    canvas = win.cells[("L", "CC")]
    image = ctl.display.image_on(canvas)
    base = ctl.session.current_window(image)
    before = canvas.displayed_array().copy()
    drag(canvas, QtCore.Qt.MouseButton.RightButton, widget_point(canvas, 400, 400),
         widget_point(canvas, 400, 400) + QtCore.QPoint(100, 40))
    preset = ctl.session.state(image).preset
    assert ctl.session.current is image and preset.name == "Custom" and preset.kind == "window"
    assert preset.width == pytest.approx(base.width * math.exp(100 / 250), rel=0.02)
    # the centre moves by dy x the window width at each step: between the first and the last width
    shift = preset.center - base.center
    assert 40 * base.width / 400 * 0.98 <= shift <= 40 * preset.width / 400 * 1.02
    assert not np.allclose(before, canvas.displayed_array())
    assert win.preset.currentText().startswith("Custom")

    win.voi_function.setCurrentText("SIGMOID")
    win.voi_function.activated.emit(win.voi_function.currentIndex())
    assert ctl.session.state(image).preset.function == "SIGMOID"
    win.actions["auto_window"].trigger()
    assert ctl.session.state(image).preset.name.startswith("Auto")
    shown = canvas.displayed_array()
    win.actions["invert"].trigger()
    assert np.allclose(canvas.displayed_array(), 1.0 - shown, atol=1.01 / 255)  # 8-bit on screen
    win.actions["reset_display"].trigger()
    assert ctl.session.state(image).preset is None and not ctl.session.state(image).invert
    assert np.allclose(before, canvas.displayed_array())
    # the file's presets with their explanations
    assert win.preset.count() == len(image.presets) and "NORMAL" in win.preset.itemText(0)
    other = win.cells[("R", "CC")]
    assert ctl.session.state(ctl.display.image_on(other)).preset is None, "window / level is per view"


def test_dbt_wheel_keys_cine_slab_and_ground_truth_on_its_slices(viewer, qtbot):
    win, ctl = viewer
    volume = ctl.session.study.volumes()[0]
    ctl.session.show_single(volume)
    state = ctl.session.state(volume)
    start = state.frame
    wheel(win.single, widget_point(win.single, 200, 300), -2)
    assert state.frame == start + 2, "wheel towards the user: deeper slices"
    QTest.keyClick(win.single, QtCore.Qt.Key.Key_Down)
    assert state.frame == start + 3
    QTest.keyClick(win.single, QtCore.Qt.Key.Key_Home)
    assert state.frame == 0 and f"slice 1/{volume.n_frames}" in win.slice_label.text() and "z = " in win.slice_label.text()
    # the lesion's box only on slices slice_start..slice_end (from the labels file)
    from app.gui import demo_study_path
    from inference.labels import read_labels

    (row,) = [r for r in read_labels(demo_study_path() / "labels.csv") if r.path == "DBT_LCC.dcm"]
    first, last = row.slice_start, row.slice_end
    assert first > 0 and last < volume.n_frames - 1, "the demo lesion leaves slices free on both sides"
    assert win.single.box_count() == 0
    win.slice_slider.setValue(first)
    assert win.single.box_count() == 1 and state.frame == first
    win.slice_slider.setValue(last + 1)
    assert win.single.box_count() == 0
    # slab MIP of 5 slices centred on the shown one (1-based numbers in the label)
    k = last + 1
    single = volume.display(k)
    win.slice_bar.slab.setValue(5)
    assert state.slab == 5 and f"MIP slab {k - 1}-{k + 3}" in win.slice_label.text()
    mip = np.max([volume.display(j) for j in range(k - 2, k + 3)], axis=0)
    assert np.allclose(win.single.displayed_array(), mip, atol=0.51 / 255) and not np.allclose(mip, single, atol=0.01)
    win.slice_bar.slab.setValue(1)
    # cine
    win.slice_bar.fps.setValue(60)
    frame = state.frame
    win.slice_bar.play_button.setChecked(True)
    qtbot.waitUntil(lambda: state.frame >= frame + 3, timeout=3000)
    win.actions["play"].trigger()
    assert not ctl.navigation.cine.isActive()
    assert volume.decoded_frames <= 30, "slices decode only when shown"


def test_draw_and_measure_rectangle_ellipse_distance(viewer, qtbot):
    from app.measure import Shape, region_stats

    win, ctl = viewer
    canvas = win.cells[("L", "MLO")]
    image = ctl.display.image_on(canvas)
    win.actions["tool_rect"].trigger()
    drag(canvas, QtCore.Qt.MouseButton.LeftButton, widget_point(canvas, 380, 619), widget_point(canvas, 513, 760))
    shapes = ctl.session.shapes_of(image)
    assert [s.kind for s in shapes] == ["rect"]
    rect = shapes[0]
    assert rect.box() == pytest.approx((380, 619, 513, 760), abs=4)
    values = image.modality_values(0)
    x0, y0, x1, y1 = (int(round(v)) for v in rect.box())
    inside = values[y0:y1, x0:x1]
    stats = region_stats(values, rect, image.pixel_spacing)
    assert stats.mean == pytest.approx(float(inside.mean()), rel=0.01)
    assert stats.area_mm2 == pytest.approx((x1 - x0) * (y1 - y0) * 0.2 * 0.2, rel=0.03)
    caption = canvas.shape_caption(rect.id)
    assert f"mean {stats.mean:.1f}" in caption and "mm²" in caption
    assert win.measurements.lines() and "rectangle" in win.measurements.lines()[0]

    win.actions["tool_ellipse"].trigger()  # beside the rectangle: a drag that starts on a shape moves it
    drag(canvas, QtCore.Qt.MouseButton.LeftButton, widget_point(canvas, 380, 780), widget_point(canvas, 513, 921))
    assert [s.kind for s in ctl.session.shapes_of(image)] == ["rect", "ellipse"]
    ellipse = ctl.session.shapes_of(image)[-1]
    e_stats = region_stats(values, ellipse, image.pixel_spacing)
    assert e_stats.area_mm2 == pytest.approx(math.pi / 4 * stats.area_mm2, rel=0.05)

    win.actions["tool_line"].trigger()
    drag(canvas, QtCore.Qt.MouseButton.LeftButton, widget_point(canvas, 100, 100), widget_point(canvas, 400, 500))
    line = ctl.session.shapes_of(image)[-1]
    assert line.kind == "line"
    assert f"distance {math.hypot(300, 400) * 0.2:.0f}" in canvas.shape_caption(line.id)[:14] or \
        abs(float(canvas.shape_caption(line.id).split()[1]) - 100.0) < 2.0
    assert len(win.measurements.lines()) == 3

    # moving a shape re-measures it
    roi = canvas._shapes[rect.id][0]
    left = rect.box()[0]
    roi.setPos((left + 50, rect.box()[1]), finish=True)
    moved = ctl.session.shapes_of(image)[0]
    assert moved.box()[0] == pytest.approx(left + 50, abs=0.5) and moved.id == rect.id
    assert canvas.shape_caption(rect.id) != caption
    win.actions["clear_shapes"].trigger()
    assert ctl.session.shapes_of(image) == [] and canvas.shape_ids() == []
    assert Shape("rect", 0, 0, 1, 1).box() == (0, 0, 1, 1)


def test_cursor_readout_stored_shown_and_mm(viewer, qtbot):
    win, ctl = viewer
    canvas = win.cells[("R", "CC")]
    image = ctl.display.image_on(canvas)
    canvas.cursor_moved.emit(300.5, 400.5)
    text = win.cursor_label.text()
    assert text.startswith("x 300  y 400 px") and "(60.1, 80.1 mm)" in text
    assert f"stored {image.stored(0)[400, 300]}" in text
    assert f"shown {canvas.displayed_array()[400, 831 - 300 if canvas.mirrored else 300]:.3f}" in text


def test_info_pane_hides_identifiers_unless_asked(viewer, qtbot):
    win, ctl = viewer
    image = ctl.session.current
    assert image.identity, "the demo files carry identifiers"
    shown = " ".join(v for _, v in win.info.fields())
    identifiers = [image.identity[k] for k in ("PatientID", "PatientName", "StudyInstanceUID", "SOPInstanceUID")]
    assert all(identifiers) and not any(v in shown for v in identifiers)
    win.info.show_identifiers.setChecked(True)
    assert any(name.startswith("[identifier]") for name, _ in win.info.fields())


def test_recent_files_drop_and_bad_input(viewer, qtbot, tmp_path):
    from app.gui import build_window, demo_study_path

    win, ctl = viewer
    assert win.recent_menu.actions()[0].toolTip() == str(demo_study_path().resolve())
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"nonsense" * 100)
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(bad))])
    drop = QtGui.QDropEvent(QtCore.QPointF(20, 20), QtCore.Qt.DropAction.CopyAction, mime,
                            QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    win.dropEvent(drop)
    assert "not a DICOM file" in win.statusBar().currentMessage()
    assert ctl.session.study is not None and win.cells[("R", "CC")].displayed_array() is not None, \
        "the open study stays"
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nx.dcm,tumour\n")
    assert ctl.studies.open_labels(labels) is None and "labels.csv line 2" in win.last_error[0]
    win.close()
    again, ctl2 = build_window()  # same settings file: the recent list persisted
    qtbot.addWidget(again)
    assert again.recent_menu.actions()[0].toolTip() == str(demo_study_path().resolve())


def test_shortcuts_listed_in_help(viewer):
    win, _ = viewer
    rows = dict(win.shortcut_rows())
    for keys in ("Ctrl+O", "F", "1", "A", "I", "R", "Space", "M", "D", "Ctrl+E", "H"):
        assert keys in rows or any(keys in k.split(", ") for k in rows), keys


def test_inpaint_and_synthesis_wait_for_their_bundles_then_plug_in(viewer, qtbot, tmp_path, tiny_synthesis):
    import csv

    import pydicom

    win, ctl = viewer
    ctl.session.bundles = [b for b in ctl.session.bundles if b.method not in ("inpainting", "synthesis")]
    ctl.session.bundles_changed.emit()  # as on a machine without those bundles
    assert not win.actions["inpaint"].isEnabled()
    assert "needs an inpainting model bundle" in win.actions["inpaint"].toolTip().lower()
    assert not win.synthesis.generate.isEnabled()
    assert "needs a synthesis model bundle" in win.synthesis.generate.toolTip().lower()

    ctl.models_dirs = [tiny_synthesis[2].parent]
    ctl.reload_bundles()
    classes = [win.synthesis.lesion_class.itemText(i) for i in range(win.synthesis.lesion_class.count())]
    from app.synthesis import bundle_classes

    bundle = next(b for b in ctl.session.bundles if b.method == "synthesis")
    assert classes == bundle_classes(bundle), "the pane's classes are the bundle's"
    assert win.synthesis.generate.isEnabled()
    win.synthesis.lesion_class.setCurrentText(classes[-1])
    win.synthesis.count.setValue(6)
    win.synthesis.seed.setValue(3)
    win.synthesis.generate.click()
    qtbot.waitUntil(lambda: win.synthesis.grid.count() == 6, timeout=20000)
    win.synthesis.grid.item(1).setSelected(True)
    win.synthesis.grid.item(4).setSelected(True)
    win.synthesis.export_requested.emit(win.synthesis.selected(), str(tmp_path / "patches"))
    qtbot.waitUntil(lambda: ctl.synthesis.last_export is not None, timeout=20000)
    summary = ctl.synthesis.last_export
    rows = list(csv.DictReader(summary.csv.open()))
    assert len(rows) == 6 and {r["format"] for r in rows} == {"png8", "png16", "dicom"}
    assert {(r["class"], r["seed"], r["index"]) for r in rows} == {(classes[-1], "3", "1"), (classes[-1], "3", "4")}
    dicom = next(p for p in summary.files if p.suffix == ".dcm")
    ds = pydicom.dcmread(dicom)
    assert ds.Modality == "OT" or ds.SOPClassUID.name.startswith("Secondary Capture")
    assert "patches" in win.statusBar().currentMessage()


def test_double_click_and_h_toggle_one_view(viewer, qtbot):
    win, ctl = viewer
    rmlo = win.cells[("R", "MLO")]
    QTest.mouseDClick(rmlo.viewport(), QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier,
                      widget_point(rmlo, 400, 500))
    assert win.showing_single() and ctl.session.cells["single"] is ctl.display.image_on(rmlo) and ctl.session.current is ctl.session.cells["single"]
    assert win.single.mirrored == rmlo.mirrored, "one view keeps the hanging's orientation"
    QTest.mouseDClick(win.single.viewport(), QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier,
                      widget_point(win.single, 400, 500))
    assert not win.showing_single() and ctl.session.current is ctl.display.image_on(rmlo)
    win.actions["toggle_layout"].trigger()
    assert win.showing_single()


def test_first_run_says_what_to_do_and_about_names_this_installation(qtbot, tmp_path, monkeypatch):
    from app.gui import build_window

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    win, ctl = build_window()
    qtbot.addWidget(win)
    win.show()
    assert win.stack.currentWidget() is win.welcome, "not four black panes: the welcome page"
    texts = " ".join(label.text() for label in win.welcome.findChildren(type(win.cursor_label)))
    assert "demo" in texts and "Open" in texts
    rows = dict(ctl.about_rows())
    assert set(rows) == {"Version", "Model bundles", "ONNX Runtime providers", "Settings file", "Model folders"}
    assert "CPUExecutionProvider" in rows["ONNX Runtime providers"] and "bundled models" in rows["Model folders"]
    assert str(tmp_path / "settings.ini") == rows["Settings file"]
    win.actions["about"].trigger()  # the dialog opens with those rows


def test_browser_ground_truth_play_and_measurements_read_as_a_new_user_expects(viewer, qtbot, tmp_path):
    win, ctl = viewer
    assert win.stack.currentWidget() is not win.welcome
    # one row per image: a series of one image is that image's row, so no view appears twice
    tree = ctl.studies.tree(ctl.session.studies)
    image_rows = [row for _, _, _, studies in tree for _, _, _, series in studies for row in series]
    names = [row[0].split("  ")[0] for row in image_rows if row[1] is not None]
    assert len(names) == len(set(names)) == len(ctl.session.studies.images())
    # ground truth: numbered boxes, the labels in one legend
    volume = ctl.session.study.volumes()[0]
    ctl.session.show_single(volume)
    row = next(r for r in ctl.session.labels_for(volume) if r.slice_start is not None)
    ctl.session.set_frame(volume, row.slice_start)
    assert win.single.box_labels() and win.single.box_labels()[0].startswith("1  ")
    # Play turns into Pause and back
    win.slice_bar.play_button.setChecked(True)
    assert win.slice_bar.play_button.text() == "Pause"
    win.slice_bar.play_button.setChecked(False)
    assert win.slice_bar.play_button.text() == "Play"
    # measurements: copied and exported as CSV
    ctl.session.add_shape(volume, "rect", 100, 100, 160, 150)
    assert "rectangle" in win.measurements.copy()
    path = ctl.roi.export_measurements(str(tmp_path / "shapes.csv"))
    import csv

    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 1 and rows[0]["kind"] == "rect" and rows[0]["image"].startswith("Patient-1_study1")
    assert volume.path.stem not in path.read_text(), "no file names (they can carry the patient's name)"


def test_plain_films_are_named_by_their_file(tmp_path):
    import imageio.v3 as iio

    from app.presenters.studies import image_title
    from inference.studies.study import open_path

    pixels = np.zeros((128, 96), np.uint8)
    pixels[:, :40] = 200
    iio.imwrite(tmp_path / "mdb001.png", pixels)
    image = open_path(tmp_path).images()[0]
    assert "mdb001.png" in image_title(image)


def test_dicom_overlay_planes_toggle_and_patient_orientation_hangs_the_view(viewer, qtbot, tmp_path):
    import pydicom

    from app.gui import demo_study_path

    win, ctl = viewer
    ds = pydicom.dcmread(demo_study_path() / "MG_RCC.dcm")
    ds.decompress() if ds.file_meta.TransferSyntaxUID.is_compressed else None
    rows, cols = int(ds.Rows), int(ds.Columns)
    plane = np.zeros((64, 64), bool)
    plane[10:20, :] = True  # a bar, placed at row 101, column 51 (1-based origin)
    ds.add_new((0x6000, 0x0010), "US", 64)
    ds.add_new((0x6000, 0x0011), "US", 64)
    ds.add_new((0x6000, 0x0040), "CS", "G")
    ds.add_new((0x6000, 0x0050), "SS", [101, 51])
    ds.add_new((0x6000, 0x0100), "US", 1)
    ds.add_new((0x6000, 0x0102), "US", 0)
    ds.add_new((0x6000, 0x3000), "OW", np.packbits(plane.ravel(), bitorder="little").tobytes())
    stored_wall = ctl.session.wall_side(ctl.session.current)
    ds.PatientOrientation = ["A", "F"] if stored_wall == "R" else ["P", "F"]  # the opposite of the pixels' guess
    ds.save_as(tmp_path / "spot.dcm")

    assert ctl.studies.open(tmp_path / "spot.dcm") is not None
    image = ctl.session.current
    assert ctl.session.wall_side(image) != stored_wall, "Patient Orientation wins over the pixel guess"
    canvas = win.single if ctl.session.single else ctl.display.current_canvas()
    assert not canvas.has_planes()
    win.actions["overlay_planes"].trigger()
    assert canvas.has_planes()
    shown = canvas.planes_item.image
    assert shown.shape == (rows, cols) and shown[110:120, 50:114].all() and shown.sum() == 10 * 64
    win.actions["overlay_planes"].trigger()
    assert not canvas.has_planes()


def test_an_undecodable_view_says_so_and_the_others_show(qtbot, tmp_path, monkeypatch):
    import shutil

    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    from app.gui import build_window, demo_study_path

    for name in ("MG_RCC.dcm", "MG_LCC.dcm", "MG_RMLO.dcm"):
        shutil.copy(demo_study_path() / name, tmp_path / name)
    ds = pydicom.dcmread(demo_study_path() / "MG_LMLO.dcm")
    ds.decompress() if ds.file_meta.TransferSyntaxUID.is_compressed else None
    ds.compress(RLELossless)
    # a well-formed RLE header (two segments, as 16-bit pixels have) over bytes that decode to too few pixels:
    # the header check lets it through, the decode fails
    header = (2).to_bytes(4, "little") + (64).to_bytes(4, "little") + (100).to_bytes(4, "little") + bytes(52)
    ds.PixelData = encapsulate([header + b"\xff" * 200])
    ds.save_as(tmp_path / "MG_LMLO.dcm")

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    win, ctl = build_window()
    qtbot.addWidget(win)
    win.show()
    assert ctl.studies.open(tmp_path) is not None
    shown = {key: c.displayed_array() is not None for key, c in win.cells.items()}
    assert shown == {("R", "CC"): True, ("L", "CC"): True, ("R", "MLO"): True, ("L", "MLO"): False}
    text = win.cells[("L", "MLO")].readout.toPlainText()
    assert text and "\n" not in text and "Traceback" not in text and "0x" not in text
