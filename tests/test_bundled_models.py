"""The models shipped in resources/models: valid, calibrated, reproducible, carrying their
evaluation card (measured where the supervised ceiling reaches 0.75, with its nulls and its
contrast-detail curve; the foreign-object verdict one text), and running end to end on the demo
study with decisions their calibration supports."""
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
    assert verdict(fo) in card["key_line"] and healthygan.card_line == card["key_line"]
    assert verdict(fo) in (HEALTHYGAN / "card.md").read_text()
    lo, hi = card["image_level"]["paper"]["auc_ci"]
    assert lo <= card["image_level"]["paper"]["auc"] <= hi
    assert {"auc", "auc_ci", "train_auc"} <= set(card["supervised_ceiling"])
    assert (HEALTHYGAN / "card.md").read_text().startswith("# Evaluation card: healthygan-phantom")


DETECTION_BUNDLES = ("healthygan-phantom", "inpainting-phantom", "projection-phantom")


@pytest.mark.parametrize("name", DETECTION_BUNDLES)
def test_each_detection_card_is_measured_where_the_ceiling_reaches_075_and_has_its_curve(name):
    """The card rule: a CPU bundle is trained and measured where the supervised ceiling reaches 0.75;
    the card says at which conspicuity, beside a model-free baseline, the random-box null, thresholds
    never from the split under test, and the contrast-detail curve (realistic lesions included)."""
    folder = bundled_models_dir() / name
    if not folder.is_dir():
        pytest.skip(f"{name} is not bundled")
    card = json.loads((folder / "card.json").read_text())
    bundle = load_bundle(folder)
    assert card["supervised_ceiling"]["auc"] >= 0.75
    contrast = card["conspicuity"]["contrast"]
    assert contrast != [1.0] and f"phantom lesions at {contrast[0]:g}x the realistic contrast" in card["key_line"]
    assert f"--lesion-contrast {contrast[0]:g}" in bundle.provenance["training_data_recipe"]
    assert {"baseline", "random_box_null"} <= set(card)
    for score in card["image_level"].values():
        assert score["threshold_source"] in ("bundle calibration", "Youden J on the val split")
    curve = card["contrast_detail"]["contrast"]
    assert {1.0, contrast[0]} <= set(curve["values"]) and curve["bundle"] == name
    assert {"method", "baseline", "ceiling", "cho"} <= set(curve["threshold"])
    assert (folder / "contrast_detail_contrast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (folder / "card.md").read_text()
    assert "![contrast-detail curve, contrast](contrast_detail_contrast.png)" in text
    assert bundle.card_line == card["key_line"] and "AUC 0.75 at contrast method" in card["key_line"]


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


def test_the_demo_at_other_settings_gets_no_borrowed_decision(tmp_path, capsys):
    """The inpainting bundle is calibrated at its default stride 8: a run at stride 16 gets no
    decision, the reason instead, and the card's key line once."""
    from app.cli import main
    from app.gui import demo_study_path

    inpainting = bundled_models_dir() / "inpainting-phantom"
    if not inpainting.is_dir():
        pytest.skip("inpainting-phantom is not bundled")
    assert load_bundle(inpainting).calibration.parameters["stride"] == 8
    demo = demo_study_path()
    assert main(["analyze", str(demo), "--method", "inpainting", "--model", str(inpainting), "--out",
                 str(tmp_path / "out"), "--device", "cpu", "--stride", "16"]) == 0
    out = capsys.readouterr().out
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert rows and all(r["decision"] is None for r in rows)
    reason = "no calibrated cut-off for stride 16 (the bundle's is for stride 8)"
    assert all(r["no_decision"] == reason for r in rows) and out.count(reason) == len(rows)
    assert out.count("model card: ") == 1 and "clip check" in out
