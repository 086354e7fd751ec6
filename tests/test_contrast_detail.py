"""Contrast-detail sweeps: settings parsing, threshold interpolation, and a tiny sweep end to end."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.contrast_detail import add_to_card, markdown, parse_sweep, plot_png, threshold_conspicuity

BUNDLE = Path(__file__).resolve().parents[1] / "resources" / "models" / "healthygan-phantom"


def test_parse_sweep_takes_an_axis_and_scales_and_refuses_anything_else():
    assert parse_sweep("contrast=4,1,0.5,1") == ("contrast", (0.5, 1.0, 4.0))
    assert parse_sweep("size=0.5,2") == ("size", (0.5, 2.0))
    for bad in ("contrast", "brightness=1,2", "contrast=a,b", "contrast=-1,2", "size=0,1"):
        with pytest.raises(ValueError):
            parse_sweep(bad)


def test_threshold_conspicuity_interpolates_in_log_scale_and_says_when_it_is_not_bracketed():
    out = threshold_conspicuity([1, 2, 4, 8], [0.5, 0.6, 0.9, 0.95])
    # between 2 (0.6) and 4 (0.9): half way in AUC is half way in log2 -> 2 * sqrt(2)
    assert out["status"] == "interpolated" and out["value"] == pytest.approx(2 * np.sqrt(2))
    assert threshold_conspicuity([0, 2], [0.5, 1.0])["value"] == pytest.approx(1.0)  # linear from 0
    assert threshold_conspicuity([1, 2], [0.8, 0.9]) == {"value": 1.0, "status": "at or below the lowest setting"}
    assert threshold_conspicuity([1, 2], [0.5, 0.7]) == {"value": None, "status": "not reached"}


@pytest.mark.skipif(not (BUNDLE / "model.json").is_file(), reason="the shipped HealthyGAN bundle is absent")
def test_a_tiny_sweep_of_the_shipped_bundle_writes_its_table_and_plot(tmp_path):
    from PIL import Image

    from inference.methods import load_engine
    from training.contrast_detail import contrast_detail_sweep

    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE, bundle)
    engine = load_engine("translation", str(bundle), "cpu")
    report = contrast_detail_sweep(engine, tmp_path / "cd", values=(0, 6), patients=10, shape=(256, 208),
                                   spacing=0.8, splits=(0.5, 0.0, 0.5), classes=("mass",), ceiling=False, seed=3)
    assert [s["contrast"] for s in report["settings"]] == [0.0, 6.0]
    zero, strong = report["settings"]
    # the same seeds: the same images, split and lesion places at both settings
    assert zero["n_test_lesion"] == strong["n_test_lesion"] > 0 and zero["n_train"] == strong["n_train"]
    a = (tmp_path / "cd" / "data" / "contrast-0" / "labels.csv").read_text().splitlines()
    b = (tmp_path / "cd" / "data" / "contrast-6" / "labels.csv").read_text().splitlines()
    assert [r.split(",")[:6] for r in a[1:]] == [r.split(",")[:6] for r in b[1:]]
    # without contrast no reader that looks at the lesion place can tell; at 6x the ideal-observer proxy can
    assert strong["cho"]["auc"] >= 0.9 and strong["cho"]["auc"] > zero["cho"]["auc"]
    # its signal-absent ROIs are the lesion places on the lesion-free twins: with no lesion, exactly chance
    assert zero["cho"]["auc"] == pytest.approx(0.5) and zero["cho"]["absent_rois"] == "lesion-free twins"
    for reader in ("method", "method_focal", "baseline", "cho"):
        lo, hi = strong[reader]["auc_ci"]
        assert 0.0 <= lo <= strong[reader]["auc"] <= hi <= 1.0
    assert "ceiling" not in report["threshold"] and report["threshold"]["cho"]["status"] != "not reached"
    saved = json.loads((tmp_path / "cd" / "contrast_detail.json").read_text())
    assert saved["values"] == [0.0, 6.0] and saved["bundle"] == "healthygan-phantom"
    table = (tmp_path / "cd" / "contrast_detail.md").read_text()
    assert table == markdown(saved) and "| 6 |" in table and "CHO (known location)" in table
    with Image.open(tmp_path / "cd" / "contrast_detail.png") as png:
        assert png.size == (720, 480)
        pixels = np.asarray(png.convert("RGB"))
    assert (np.abs(pixels.astype(int) - (214, 39, 40)).sum(-1) < 10).sum() > 50  # the CHO curve is drawn
    assert plot_png(saved)[:8] == b"\x89PNG\r\n\x1a\n"
    # run again into the same folder: the measured settings are kept, nothing is measured twice
    again = contrast_detail_sweep(engine, tmp_path / "cd", values=(0, 6), patients=10, shape=(256, 208),
                                  spacing=0.8, splits=(0.5, 0.0, 0.5), classes=("mass",), ceiling=False, seed=3)
    assert again["settings"] == saved["settings"]
    # the curve goes into the bundle's card: its table, its plot beside card.md, its part of the key line
    assert add_to_card(bundle, report)
    card = json.loads((bundle / "card.json").read_text())
    assert card["contrast_detail"]["contrast"]["values"] == [0.0, 6.0]
    assert "AUC 0.75 at contrast method" in card["key_line"] and "CHO" in card["key_line"]
    md = (bundle / "card.md").read_text()
    assert "## Contrast-detail curves" in md and "![contrast-detail curve, contrast](contrast_detail_contrast.png)" in md
    assert (bundle / "contrast_detail_contrast.png").read_bytes() == plot_png(report)
    assert "## Image level" in md  # the rest of the card is kept


def test_evaluate_sweep_refuses_a_bad_axis_and_needs_labels_otherwise(capsys):
    from app.cli import main

    assert main(["evaluate", "--method", "healthygan", "--sweep", "brightness=1,2"]) == 2
    assert "a sweep is contrast=" in capsys.readouterr().err
    assert main(["evaluate", "--method", "healthygan"]) == 2
    assert "needs --labels" in capsys.readouterr().err
    assert main(["evaluate", "--method", "synthesis", "--sweep", "contrast=1,2"]) == 2
    assert "Lesion synthesis cannot draw anomaly maps" in capsys.readouterr().err


def test_a_sweep_draws_the_lesion_classes_the_bundle_was_trained_on(tmp_path, monkeypatch):
    """A bundle trained without calcifications is swept without them unless --sweep-classes says otherwise."""
    import training.contrast_detail as cd
    from app.cli import main
    from inference.bundle import load_bundle

    bundle = load_bundle(BUNDLE)
    recipe = str(bundle.provenance.get("training_data_recipe"))
    named = tuple(recipe.split("--classes ")[1].split()[0].split(","))
    assert cd.training_classes(bundle) == named
    drawn = []
    monkeypatch.setattr(cd, "contrast_detail_sweep", lambda engine, out, **kw: drawn.append(kw["classes"]) or {})
    monkeypatch.setattr(cd, "markdown", lambda report: "")
    assert main(["evaluate", "--method", "healthygan", "--model", str(BUNDLE), "--sweep", "contrast=1",
                 "--sweep-out", str(tmp_path), "--no-card"]) == 0
    assert main(["evaluate", "--method", "healthygan", "--model", str(BUNDLE), "--sweep", "contrast=1",
                 "--sweep-out", str(tmp_path), "--sweep-classes", "mass", "--no-card"]) == 0
    assert drawn == [named, ("mass",)]


def test_the_card_says_at_which_conspicuity_it_was_measured(tmp_path):
    """Phantom lesions drawn at 12x contrast are named in the key line; real films (no scale) leave it out."""
    from inference.labels import LabelRow, write_labels
    from training.evaluation import CardContext
    from training.evaluation.sections import Conspicuity

    rows = [LabelRow("a.dcm", "P1", "L", "CC", "test", "mass", contrast=12.0, size_scale=1.0),
            LabelRow("b.dcm", "P1", "R", "CC", "test", "normal"),
            LabelRow("c.dcm", "P2", "L", "CC", "test", "asymmetry", contrast=12.0, size_scale=1.0),
            LabelRow("d.dcm", "P3", "L", "CC", "val", "mass", contrast=3.0, size_scale=1.0)]
    write_labels(tmp_path / "labels.csv", rows)
    section = Conspicuity()
    block = section.measure(CardContext(engine=None, labels=tmp_path / "labels.csv", split="test"))
    assert block == {"contrast": [12.0], "size": [1.0], "classes": {"mass": 1, "asymmetry": 1}}
    report = {"supervised_ceiling": {"auc": 0.83}}
    assert section.key_part(block, report) == "phantom lesions at 12x the realistic contrast"
    text = "\n".join(section.markdown(block, report))
    assert "12x its realistic contrast" in text and "supervised ceiling reaches 0.83" in text
    write_labels(tmp_path / "films.csv", [LabelRow("a.dcm", "P1", "L", "CC", "test", "mass"),
                                          LabelRow("b.dcm", "P2", "L", "CC", "test", "normal")])
    assert section.measure(CardContext(engine=None, labels=tmp_path / "films.csv", split="test")) is None
