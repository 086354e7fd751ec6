"""The method contract: one engine module, one training package, one registry entry.

* A toy method (tests/toy_method.py) registered at run time appears in the viewer's panel,
  ``analyze``, ``evaluate``, ``train`` and ``export`` with no other file touched.
* Every registered method with an engine and a training package is trained for a few iterations
  with its ``tiny`` preset, exported, and run through the shared guarantees: maps on the original
  grid, provider and fallback recorded, progress reported, cancel honoured within 1 s.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("torch")

from inference import methods  # noqa: E402


@pytest.fixture
def toy_registered(monkeypatch):
    """The toy registered through ``register`` (its capabilities checked), on a copy of the registry."""
    from tests.toy_method import SPEC

    monkeypatch.setattr(methods, "METHODS", dict(methods.METHODS))
    return methods.register(SPEC)


def test_register_refuses_a_capability_the_engine_lacks(monkeypatch):
    """A spec that declares what its engine does not implement fails at register(), with a sentence."""
    import dataclasses

    from tests.toy_method import SPEC

    monkeypatch.setattr(methods, "METHODS", dict(methods.METHODS))
    with pytest.raises(methods.MethodError, match=r"Toy autoencoder declares what its engine ToyEngine does not "
                                                  r"implement: generate \(generates_patches\)"):
        methods.register(dataclasses.replace(SPEC, generates_patches=True))
    assert "toy" not in methods.METHODS


@pytest.mark.parametrize("method", [s.method for s in methods.METHODS.values() if s.has_engine])
def test_every_builtin_engine_implements_what_its_entry_declares(method):
    methods.check_engine(methods.get(method))  # what register() checks for a new method


def test_a_method_without_an_engine_is_offered_nowhere(capsys, monkeypatch):
    """A registered method without an engine (the viewer can name it) is offered by no verb, and
    asking for it, or for maps from a generator, is one sentence."""
    import dataclasses

    from app.cli import main
    from tests.toy_method import SPEC

    monkeypatch.setattr(methods, "METHODS", dict(methods.METHODS))
    methods.register(dataclasses.replace(SPEC, method="future", title="Future method", engine=None, training=None,
                                         card=None, completes_roi=False))
    assert "future" not in methods.method_names() and "synthesis" not in methods.method_names("produces_map")
    assert main(["analyze", ".", "--method", "future", "--out", "x"]) == 2
    assert "Future method has no engine in this version of mammolens." in capsys.readouterr().err
    assert main(["analyze", ".", "--method", "synthesis", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "Lesion synthesis cannot draw anomaly maps; methods that can: translation, projection, inpainting." in err
    assert "Traceback" not in err


def test_toy_method_appears_in_train_export_analyze_evaluate_and_the_panel(toy_registered, tiny_healthygan, tmp_path,
                                                                           qtbot, monkeypatch, capsys):
    from app.cli import main

    root, cfg, _ = tiny_healthygan
    labels = cfg.labels
    run, models = tmp_path / "run", tmp_path / "models"
    assert main(["train", "toy", "--labels", labels, "--out", str(run), "--preset", "tiny"]) == 0
    assert json.loads((run / "run.json").read_text())["method"] == "toy"
    assert main(["export", str(run), "--out", str(models / "toy-1")]) == 0
    from inference.bundle import load_bundle

    bundle = load_bundle(models / "toy-1")
    assert bundle.method == "toy" and bundle.calibration is not None

    for gain in ("1", "2"):
        assert main(["analyze", str(root / "data" / "P0001"), "--method", "toy", "--model", str(bundle.path),
                     "--gain", gain, "--out", str(tmp_path / f"gain{gain}")]) == 0
    one, two = (json.loads((tmp_path / f"gain{g}" / "results.json").read_text()) for g in ("1", "2"))
    assert two["parameters"] == {"gain": 2.0} and two["method"] == "toy"
    assert two["results"][0]["score"] == pytest.approx(2 * one["results"][0]["score"], rel=1e-5)
    assert main(["analyze", str(root / "data" / "P0001"), "--method", "toy", "--model", str(bundle.path),
                 "--gain", "99", "--out", str(tmp_path / "bad")]) == 2
    assert "Gain must lie in" in capsys.readouterr().err

    assert main(["evaluate", "--method", "toy", "--model", str(bundle.path), "--labels", labels,
                 "--object-patients", "1"]) == 0
    card = json.loads((bundle.path / "card.json").read_text())
    assert card["method"] == "toy" and "test AUC" in card["key_line"] and "supervised ceiling" in card["key_line"]
    # the toy's own card section, from its own module: measured, in the key line and in card.md
    assert card["toy_reconstruction"]["n"] > 0 and "toy reconstruction error" in card["key_line"]
    md = (bundle.path / "card.md").read_text()
    assert md.startswith("# Evaluation card: toy-1 1 (toy)") and "## Toy reconstruction" in md

    from app.gui import build_window, demo_study_path

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    window, controller = build_window(models_dirs=[models])
    qtbot.addWidget(window)
    window.show()
    controller.studies.open(demo_study_path())
    toy = controller.overlays.bundle_named("toy-1")
    assert toy is not None and toy in controller.overlays.method_bundles
    controller.overlays.toggle_method(toy, True, all_views=False)
    from PySide6 import QtWidgets

    panel = window.overlay_panel
    assert panel.findChild(QtWidgets.QDoubleSpinBox, "parameter_gain") is not None
    assert panel.card.text() == "Model card: " + card["key_line"]
    # its second capability: the viewer's ROI completion offers the toy bundle
    assert methods.first_usable(controller.session.bundles, "completes_roi").name == "toy-1"
    qtbot.waitUntil(lambda: controller.session.result(controller.session.current, 0, toy) is not None, timeout=20000)


def _specs():
    from tests.toy_method import SPEC

    return [s for s in methods.trainable()] + [SPEC]


@pytest.mark.parametrize("spec", _specs(), ids=lambda s: s.method)
def test_every_method_keeps_the_shared_guarantees(spec, tiny_healthygan, tmp_path, monkeypatch):
    from inference.jobs import CancelToken
    from training.export import export_run
    from training.loop import config_from_preset, train

    monkeypatch.setitem(methods.METHODS, spec.method, spec)
    root, cfg, _ = tiny_healthygan
    package = spec.training_package()
    train(package.Method(config_from_preset(package.Config, "tiny", package.PRESETS, labels=cfg.labels,
                                            out=str(tmp_path / "run"))), log=lambda *a: None)
    bundle = export_run(tmp_path / "run", tmp_path / "bundle", name=f"tiny-{spec.method}", log=lambda *a: None)
    engine = spec.load(bundle, "cpu")
    rng = np.random.default_rng(0)
    display = np.zeros((96, 80), np.float32)
    display[:, :60] = 0.3 + 0.4 * rng.random((96, 60))
    if spec.produces_map:
        seen = []
        results = engine.run_many([display, display[:, ::-1].copy()], ["L", "R"], frames=[0, 1],
                                  progress=lambda d, t, m: seen.append((d, t)))
        assert seen and seen[-1] == (2, 2), "progress reaches the total"
        for r in results:
            assert r.maps[spec.maps[0]].shape == display.shape, "maps on the original grid"
            assert r.provider == "CPU" and r.fallback_reason is None and r.bundle_name == bundle.name
            assert r.method == spec.method and np.isfinite(r.score)
        # NaN is a map's "no data" (a sliding window cannot reach the border): it must mirror too
        assert np.allclose(results[1].maps[spec.maps[0]], results[0].maps[spec.maps[0]][:, ::-1], atol=1e-5,
                           equal_nan=True)
        token, raised, started = CancelToken(), {}, threading.Event()
        worker = threading.Thread(target=_run_cancellable, args=(engine, display, token, raised, started))
        worker.start()
        assert started.wait(30)
        token_time = time.perf_counter()
        token.cancel()
        worker.join(5)
        assert "at" in raised and raised["at"] - token_time < 1.0, "cancel honoured within 1 s"
    if spec.completes_roi:
        r = engine.complete(display, "L", (20, 20, 40, 40))
        assert r.maps["completion"].shape == display.shape
    if spec.generates_patches:
        patches = engine.generate(bundle.parameters["classes"][0], 3, seed=1)
        assert len(patches) == 3


def _run_cancellable(engine, display, token, raised, started):
    from inference.jobs import Cancelled

    try:
        engine.run_many([display] * 400, ["L"] * 400, progress=lambda d, t, m: started.set(), cancel=token)
    except Cancelled:
        raised["at"] = time.perf_counter()


def test_train_all_runs_the_gpu_presets_on_a_cpu_within_a_tiny_budget(tiny_healthygan, tmp_path):
    """The GPU-lease command, on a CPU with seconds of budget: runs, bundles and cards, and a carry
    checkpoint under 16 MB at the GPU preset's widths (weights do not depend on resolution). The
    session's tiny phantom stands in for the data the command simulates when its folder is empty."""
    import shutil

    from app.cli import main
    from inference.bundle import load_bundle
    from training.torch_utils import load_checkpoint

    out = tmp_path / "lease"
    shutil.copytree(tiny_healthygan[0] / "data", out / "phantom")
    args = ["train-all", "--out", str(out), "--preset", "gpu", "--minutes", "0.05", "--patients", "16",
            "--phantom-shape", "256x208", "--spacing", "0.8", "--set", "resolution=64", "--set", "batch=2",
            "--set", "validate_every=0", "--set", "proj_steps=4", "--object-patients", "1",
            "--device", "cpu"]
    assert main(args) == 0
    for spec in methods.trainable():
        name = spec.training_package().Method.name
        run = out / "runs" / f"{name}-gpu"
        info = json.loads((run / "run.json").read_text())
        assert info["preset"] == "gpu" and 0 < info["iterations"] < info["iterations_planned"], "stopped by the budget"
        carry = run / "carry.pt"
        assert carry.stat().st_size < 16 * 2**20
        assert "optimizers" not in load_checkpoint(carry)
        bundle = load_bundle(out / "bundles" / f"{name}-gpu")
        assert bundle.card_line and bundle.provenance["preset"] == "gpu"
    # a second lease resumes from the run folder instead of starting over
    first = json.loads((out / "runs" / "healthygan-gpu" / "run.json").read_text())["iterations"]
    assert main(args) == 0
    assert json.loads((out / "runs" / "healthygan-gpu" / "run.json").read_text())["iterations"] > first


def test_every_error_a_user_can_cause_is_one_base():
    """Callers catch one base: every error mammolens reports in one sentence derives from MammolensError."""
    from inference.bundle import BundleError
    from inference.errors import LoadError, MammolensError
    from inference.labels import LabelsError
    from inference.methods.synthesis import GenerationError
    from inference.patches import ExportError
    from inference.runtime import ModelLoadError
    from inference.studies.voi import AttributeProblem

    for error in (BundleError, LabelsError, ModelLoadError, AttributeProblem, LoadError, methods.MethodError,
                  GenerationError, ExportError):
        assert issubclass(error, MammolensError), error
