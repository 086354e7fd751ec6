"""The models shipped in resources/models: valid, calibrated, reproducible, carrying their
evaluation card, and passing the one check any correct pipeline passes at any training length:
a metal clip the model never saw lights up its map (the demo study's R-CC carries one)."""
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


def test_card_is_in_the_bundle_and_its_plumbing_check_passed(healthygan):
    card = json.loads((HEALTHYGAN / "card.json").read_text())
    assert card["bundle"] == "healthygan-phantom" and card["split"] == "test"
    assert healthygan.card_line == card["key_line"] and "clip check passed" in card["key_line"]
    fo = card["foreign_objects"]
    assert fo["passed"] and fo["ratio_median"] >= 2 * fo["null_ratio_median"]
    lo, hi = card["image_level"]["paper"]["auc_ci"]
    assert lo <= card["image_level"]["paper"]["auc"] <= hi
    assert {"auc", "auc_ci", "train_auc"} <= set(card["supervised_ceiling"])
    assert (HEALTHYGAN / "card.md").read_text().startswith("# Evaluation card: healthygan-phantom")


def test_the_demo_clip_lights_up_the_map(healthygan, tmp_path):
    """R-CC carries a biopsy clip; L-CC is its normal mirror image: the same box laid there is the null."""
    from app.analysis import analyze_path
    from app.gui import demo_study_path
    from inference.labels import read_labels
    from inference.metrics import box_ratio

    demo = demo_study_path()
    clip = next(r for r in read_labels(demo / "labels.csv") if r.label == "foreign_object")
    assert clip.path == "MG_RCC.dcm"
    summary = analyze_path(demo, "healthygan", tmp_path, model=str(HEALTHYGAN))
    maps = {r["image"].rsplit("_", 1)[-1]: np.load(tmp_path / r["map"]) for r in summary["results"] if r["map"]}
    rcc, lcc = maps["R-CC"], maps["L-CC"]
    x0, y0, x1, y1 = clip.box()
    mirrored = (lcc.shape[1] - x1, y0, lcc.shape[1] - x0, y1)
    on_clip = box_ratio(rcc, rcc > 0, [clip.box()])
    null = box_ratio(lcc, lcc > 0, [mirrored])
    assert on_clip >= 2 * null, f"the clip box is {on_clip:.2f}x the breast mean, the same box on L-CC {null:.2f}x"
