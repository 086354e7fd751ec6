"""HealthyGAN: the paper's formulas, a tiny run that trains, resumes, exports and analyzes."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.healthygan import HealthyGANConfig, focus_loss, gradient_penalty, train_healthygan  # noqa: E402
from training.networks import (HealthyGANGenerator, PatchCritic, compose_healthy,  # noqa: E402
                               compose_reconstruction)


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
    g = HealthyGANGenerator(1, width=8, residual_blocks=2)
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    inter, mask = g(x)
    assert inter.shape == mask.shape == x.shape
    assert inter.min() >= -1 and inter.max() <= 1 and mask.min() >= 0 and mask.max() <= 1
    d = PatchCritic(1, width=8, depth=4)
    assert d(x).shape == (2, 1, 4, 4)  # 64 / 2**4 patches
    convs = [m for m in d.main if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64] and all(c.stride == (2, 2) for c in convs)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from tests.conftest import train_tiny_healthygan

    root = tmp_path_factory.mktemp("hg")
    return root, train_tiny_healthygan(root)


def test_training_writes_checkpoint_samples_and_resumes(tiny_run):
    root, cfg = tiny_run
    run = root / "run"
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["iteration"] == 4
    assert (run / "samples" / "0000004.png").is_file()
    assert json.loads((run / "run.json").read_text())["command"] == "pytest tiny run"
    messages = []
    cfg.iterations = 6
    train_healthygan(cfg, log=messages.append)
    assert any("resuming" in m and "iteration 4" in m for m in messages)
    assert torch.load(run / "checkpoint.pt", weights_only=False)["iteration"] == 6
    assert any("val AUC" in m for m in messages)
    assert [int(r.split(",")[0]) for r in (run / "validation.csv").read_text().splitlines()[1:]] == [4, 6]


def test_export_matches_torch_and_analyze_writes_outputs(tiny_run, tmp_path):
    from app.analysis import analyze_path
    from inference.bundle import load_bundle
    from training.export import export_healthygan

    root, cfg = tiny_run
    bundle = export_healthygan(root / "run", tmp_path / "bundle", name="tiny", log=lambda *a: None)
    loaded = load_bundle(tmp_path / "bundle")
    assert loaded.method == "translation" and loaded.input.resolution == 32
    assert loaded.parameters["export_max_abs_diff"]["random"] <= 1e-4
    assert loaded.parameters["export_max_abs_diff"]["real"] <= 1e-4
    assert loaded.calibration is not None and 0.0 <= loaded.calibration.auc <= 1.0
    assert loaded.provenance["command"] == "pytest tiny run" and loaded.provenance["seed"] == 1
    # the AUC logged during training (torch) is the one the export measures (ONNX Runtime)
    iteration = torch.load(root / "run" / "checkpoint.pt", weights_only=False)["iteration"]
    rows = [r.split(",") for r in (root / "run" / "validation.csv").read_text().splitlines()[1:]]
    assert int(rows[-1][0]) == iteration and "mass=" in rows[-1][2]
    assert abs(float(rows[-1][1]) - loaded.calibration.auc) < 1e-3

    out = tmp_path / "analysis"
    summary = analyze_path(root / "data" / "P0001", "healthygan", out, model=str(tmp_path / "bundle"))
    assert summary["bundle"] == "tiny" and len(summary["results"]) == 2
    first = summary["results"][0]
    difference = np.load(out / first["map"])
    assert difference.shape == (256, 208) and np.isfinite(difference).all()
    from skimage import io

    assert io.imread(out / first["overlay"]).shape == (256, 208, 3)
    assert "PHANTOM" not in (out / "results.csv").read_text()


def test_dbt_whole_volume_with_progress_and_cancel(tiny_run, tmp_path):
    from app.analysis import analyze_path
    from app.gui import demo_study_path
    from inference.jobs import CancelToken, Cancelled
    from training.export import export_healthygan

    root, _ = tiny_run
    bundle_dir = tmp_path / "bundle"
    export_healthygan(root / "run", bundle_dir, name="tiny", log=lambda *a: None)
    seen = []
    summary = analyze_path(demo_study_path() / "DBT_LCC.dcm", "healthygan", tmp_path / "dbt", model=str(bundle_dir),
                           all_slices=True, progress=lambda d, t, m: seen.append((d, t)))
    from app.study import open_path

    dbt = open_path(demo_study_path() / "DBT_LCC.dcm").images()[0]
    n = dbt.n_frames
    assert [r["slice"] for r in summary["results"]] == list(range(1, n + 1))
    assert seen[-1] == (n, n)
    volume = np.load(next((tmp_path / "dbt").glob("*_difference_volume.npy")))
    assert volume.shape == (n, dbt.rows, dbt.cols)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        analyze_path(demo_study_path() / "DBT_LCC.dcm", "healthygan", tmp_path / "dbt2", model=str(bundle_dir),
                     all_slices=True, cancel=token)
