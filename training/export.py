"""Export: a trained run (or a network in training) becomes a model bundle.

One path for every method: the method package names its networks (:class:`ExportNetwork`:
role, module, tensor names, an example input), the bundle's input spec and parameters; this
module writes each as ONNX with a dynamic batch, checks ONNX Runtime against torch on random and
real inputs, writes model.json with the provenance, and calibrates through the method's engine
(``score_prepared`` on held-out images, the same function ``evaluate`` uses). A bundle folder is
written as a set: built beside its destination and moved into place, so a failed export never
leaves half a bundle.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

EXPORT_TOLERANCE = 1e-4  # max |ORT - torch| allowed on random and real inputs
OPSET = 17


@dataclass
class ExportNetwork:
    role: str
    module: torch.nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    example: torch.Tensor | tuple  # in the network's own value range; a tuple for several inputs (image, mask)
    exporter: Callable[[Path], Path] | None = None  # a network that is not a plain forward (a traced projector step)
    checker: Callable[[Path], dict] | None = None  # its own check against torch: {"what": max difference}

    @property
    def examples(self) -> tuple:
        return tuple(self.example) if isinstance(self.example, (tuple, list)) else (self.example,)


def export_onnx(module: torch.nn.Module, example, path: Path, input_names, output_names) -> Path:
    """ONNX with a dynamic batch axis on every input and output (``example``: a tensor or a tuple of them)."""
    dynamic = {name: {0: "batch"} for name in list(input_names) + list(output_names)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(module.eval(), tuple(example) if isinstance(example, (tuple, list)) else (example,), str(path), input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic, opset_version=OPSET,
                          dynamo=False)
    return path


def max_abs_difference(module: torch.nn.Module, onnx_path: Path, inputs: np.ndarray) -> float:
    """Largest |ORT - torch| over all outputs for the given batch (a tuple of arrays for several inputs)."""
    from inference.runtime import create_session

    session = create_session(onnx_path, device="cpu")
    arrays = [np.asarray(a, dtype=np.float32) for a in (inputs if isinstance(inputs, (tuple, list)) else (inputs,))]
    ort_out = session.run(dict(zip(session.inputs, arrays)))
    with torch.no_grad():
        torch_out = module(*(torch.from_numpy(a) for a in arrays))
    torch_out = torch_out if isinstance(torch_out, (tuple, list)) else (torch_out,)
    return max(float(np.abs(o - t.numpy()).max()) for o, t in zip(ort_out.values(), torch_out))


def _to_network_range(images01: np.ndarray, value_range) -> np.ndarray:
    lo, hi = value_range
    return (images01 * (hi - lo) + lo).astype(np.float32)


def write_network_bundle(method, ema: torch.nn.Module, folder: Path, *, name: str, provenance: dict,
                         version: str = "1", calibration=None, real_inputs: np.ndarray | None = None,
                         check: bool = True, log=lambda *a: None, calibrate=None):
    """The method's networks as a bundle in ``folder`` (ONNX checked against torch when ``check``);
    ``calibrate(bundle)``, when given, computes the calibration model.json is written with."""
    from inference.bundle import write_bundle

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ema = ema.eval().cpu()
    spec = method.input_spec()
    networks, parameters = {}, dict(method.bundle_parameters())
    diffs = {}
    for net in method.export_networks(ema):
        if net.exporter is not None:
            path = net.exporter(folder / f"{net.role}.onnx")
        else:
            path = export_onnx(net.module, tuple(e.cpu() for e in net.examples), folder / f"{net.role}.onnx",
                               net.inputs, net.outputs)
        networks[net.role] = {"path": path, "inputs": list(net.inputs), "outputs": list(net.outputs)}
        if check and net.checker is not None:
            diffs[net.role] = net.checker(path)
            log(f"ONNX Runtime vs torch ({net.role}): " + ", ".join(f"{k} {v:.2e}" for k, v in diffs[net.role].items()))
        elif check:
            rng = np.random.default_rng(0)
            shape = (3,) + tuple(net.examples[0].shape[1:])
            random = _to_network_range(rng.random(shape, dtype=np.float32), spec["value_range"])
            # further inputs (an inpainting mask) keep their example's values, repeated to the batch
            extra = tuple(np.repeat(e[:1].cpu().numpy(), 3, axis=0) for e in net.examples[1:])
            diffs[net.role] = {"random": max_abs_difference(net.module, path, (random,) + extra if extra else random)}
            if not extra and real_inputs is not None and tuple(real_inputs.shape[1:]) == tuple(net.example.shape[2:]):
                real = _to_network_range(real_inputs[:4, None], spec["value_range"])
                diffs[net.role]["real"] = max_abs_difference(net.module, path, real)
            worst = max(diffs[net.role].values())
            log(f"ONNX Runtime vs torch ({net.role}): max |diff| "
                + ", ".join(f"{v:.2e} on {k}" for k, v in diffs[net.role].items()))
            if worst > EXPORT_TOLERANCE:
                raise RuntimeError(f"the exported {net.role} differs from torch by {worst:.2e} (> {EXPORT_TOLERANCE:g})")
    if diffs:
        parameters["export_max_abs_diff"] = diffs[next(iter(diffs))] if len(diffs) == 1 else diffs
    return write_bundle(folder, name=name, version=version, method=method.method, networks=networks, input=spec,
                        parameters=parameters, calibration=calibration, provenance=provenance,
                        description=method.description, calibrate=calibrate)


def method_for_run(run_dir: Path):
    """``(method object, checkpoint state)`` of a run folder: the method is read from the checkpoint."""
    from inference.methods import get
    from training.loop import CARRY, CHECKPOINT
    from training.torch_utils import load_checkpoint

    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT if (run_dir / CHECKPOINT).is_file() else run_dir / CARRY
    if not path.is_file():
        from inference.errors import MammolensError

        raise MammolensError(f"{run_dir.name or run_dir} is not a training run: it holds no {CHECKPOINT} or {CARRY} "
                             "(`mammolens train METHOD --out RUN` writes them).")
    state = load_checkpoint(path)
    package = get(state["method"]).training_package()
    method = package.Method(package.Config(**state["config"]))
    run_json = run_dir / "run.json"
    method.restore_run_info(state.get("run_info") or (json.loads(run_json.read_text()) if run_json.is_file() else {}))
    return method, state


def calibrate(engine, data, description: str, **parameters):
    """Youden-J threshold, AUC and the equal sensitivity/specificity point on prepared images
    (scored with the method's run ``parameters`` when given, e.g. an inpainting stride)."""
    from inference.bundle import Calibration
    from inference.metrics import evaluate

    scores = engine.score_prepared(data.images, data.masks, **parameters)
    if parameters:
        description += " with " + ", ".join(f"{k} {v}" for k, v in parameters.items())
    report = evaluate((~data.is_normal).astype(int), scores, classes=data.labels)
    return Calibration.from_evaluation(report, score=engine.spec.score, data=description,
                                       parameters=engine.spec.run_arguments(parameters))


def export_run(run_dir: str | Path, out: str | Path, *, name: str | None = None, version: str = "1",
               calibration_split: str = "val", parameters: dict | None = None, log=print,
               calibration_images: int | None = None):
    """Bundle from a run folder (its checkpoint and run.json), calibrated on ``calibration_split``
    (on at most ``calibration_images`` normal and as many abnormal images of it, drawn with seed 0)."""
    from inference.bundle import load_bundle
    from inference.methods import get
    from training.datasets import load_images

    run_dir, out = Path(run_dir), Path(out)
    method, state = method_for_run(run_dir)
    cfg = method.cfg
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    networks = method.build_networks()
    ema = networks[method.ema_network]
    ema.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["ema"].items()})
    for role, net in networks.items():  # the other networks as trained (an inpainting bundle carries its critics)
        if role != method.ema_network and role in state.get("networks", {}):
            net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["networks"][role].items()})
    held_out = load_images(cfg.labels, method.resolution, splits=(calibration_split,), cache_dir=run_dir) \
        if method.calibrated else None
    held_out_note = ""
    if held_out is not None and calibration_images:
        held_out, held_out_note = _stratified(held_out, calibration_images)
    provenance = {"command": run.get("command") or cfg.command, "seed": cfg.seed,
                  "iterations": int(state["iteration"]), "code_revision": run.get("code_revision", "unknown"),
                  "date": time.strftime("%Y-%m-%d"), "device": run.get("device", "unknown"),
                  "training_data": Path(cfg.labels).name, "preset": cfg.preset,
                  "train_seconds": run.get("train_seconds"), "iterations_planned": cfg.iterations,
                  "training_sets": {k: run[k] for k in ("set_a", "set_b") if k in run},
                  "paper_iterations": type(method).paper_iterations(), "config": asdict(cfg),
                  "training_data_recipe": data_recipe(Path(cfg.labels))}
    from inference.files import new_staging, replace_folder

    staging = new_staging(out)  # the bundle appears as a set, calibrated, or not at all
    try:
        def calibrated(staged):
            """The calibration of the staged, validated bundle: model.json is written once, with it."""
            engine = get(staged.method).load(staged, "cpu")
            values = {k: engine.spec.parameter(k).parse(v) for k, v in (parameters or {}).items()}
            calibration = calibrate(engine, held_out, f"{Path(cfg.labels).name} split '{calibration_split}'"
                                    + held_out_note, **values)
            log(f"calibration on {calibration.n_normal} normal / {calibration.n_abnormal} abnormal held-out images: "
                f"AUC {calibration.auc:.3f}, threshold {calibration.threshold:.5f} "
                f"(Youden J {calibration.youden_j:.3f})")
            return calibration

        write_network_bundle(method, ema, staging, name=name or out.name, version=version, provenance=provenance,
                             real_inputs=held_out.images if held_out is not None else None, log=log,
                             calibrate=calibrated if held_out is not None else None)
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_bundle(out)


def _stratified(data, per_class: int):
    """At most ``per_class`` normal and ``per_class`` abnormal images of ``data`` (seed 0), and a note saying so."""
    rng = np.random.default_rng(0)
    normal = np.flatnonzero(data.is_normal)
    abnormal = np.flatnonzero(~data.is_normal)
    keep = np.zeros(len(data), dtype=bool)
    for idx in (normal, abnormal):
        keep[rng.choice(idx, size=min(per_class, len(idx)), replace=False)] = True
    return data.select(keep), f" ({int(keep.sum())} of its {len(data)} images, <= {per_class} a class, seed 0)"


def data_recipe(labels: Path) -> str:
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
    if p.get("lesion_views") and p["lesion_views"] != "one":
        cmd += f" --lesion-views {p['lesion_views']}"
    if p.get("splits"):
        cmd += " --splits " + ",".join(f"{v:g}" for v in p["splits"])
    # the conspicuity and the foreign objects change the images: a recipe without them makes other data
    for key, flag in (("lesion_contrast", "--lesion-contrast"), ("lesion_size", "--lesion-size")):
        if p.get(key) not in (None, 1, 1.0):
            cmd += f" {flag} {float(p[key]):g}"
    if p.get("foreign_objects"):
        cmd += f" --foreign-objects {float(p['foreign_objects']):g}"
    return cmd
