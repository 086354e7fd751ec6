"""A JPEG 2000 mammogram opens with a reduced-resolution decode first (its resolution levels: a
fraction of the full decode) and the full frame replaces it when decoded in the background; the
methods always read the full frame."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")


def _blocky(frame: np.ndarray, factor: int) -> bool:
    """Every pixel repeated over factor x factor blocks (a reduced frame brought to full size)."""
    rep = np.repeat(np.repeat(frame[::factor, ::factor], factor, axis=0), factor, axis=1)
    return np.array_equal(rep[: frame.shape[0], : frame.shape[1]], frame)


def test_jpeg2000_mammogram_shows_a_reduced_frame_first_then_the_full_one(qtbot, tmp_path, monkeypatch):
    import pydicom

    from app.gui import build_window
    from app.session import _to_uint8
    from training.phantom import simulate_mammogram
    from training.phantom.dicom_writer import write_mammogram_dicom

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("MAMMOLENS_MODELS", str(tmp_path / "no-models"))
    path = tmp_path / "mg" / "MG.dcm"
    write_mammogram_dicom(path, simulate_mammogram(5, shape=(1600, 1300), pixel_spacing=0.15, view="CC"),
                          compress="jpeg2000")
    window, controller = build_window()
    qtbot.addWidget(window)
    window.resize(1200, 900)
    window.show()
    qtbot.waitExposed(window)
    assert controller.studies.open(path.parent) is not None
    image = controller.session.current
    canvas = window.single if controller.session.single else controller.display.current_canvas()
    first = np.array(canvas.image_item.image)
    assert first.shape == (1600, 1300)  # on the frame's own grid: boxes and maps land where they belong
    assert _blocky(first, 2)  # 800 x 650 decoded, each pixel shown over 2 x 2

    full = _to_uint8(image.display(0))  # what the methods read: the full decode
    stored = pydicom.dcmread(path).pixel_array
    assert np.array_equal(image.stored(0), stored) and image.display(0).shape == stored.shape
    qtbot.waitUntil(lambda: np.array_equal(canvas.image_item.image, full), timeout=20000)
    assert not _blocky(np.asarray(canvas.image_item.image), 2)
    # the reduced frame is close to the full one (the same window), not another picture
    assert np.abs(first.astype(np.int16) - full.astype(np.int16)).mean() < 8
    assert image.preview_display(0) is None  # decoded now: no preview is made again
