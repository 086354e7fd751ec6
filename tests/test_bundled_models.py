"""The models shipped in resources/models: valid, calibrated, reproducible, carrying their
evaluation card (whose foreign-object check says the map lights up on metal the model never
saw), and running end to end on the demo study."""
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


def test_card_is_in_the_bundle_and_the_map_lights_up_on_foreign_objects(healthygan):
    card = json.loads((HEALTHYGAN / "card.json").read_text())
    assert card["bundle"] == "healthygan-phantom" and card["split"] == "test"
    assert healthygan.card_line == card["key_line"] and "map lights up on the object" in card["key_line"]
    fo = card["foreign_objects"]
    assert fo["lights_up"] and fo["ratio_median"] >= 2 * fo["null_ratio_median"] and fo["ratio_p_value"] < 0.05
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
