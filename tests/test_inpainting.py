"""Inpainting (paper 002): contextual attention in ONNX, heatmap geometry, preview then fine, cancel,
ROI completion, the `inpaint` command, the card's map variants and the shipped bundle.

One tiny bundle for the session (``tiny_inpainting``: 64 px images, FOV 32, hole 16); numbers from
it measure nothing but the plumbing.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from inference.methods.inpainting import WindowErrors, heatmap, map_score
from inference.windows import window_origins

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "resources" / "models" / "inpainting-phantom"


def _display(rows: int = 120, cols: int = 100, seed: int = 0) -> np.ndarray:
    """A breast-like frame: tissue on the left (chest wall at column 0), air on the right."""
    rng = np.random.default_rng(seed)
    d = np.zeros((rows, cols), np.float32)
    d[:, : int(cols * 0.75)] = 0.35 + 0.3 * rng.random((rows, int(cols * 0.75)))
    return d


# ---------------------------------------------------------------------------------------------
# contextual attention: batched matmuls that export with a dynamic batch


def test_contextual_attention_exports_with_a_dynamic_batch_and_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    import onnx

    from training.export import export_onnx
    from training.inpainting.networks import ExportGenerator, InpaintingGenerator

    torch.manual_seed(0)
    generator = InpaintingGenerator(fov=32, width=2, dilations=(2,)).eval()
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    path = export_onnx(ExportGenerator(generator), (torch.rand(2, 1, 32, 32) * 2 - 1, mask), tmp_path / "g.onnx",
                       ("image", "mask"), ("completion",))
    graph = onnx.load(str(path)).graph
    assert {n.domain for n in graph.node} <= {"", "ai.onnx"}, "standard operators only, no custom op"
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for batch in (1, 5):
        x = (rng.random((batch, 1, 32, 32), dtype=np.float32) * 2 - 1)
        m = np.zeros((batch, 1, 32, 32), np.float32)
        m[:, :, 4:20, 10:26] = 1  # an off-centre hole: the graph takes any mask
        out = session.run(None, {"image": x, "mask": m})[0]
        with torch.no_grad():
            expected = generator(torch.from_numpy(x), torch.from_numpy(m))[1].numpy()
        assert out.shape == (batch, 1, 32, 32)
        assert np.abs(out - expected).max() < 1e-5


def test_contextual_attention_copies_from_outside_the_hole_only():
    torch = pytest.importorskip("torch")
    from training.inpainting.networks import ContextualAttention

    att = ContextualAttention(channels=1, size=8, k=3, rate=2)
    x = torch.zeros(1, 1, 8, 8)
    x[..., :, :4] = 1.0  # the left half is bright, the right half (the hole) empty
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, 4:] = 1
    y = att(x, mask)
    assert torch.isfinite(y).all() and y[..., :, 4:].abs().sum() > 0, "the hole is filled from the known half"


# ---------------------------------------------------------------------------------------------
# heatmap geometry on a synthetic case


def test_heatmap_geometry_non_averaged_and_averaged():
    fov, stride, size = 32, 8, 64
    origins = window_origins(np.ones((size, size), bool), fov, stride)
    assert len(origins) == 25  # (64 - 32) / 8 + 1 = 5 per axis
    values = np.zeros(len(origins))
    hot = int(np.flatnonzero((origins[:, 0] == 16) & (origins[:, 1] == 16))[0])
    values[hot] = 1.0
    errors = WindowErrors(origins, mse=values, critic=np.full(len(origins), 2.0))
    centre = heatmap(errors, (size, size), fov, stride, "mse", "non-averaged")
    # each window's value fills the stride x stride cell at its centre; the border no window centre
    # reaches (half a window minus half a stride) is no data
    reach = slice(fov // 2 - stride // 2, size - fov // 2 + stride // 2)
    assert np.isnan(centre[: reach.start]).all() and np.isnan(centre[:, reach.stop :]).all()
    assert np.isfinite(centre[reach, reach]).all()
    assert (centre[28:36, 28:36] == 1).all() and np.nansum(centre) == stride * stride
    averaged = heatmap(errors, (size, size), fov, stride, "mse", "averaged")
    assert np.isfinite(averaged).all(), "every pixel is covered by some window"
    # pixel (30, 30) lies in the windows starting at 0, 8, 16, 24 on each axis: 16 windows, one hot
    assert averaged[30, 30] == pytest.approx(1 / 16)
    assert averaged[0, 0] == 0 and averaged[20, 20] == pytest.approx(1 / 9)
    dmse = heatmap(errors, (size, size), fov, stride, "dmse", "non-averaged")
    assert np.nanmax(dmse) == 2.0, "DMSE = MSE x critic loss"
    assert map_score(centre, np.ones((size, size), bool)) == pytest.approx(64 / (40 * 40))


def test_windows_only_on_breast_tissue():
    breast = np.zeros((64, 64), bool)
    breast[:, :24] = True
    origins = window_origins(breast, 32, 8, min_breast=0.5)
    assert len(origins) and (origins[:, 1] <= 8).all(), "only the windows at least half on the breast"


# ---------------------------------------------------------------------------------------------
# the engine on the tiny bundle


@pytest.fixture(scope="module")
def engine(tiny_inpainting):
    from inference.bundle import load_bundle
    from inference.methods import get

    return get("inpainting").load(load_bundle(tiny_inpainting[2]), "cpu")


def test_map_on_the_original_grid_with_a_no_data_border_and_stride(engine):
    display = _display()
    fine = engine.run(display, "L", stride=8)
    coarse = engine.run(display, "L", stride=16)
    assert fine.difference.shape == display.shape
    assert fine.parameters["windows"] > coarse.parameters["windows"] > 0
    d = fine.difference
    assert np.isnan(d[0]).all() and np.isnan(d[:, -1]).all(), "the border and the air are no data"
    assert np.isfinite(d[60, 30]) and np.nanmin(d) >= 0
    averaged = engine.run(display, "L", heatmap="averaged")
    assert np.isfinite(averaged.difference).sum() > np.isfinite(d).sum(), "averaged maps reach further"
    assert np.isfinite(fine.score) and fine.provider == "CPU"


def test_preview_first_then_the_fine_map(engine):
    display = _display(seed=2)
    seen, progress = [], []
    final = engine.run(display, "L", partial=seen.append, progress=lambda d, t, m: progress.append((d, t)))
    assert len(seen) == 1 and seen[0].parameters["preview"] is True
    assert seen[0].parameters["stride"] == engine.preview_stride(8) > final.parameters["stride"] == 8
    assert seen[0].difference.shape == final.difference.shape and final.parameters["preview"] is False
    done = [d for d, _ in progress]
    assert done == sorted(done) and progress[-1][0] == progress[-1][1]
    assert seen[0].parameters["windows"] < final.parameters["windows"]


def test_cancel_stops_between_batches(engine):
    from inference.jobs import Cancelled, CancelToken

    token, raised, started = CancelToken(), {}, threading.Event()
    engine.window_batch = 2  # many batches, so the token is checked often

    def work():
        try:
            engine.run_many([_display(seed=s) for s in range(10, 60)], ["L"] * 50, stride=4,
                            progress=lambda d, t, m: started.set(), cancel=token)
        except Cancelled:
            raised["at"] = time.perf_counter()

    try:
        worker = threading.Thread(target=work)
        worker.start()
        assert started.wait(30)
        t0 = time.perf_counter()
        token.cancel()
        worker.join(10)
        assert "at" in raised and raised["at"] - t0 < 1.0
    finally:
        engine.window_batch = 64


def test_roi_completion_shapes_and_scores(engine):
    display = _display(seed=3)
    r = engine.complete(display, "L", (20, 30, 36, 46))
    completion, error = r.maps["completion"], r.maps["error"]
    assert completion.shape == error.shape == display.shape
    outside = np.ones(display.shape, bool)
    outside[30:46, 20:36] = False
    assert np.array_equal(completion[outside], display[outside]) and (error[outside] == 0).all()
    p = r.parameters
    assert p["dmse"] == pytest.approx(p["mse"] * p["critic"]) and r.score == p["dmse"]
    assert p["mse"] >= 0 and p["critic"] > 0 and p["scale"] == 1.0
    big = engine.complete(display, "R", (10, 10, 90, 110), score="mse")
    assert big.parameters["scale"] > 1 and big.score == big.parameters["mse"], "a box larger than the hole is scaled"
    with pytest.raises(ValueError, match="covers no pixel"):
        engine.complete(display, "L", (500, 500, 600, 600))


def test_card_reports_every_map_variant(tiny_inpainting):
    from training.evaluation import card_markdown, evaluate_bundle

    labels, _, bundle_dir = tiny_inpainting
    report = evaluate_bundle(labels, method="inpainting", model=str(bundle_dir), split="test", device="cpu",
                             card=False, options={"ceiling": False, "object_patients": 0, "completion_images": 2},
                             parameters={"stride": 16})
    variants = {k: v for k, v in report["variants"].items() if k != "paper_reference"}
    assert set(variants) == {f"{s} {k}" for s in ("dmse", "mse", "critic") for k in ("non-averaged", "averaged")}
    assert report["parameters"] == {"stride": 16}
    assert variants["mse averaged"]["parameters"] == {"stride": 16, "score": "mse", "heatmap": "averaged"}
    # the bundle was calibrated at the default stride 8: at 16 the threshold comes from val, not the bundle
    assert report["image_level"]["paper"]["threshold_source"] == "Youden J on the val split"
    assert report["completion_quality"]["sizes"], "ROI completion against the biharmonic baseline"
    assert "Table 2" in report["variants"]["paper_reference"]
    text = card_markdown(report)
    assert "## Map variants" in text and "mse averaged" in text


# ---------------------------------------------------------------------------------------------
# the command line


def _dicom(tmp_path) -> Path:
    from training.phantom import generate_dataset

    generate_dataset(tmp_path / "study", n=1, views=("CC",), lateralities=("L",), lesion_fraction=0.0,
                     shape=(128, 104), pixel_spacing=0.8, seed=5)
    return next((tmp_path / "study").rglob("*.dcm"))


def test_inpaint_command_writes_files_that_decode(tiny_inpainting, tmp_path, capsys):
    import imageio.v3 as iio

    from app.cli import main

    path = _dicom(tmp_path)
    out = tmp_path / "out"
    assert main(["inpaint", str(path), "--box", "20,40,44,64", "--out", str(out), "--model",
                 str(tiny_inpainting[2]), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["completion.png", "error.png", "original.png", "scores.json"]
    shapes = {iio.imread(out / n).shape for n in ("original.png", "completion.png", "error.png")}
    assert len(shapes) == 1
    scores = json.loads((out / "scores.json").read_text())
    assert scores["box"] == [20, 40, 44, 64] and scores["dmse"] == pytest.approx(scores["mse"] * scores["critic"])
    assert "DMSE" in capsys.readouterr().out


@pytest.mark.parametrize("box, message", [("1,2,3", "four numbers"), ("40,40,20,60", "is empty"),
                                          ("900,900,950,950", "covers no pixel")])
def test_inpaint_command_refuses_a_bad_box_in_one_sentence(tiny_inpainting, tmp_path, capsys, box, message):
    from app.cli import main

    path = _dicom(tmp_path)
    assert main(["inpaint", str(path), "--box", box, "--out", str(tmp_path / "out"), "--model",
                 str(tiny_inpainting[2])]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_analyze_runs_the_inpainting_method(tiny_inpainting, tmp_path):
    from app.cli import main

    path = _dicom(tmp_path)
    out = tmp_path / "analysis"
    assert main(["analyze", str(path), "--method", "inpainting", "--model", str(tiny_inpainting[2]),
                 "--stride", "16", "--score", "mse", "--out", str(out)]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert summary["parameters"] == {"stride": 16, "score": "mse", "heatmap": "non-averaged"}
    assert np.isfinite(summary["results"][0]["score"])


# ---------------------------------------------------------------------------------------------
# the shipped bundle


def test_the_shipped_bundle_loads_and_yields_a_map():
    from inference.bundle import load_bundle
    from inference.methods import get

    if not SHIPPED.is_dir():
        pytest.fail(f"the shipped inpainting bundle is missing: {SHIPPED}")
    bundle = load_bundle(SHIPPED)
    assert bundle.method == "inpainting" and bundle.calibration is not None and bundle.card_line
    engine = get("inpainting").load(bundle, "cpu")
    display = _display(300, 240, seed=7)
    r = engine.run(display, "L", stride=32)
    assert r.difference.shape == display.shape and np.isfinite(r.difference).any() and np.isfinite(r.score)


def test_no_val_split_means_no_threshold(tiny_inpainting, tmp_path):
    """At a stride the bundle was not calibrated at and with no val rows, the card reports AUC only:
    a threshold tuned on the split under test would flatter sensitivity and specificity."""
    import dataclasses

    from inference.labels import read_labels, write_labels
    from training.evaluation import card_markdown, evaluate_bundle
    from training.evaluation.sections import NO_THRESHOLD

    labels, _, bundle_dir = tiny_inpainting
    rows = [dataclasses.replace(r, path=str(Path(labels).parent / r.path)) for r in read_labels(labels)
            if r.split != "val"]
    write_labels(tmp_path / "labels.csv", rows)
    report = evaluate_bundle(tmp_path / "labels.csv", method="inpainting", model=str(bundle_dir), device="cpu",
                             card=False, options={"ceiling": False, "object_patients": 0, "completion_images": 0},
                             parameters={"stride": 16})
    for score in ("paper", "focal"):
        block = report["image_level"][score]
        assert block["threshold"] is None and block["threshold_source"] == NO_THRESHOLD
        assert "confusion" not in block and block["per_class"] == {} and 0 <= block["auc"] <= 1
    assert "| none (none: no calibration at these run parameters" in card_markdown(report)
