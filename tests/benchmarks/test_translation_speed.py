"""HealthyGAN translation speed on CPU: ONNX Runtime against the same network in torch eager.

Run with `make bench`. Two cases, each timed in one process, the engines taking turns (best of 5
after a warm-up): one 512 px image (the paper-sized generator at widths 16 and 64, exported at 512;
ONNX Runtime also with its default options, whose threads spin, and with the EXTENDED graph
optimisation, without the NCHWc layout; the convolutions' GFLOP/s of each engine and ONNX Runtime's
share of time per operator), and a 70-slice DBT volume through the bundled model (every slice
preprocessed, translated in batches). Results go to ``tests/benchmarks/results/translation.json``.
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


def _interleaved(fns: dict, repeats: int = size(5, 1)) -> dict[str, float]:
    """Best time of each, the engines taking turns (a loaded machine slows them alike)."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: min(t) for name, t in times.items()}


def _conv_flops(net, x) -> float:
    """2 x the multiply-adds of the network's convolutions (plain and transposed) on ``x``."""
    total = [0.0]

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels * module.out_channels / module.groups
        points = output.shape[2] * output.shape[3] if isinstance(module, torch.nn.Conv2d) else \
            inputs[0].shape[2] * inputs[0].shape[3]
        total[0] += 2.0 * k * points * output.shape[0]

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return total[0]


def _op_shares(path, x) -> dict[str, float]:
    """ONNX Runtime's own profile: the share of kernel time per operator type."""
    import json
    from collections import Counter

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix(""))
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    for _ in range(2):
        session.run(None, {"image": x})
    with open(session.end_profiling()) as f:
        events = json.load(f)
    per_op = Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    total = sum(per_op.values()) or 1
    return {op: round(v / total, 3) for op, v in per_op.most_common(6)}


def test_translation_ort_vs_torch(tmp_path):
    import onnxruntime as ort

    from inference.runtime import create_session
    from training.export import export_onnx
    from training.healthygan.networks import HealthyGANGenerator

    results = {"torch_threads": torch.get_num_threads()}
    for width in size((16, 64), (8,)):
        net = HealthyGANGenerator(channels=1, width=width).eval()
        path = export_onnx(net, torch.rand(1, 1, SIZE, SIZE), tmp_path / f"g{width}.onnx", ["image"], ["intermediate", "mask"])
        session = create_session(path, device="cpu")  # mammolens' options (threads sleep between ops)
        defaults = ort.SessionOptions()  # ONNX Runtime's defaults: threads spin between ops
        defaults.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        spin = ort.InferenceSession(str(path), sess_options=defaults, providers=["CPUExecutionProvider"])
        basic = ort.SessionOptions()  # no NCHWc layout transformation
        basic.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        basic.add_session_config_entry("session.intra_op.allow_spinning", "0")
        plain = ort.InferenceSession(str(path), sess_options=basic, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((1, 1, SIZE, SIZE), dtype=np.float32)
        xt = torch.from_numpy(x)

        def eager():
            with torch.no_grad():
                net(xt)

        best = _interleaved({"torch_eager_s": eager, "onnxruntime_s": lambda: session.run({"image": x}),
                             "onnxruntime_spinning_s": lambda: spin.run(None, {"image": x}),
                             "onnxruntime_extended_optimisation_s": lambda: plain.run(None, {"image": x})})
        flops = _conv_flops(net, xt)
        results[f"{SIZE}px_width{width}"] = dict(
            best, speedup=best["torch_eager_s"] / best["onnxruntime_s"],
            speedup_spinning=best["torch_eager_s"] / best["onnxruntime_spinning_s"],
            conv_gflop=flops / 1e9, torch_gflop_per_s=flops / 1e9 / best["torch_eager_s"],
            onnxruntime_gflop_per_s=flops / 1e9 / best["onnxruntime_s"],
            onnxruntime_op_shares=_op_shares(path, x))

    from inference.methods.translation import TranslationEngine
    from tests.benchmarks.sizes import healthygan_bundle
    from training.phantom import simulate_dbt

    bundle = healthygan_bundle(tmp_path)
    model = TranslationEngine(bundle, device="cpu")
    vol = simulate_dbt(3, shape=DBT_SHAPE, n_slices=DBT_SLICES, pixel_spacing=size(0.1, 0.8), lesion_classes=("mass",))
    frames = [np.clip(vol.frame(k).astype(np.float32) / 4095.0, 0, 1) for k in range(DBT_SLICES)]
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
    volume = _interleaved({"ort": lambda: model.run_many(frames, ["L"] * DBT_SLICES),
                           "torch": lambda: torch_model.run_many(frames, ["L"] * DBT_SLICES)}, repeats=size(2, 1))
    t_ort_volume, t_torch_volume = volume["ort"], volume["torch"]
    one = model.run(frames[DBT_SLICES // 2], "L")
    results[f"dbt_{DBT_SLICES}_slices"] = {"onnxruntime_s": t_ort_volume, "torch_eager_s": t_torch_volume,
                                           "speedup": t_torch_volume / t_ort_volume,
                                           "per_slice_ort_s": t_ort_volume / DBT_SLICES,
                                           "one_slice_timings": one.timings, "resolution": model.resolution}
    report("translation", results)
