"""A SEG or Parametric Map beside its source image opens as a layer drawn over that source: the
loader attaches it by SOP Instance UID and frame, the viewer (offscreen, pytest-qt) draws the SEG in
the overlay-plane layer and the map in the overlay layer."""
from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest


def _square_map(rows: int, cols: int) -> np.ndarray:
    values = np.full((rows, cols), 0.01, np.float32)
    values[rows // 3: rows // 3 + 120, cols // 3: cols // 3 + 100] = 0.9
    return values


@pytest.fixture(scope="module")
def study_with_layers(tmp_path_factory):
    """The demo's R-CC mammogram and DBT volume, with a SEG and a Parametric Map of each (DBT: slices 3 and 9)."""
    from app.gui import demo_study_path
    from inference.dicom_results import FrameResult, Provenance, write_result_objects

    folder = tmp_path_factory.mktemp("layers")
    prov = Provenance("translation", "difference", "display units", "toy", "1")
    for name, frames in (("MG_RCC.dcm", [0]), ("DBT_LCC.dcm", [2, 8])):
        shutil.copy(demo_study_path() / name, folder / name)
        header = pydicom.dcmread(folder / name, stop_before_pixels=True)
        results = [FrameResult(k, _square_map(header.Rows, header.Columns), 0.5, "abnormal") for k in frames]
        write_result_objects([folder / name], results, prov, folder, name[:-4], threshold=0.5)
    return folder


def test_layers_attach_to_their_source_by_uid_and_frame(study_with_layers, tmp_path):
    from inference.studies.study import open_path

    studies = open_path(study_with_layers)
    assert studies.failures == []  # the SRs are skipped quietly, the SEGs / maps are layers, not images
    images = {(im.name, im.is_volume): im for im in studies.images()}
    assert len(images) == 2
    mg, dbt = images[("R-CC", False)], images[("L-CC", True)]
    assert sorted(layer.kind for layer in mg.layers) == ["Parametric Map", "SEG"]
    seg = next(layer for layer in dbt.layers if layer.is_segmentation)
    pm = next(layer for layer in dbt.layers if not layer.is_segmentation)
    assert sorted(seg.frames) == sorted(pm.frames) == [2, 8]
    expected = _square_map(dbt.rows, dbt.cols)
    np.testing.assert_array_equal(pm.values(8), expected)
    np.testing.assert_array_equal(seg.values(2), expected >= 0.5)
    assert seg.values(5) is None and pm.values(5) is None
    assert pm.label == "difference" and pm.unit == "display units"
    # a SEG without its source: one sentence, the rest opens
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(study_with_layers / "MG_RCC_seg.dcm", alone / "seg.dcm")
    shutil.copy(study_with_layers / "DBT_LCC.dcm", alone / "DBT_LCC.dcm")
    studies = open_path(alone)
    assert len(studies.images()) == 1 and studies.images()[0].layers == []
    assert [f.reason for f in studies.failures] == [
        "is a SEG whose source image is not among the files opened; open it together with its source."]


def test_viewer_draws_seg_and_map_over_their_source(study_with_layers, qtbot, tmp_path, monkeypatch):
    pytest.importorskip("PySide6")
    from app.gui import build_window

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    window, controller = build_window(models_dirs=[])
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    studies = controller.studies.open(study_with_layers)
    assert studies is not None
    assert window.actions["overlay_planes"].isChecked()  # turned on: a SEG was opened
    mg = next(im for im in studies.images() if not im.is_volume)
    canvases = controller.overlays.canvases_showing(mg)
    assert canvases, "the mammogram is not on screen"
    canvas = canvases[0]
    qtbot.waitUntil(lambda: canvas.has_planes() and canvas.has_overlay(), timeout=5000)
    expected = _square_map(mg.rows, mg.cols) >= 0.5
    np.testing.assert_array_equal(np.asarray(canvas.planes_item.image).astype(bool), expected)
    assert "Parametric Map: difference (display units)" in canvas.overlay_text.toPlainText()
    indices = np.asarray(canvas.overlay_item.image)
    assert indices.shape == expected.shape and indices[expected].min() > indices[~expected].max()
    # the planes toggle hides the SEG, and brings it back
    window.actions["overlay_planes"].setChecked(False)
    assert not canvas.has_planes()
    window.actions["overlay_planes"].setChecked(True)
    assert canvas.has_planes()


def test_viewer_exports_dicom_results_that_reopen_as_layers(qtbot, tmp_path, monkeypatch):
    """File > Export DICOM results on the R-CC map: three objects that pass dciodvfy; opened beside
    the source they are drawn over it (SEG in the planes, map in the overlay layer)."""
    pytest.importorskip("PySide6")
    from app.gui import build_window, demo_study_path
    from tests.dicom_checks import assert_dciodvfy_clean

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    window, controller = build_window()
    qtbot.addWidget(window)
    window.show()
    source = tmp_path / "study"
    source.mkdir()
    shutil.copy(demo_study_path() / "MG_RCC.dcm", source / "MG_RCC.dcm")
    studies = controller.studies.open(source)
    (image,) = studies.images()
    bundle = controller.overlays.bundle_named("healthygan-phantom")
    controller.session.set_current(image)
    controller.overlays.toggle_method(bundle, True, all_views=False)
    qtbot.waitUntil(lambda: controller.session.result(image, 0, bundle) is not None, timeout=30000)
    result = controller.session.result(image, 0, bundle)
    window.export_dicom_requested.emit(str(source))
    qtbot.waitUntil(lambda: len(controller.pacs.last_dicom_export) == 3, timeout=20000)
    for path in controller.pacs.last_dicom_export:
        assert_dciodvfy_clean(path)
    studies = controller.studies.open(source)
    (image,) = studies.images()
    assert sorted(layer.kind for layer in image.layers) == ["Parametric Map", "SEG"]
    pm = next(layer for layer in image.layers if not layer.is_segmentation)
    np.testing.assert_array_equal(pm.values(0), result.maps["difference"].astype(np.float32))
    canvas = controller.overlays.canvases_showing(image)[0]
    qtbot.waitUntil(lambda: canvas.has_planes() and canvas.has_overlay(), timeout=5000)


def test_layers_of_a_legacy_dbt_series_attach_to_the_stacked_volume(tmp_path):
    from inference.dicom_results import FrameResult, Provenance, write_result_objects
    from inference.studies.study import open_path
    from training.phantom import simulate_dbt, write_legacy_dbt_series

    volume = simulate_dbt(5, shape=(96, 80), n_slices=4, pixel_spacing=0.8)
    paths = write_legacy_dbt_series(tmp_path / "series", volume)  # paths[k] holds slice k
    values = {k: np.full((96, 80), 0.1 * k, np.float32) for k in (1, 3)}
    values[3][10:30, 20:40] = 0.9
    prov = Provenance("translation", "difference", "display units", "toy", "1")
    write_result_objects(paths, [FrameResult(k, v, 0.5) for k, v in values.items()], prov, tmp_path / "series",
                         "legacy", threshold=0.5)
    studies = open_path(tmp_path / "series")
    assert studies.failures == []
    (image,) = studies.images()
    assert image.n_frames == 4 and sorted(layer.kind for layer in image.layers) == ["Parametric Map", "SEG"]
    seg = next(layer for layer in image.layers if layer.is_segmentation)
    pm = next(layer for layer in image.layers if not layer.is_segmentation)
    assert sorted(pm.frames) == [1, 3]
    np.testing.assert_array_equal(pm.values(1), values[1])
    np.testing.assert_array_equal(seg.values(3), values[3] >= 0.5)
    assert not seg.values(1).any()  # slice 2's map stays below the threshold: an empty frame
