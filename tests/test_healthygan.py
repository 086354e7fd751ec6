"""HealthyGAN on the method contract: the paper's formulas, the shared loop (resume, stats,
validation through the exported graph), export, analyze, and the move's numbers unchanged."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.healthygan import HealthyGAN, focus_loss  # noqa: E402
from training.healthygan.networks import (  # noqa: E402
    HealthyGANGenerator,
    PatchCritic,
    compose_healthy,
    compose_reconstruction,
)
from training.loop import train  # noqa: E402
from training.torch_utils import gradient_penalty, load_checkpoint  # noqa: E402

# scores of the 16 images of the tiny data set under the tiny run (32 px, width 4, 12 critic
# iterations, seed 1), measured with the code before the method contract (commit c680af7,
# training/healthygan.py + training/export.py); the move must not change them
BEFORE_THE_MOVE = [0.0656681, 0.0603306, 0.0572305, 0.058046, 0.0607505, 0.0580712, 0.0620501, 0.0640066,
                   0.0614928, 0.0596316, 0.0592963, 0.0619921, 0.0603854, 0.0632834, 0.0618782, 0.06835]
BEFORE_THE_MOVE_AUC = 0.3958333333333333


def test_equations_1_and_2():
    x = torch.tensor([0.2, -0.4])
    b_int = torch.tensor([0.8, 0.6])
    m = torch.tensor([0.25, 1.0])
    # B' = B_int*M + x*(1-M); A' = x*M + B_int*(1-M)
    assert torch.allclose(compose_healthy(x, b_int, m), torch.tensor([0.8 * 0.25 + 0.2 * 0.75, 0.6]))
    assert torch.allclose(compose_reconstruction(x, b_int, m), torch.tensor([0.2 * 0.25 + 0.8 * 0.75, -0.4]))


def test_focus_loss_equation_7():
    half = torch.full((1, 1, 4, 4), 0.5)
    # size term (mean M)^2 = 0.25; zero-one term 1/(0 + 0.01) - 1/(0.5 + 0.01)
    assert focus_loss(half, 1.0, 1.0, 0.01).item() == pytest.approx(0.25 + 100 - 1 / 0.51, rel=1e-5)
    binary = torch.zeros((1, 1, 4, 4))
    assert focus_loss(binary, 1.0, 1.0, 0.01).item() == pytest.approx(0.0, abs=1e-5), "an empty 0/1 mask costs nothing"


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    critic = torch.nn.Conv2d(1, 1, 2, bias=False)  # linear; weights of norm 1 -> |grad| = 1 per output
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[[[0.6, 0.0], [0.0, 0.8]]]]))
    real, fake = torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_network_shapes_follow_tables_2_and_3():
    g = HealthyGANGenerator(channels=1, width=8, residual_blocks=2)
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    inter, mask = g(x)
    assert inter.shape == mask.shape == x.shape
    assert inter.min() >= -1 and inter.max() <= 1 and mask.min() >= 0 and mask.max() <= 1
    d = PatchCritic(channels=1, width=8, depth=4)
    assert d(x).shape == (2, 1, 4, 4)  # 64 / 2**4 patches
    convs = [m for m in d.main if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64] and all(c.stride == (2, 2) for c in convs)


def test_numbers_unchanged_by_the_move(tiny_healthygan):
    from inference.bundle import load_bundle
    from inference.methods import get
    from inference.metrics import roc_auc
    from training.datasets import load_images

    root, cfg, bundle_dir = tiny_healthygan
    data = load_images(cfg.labels, 32)
    scores = get("translation").load(load_bundle(bundle_dir), "cpu").score_prepared(data.images, data.masks)
    assert np.allclose(scores, BEFORE_THE_MOVE, atol=2e-6)
    assert roc_auc(~data.is_normal, scores) == pytest.approx(BEFORE_THE_MOVE_AUC, abs=1e-3)


def test_loop_writes_checkpoint_stats_samples_and_resumes(tiny_healthygan, tmp_path):
    root, cfg, _ = tiny_healthygan
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    state = load_checkpoint(run / "checkpoint.pt")  # weights_only=True: plain tensors and containers
    assert state["iteration"] == 12 and state["method"] == "healthygan"
    assert (run / "samples" / "0000012.png").is_file()
    assert json.loads((run / "run.json").read_text())["command"] == "pytest tiny run"
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["iteration"] == 12 and {"d", "gp", "g", "rec", "id", "mask"} <= set(stats[-1])
    messages = []
    more = replace(cfg, out=str(run), iterations=14, carry_checkpoint=True)
    train(HealthyGAN(more), log=messages.append)
    assert any("resuming" in m and "iteration 12" in m for m in messages)
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 14
    assert any("val AUC" in m for m in messages)
    assert [int(r.split(",")[0]) for r in (run / "validation.csv").read_text().splitlines()[1:]] == [12, 14]
    carry = load_checkpoint(run / "carry.pt")
    assert "optimizers" not in carry and carry["ema"]["main.0.weight"].dtype == torch.float16


def test_time_budget_and_abort_stop_with_a_checkpoint(tiny_healthygan, tmp_path):
    root, cfg, _ = tiny_healthygan
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    seen = []
    train(HealthyGAN(replace(cfg, out=str(run), iterations=1000, validate_every=0)), log=lambda *a: None,
          progress=lambda d, t, s: seen.append(d), should_stop=lambda: len(seen) >= 3)
    assert seen == [13, 14, 15] and load_checkpoint(run / "checkpoint.pt")["iteration"] == 15
    train(HealthyGAN(replace(cfg, out=str(run), iterations=1000, validate_every=0, time_budget_s=1e-9)),
          log=lambda *a: None)
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 16, "a budget stops after the iteration crossing it"
    assert json.loads((run / "run.json").read_text())["iterations"] == 16


def test_export_matches_torch_and_validation_matches_calibration(tiny_healthygan):
    from inference.bundle import load_bundle

    root, cfg, bundle_dir = tiny_healthygan
    loaded = load_bundle(bundle_dir)
    assert loaded.method == "translation" and loaded.input.resolution == 32
    assert loaded.input.value_range == (-1.0, 1.0), "HealthyGAN's graph works in [-1, 1] and says so"
    assert loaded.parameters["export_max_abs_diff"]["random"] <= 1e-4
    assert loaded.parameters["export_max_abs_diff"]["real"] <= 1e-4
    assert loaded.calibration is not None and 0.0 <= loaded.calibration.auc <= 1.0
    assert loaded.provenance["command"] == "pytest tiny run" and loaded.provenance["seed"] == 1
    assert loaded.provenance["paper_iterations"] == 400_000 and loaded.provenance["config"]["width"] == 4
    # the AUC logged during training is the one the export measures: both through the engine
    rows = [r.split(",") for r in (root / "run" / "validation.csv").read_text().splitlines()[1:]]
    assert int(rows[-1][0]) == 12 and "mass=" in rows[-1][2]
    assert abs(float(rows[-1][1]) - loaded.calibration.auc) < 1e-3


def test_analyze_writes_outputs(tiny_healthygan, tmp_path):
    from app.analysis import analyze_path

    root, cfg, bundle_dir = tiny_healthygan
    out = tmp_path / "analysis"
    summary = analyze_path(root / "data" / "P0001", "healthygan", out, model=str(bundle_dir))
    assert summary["bundle"] == "tiny" and len(summary["results"]) == 2 and summary["method"] == "translation"
    first = summary["results"][0]
    difference = np.load(out / first["map"])
    assert difference.shape == (256, 208) and np.isfinite(difference).all()
    from skimage import io

    assert io.imread(out / first["overlay"]).shape == (256, 208, 3)
    assert "PHANTOM" not in (out / "results.csv").read_text()


def test_dbt_whole_volume_with_progress_and_cancel(tiny_healthygan, tmp_path):
    from app.analysis import analyze_path
    from app.gui import demo_study_path
    from inference.jobs import Cancelled, CancelToken

    _, _, bundle_dir = tiny_healthygan
    seen = []
    summary = analyze_path(demo_study_path() / "DBT_LCC.dcm", "healthygan", tmp_path / "dbt", model=str(bundle_dir),
                           all_slices=True, progress=lambda d, t, m: seen.append((d, t)))
    from inference.studies.study import open_path

    dbt = open_path(demo_study_path() / "DBT_LCC.dcm").images()[0]
    n = dbt.n_frames
    assert [r["frame"] for r in summary["results"]] == list(range(1, n + 1))
    assert seen[-1] == (n, n)
    from inference.volume_maps import VolumeMaps

    volume = VolumeMaps(next((tmp_path / "dbt").glob("*_difference_volume.npz")))
    assert volume.shape == (n, dbt.rows, dbt.cols)
    # every slice back on the original grid is the map the engine gives that slice on its own
    from inference.bundle import load_bundle
    from inference.methods.translation import TranslationEngine

    engine = TranslationEngine(load_bundle(bundle_dir), device="cpu")
    for k in (0, n - 1):
        np.testing.assert_array_equal(volume.slice(k), engine.run(dbt.display(k), dbt.laterality).maps["difference"])
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        analyze_path(demo_study_path() / "DBT_LCC.dcm", "healthygan", tmp_path / "dbt2", model=str(bundle_dir),
                     all_slices=True, cancel=token)
