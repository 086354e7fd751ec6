"""The models shipped in resources/models: valid, calibrated, reproducible, carrying their
evaluation card (whose foreign-object verdict is one text, with its criteria and numbers), and
running end to end on the demo study with decisions their calibration supports."""
from __future__ import annotations

import json

import numpy as np
import pytest

from inference.bundle import bundled_models_dir, load_bundle

HEALTHYGAN = bundled_models_dir() / "healthygan-phantom"

pytestmark = pytest.mark.skipif(not HEALTHYGAN.is_dir(), reason="healthygan-phantom is not bundled")


@pytest.fixture(scope="module")
def healthygan():
    return load_bundle(HEALTHYGAN)


def test_bundle_is_small_calibrated_and_says_how_it_was_made(healthygan):
    size = sum(p.stat().st_size for p in HEALTHYGAN.iterdir())
    assert size < 5 * 2**20
    cal = healthygan.calibration
    assert cal is not None and 0.0 <= cal.auc <= 1.0 and "split 'val'" in cal.data
    prov = healthygan.provenance
    assert "mammolens train healthygan" in prov["command"] and "--preset cpu" in prov["command"]
    assert prov["iterations"] >= 1000 and prov["preset"] == "cpu" and prov["paper_iterations"] == 400_000
    assert prov["training_data_recipe"].startswith("mammolens phantom")
    assert healthygan.parameters["export_max_abs_diff"]["real"] <= 1e-4


def test_card_is_in_the_bundle_and_its_verdict_is_one_text(healthygan):
    from training.evaluation.foreign_objects import verdict

    card = json.loads((HEALTHYGAN / "card.json").read_text())
    assert card["bundle"] == "healthygan-phantom" and card["split"] == "test"
    fo = card["foreign_objects"]
    # the map is hotter on the clip than on the rest of the breast and >= 2x its twin, but no score rises
    assert fo["ratio_median"] > 1 and fo["ratio_median"] >= 2 * fo["null_ratio_median"] and fo["ratio_p_value"] < 0.05
    assert verdict(fo) in card["key_line"] and healthygan.card_line == card["key_line"]
    assert "clip check failed: map criterion passed" in card["key_line"] and "score criterion failed" in card["key_line"]
    assert verdict(fo) in (HEALTHYGAN / "card.md").read_text()
    lo, hi = card["image_level"]["paper"]["auc_ci"]
    assert lo <= card["image_level"]["paper"]["auc"] <= hi
    assert {"auc", "auc_ci", "train_auc"} <= set(card["supervised_ceiling"])
    assert (HEALTHYGAN / "card.md").read_text().startswith("# Evaluation card: healthygan-phantom")


def test_the_demo_study_gets_maps_and_calibrated_decisions(healthygan, tmp_path):
    from app.analysis import analyze_path
    from app.gui import demo_study_path
    from inference.studies.study import open_path

    demo = demo_study_path()
    summary = analyze_path(demo, "healthygan", tmp_path, model=str(HEALTHYGAN), device="cpu")
    assert summary["bundle"] == "healthygan-phantom" and summary["provider"] == "CPU"
    shapes = {im.name: (im.rows, im.cols) for st in open_path(demo).studies() for im in st.images()}
    for r in summary["results"]:
        assert r["decision"] in ("normal", "abnormal")
        if r["map"]:
            difference = np.load(tmp_path / r["map"])
            assert difference.shape in shapes.values() and np.isfinite(difference).all() and difference.max() > 0
    assert {r["image"].rsplit("_", 1)[-1] for r in summary["results"]} >= {"R-CC", "L-CC", "R-MLO", "L-MLO"}


def test_an_object_colder_than_its_breast_is_not_lit():
    """The inpainting bundle's clip: 0.81x the rest of its breast, 0.38x on its twin. Above the twin,
    but colder than the breast around it: the map criterion fails (a heavy-tailed map passes 2x its twin)."""
    inpainting = bundled_models_dir() / "inpainting-phantom"
    if not inpainting.is_dir():
        pytest.skip("inpainting-phantom is not bundled")
    card = json.loads((inpainting / "card.json").read_text())
    fo = card["foreign_objects"]
    assert fo["ratio_median"] < 1 and fo["ratio_median"] >= 2 * fo["null_ratio_median"]
    assert not fo["lights_up"] and not fo["passed"] and "map criterion failed" in card["key_line"]


def test_the_demo_at_default_settings_gets_no_borrowed_decision(tmp_path, capsys):
    """The inpainting bundle is calibrated at stride 16; the default run is stride 8: no decision, the
    reason instead, and the card's key line once."""
    from app.cli import main
    from app.gui import demo_study_path

    inpainting = bundled_models_dir() / "inpainting-phantom"
    if not inpainting.is_dir():
        pytest.skip("inpainting-phantom is not bundled")
    demo = demo_study_path()
    assert main(["analyze", str(demo), "--method", "inpainting", "--model", str(inpainting), "--out",
                 str(tmp_path / "out"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert rows and all(r["decision"] is None for r in rows)
    reason = "no calibrated cut-off for stride 8 (the bundle's is for stride 16)"
    assert all(r["no_decision"] == reason for r in rows) and out.count(reason) == len(rows)
    assert out.count("model card: ") == 1 and "clip check" in out
