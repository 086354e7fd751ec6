"""The projection card (paper 000): the sections every map method shares, its model-free baseline
and paper 000's Table 1 layout, named by the registry entry (``card="training.projection.card:SECTIONS"``).

* :class:`Table1`: accuracy, sensitivity, specificity, PPV, NPV and AUC for 1, 9 and 16 seeds,
  thresholds from the val split, beside the paper's rows; the torch eager path's rows too when
  the training run is given (``torch_table1``);
* :func:`pca_baseline`: reconstruction from a PCA of the train split's normals
  (:mod:`training.projection.baseline`), compared with the method by the shared
  :class:`~training.evaluation.sections.Baseline` section;
* (the labels subset the shipped card is measured on: ``mammolens dataset subset``, projection takes
  minutes an image on a CPU).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training.evaluation import DETECTION, CardSection
from training.evaluation.sections import Baseline

#: paper 000, Table 1 (50 cancers, 50 normals; percent)
PAPER_TABLE1 = {1: (61.0, 74.0, 48.0, 58.7, 64.9, 66.6), 9: (64.0, 78.0, 52.0, 61.4, 70.2, 70.0),
                16: (63.0, 78.0, 48.0, 60.0, 68.6, 67.8)}
COLUMNS = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "auc")


def _row(seeds: int, block: dict, path: str) -> dict:
    c = block["confusion"]
    values = (c["accuracy"], c["sensitivity"], c["specificity"], c["precision"], c["npv"], block["auc"])
    return {"seeds": seeds, "path": path, **{k: 100.0 * float(v) for k, v in zip(COLUMNS, values)},
            "auc_ci": [100.0 * float(v) for v in block.get("auc_ci", [np.nan, np.nan])],
            "threshold": block["threshold"], "threshold_source": block.get("threshold_source", ""),
            "n_normal": block["n_normal"], "n_abnormal": block["n_abnormal"]}


def table1_rows(block_by_seeds: dict[int, dict], path: str = "ONNX Runtime") -> list[dict]:
    """One Table 1 row per seed count from its paper-score image-level block."""
    return [_row(seeds, block, path) for seeds, block in sorted(block_by_seeds.items())]


def table1_markdown(rows: list[dict], steps: int | None = None) -> list[str]:
    """Table 1's layout, each measured row beside the paper's row for the same seed count."""
    lines = ["", "## Paper 000, Table 1 layout (threshold: Youden J on the val split)", "",
             f"Projection with {steps if steps is not None else 'the default'} steps; the paper's rows are its 50 "
             "cancers and 50 normals of real mammograms, this card's the split above (phantom images).", "",
             "| seeds | path | accuracy | sensitivity | specificity | PPV | NPV | AUC (95 % CI) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, r in enumerate(rows):
        lo, hi = r["auc_ci"]
        lines.append(f"| {r['seeds']} | {r['path']} | " + " | ".join(f"{r[k]:.1f}" for k in COLUMNS[:5])
                     + f" | {r['auc']:.1f} ({lo:.1f}-{hi:.1f}) |")
        paper = PAPER_TABLE1.get(r["seeds"])
        last_of_seeds = i + 1 == len(rows) or rows[i + 1]["seeds"] != r["seeds"]
        if paper and last_of_seeds:
            lines.append(f"| {r['seeds']} | paper 000 | " + " | ".join(f"{v:.1f}" for v in paper) + " |")
    return lines


class Table1(CardSection):
    """Paper 000's Table 1: 1, 9 and 16 seeds through ONNX Runtime (one 16-seed projection gives all
    three: a seed's projection does not depend on the batch) and, with the card option ``torch_run``
    (the training run folder), the same rows from the torch eager projector on the same weights."""

    name = "table1"

    def measure(self, context):
        from training.evaluation.sections import image_level

        steps = context.parameters.get("steps")  # None: the bundle's own projector steps
        blocks = {seeds: image_level(context, {**context.parameters, "seeds": seeds})["paper"] for seeds in (1, 9, 16)}
        rows = table1_rows(blocks)
        if context.option("torch_run"):
            rows += torch_table1(context.option("torch_run"), context.labels, split=context.split, steps=steps,
                                 progress=context.progress)
        return {"steps": steps, "rows": sorted(rows, key=lambda r: (r["seeds"], not r["path"].startswith("ONNX")))}

    def markdown(self, block, report):
        return table1_markdown(block["rows"], block.get("steps"))

    def key_part(self, block, report):
        nine = next((r for r in block["rows"] if r["seeds"] == 9 and r["path"].startswith("ONNX")), None)
        if nine is None:
            return None
        steps = block.get("steps") or "the bundle's"
        return (f"9 seeds at {steps} steps: accuracy {nine['accuracy']:.1f} / sensitivity "
                f"{nine['sensitivity']:.1f} / specificity {nine['specificity']:.1f} (paper 64.0 / 78.0 / 52.0)")


def pca_baseline(context) -> dict:
    """Reconstruction from a linear model of normals: the first principal components of the train
    split's normal images (:mod:`training.projection.baseline`), |x - reconstruction| as the map."""
    from training.datasets import load_images
    from training.projection.baseline import COMPONENTS, NormalPCA

    train = load_images(context.labels, context.engine.resolution, splits=("train",))
    normals = train.images[train.is_normal]
    pca = NormalPCA(normals, COMPONENTS)
    return {"name": "PCA reconstruction", "components": COMPONENTS,
            "description": f"|image - its reconstruction from the first {COMPONENTS} principal components of the "
                           f"{len(normals)} normal train images| at {context.engine.resolution} px",
            "maps": lambda images, masks: np.abs(images - pca.reconstruct(images)).astype(np.float32)}


SECTIONS = DETECTION + (Baseline(pca_baseline), Table1())


def torch_table1(run_dir: str | Path, labels: str | Path, *, split: str = "test", steps: int = 8,
                 seeds: int = 16, per_batch: int = 2, progress=None) -> list[dict]:
    """Table 1's rows for the torch eager path: the run's checkpoint projected with
    :func:`training.projection.reference.project_torch` (``seeds`` seeds, whose first 1 and 9 give
    the other rows), scored like the engine, thresholds Youden's J on the val split."""
    from inference.methods.projection import difference_score
    from inference.metrics import evaluate, youden_threshold
    from training.datasets import load_images
    from training.projection.reference import project_torch, step_from_bundle_run

    step, w_avg, w_std = step_from_bundle_run(run_dir)
    resolution = step.synthesis.resolution

    def scores(data) -> dict[int, np.ndarray]:
        out: dict[int, list[float]] = {1: [], 9: [], 16: []}
        for start in range(0, len(data), per_batch):
            images = data.images[start : start + per_batch]
            renders, _ = project_torch(step, w_avg, w_std, images, seeds, steps)
            for x, r, m in zip(images, renders, data.masks[start : start + per_batch]):
                for k in out:
                    out[k].append(difference_score(np.abs(x - r[:k].mean(axis=0)), m))
            if progress:
                progress(min(start + per_batch, len(data)), len(data), "torch projection")
        return {k: np.asarray(v) for k, v in out.items() if k <= seeds}

    data = load_images(labels, resolution, splits=(split,))
    val = load_images(labels, resolution, splits=("val",))
    test_scores, val_scores = scores(data), scores(val)
    rows = []
    for k, s in test_scores.items():
        threshold, _ = youden_threshold((~val.is_normal).astype(int), val_scores[k])
        block = evaluate((~data.is_normal).astype(int), s, threshold=threshold, classes=data.labels)
        block["threshold_source"] = "Youden J on the val split"
        rows.append(_row(k, block, f"torch eager, {steps} steps"))
    return rows
