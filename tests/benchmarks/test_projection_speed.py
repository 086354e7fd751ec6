"""StyleGAN2 projection speed on the CPU: seconds per image for 1, 9 and 16 seeds, ONNX Runtime
against torch eager, in one run.

Run with `make bench`. With the shipped bundle and its run (``build/run-proj-phantom``, from
`make bundle-projection`), or a stand-in of the CPU preset's architecture (128 px, one
training iteration) when either is absent: ``STEPS`` projector steps of one phantom view with k
seeds as one batch, through the engine (``project_step`` in ONNX Runtime, Adam in numpy) and
through the torch eager reference (:func:`training.projection.reference.project_torch`), both
from the same weights; seconds per image are scaled to the reference projector's 1000 steps.
Results go to ``tests/benchmarks/results/projection.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.benchmark
RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[2]
STEPS = 10


def _bundle_and_run(tmp_path):
    from inference.bundle import resolve_bundle

    run = REPO / "build" / "run-proj-phantom"
    try:
        bundle = resolve_bundle("projection-phantom", method="projection")
        if (run / "checkpoint.pt").is_file():
            return bundle, run
    except ValueError:
        pass
    from training.export import export_run
    from training.loop import config_from_preset, train
    from training.phantom import generate_dataset
    from training.projection import PRESETS, Config, StyleGAN2

    # every patient: one CC with a mass and one without, so each split holds both (calibration needs them)
    generate_dataset(tmp_path / "data", n=4, views=("CC",), lesion_fraction=1.0, classes=("mass",),
                     shape=(256, 208), pixel_spacing=0.8, splits=(0.5, 0.25, 0.25), seed=4)
    cfg = config_from_preset(Config, "cpu", PRESETS, labels=str(tmp_path / "data" / "labels.csv"),
                             out=str(tmp_path / "run"), iterations=1)
    train(StyleGAN2(cfg), log=lambda *a: None)
    return export_run(tmp_path / "run", tmp_path / "standin", name="standin", parameters={"steps": 1},
                      log=lambda *a: None), tmp_path / "run"


def test_seconds_per_image_onnx_and_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from inference.methods import get
    from training.projection.reference import project_torch, step_from_bundle_run

    bundle, run = _bundle_and_run(tmp_path)
    engine = get("projection").load(bundle, "cpu")
    step, w_avg, w_std = step_from_bundle_run(run)
    r = engine.resolution
    image = np.zeros((1, r, r), np.float32)
    image[0, :, : r * 3 // 4] = np.linspace(0.7, 0.3, r * 3 // 4)[None]
    engine.project(image, 1, 2)  # warm-up
    rows = {}
    for seeds in (1, 9, 16):
        t0 = time.perf_counter()
        engine.project(image, seeds, STEPS)
        t1 = time.perf_counter()
        project_torch(step, w_avg, w_std, image, seeds, STEPS)
        t2 = time.perf_counter()
        rows[seeds] = {"onnx_s_per_step": (t1 - t0) / STEPS, "torch_s_per_step": (t2 - t1) / STEPS,
                       "onnx_s_per_image_1000_steps": (t1 - t0) / STEPS * 1000,
                       "torch_s_per_image_1000_steps": (t2 - t1) / STEPS * 1000}
        print(f"{seeds:>2} seeds: ONNX Runtime {rows[seeds]['onnx_s_per_step']:.3f} s/step, torch "
              f"{rows[seeds]['torch_s_per_step']:.3f} s/step; 1000 steps: "
              f"{rows[seeds]['onnx_s_per_image_1000_steps']:.0f} s vs {rows[seeds]['torch_s_per_image_1000_steps']:.0f} s")
        assert np.isfinite(rows[seeds]["onnx_s_per_step"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "projection.json").write_text(json.dumps(
        {"bundle": bundle.name, "resolution": r, "steps_timed": STEPS, "torch_threads": torch.get_num_threads(),
         "seeds": rows}, indent=2) + "\n")
