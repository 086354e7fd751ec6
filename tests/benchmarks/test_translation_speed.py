"""HealthyGAN translation speed on CPU: ONNX Runtime against the same network in torch eager.

Run with `make bench`. Two cases, each timed in one process for both engines (best of 5 after a
warm-up): one 512 px image (the paper-sized generator, width 64, exported at 512), and a
70-slice DBT volume through the bundled model (every slice preprocessed, translated in batches,
mapped back). Results go to ``tests/benchmarks/results/translation.json``.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.benchmarks.sizes import report, size

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.benchmark
SIZE = size(512, 64)  # the single image's side
DBT_SHAPE, DBT_SLICES = size(((2457, 1890), 70), ((256, 208), 4))


def _best(fn, repeats: int = size(5, 1)) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def test_translation_ort_vs_torch(tmp_path):
    from inference.runtime import create_session
    from training.export import export_onnx
    from training.healthygan.networks import HealthyGANGenerator

    results = {"torch_threads": torch.get_num_threads()}
    for width in size((16, 64), (8,)):
        net = HealthyGANGenerator(channels=1, width=width).eval()
        path = export_onnx(net, torch.rand(1, 1, SIZE, SIZE), tmp_path / f"g{width}.onnx", ["image"], ["intermediate", "mask"])
        session = create_session(path, device="cpu")
        x = np.random.default_rng(0).random((1, 1, SIZE, SIZE), dtype=np.float32)
        with torch.no_grad():
            t_torch = _best(lambda: net(torch.from_numpy(x)))
        t_ort = _best(lambda: session.run({"image": x}))
        results[f"{SIZE}px_width{width}"] = {"torch_eager_s": t_torch, "onnxruntime_s": t_ort, "speedup": t_torch / t_ort}

    from inference.bundle import resolve_bundle
    from inference.methods.translation import TranslationEngine
    from training.phantom import simulate_dbt

    try:
        bundle = resolve_bundle("healthygan-phantom", method="translation")
    except ValueError:  # not bundled: a stand-in of the shipped architecture (timing only)
        from tests.conftest import train_tiny_healthygan
        from training.export import export_run

        train_tiny_healthygan(tmp_path / "standin", resolution=128, width=16, residual_blocks=6, iterations=2,
                              command="benchmark stand-in")
        bundle = export_run(tmp_path / "standin" / "run", tmp_path / "standin-bundle", name="standin",
                            log=lambda *a: None)
    model = TranslationEngine(bundle, device="cpu")
    vol = simulate_dbt(3, shape=DBT_SHAPE, n_slices=DBT_SLICES, pixel_spacing=size(0.1, 0.8), lesion_classes=("mass",))
    frames = [np.clip(vol.frame(k).astype(np.float32) / 4095.0, 0, 1) for k in range(DBT_SLICES)]
    t_ort_volume = _best(lambda: model.run_many(frames, ["L"] * DBT_SLICES), repeats=size(2, 1))
    # the same volume with the network part in torch eager (same architecture; weights do not
    # change the cost, so the torch side keeps its initial ones)
    from training.healthygan.networks import HealthyGANGenerator

    net = HealthyGANGenerator(channels=1, width=int(bundle.parameters["width"]),
                              residual_blocks=int(bundle.parameters["residual_blocks"])).eval()

    class TorchSession:
        inputs = {"image": None}
        device_label = "torch"
        fallback_reason = None

        def run_batched(self, feeds, batch):
            with torch.no_grad():
                outs = [net(torch.from_numpy(feeds["image"][i:i + batch])) for i in range(0, len(feeds["image"]), batch)]
            return {"intermediate": torch.cat([o[0] for o in outs]).numpy(), "mask": torch.cat([o[1] for o in outs]).numpy()}

    torch_model = TranslationEngine(bundle, sessions={"generator": TorchSession()})
    t_torch_volume = _best(lambda: torch_model.run_many(frames, ["L"] * DBT_SLICES), repeats=size(2, 1))
    one = model.run(frames[DBT_SLICES // 2], "L")
    results[f"dbt_{DBT_SLICES}_slices"] = {"onnxruntime_s": t_ort_volume, "torch_eager_s": t_torch_volume,
                                           "speedup": t_torch_volume / t_ort_volume,
                                           "per_slice_ort_s": t_ort_volume / DBT_SLICES,
                                           "one_slice_timings": one.timings, "resolution": model.resolution}
    report("translation", results)
