"""The viewer's Qt-free core without a window: the session's state and event order, its caches,
the colour tables shared by screen and exports, the fast resize pinned against scikit-image."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from app.heatmap import COLORMAPS, colour_table, style_table, summarise, table_index
from app.session import LruCache, OverlayKey, ResultCache, ResultKey, Session
from inference.result import Result


@dataclass(frozen=True)
class FakeBundle:
    name: str = "fake"
    version: str = "1"
    method: str = "translation"
    calibration: object = None


def _result(value_map: np.ndarray, score: float = 1.0) -> Result:
    return Result(method="translation", bundle_name="fake", bundle_version="1", provider="CPU",
                  maps={"difference": value_map}, score=score)


@pytest.fixture(scope="module")
def demo():
    from app.gui import demo_study_path

    return demo_study_path()


@pytest.fixture
def session(demo):
    session = Session()
    session.open(demo)
    return session


def record(session: Session, *names: str) -> list[tuple]:
    events: list[tuple] = []
    for name in names:
        getattr(session, name).connect(lambda *args, n=name: events.append((n,) + args))
    return events


def test_opening_hangs_the_four_screening_views_and_makes_r_cc_current(demo):
    session = Session()
    events = record(session, "opened", "study_changed", "layout_changed", "current_changed")
    studies = session.open(demo)
    assert [e[0] for e in events] == ["opened", "study_changed", "layout_changed", "current_changed"]
    assert not session.single and session.current.name == "R-CC"
    assert {cell: im.name for cell, im in session.cells.items() if im is not None} == {
        ("R", "CC"): "R-CC", ("L", "CC"): "L-CC", ("R", "MLO"): "R-MLO", ("L", "MLO"): "L-MLO"}
    volume = next(im for st in studies.studies() for im in st.volumes())
    session.show_single(volume)
    assert session.single and session.current is volume and session.cells["single"] is volume
    session.toggle_single()  # back to the hanging: the volume is not in it, so R-CC becomes current
    assert not session.single and session.current.name == "R-CC" and session.cells["single"] is None


def test_a_blocked_or_disconnected_presenter_hears_nothing(session):
    image = session.current
    heard = []
    session.view_changed.connect(heard.append)
    with session.view_changed.blocked():
        session.set_frame(image, 0) or session.set_invert(image, True)
    assert heard == []
    session.set_invert(image, False)
    assert heard == [image]
    session.view_changed.disconnect(heard.append)
    session.set_invert(image, True)
    assert heard == [image]


def test_first_result_stores_its_table_indices_before_style_changed(session):
    """The defect: style_changed came before the worker's indices were stored, so a listener
    drawing on it indexed the full-size map again on the UI thread (and drew it twice)."""
    image, bundle = session.current, FakeBundle()
    value_map = np.linspace(0, 2, image.rows * image.cols, dtype=np.float32).reshape(image.rows, image.cols)
    summary = summarise(value_map)
    indices = ("difference", summary.vmax, table_index(value_map, summary.vmax))
    key = session.result_key(image, 0, bundle)
    seen = []

    def on_style(b):
        style = session.style(b)
        seen.append(("style", session.frames_shown.get(OverlayKey(key, style.map_name, style.vmax)) is not None))

    session.style_changed.connect(on_style)
    session.result_added.connect(lambda im, frame, b: seen.append(("result", session.result(im, frame, b) is not None)))
    session.add_result(image, 0, bundle, _result(value_map), {"difference": summary}, indices)
    assert seen == [("style", True), ("result", True)]
    style = session.style(bundle)
    assert style.calibrated and style.vmax == summary.vmax and style.threshold == summary.default_threshold
    session.add_result(image, 0, bundle, _result(value_map), {"difference": summary}, indices)
    assert seen[2:] == [("result", True)], "a calibrated style is not announced again"


def test_result_cache_drops_least_recent_by_bytes_and_lists_frames_by_named_key():
    cache = ResultCache(max_bytes=3 * 100 * 2)  # three 10 x 10 float16 maps
    bundle = FakeBundle()
    for frame in range(4):
        cache.put(ResultKey(1, frame, bundle, ()), ResultCache.slim(_result(np.ones((10, 10))), ["difference"]))
    assert cache.get(ResultKey(1, 0, bundle, ())) is None, "the oldest went first"
    assert cache.frames(1, bundle, ()) == [1, 2, 3] and cache.frames(2, bundle, ()) == []
    assert cache.get(ResultKey(1, 3, bundle, ())).maps["difference"].dtype == np.float16
    assert cache.nbytes == 600


def test_lru_cache_lets_a_reader_wait_for_what_a_worker_is_making():
    cache: LruCache = LruCache(1 << 20)
    assert cache.begin("k") and not cache.begin("k") and "k" in cache
    threading.Timer(0.05, lambda: cache.put("k", np.zeros(4))).start()
    assert cache.wait_for("k", timeout=5.0) is not None
    assert cache.wait_for("missing", timeout=0.01) is None


def test_screen_frame_is_the_float_display_in_8_bit(session):
    image = session.current
    session.set_invert(image, True)
    shown = session.screen_frame(image)
    expected = ((1.0 - image.display(0)) * 255 + 0.5).astype(np.uint8)
    assert shown.dtype == np.uint8 and np.array_equal(shown, expected)


def test_chest_wall_guess_and_export_stem_never_use_file_names(session):
    image = session.current
    assert session.wall_side(image) in ("L", "R")
    stem = session.export_stem(image)
    assert stem.startswith("Patient-1_study1_R-CC") and image.path.stem not in stem


@pytest.mark.parametrize("name", COLORMAPS)
def test_exports_colour_with_the_screen_tables(name):
    import pyqtgraph as pg

    screen = np.asarray(pg.colormap.get(name).getLookupTable(nPts=256, alpha=False), dtype=np.uint8)
    assert np.array_equal(colour_table(name), screen)


def test_style_table_is_transparent_below_the_threshold():
    from app.heatmap import OverlayStyle

    table = style_table(OverlayStyle(vmax=2.0, threshold=1.0))
    assert table.shape == (256, 4) and (table[:127, 3] == 0).all() and (table[128:, 3] == 255).all()
    assert np.array_equal(table[-1, :3], colour_table("viridis")[-1])


@pytest.mark.parametrize("shape_in,shape_out", [((37, 53), (91, 120)), ((256, 256), (64, 64)), ((40, 30), (40, 77))])
def test_fast_linear_resize_matches_scikit_image(shape_in, shape_out):
    from skimage.transform import resize

    from inference.preprocess import resize_linear

    a = np.random.default_rng(0).random(shape_in, dtype=np.float32)
    expected = resize(a, shape_out, order=1, mode="edge", anti_aliasing=False, preserve_range=True)
    assert np.allclose(resize_linear(a, shape_out), expected, atol=1e-5)
    assert np.allclose(resize_linear(a, shape_out, keep=(5, 7)), expected[:5, :7], atol=1e-5)


def test_block_mean_pads_by_replication():
    from inference.preprocess import block_mean

    a = np.arange(15, dtype=np.float32).reshape(3, 5)
    out = block_mean(a, 2)
    assert out.shape == (2, 3) and out[0, 0] == pytest.approx(np.mean([0, 1, 5, 6]))
    assert out[1, 2] == pytest.approx(14.0), "the last row and column repeat"


def test_no_data_is_transparent_and_outside_the_contour():
    import warnings

    from app.heatmap import OverlayStyle, contour_lines, overlay_png

    value_map = np.full((40, 40), np.nan, np.float32)
    value_map[10:30, 10:30] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        indices = table_index(value_map, 2.0)
        lines = contour_lines(value_map, 0.5)
        png = overlay_png(np.full((40, 40), 0.5, np.float32), value_map, OverlayStyle(vmax=2.0, threshold=0.5))
    assert indices[0, 0] == 0 and indices[20, 20] == 128
    assert lines is not None and np.nanmin(lines) >= 9 and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_setting_a_run_parameter_is_an_event():
    """Every state change is an event: presenters redraw on it, not by hand after their own edit."""
    session = Session()
    heard = []
    session.parameters_changed.connect(lambda method, name: heard.append((method, name, session.parameters(method)[name])))
    session.set_parameter("inpainting", "stride", 16)
    session.set_parameter("inpainting", "stride", 16)  # no change, no event
    session.set_parameter("inpainting", "score", "mse")
    assert heard == [("inpainting", "stride", 16), ("inpainting", "score", "mse")]
