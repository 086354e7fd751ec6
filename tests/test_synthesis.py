"""ROI synthesis (paper 004): generation, export, the command line, metrics, the shipped bundle."""
from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.labels import LESION_CLASSES
from inference.quality import (
    dssim,
    frechet_distance,
    frechet_features,
    fsim,
    ms_ssim,
    mse,
    psnr,
    ssim,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "resources" / "models" / "synthesis-phantom"


@pytest.fixture(scope="module")
def engine(tiny_synthesis):
    from inference.patches import load_generator

    return load_generator(tiny_synthesis[2], "cpu")


# -- generation --------------------------------------------------------------------------------


def test_same_seed_same_bytes_and_prefix(engine):
    a = engine.generate("mass", 20, seed=7)
    b = engine.generate("mass", 20, seed=7)
    assert a.dtype == np.float32 and a.shape == (20, 32, 32)
    assert a.tobytes() == b.tobytes()
    assert engine.generate("mass", 3, seed=7).tobytes() == a[:3].tobytes()  # patch i does not depend on count
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_different_seeds_and_classes_differ(engine):
    a = engine.generate("mass", 4, seed=1)
    assert not np.array_equal(a, engine.generate("mass", 4, seed=2))
    assert not np.array_equal(a, engine.generate("asymmetry", 4, seed=1))
    assert not np.array_equal(a, engine.generate("mass", 4, seed=1, truncation=0.5))


def test_classes_come_from_the_bundle(tiny_synthesis, engine):
    from inference.patches import bundle_classes
    from inference.bundle import load_bundle

    bundle = load_bundle(tiny_synthesis[2])
    assert bundle.method == "synthesis"
    assert bundle.parameters["classes"] == list(LESION_CLASSES)  # read from the data, vocabulary order
    assert engine.classes == bundle_classes(bundle) == list(LESION_CLASSES)
    assert bundle.calibration is None  # a generator has no score to calibrate


def test_bad_requests_are_one_sentence(engine):
    from inference.methods.synthesis import GenerationError

    for args, words in ((("nodule", 2, 0), "Unknown class"), (("mass", 0, 0), "at least 1"),
                        (("mass", 2, -1), "seed"), (("mass", 2, 0, 1.5), "Truncation")):
        with pytest.raises(GenerationError, match=words) as info:
            engine.generate(*args)
        assert str(info.value).count(". ") == 0


def test_per_class_model(tmp_path, tiny_synthesis):
    """The paper's one-model-per-class setting: ``classes=mass`` trains a bundle that generates only masses."""
    from training.export import export_run
    from training.loop import config_from_preset, train
    from training.synthesis import PRESETS, Config, Method

    cfg = config_from_preset(Config, "tiny", PRESETS, labels=str(tiny_synthesis[1]), out=str(tmp_path / "run"),
                             classes="mass", iterations=2)
    train(Method(cfg), log=lambda *a: None)
    bundle = export_run(tmp_path / "run", tmp_path / "mass-only", log=lambda *a: None)
    assert bundle.parameters["classes"] == ["mass"] and bundle.parameters["per_class_model"] is True
    from inference.methods import get

    assert get("synthesis").load(bundle, "cpu").generate("mass", 2, 0).shape == (2, 32, 32)


# -- export ------------------------------------------------------------------------------------


def test_export_png_dicom_csv(tmp_path, engine):
    import imageio.v3 as iio
    import pydicom

    from inference.patches import CSV_COLUMNS, export_patches, generate_patches

    patches = generate_patches(engine, "calcification", 2, seed=3)
    summary = export_patches(patches, tmp_path / "out", ("png8", "png16", "dicom"))
    assert len(summary.files) == 6 and all(p.is_file() for p in summary.files)
    names = sorted(p.name for p in summary.files)
    png8 = iio.imread(tmp_path / "out" / "calcification_seed3_0000.png")
    png16 = iio.imread(tmp_path / "out" / "calcification_seed3_0000_16bit.png")
    assert png8.dtype == np.uint8 and png16.dtype == np.uint16 and png8.shape == (32, 32)
    assert np.abs(png16 / 65535.0 - patches[0].pixels).max() < 1e-4
    ds = pydicom.dcmread(tmp_path / "out" / "calcification_seed3_0001.dcm")
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    assert ds.ConversionType == "SYN" and ds.PatientIdentityRemoved == "YES"
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber"):
        assert not str(ds.get(keyword, "") or "")
    assert "class=calcification" in ds.ImageComments and "seed=3" in ds.ImageComments
    assert "index=1" in ds.ImageComments and "model=tiny-synthesis" in ds.ImageComments
    assert ds.pixel_array.dtype == np.uint16 and ds.pixel_array.shape == (32, 32)
    with open(summary.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and sorted(r["file"] for r in rows) == names
    assert {(r["class"], r["seed"], r["bundle"], r["version"]) for r in rows} == {("calcification", "3",
                                                                                   "tiny-synthesis", "1")}
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no staging left behind


def test_export_appends_without_overwriting(tmp_path, engine):
    from inference.patches import export_patches, generate_patches

    patches = generate_patches(engine, "mass", 2, seed=1)
    first = export_patches(patches, tmp_path, ("png8",))
    before = {p: p.read_bytes() for p in first.files}
    second = export_patches(generate_patches(engine, "mass", 2, seed=1, truncation=0.5), tmp_path, ("png8",))
    assert not set(first.files) & set(second.files)
    assert all(p.read_bytes() == data for p, data in before.items())
    with open(tmp_path / "synthetic.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4


def test_export_refuses_a_foreign_csv(tmp_path, engine):
    from inference.patches import ExportError, export_patches, generate_patches

    (tmp_path / "synthetic.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ExportError, match="not a mammolens synthesis CSV"):
        export_patches(generate_patches(engine, "mass", 1, 0), tmp_path, ("png8",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic.csv"]


# -- the command line --------------------------------------------------------------------------


def test_cli_synthesize(tmp_path, tiny_synthesis, capsys):
    from app.cli import main

    out = tmp_path / "aug"
    rc = main(["synthesize", "--class", "all", "--n", "2", "--seed", "1", "--out", str(out),
               "--model", str(tiny_synthesis[2]), "--device", "cpu", "--format", "png8,dicom",
               "--grid", str(tmp_path / "grid.png")])
    assert rc == 0
    assert len(list(out.glob("*.png"))) == 8 and len(list(out.glob("*.dcm"))) == 8
    assert "wrote 16 file(s)" in capsys.readouterr().out
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "grid.png").shape == (4 * 32, 2 * 32)  # one row per class


@pytest.mark.parametrize("args, words", [(["--class", "nodule", "--n", "2"], "Unknown class 'nodule'"),
                                         (["--class", "mass", "--n", "0"], "Count must lie in 1..4096, not 0."),
                                         (["--class", "mass", "--n", "-3"], "Count must lie in 1..4096, not -3.")])
def test_cli_bad_input_one_sentence_rc2(tmp_path, tiny_synthesis, capsys, args, words):
    from app.cli import main

    rc = main(["synthesize", *args, "--out", str(tmp_path / "x"), "--model", str(tiny_synthesis[2]),
               "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and words in err and err.startswith("mammolens: ") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_cli_help_has_an_example(capsys):
    from app.cli import main

    with pytest.raises(SystemExit):
        main(["synthesize", "--help"])
    assert "mammolens synthesize --class mass --n 64 --seed 1 --out" in capsys.readouterr().out


# -- metrics -----------------------------------------------------------------------------------


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    v1, v2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    # diagonal Gaussians: |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-9)
    # a rotated pair (same eigenvectors, so they commute): the same closed form
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert frechet_distance(mu1, q @ np.diag(v1) @ q.T, mu2, q @ np.diag(v2) @ q.T) == pytest.approx(expected,
                                                                                                        rel=1e-6)
    assert frechet_distance(mu1, np.diag(v1), mu1, np.diag(v1)) == pytest.approx(0.0, abs=1e-9)
    # samples: large Gaussian samples approach the closed form
    a = rng.normal(0, 1, (20000, 2))
    b = rng.normal(1, 2, (20000, 2))
    assert frechet_features(a, b) == pytest.approx(2 * 1 + 2 * (2 - 1) ** 2, rel=0.05)


def test_reference_metrics_known_values():
    a = np.full((32, 32), 0.5)
    b = a + 10 / 255.0
    assert mse(a, b) == pytest.approx(100.0)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100.0))
    assert psnr(a, a) == math.inf
    rng = np.random.default_rng(1)
    x = rng.random((64, 64))
    y = np.clip(x + 0.1 * rng.standard_normal((64, 64)), 0, 1)
    from skimage.metrics import structural_similarity

    assert ssim(x, y) == pytest.approx(structural_similarity(x * 255, y * 255, data_range=255, gaussian_weights=True,
                                                             sigma=1.5, use_sample_covariance=False), abs=1e-12)
    assert ssim(x, x) == pytest.approx(1.0) and dssim(x, x) == pytest.approx(0.0)
    assert dssim(x, y) == pytest.approx((1 - ssim(x, y)) / 2)
    assert ms_ssim(x, x) == pytest.approx(1.0) and ms_ssim(x, y) < 1.0
    assert fsim(x, x) == pytest.approx(1.0)
    assert fsim(x, y) == pytest.approx(fsim(y, x))
    noisier = np.clip(x + 0.3 * rng.standard_normal((64, 64)), 0, 1)
    assert 0 < fsim(x, noisier) < fsim(x, y) < 1


# -- evaluation and augmentation -----------------------------------------------------------------


def test_evaluate_synthesis_tables_csv_card(tmp_path, tiny_synthesis):
    """What `mammolens evaluate --method synthesis --csv` does (the synthesis card's own sections,
    named by its registry entry), with a short classifier so the test stays fast."""
    from app.evaluation import format_report, write_section_files
    from training.evaluation import evaluate_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_synthesis[2], bundle)
    report = evaluate_bundle(tiny_synthesis[1], method="synthesis", model=str(bundle), device="cpu",
                             options={"classifier_steps": 10, "n_fcd": 16}, log=lambda *a: None)
    write_section_files(report, tmp_path / "q.csv")
    out = format_report(report)
    assert "| image | PSNR | SSIM | DSSIM | MSE | FSIM |" in out and "BRISQUE: not computed" in out
    rows = list(csv.DictReader(open(tmp_path / "q.csv", newline="")))
    for cls in LESION_CLASSES:
        assert sum(r["class"] == cls for r in rows) == 12  # ten images, average, real vs real
    card = (bundle / "card.md").read_text()
    assert "Frechet classifier distance" in card and (bundle / "card.json").is_file()
    assert (bundle / "quality.csv").read_text() == (tmp_path / "q.csv").read_text()


def test_augmentation_experiment_into_the_card(tmp_path, tiny_synthesis):
    import json

    from training.synthesis.card import run_augmentation

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_synthesis[2], bundle)
    result = run_augmentation(tiny_synthesis[1], model=str(bundle), name="drawn", seeds=(0, 1), steps=2,
                              device="cpu", log=lambda *a: None)
    arms = result["arms"]
    assert set(arms) == {"real", "real + synthetic"}
    assert len(arms["real"]["accuracy"]["runs"]) == 2 and set(arms["real"]["recall"]) == set(LESION_CLASSES)
    assert result["synthetic_per_class"] == 3
    card = json.loads((bundle / "card.json").read_text())
    assert "drawn" in card["augmentation"] and "augmentation (drawn)" in card["key_line"]


# -- the shipped bundle ----------------------------------------------------------------------------


def test_shipped_bundle_generates_every_class():
    from inference.bundle import load_bundle
    from inference.methods import get

    if not SHIPPED.is_dir():
        pytest.skip("resources/models/synthesis-phantom is not shipped in this checkout")
    bundle = load_bundle(SHIPPED)
    engine = get("synthesis").load(bundle, "cpu")
    assert engine.classes == list(LESION_CLASSES)
    for cls in engine.classes:
        patches = engine.generate(cls, 2, seed=0)
        assert patches.shape == (2, 64, 64) and patches.std() > 0.01
    assert bundle.card is not None and "synthesis" in bundle.card


def test_user_inception_onnx_for_the_real_fid(tmp_path):
    """A user's InceptionV3 ONNX is only run, never downloaded: a stand-in with the same contract
    ((N, 3, 299, 299) in [0, 1] -> features) gives features and a Frechet distance of 0 on equal sets."""
    torch = pytest.importorskip("torch")
    from inference.quality import inception_features

    net = torch.nn.Sequential(torch.nn.AvgPool2d(75), torch.nn.Flatten())  # 299 -> 3 x 3 per channel
    path = tmp_path / "inception.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 299, 299),), str(path), input_names=["x"], output_names=["pool"],
                      dynamic_axes={"x": {0: "n"}, "pool": {0: "n"}}, dynamo=False)
    images = np.random.default_rng(0).random((5, 32, 32))
    feats = inception_features(path, images, batch=2)
    assert feats.shape == (5, 27)
    assert frechet_features(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_networks_follow_the_paper_tables_at_64_and_128():
    torch = pytest.importorskip("torch")
    from training.synthesis import PRESETS
    from training.synthesis.networks import Discriminator, Generator

    assert PRESETS["paper"]["lr_g"] == 1e-5 and PRESETS["paper"]["lr_d"] == 1e-4 and PRESETS["paper"]["batch"] == 32
    for resolution in (64, 128):
        g = Generator(noise_dim=100, classes=4, resolution=resolution, width=32).eval()
        d = Discriminator(classes=4, resolution=resolution, width=4).eval()
        code = torch.cat([torch.rand(3, 100) * 2 - 1, torch.eye(4)[:3]], 1)
        with torch.no_grad():
            patch = g(code)
            assert patch.shape == (3, 1, resolution, resolution) and patch.abs().max() <= 1
            assert d(patch, torch.eye(4)[:3]).shape == (3,)
    convs = [m for m in Generator(width=1024).modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64] and all(c.kernel_size == (5, 5) for c in convs)


def test_cli_evaluate_hands_synthesis_its_own_options(tmp_path, monkeypatch, capsys):
    """`mammolens evaluate --method synthesis` goes to the synthesis card with --csv and --inception."""
    import training.evaluation
    from app.cli import main

    seen = {}

    def fake(labels, **kwargs):
        seen.update(kwargs, labels=labels)
        return {"method": "synthesis", "bundle": "m", "version": "1", "labels": "l.csv", "split": "test",
                "synthesis": {"classes": {}, "not_computed": {}}, "key_line": "k"}

    monkeypatch.setattr(training.evaluation, "evaluate_bundle", fake)
    rc = main(["evaluate", "--method", "synthesis", "--labels", str(tmp_path / "l.csv"), "--model", "m",
               "--csv", str(tmp_path / "q.csv"), "--inception", str(tmp_path / "i.onnx"), "--no-card"])
    assert rc == 0 and seen["options"]["inception"] == tmp_path / "i.onnx"
    assert seen["model"] == "m" and seen["card"] is False and seen["split"] == "test"
    assert (tmp_path / "q.csv").read_text().startswith("class,image,")
    assert "card: k" in capsys.readouterr().out


def test_roi_patches_from_boxes_and_centre_radius_mirrored(tmp_path):
    """A right breast's lesion given by centre and radius (mini-MIAS style) is cut around the lesion
    after mirroring, with its own row's class."""
    from inference.images import png_bytes
    from inference.labels import LabelRow, write_labels
    from training.datasets import roi_patches

    film = np.zeros((96, 128), dtype=np.uint8)
    film[40:56, 90:106] = 255  # a bright square lesion near the right edge
    (tmp_path / "r.png").write_bytes(png_bytes(film))
    write_labels(tmp_path / "labels.csv", [
        LabelRow(path="r.png", patient="P1", laterality="R", split="train", label="mass", cx=98, cy=48, r=8),
        LabelRow(path="r.png", patient="P1", laterality="R", split="train", label="calcification",
                 x0=2, y0=2, x1=10, y1=10)])
    data = roi_patches(tmp_path / "labels.csv", 32, min_side=24)
    assert data.labels == ["mass", "calcification"] and data.patches.shape == (2, 32, 32)
    mass = data.patches[0]
    assert mass[12:20, 12:20].mean() > 0.9 and mass[:4].mean() < 0.1  # centred on the lesion
    assert data.patches[1].max() < 0.1  # the dark corner, not the lesion
