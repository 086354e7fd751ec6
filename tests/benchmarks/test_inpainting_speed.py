"""Inpainting heatmap speed on CPU (README's budgets): batched windows against one window per call.

Run with `make bench`. In one process, with the shipped bundle (or a stand-in of its architecture
when it is absent): the breast windows of one phantom view at stride 8 through ONNX Runtime in
batches (the engine's way) and one window per call (the paper's way), both uncached; then wall
times of the preview (coarse stride, what the viewer shows first) and of the full stride-8 map for
a 2D view (1024 x 832 phantom MG) and a DBT slice (2457 x 1890), against the budget: preview
< 5 s, full map within 10 x (its window count x the batched cost of one window). Results go to
``tests/benchmarks/results/inpainting.json``.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.benchmarks.sizes import report, size

pytestmark = pytest.mark.benchmark
MG_SHAPE = size((1024, 832), (256, 208))
DBT_SHAPE, DBT_SLICES = size(((2457, 1890), 8), ((384, 304), 4))
STRIDE = size(8, 32)


def _engine(tmp_path):
    from inference.bundle import resolve_bundle
    from inference.methods import get

    try:
        bundle = resolve_bundle("inpainting-phantom", method="inpainting")
    except ValueError:  # not bundled: the CPU preset's architecture, one iteration (timing only)
        pytest.importorskip("torch")
        from tests.conftest import train_tiny_healthygan
        from training.export import export_run
        from training.inpainting import PRESETS, InpaintingConfig, Method
        from training.loop import config_from_preset, train

        cfg = train_tiny_healthygan(tmp_path / "data-source", iterations=1)
        run = config_from_preset(InpaintingConfig, "cpu", PRESETS, labels=cfg.labels, out=str(tmp_path / "run"),
                                 iterations=1, time_budget_s=0.0)
        train(Method(run), log=lambda *a: None)
        bundle = export_run(tmp_path / "run", tmp_path / "standin", name="standin", log=lambda *a: None)
    return get("inpainting").load(bundle, "cpu")


def _uncached(fn):
    from inference.methods import inpainting

    inpainting._CACHE.clear()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def test_inpainting_windows_batched_vs_one_per_call_and_map_budgets(tmp_path):
    from inference.preprocess import preprocess
    from training.phantom import simulate_dbt, simulate_mammogram

    engine = _engine(tmp_path)
    mg = simulate_mammogram(11, shape=MG_SHAPE, pixel_spacing=size(0.2, 0.8))
    view = np.clip(np.asarray(mg.pixels, dtype=np.float32) / float(mg.pixels.max()), 0, 1)
    prepared = preprocess(view, "L", engine.resolution)
    engine.window_errors(prepared.image, prepared.mask, 64)  # warm-up
    t_batched, errors = _uncached(lambda: engine.window_errors(prepared.image, prepared.mask, STRIDE))
    n = len(errors.origins)
    batch = engine.window_batch
    engine.window_batch = 1
    t_single, single = _uncached(lambda: engine.window_errors(prepared.image, prepared.mask, STRIDE))
    engine.window_batch = batch
    assert np.allclose(single.mse, errors.mse, atol=1e-6)
    per_window = t_batched / n
    results = {"bundle": engine.bundle.name, "fov": engine.fov, "hole": engine.hole, "resolution": engine.resolution,
               f"windows_stride{STRIDE}": n, "batch": batch, "batched_windows_per_s": n / t_batched,
               "one_per_call_windows_per_s": n / t_single, "speedup": t_single / t_batched}

    vol = simulate_dbt(3, shape=DBT_SHAPE, n_slices=DBT_SLICES, pixel_spacing=size(0.1, 0.6), lesion_classes=("mass",))
    dbt_slice = np.clip(vol.frame(DBT_SLICES // 2).astype(np.float32) / 4095.0, 0, 1)
    for name, display in ((f"mg_{MG_SHAPE[0]}x{MG_SHAPE[1]}", view),
                          (f"dbt_slice_{DBT_SHAPE[0]}x{DBT_SHAPE[1]}", dbt_slice)):
        seen = {}

        def run():
            t0 = time.perf_counter()
            return engine.run(display, "L", partial=lambda r: seen.setdefault("preview_s", time.perf_counter() - t0))

        t_full, result = _uncached(run)
        windows = result.parameters["windows"]
        budget = 10 * windows * per_window
        results[name] = {"preview_s": seen["preview_s"], "preview_budget_s": 5.0, "full_map_s": t_full,
                         "windows": windows, "full_map_budget_s": budget,
                         "within_budget": bool(seen["preview_s"] < 5.0 and t_full <= budget)}
    report("inpainting", results)
