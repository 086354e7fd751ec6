"""`mammolens train-all`: every registered method's preset, each within its own time budget.

The command a GPU lease runs (one prepared command, minutes a method on one H100/H200): it
simulates the phantom data once (skipped when the folder already has it), then for each method
with a training package trains its preset for at most its budget, resuming from the run folder
(``carry.pt``, float16 weights without optimizer state, is written too: a few MB that can be
carried to the next short lease when the full checkpoint is too big to move), exports the bundle
calibrated on the val split and writes its evaluation card on the test split. It runs on a CPU
as well (the test suite runs it with a budget of seconds on tiny data).
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path


def _typed(config_class, overrides: dict[str, str]) -> dict:
    kinds = {f.name: type(f.default) for f in fields(config_class)}
    out = {}
    for key, text in overrides.items():
        key = key.replace("-", "_")
        if key not in kinds:
            continue  # a setting another method has
        kind = kinds[key]
        out[key] = (text.lower() in ("1", "true", "yes")) if kind is bool else kind(text)
    return out


def train_all(out: str | Path, *, preset: str = "gpu", minutes: float = 4.0, budgets: dict[str, float] | None = None,
              patients: int = 400, shape=(512, 416), spacing: float = 0.4, overrides: dict[str, str] | None = None,
              device: str = "auto", methods=None, ceiling: bool = True, object_patients: int | None = None,
              log=print) -> list:
    from training.evaluation import evaluate_bundle
    from inference.methods import trainable
    from training.export import export_run
    from training.loop import command_line, config_from_preset, train
    from training.phantom import generate_dataset

    out, budgets = Path(out), dict(budgets or {})
    data = out / "phantom"
    labels = data / "labels.csv"
    if not labels.is_file():
        log(f"simulating {patients} phantom patients into {data}")
        generate_dataset(data, n=patients, lesion_fraction=0.75, lesion_views="breast", shape=tuple(shape),
                         pixel_spacing=spacing, splits=(0.6, 0.2, 0.2), seed=2)
    bundles = []
    for spec in trainable():
        if methods is not None and spec.method not in methods:
            continue
        package = spec.training_package()
        name = package.Method.name
        budget = budgets.get(spec.method, budgets.get(name, minutes))
        cfg = config_from_preset(package.Config, preset, package.PRESETS, labels=str(labels),
                                 out=str(out / "runs" / f"{name}-{preset}"), time_budget_s=60.0 * budget,
                                 carry_checkpoint=True, device=device, command=command_line(),
                                 **_typed(package.Config, overrides or {}))
        log(f"{spec.title}: preset {preset}, budget {budget:g} min")
        run = train(package.Method(cfg), log=log)
        bundle = export_run(run, out / "bundles" / f"{name}-{preset}", name=f"{name}-phantom-{preset}", log=log)
        options = {"ceiling": ceiling, "object_patients": object_patients}
        report = evaluate_bundle(labels, method=spec.method, model=str(bundle.path), split="test", device="cpu",
                                 options=options)
        log(f"{spec.title}: {report['key_line']}")
        bundles.append(bundle)
    return bundles
