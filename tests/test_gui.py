"""The viewer window, offscreen through pytest-qt: open, hang, scroll DBT, bad input."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")


@pytest.fixture(autouse=True)
def private_settings(tmp_path, monkeypatch):
    """The viewer's QSettings go to a temp file, never the user's."""
    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))


@pytest.fixture
def window(qtbot):
    from app.gui import build_window

    window, controller = build_window()
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    return window, controller


def test_demo_study_hangs_four_views_mirrored(window, qtbot):
    from app.gui import demo_study_path

    win, ctl = window
    studies = ctl.studies.open(demo_study_path())
    assert studies is not None and not studies.failures
    hanging = ctl.session.study.hanging()
    assert set(hanging) == {("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")}
    for key, canvas in win.cells.items():
        shown = canvas.displayed_array()
        assert shown is not None and shown.std() > 0.05, key
        # chest walls meet in the middle: right views bright on their right edge, left on their left
        cols = shown.mean(axis=0)
        edge = max(4, shown.shape[1] // 20)
        inner, outer = (cols[-edge:], cols[:edge]) if key[0] == "R" else (cols[:edge], cols[-edge:])
        assert inner.mean() > outer.mean() + 0.05, key


def test_dbt_slices_scroll_and_decode_lazily(window, qtbot):
    from app.gui import demo_study_path

    win, ctl = window
    ctl.studies.open(demo_study_path())
    volume = ctl.session.study.volumes()[0]
    ctl.session.show_single(volume)
    assert win.slice_bar.isVisibleTo(win) and win.slice_slider.maximum() == volume.n_frames - 1
    first = win.single.displayed_array().copy()
    win.slice_slider.setValue(0)
    assert ctl.session.state(volume).frame == 0
    assert not np.array_equal(first, win.single.displayed_array()), "another slice shows other pixels"
    assert "slice 1/" in win.slice_label.text() and "mm" in win.slice_label.text()
    assert volume.decoded_frames <= 3 and len(volume.cached_frames()) <= volume.cache_frames


def test_bad_file_shows_a_message_not_a_crash(window, qtbot, tmp_path):
    win, ctl = window
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"nonsense" * 100)
    assert ctl.studies.open(bad) is None
    assert "not a DICOM file" in win.statusBar().currentMessage()


def test_folder_with_a_bad_file_lists_it(window, qtbot, phantom_study, tmp_path):
    import shutil

    win, ctl = window
    folder, _ = phantom_study
    dst = tmp_path / "study"
    shutil.copytree(folder, dst)
    (dst / "P0001" / "broken.dcm").write_bytes(b"\x00" * 300)
    studies = ctl.studies.open(dst)
    assert [f.path.name for f in studies.failures] == ["broken.dcm"]
    top = [win.browser.topLevelItem(i).text(0) for i in range(win.browser.topLevelItemCount())]
    assert top[-1] == "Unreadable files (1)"


def test_demo_command_writes_screenshots(tmp_path, monkeypatch, capsys):
    """Into the folder it names (./mammolens-demo by default), never loose in the working folder."""
    from app.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--offscreen"]) == 0
    shot = tmp_path / "mammolens-demo" / "demo.png"
    out = capsys.readouterr().out
    assert f"screenshot: {shot}" in out and "R-CC" in out
    assert not list(tmp_path.glob("*.png")), "nothing written into the working folder itself"
    from skimage import io

    pixels = io.imread(shot)
    assert pixels.shape[0] > 500 and pixels.std() > 10
    assert shot.with_name("demo-dbt.png").is_file()


def test_demo_opens_with_the_first_model_overlay_and_its_card_line(tiny_healthygan, tmp_path, monkeypatch, capsys):
    """`make demo` with a model bundle: the hanging with its overlay, and what the model is."""
    import json

    from app.cli import main

    _, _, bundle_dir = tiny_healthygan
    models = tmp_path / "models"
    import shutil

    shutil.copytree(bundle_dir, models / "tiny")
    (models / "tiny" / "card.json").write_text(json.dumps({"key_line": "test AUC 0.50 (0.40-0.60); clip check passed"}))
    monkeypatch.setenv("MAMMOLENS_MODELS", str(models))
    monkeypatch.setattr("inference.bundle.bundled_models_dir", lambda: tmp_path / "none")
    monkeypatch.setattr("inference.bundle.user_models_dir", lambda: tmp_path / "none")
    shot = tmp_path / "demo.png"
    assert main(["demo", "--offscreen", "--screenshot", str(shot)]) == 0
    out = capsys.readouterr().out
    assert "overlay: tiny 1; model card: test AUC 0.50 (0.40-0.60); clip check passed" in out
    from skimage import io

    plain, overlay = io.imread(shot), io.imread(shot.with_name("demo-overlay.png"))
    assert plain.shape == overlay.shape and np.abs(plain.astype(int) - overlay.astype(int)).mean() > 1, \
        "the overlay changes the picture"


def test_overlay_panel_without_models_says_how_to_get_one(qtbot, tmp_path, monkeypatch):
    from app.gui import build_window, demo_study_path

    monkeypatch.delenv("MAMMOLENS_MODELS", raising=False)
    monkeypatch.setattr("inference.bundle.bundled_models_dir", lambda: tmp_path / "none")
    monkeypatch.setattr("inference.bundle.user_models_dir", lambda: tmp_path / "none")
    window, controller = build_window()
    qtbot.addWidget(window)
    window.show()
    controller.studies.open(demo_study_path())
    text = window.overlay_panel.title.text()
    assert "No model bundle found" in text and "mammolens train" in text and "mammolens export" in text
    assert "toggle a method" not in text
