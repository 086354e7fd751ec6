"""Export a trained run to a model bundle: ONNX with a dynamic batch, model.json with provenance,
an ONNX Runtime vs torch check, and the calibration measured on held-out images.

The exported HealthyGAN graph takes the shared preprocessing's output directly: ``image`` of
shape (N, 1, R, R) in [0, 1]; it returns ``intermediate`` (B_int, in [0, 1]) and ``mask``
(M in [0, 1]). Composition (Eq. 1) and scoring stay in :mod:`inference.translation`, in numpy,
so the formula is visible and tested in one place.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

EXPORT_TOLERANCE = 1e-4  # max |ORT - torch| allowed on random and real inputs
OPSET = 17


class _UnitRangeGenerator(torch.nn.Module):
    """[0, 1] in and out around a generator that works in [-1, 1]."""

    def __init__(self, generator: torch.nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor):
        intermediate, mask = self.generator(image * 2.0 - 1.0)
        return (intermediate + 1.0) / 2.0, mask


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path, input_names, output_names) -> Path:
    """ONNX with a dynamic batch axis on every input and output."""
    dynamic = {name: {0: "batch"} for name in list(input_names) + list(output_names)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(module.eval(), (example,), str(path), input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic, opset_version=OPSET,
                          dynamo=False)
    return path


def max_abs_difference(module: torch.nn.Module, onnx_path: Path, inputs: np.ndarray) -> float:
    """Largest |ORT - torch| over all outputs for the given batch."""
    from inference.runtime import create_session

    session = create_session(onnx_path, device="cpu")
    name = next(iter(session.inputs))
    ort_out = session.run({name: inputs.astype(np.float32)})
    with torch.no_grad():
        torch_out = module(torch.from_numpy(inputs.astype(np.float32)))
    torch_out = torch_out if isinstance(torch_out, (tuple, list)) else (torch_out,)
    return max(float(np.abs(o - t.numpy()).max()) for o, t in zip(ort_out.values(), torch_out))


def export_healthygan(run_dir: str | Path, out: str | Path, *, name: str | None = None, version: str = "1",
                      calibration_split: str = "val", log=print):
    """Bundle from a HealthyGAN run folder (its checkpoint.pt and run.json); returns the Bundle."""
    from inference.bundle import write_bundle
    from inference.translation import TranslationModel
    from training.data import load_images
    from training.healthygan import HealthyGANConfig, build_networks
    from training.torch_utils import load_checkpoint

    run_dir, out = Path(run_dir), Path(out)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    cfg = HealthyGANConfig(**state["config"])
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    generator, _ = build_networks(cfg)
    generator.load_state_dict(state["generator_ema"])
    wrapped = _UnitRangeGenerator(generator).eval()
    res = cfg.resolution

    held_out = load_images(cfg.labels, res, splits=(calibration_split,), cache_dir=run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(wrapped, torch.rand(2, 1, res, res), Path(tmp) / "generator.onnx",
                                ["image"], ["intermediate", "mask"])
        rng = np.random.default_rng(0)
        diff_random = max_abs_difference(wrapped, onnx_path, rng.random((3, 1, res, res), dtype=np.float32))
        diff_real = max_abs_difference(wrapped, onnx_path, held_out.images[:4, None])
        log(f"ONNX Runtime vs torch: max |diff| {diff_random:.2e} on random, {diff_real:.2e} on real inputs")
        if max(diff_random, diff_real) > EXPORT_TOLERANCE:
            raise RuntimeError(f"the exported generator differs from torch by {max(diff_random, diff_real):.2e} "
                               f"(> {EXPORT_TOLERANCE:g})")
        input_spec = {"resolution": res, "channels": 1, "value_range": [0.0, 1.0],
                      "laterality": "flip_right_to_left", "padding": "square_away_from_chest_wall",
                      "windowing": "dicom_voi"}
        parameters = {"architecture": "HealthyGAN", "width": cfg.width, "residual_blocks": cfg.residual_blocks,
                      "score": "mean of |x - B'| inside the breast (model space)",
                      "export_max_abs_diff": {"random": diff_random, "real": diff_real}}
        provenance = {"command": run.get("command") or cfg.command, "seed": cfg.seed, "iterations": cfg.iterations,
                      "code_revision": run.get("code_revision", "unknown"), "date": time.strftime("%Y-%m-%d"),
                      "device": run.get("device", "unknown"), "training_data": Path(cfg.labels).name,
                      "training_sets": {"A_mixed": run.get("set_a"), "B_healthy": run.get("set_b")},
                      "training_data_recipe": _data_recipe(Path(cfg.labels))}
        bundle = write_bundle(out, name=name or out.name, version=version, method="translation",
                              networks={"generator": onnx_path}, input=input_spec, parameters=parameters,
                              calibration=None, provenance=provenance,
                              description="HealthyGAN translation to a healthy image (Rahman Siddiquee et al. 2022)")
    model = TranslationModel(bundle, device="cpu")
    calibration = calibrate(model, held_out, f"{Path(cfg.labels).name} split '{calibration_split}'")
    log(f"calibration on {calibration.n_normal} normal / {calibration.n_abnormal} abnormal held-out images: "
        f"AUC {calibration.auc:.3f}, threshold {calibration.threshold:.5f} (Youden J {calibration.youden_j:.3f})")
    return write_bundle(out, name=bundle.name, version=version, method="translation",
                        networks={"generator": out / "generator.onnx"}, input=input_spec, parameters=parameters,
                        calibration=calibration, provenance=provenance, description=bundle.description)


def _data_recipe(labels: Path) -> str:
    """How the training data can be made again: the phantom command, or the labels file's name."""
    manifest = labels.parent / "phantom.json"
    if not manifest.is_file():
        return f"labels file {labels.name}"
    m = json.loads(manifest.read_text())
    p = m["parameters"]
    cmd = (f"mammolens phantom --out DIR --n {p['n']} --views {','.join(p['views'])} "
           f"--lateralities {','.join(p['lateralities'])} --lesion-fraction {p['lesion_fraction']} "
           f"--classes {','.join(p['classes'])} --shape {p['shape'][0]}x{p['shape'][1]} --spacing {p['pixel_spacing']} "
           f"--bits {p['bits_stored']} --seed {m['seed']}")
    if p.get("splits"):
        cmd += " --splits " + ",".join(f"{v:g}" for v in p["splits"])
    return cmd


def calibrate(model, data, description: str):
    """Youden-J threshold, AUC and the equal sensitivity/specificity point on prepared images."""
    from inference.bundle import Calibration
    from inference.metrics import evaluate

    scores = model.score_prepared(data.images, data.masks)
    report = evaluate((~data.is_normal).astype(int), scores, classes=data.labels)
    return Calibration.from_evaluation(report, score="mean |x - B'| inside the breast", data=description)
