"""StyleGAN2 projection (paper 000) on the method contract: the networks' formulas, the reference
projector's schedule, the ONNX projector against torch from the same weights, the k seeds as one
batch, live previews and cancel, analyze with 1 / 9 / 16 seeds, the card's pieces."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from inference.methods.projection import difference_score, learning_rate, renormalise, w_noise_scale

torch = pytest.importorskip("torch")

from training.projection.networks import ModulatedConv, noise_regulariser  # noqa: E402

STEPS = 12  # projector steps in tests (the product's default is the reference's 1000)


@pytest.fixture(scope="module")
def tiny_projection(tmp_path_factory):
    """A tiny StyleGAN2 run (16 px, 6 iterations) on 8 phantom patients and its bundle: ``(root, bundle dir)``."""
    from training.export import export_run
    from training.loop import config_from_preset, train
    from training.phantom import generate_dataset
    from training.projection import PRESETS, Config, StyleGAN2

    root = tmp_path_factory.mktemp("tiny-projection")
    generate_dataset(root / "data", n=8, views=("CC",), lesion_fraction=0.5, classes=("mass",), shape=(256, 208),
                     pixel_spacing=0.8, splits=(0.5, 0.25, 0.25), seed=4)
    cfg = config_from_preset(Config, "tiny", PRESETS, labels=str(root / "data" / "labels.csv"), out=str(root / "run"),
                             iterations=6, seed=1, command="pytest tiny run")
    train(StyleGAN2(cfg), log=lambda *a: None)
    export_run(root / "run", root / "bundle", name="tiny-projection", parameters={"steps": 4}, log=lambda *a: None)
    return root, root / "bundle"


def _engine(bundle_dir):
    from inference.bundle import load_bundle
    from inference.methods import get

    return get("projection").load(load_bundle(bundle_dir), "cpu")


def _images(root, n=2):
    from training.datasets import load_images

    data = load_images(root / "data" / "labels.csv", 16, splits=("train",))
    return data.select(np.arange(len(data)) < n)


# ---------------------------------------------------------------------------------------------
# formulas


def test_modulation_on_activations_equals_modulated_demodulated_weights():
    torch.manual_seed(0)
    conv = ModulatedConv(6, 5, w_dim=4)
    x, w = torch.randn(3, 6, 8, 8), torch.randn(3, 4)
    styles = conv.affine(w)
    # StyleGAN2's formulation: per-sample weights w'_ijk = s_i w_ijk, w''_ijk = w'_ijk / sqrt(sum w'^2 + eps)
    weight = conv.weight * conv.weight_gain
    modulated = weight[None] * styles[:, None, :, None, None]
    modulated = modulated * torch.rsqrt(modulated.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    expected = torch.cat([torch.nn.functional.conv2d(x[i:i + 1], modulated[i], padding=1) for i in range(3)])
    assert torch.allclose(conv(x, w), expected, atol=1e-5)


def test_noise_regulariser_penalises_correlated_noise_only():
    g = torch.Generator().manual_seed(0)
    white = torch.randn(2, 1, 32, 32, generator=g)
    smooth = torch.nn.functional.interpolate(torch.randn(2, 1, 8, 8, generator=g), scale_factor=4, mode="bilinear")
    smooth = (smooth - smooth.mean()) / smooth.std()
    r_white, r_smooth = noise_regulariser([white]), noise_regulariser([smooth])
    assert r_white.shape == (2,) and float(r_white.max()) < 0.01 < float(r_smooth.min())


def test_reference_projector_schedule():
    assert learning_rate(0.0) == 0.0  # linear ramp-up over the first 5 %
    assert learning_rate(0.025) == pytest.approx(0.05)
    assert learning_rate(0.5) == pytest.approx(0.1)
    assert learning_rate(0.875) == pytest.approx(0.05)  # cosine ramp-down over the last 25 %
    assert learning_rate(1.0) == pytest.approx(0.0, abs=1e-12)
    assert w_noise_scale(0.0, 2.0) == pytest.approx(0.1)  # w_std x 0.05
    assert w_noise_scale(0.375, 2.0) == pytest.approx(0.1 * 0.25)
    assert w_noise_scale(0.75, 2.0) == 0.0 and w_noise_scale(0.9, 2.0) == 0.0
    n = renormalise(np.random.default_rng(0).normal(3.0, 5.0, (2, 8, 8)).astype(np.float32))
    assert np.allclose(n.mean(axis=(1, 2)), 0, atol=1e-5) and np.allclose(n.std(axis=(1, 2)), 1, atol=1e-4)


def test_score_is_the_breast_sum_over_the_breast_area():
    diff = np.zeros((4, 4), np.float32)
    diff[0, 0], diff[3, 3] = 2.0, 5.0
    breast = np.zeros((4, 4), bool)
    breast[:2, :2] = True
    assert difference_score(diff, breast) == pytest.approx(2.0 / 4)


# ---------------------------------------------------------------------------------------------
# training and the bundle


def test_training_phases_and_bundle(tiny_projection):
    from inference.bundle import load_bundle
    from training.projection import PRESETS, Config, StyleGAN2

    root, bundle_dir = tiny_projection
    method = StyleGAN2(Config(labels="x", out="y", **PRESETS["tiny"]))
    assert method.phases(0) == ("generator", "critic")
    assert method.phases(1) == ("generator", "generator_pl", "critic", "critic_r1")  # lazy, every 2 in tiny
    stats = [json.loads(line) for line in (root / "run" / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["iteration"] == 6 and {"g", "d", "r1", "pl"} <= set(stats[-1])
    bundle = load_bundle(bundle_dir)
    assert set(bundle.networks) == {"mapping", "synthesis", "project_step"}
    p = bundle.parameters
    assert len(p["w_avg"]) == 8 and p["w_std"] > 0 and p["projector"]["steps"] == 10  # the tiny preset's
    assert _engine(bundle_dir)._parameters({}) == (9, 10), "no steps given: the bundle's"
    assert p["perceptual_loss"]["name"] == "critic_features" and p["noise_regularisation"] == 1e5
    assert p["export_max_abs_diff"]["project_step"]["gradient_relative"] < 1e-3
    assert bundle.calibration is not None and "steps 4" in bundle.calibration.data


def test_project_step_in_onnx_runtime_matches_torch(tiny_projection):
    """Forward within 1e-4, gradients within 1e-3 relative, on a batch size other than the traced one."""
    from training.projection.export import joint_step
    from training.projection.reference import step_from_bundle_run

    root, bundle_dir = tiny_projection
    engine = _engine(bundle_dir)
    step, w_avg, w_std = step_from_bundle_run(root / "run")
    assert np.allclose(w_avg, engine.w_avg, atol=1e-6) and w_std == pytest.approx(engine.w_std, rel=1e-6)
    g = torch.Generator().manual_seed(5)
    target = torch.rand(4, 1, 16, 16, generator=g) * 2 - 1
    w = (torch.from_numpy(engine.w_avg) + torch.randn(4, 8, generator=g)).requires_grad_(True)
    noise = [torch.randn(4, h, w_, generator=g).requires_grad_(True) for h, w_ in engine.noise_shapes]
    expected = joint_step(step)(target, w, *noise)
    loss, image, grad_w, grad_noise = engine.step(target.numpy(), w.detach().numpy(), [n.detach().numpy() for n in noise])
    assert np.abs(loss - expected[0].numpy()).max() <= 1e-4 * max(1.0, float(expected[0].abs().max()))
    assert np.abs(image - expected[1][:, 0].numpy()).max() <= 1e-4
    for got, want in zip([grad_w, *grad_noise], expected[2:]):
        want = want.numpy()
        assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max() + 1e-12


def test_onnx_projector_follows_the_torch_loop(tiny_projection):
    """The whole loop: the same loss curve, the same renders and maps from the same weights and seeds."""
    from training.projection.reference import project_torch, step_from_bundle_run

    root, bundle_dir = tiny_projection
    engine = _engine(bundle_dir)
    step, w_avg, w_std = step_from_bundle_run(root / "run")
    images = _images(root).images
    onnx = engine.project(images, seeds=2, steps=STEPS)
    renders, losses = project_torch(step, w_avg, w_std, images, seeds=2, steps=STEPS)
    assert onnx.losses.shape == losses.shape == (STEPS, 2, 2)
    assert np.allclose(onnx.losses, losses, rtol=1e-3, atol=1e-5)
    assert np.abs(onnx.renders - renders).max() < 1e-3
    assert np.abs(np.abs(images - onnx.mean) - np.abs(images - renders.mean(axis=1))).max() < 1e-3
    assert (onnx.losses[-1] < onnx.losses[0]).all(), "projection lowers every projection's loss"


def test_a_seed_fixes_the_projection_whatever_the_batch(tiny_projection):
    """Seed j gives the same projection alone or among k seeds, and an image alone or beside others."""
    root, bundle_dir = tiny_projection
    engine = _engine(bundle_dir)
    images = _images(root).images
    both = engine.project(images, seeds=3, steps=6)
    alone = engine.project(images[1:], seeds=1, steps=6)
    assert np.abs(both.renders[1, 0] - alone.renders[0, 0]).max() < 1e-5
    assert np.abs(both.renders[0, 1] - both.renders[0, 2]).max() > 1e-4, "different seeds, different projections"
    # scores reuse cached seeds: 1 seed after 9 is the first of the 9; 9 after 1 projects only seeds 1..8
    data = _images(root)
    cached = _engine(bundle_dir)
    nine = cached.score_prepared(data.images, data.masks, seeds=9, steps=6)
    one = cached.score_prepared(data.images, data.masks, seeds=1, steps=6)
    fresh = _engine(bundle_dir)
    assert np.allclose(one, fresh.score_prepared(data.images, data.masks, seeds=1, steps=6), rtol=1e-5)
    assert np.allclose(nine, fresh.score_prepared(data.images, data.masks, seeds=9, steps=6), rtol=1e-5)
    renders = engine.project(images, seeds=9, steps=6).renders
    expected = [difference_score(np.abs(x - r.mean(axis=0)), m) for x, r, m in zip(images, renders, data.masks)]
    assert np.allclose(nine, expected, rtol=1e-5)


def test_previews_refine_live_and_cancel_stops(tiny_projection):
    from inference.jobs import Cancelled, CancelToken

    _, bundle_dir = tiny_projection
    engine = _engine(bundle_dir)
    display = np.zeros((120, 100), np.float32)
    display[10:110, :70] = np.linspace(0.2, 0.8, 70)[None]
    previews, seen, seen_messages = [], [], []
    result = engine.run(display, "L", seeds=1, steps=20, partial=previews.append,
                        progress=lambda d, t, m: (seen.append((d, t)), seen_messages.append(m)))
    assert [p.parameters["step"] for p in previews] == [2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert all(p.parameters["preview"] and p.difference.shape == display.shape for p in previews)
    assert result.difference.shape == display.shape and "preview" not in result.parameters
    assert set(result.maps) == {"difference", "projection", "closest"} and np.isfinite(result.score)
    assert seen[-1] == (1, 1) and "step 18 / 20" in seen_messages[-2]
    token = CancelToken()
    with pytest.raises(Cancelled):
        engine.run(display, "L", seeds=1, steps=20, partial=lambda r: token.cancel(), cancel=token)


@pytest.mark.parametrize("seeds", [1, 9, 16])
def test_analyze_writes_maps_with_1_9_16_seeds(tiny_projection, tmp_path, seeds):
    from app.cli import main
    from app.gui import demo_study_path

    _, bundle_dir = tiny_projection
    out = tmp_path / "maps"
    assert main(["analyze", str(demo_study_path() / "MG_RCC.dcm"), "--method", "projection", "--model", str(bundle_dir),
                 "--seeds", str(seeds), "--steps", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert summary["parameters"] == {"seeds": seeds, "steps": 3}
    first = summary["results"][0]
    difference = np.load(out / first["map"])
    assert difference.ndim == 2 and np.isfinite(difference).all() and difference.max() > 0
    assert math.isfinite(first["score"])


# ---------------------------------------------------------------------------------------------
# the card's pieces


def test_pca_baseline_reconstructs_normals_and_flags_a_blob():
    from training.projection.baseline import baseline_scores, pca_baseline_maps

    rng = np.random.default_rng(0)
    basis = rng.random((3, 16, 16)).astype(np.float32)
    normals = (rng.random((20, 3)) @ basis.reshape(3, -1)).reshape(20, 16, 16).astype(np.float32) / 3
    normal = normals[:1] * 0.5 + normals[1:2] * 0.5
    lesion = normal.copy()
    lesion[0, 6:10, 6:10] += 0.5
    maps = pca_baseline_maps(np.concatenate([normal, lesion]), normals, components=3)
    assert maps[0].max() < 1e-4 and maps[1][6:10, 6:10].mean() > maps[1].mean()
    scores = baseline_scores(maps, np.ones((2, 16, 16), bool))
    assert scores[1] > scores[0]


def test_table1_rows_read_the_report():
    from inference.metrics import evaluate
    from training.projection.card import table1_markdown, table1_rows

    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    block = evaluate(y, s, threshold=0.35)  # tp 4, fn 0, tn 3, fp 1
    rows = table1_rows({9: block, 1: evaluate(y, s[::-1], threshold=0.5)})
    assert [r["seeds"] for r in rows] == [1, 9]
    nine = rows[1]
    assert (nine["accuracy"], nine["sensitivity"], nine["specificity"]) == (87.5, 100.0, 75.0)
    assert nine["ppv"] == pytest.approx(80.0) and nine["npv"] == 100.0 and nine["auc"] == pytest.approx(93.75)
    text = "\n".join(table1_markdown(rows, steps=100))
    assert "| 9 | paper 000 | 64.0 | 78.0 | 52.0 | 61.4 | 70.2 | 70.0 |" in text


def test_the_viewer_toggles_projection_and_refines_live(qtbot, tmp_path, monkeypatch, tiny_projection):
    """Toggled in the viewer, the overlay shows previews while the projection runs, then the final map."""
    pytest.importorskip("PySide6")
    import shutil

    from app.gui import build_window, demo_study_path

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    shutil.copytree(tiny_projection[1], tmp_path / "models" / "tiny-projection")
    win, ctl = build_window(models_dirs=[tmp_path / "models"])
    qtbot.addWidget(win)
    win.show()
    ctl.studies.open(demo_study_path())
    bundle = ctl.overlays.bundle_named("tiny-projection")
    assert bundle is not None and bundle.method == "projection"
    ctl.session.set_parameter("projection", "steps", 30)
    ctl.session.set_parameter("projection", "seeds", 1)
    seen = []
    ctl.session.result_added.connect(
        lambda im, frame, b: seen.append(ctl.session.result(im, frame, b).parameters.get("step")))
    ctl.overlays.toggle_method(bundle, True, all_views=False)
    qtbot.waitUntil(lambda: not ctl.jobs.running(), timeout=60000)
    assert seen[0] == 3 and seen[-1] is None and len(seen) > 2, seen  # previews every 3 steps, then the final map
    assert ctl.display.current_canvas().has_overlay()
