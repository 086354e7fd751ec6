"""The projection card's own sections: paper 000's Table 1 layout and the model-free baseline.

Each function takes the card report (the dict ``mammolens evaluate`` builds: ``image_level``,
``variants``, ``parameters``) or the data it needs, and returns plain values or markdown lines,
so the card code calls them without knowing the method:

* :func:`table1_rows` / :func:`table1_markdown`: accuracy, sensitivity, specificity, PPV, NPV and
  AUC for 1, 9 and 16 seeds (the run's own seeds and the engine's ``card_variants``), every
  threshold Youden's J on the val split, beside the paper's rows;
* :func:`baseline_section` / :func:`baseline_markdown`: the PCA reconstruction baseline
  (:mod:`training.projection.baseline`) scored like the method on the same split, threshold from
  val.

``app/evaluation.py`` calls ``baseline_section`` from ``evaluate_bundle`` (stored as
``report["baseline"]``) and ``card_markdown_sections`` from ``card_markdown`` when the report's
method is ``projection``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

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


def table1_rows(report: dict, path: str = "ONNX Runtime") -> list[dict]:
    """One row per seed count found in the report (the run's seeds and the variants), sorted by seeds."""
    rows = [_row(int((report.get("parameters") or {}).get("seeds", 9)), report["image_level"]["paper"], path)]
    for variant in (report.get("variants") or {}).values():
        seeds = variant["parameters"].get("seeds")
        if seeds is not None:
            rows.append(_row(int(seeds), variant["image_level"]["paper"], path))
    return sorted({r["seeds"]: r for r in rows}.values(), key=lambda r: r["seeds"])


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


def baseline_section(labels: str | Path, resolution: int, split: str = "test", components: int | None = None) -> dict:
    """The PCA-reconstruction baseline on ``split`` of ``labels`` (fitted on the train split's normals)."""
    from inference.metrics import evaluate, youden_threshold
    from training.datasets import load_images
    from training.projection.baseline import COMPONENTS, NormalPCA, baseline_scores

    k = components or COMPONENTS
    train = load_images(labels, resolution, splits=("train",))
    normals = train.images[train.is_normal]
    pca = NormalPCA(normals, k)

    def scores(data):
        return baseline_scores(np.abs(data.images - pca.reconstruct(data.images)), data.masks)

    data = load_images(labels, resolution, splits=(split,))
    threshold, source = None, "Youden J on this split"
    try:
        val = load_images(labels, resolution, splits=("val",)) if split != "val" else None
    except ValueError:
        val = None
    if val is not None and val.is_normal.any() and (~val.is_normal).any():
        threshold, _ = youden_threshold((~val.is_normal).astype(int), scores(val))
        source = "Youden J on the val split"
    block = evaluate((~data.is_normal).astype(int), scores(data), threshold=threshold, classes=data.labels)
    block["threshold_source"] = source
    return {"description": f"Absolute difference between the image and its reconstruction from the first {k} "
                           f"principal components of the "
                           f"{len(normals)} normal train images at {resolution} px, scored like the method "
                           "(sum inside the breast / breast area)", "components": k, "image_level": block}


def baseline_markdown(baseline: dict) -> list[str]:
    b = baseline["image_level"]
    c = b["confusion"]
    lo, hi = b["auc_ci"]
    return ["", "## Model-free baseline", "", baseline["description"] + ".", "",
            "| baseline | AUC (95 % CI) | sensitivity | specificity | threshold (source) |", "| --- | --- | --- | --- | --- |",
            f"| PCA reconstruction | {b['auc']:.2f} ({lo:.2f}-{hi:.2f}) | {c['sensitivity']:.2f} | "
            f"{c['specificity']:.2f} | {b['threshold']:.5g} ({b['threshold_source']}) |"]


def card_markdown_sections(report: dict) -> list[str]:
    """Everything projection adds to the card's markdown: Table 1 rows (and the torch path's when
    measured, ``report["table1_torch"]``), then the baseline."""
    steps = (report.get("parameters") or {}).get("steps")
    rows = table1_rows(report) + list(report.get("table1_torch") or [])
    lines = table1_markdown(sorted(rows, key=lambda r: (r["seeds"], not r["path"].startswith("ONNX"))), steps)
    if report.get("baseline"):
        lines += baseline_markdown(report["baseline"])
    return lines


def evaluation_subset(labels: str | Path, out: str | Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """A labels file at ``out`` with the train split of ``labels`` and, for each split in ``per_class``,
    at most that many normal and as many abnormal images of it (drawn with ``seed``); image paths
    are rewritten to stay valid from ``out``'s folder.

    Projection takes minutes an image on a CPU: the card is measured on a subset the way the paper
    measured on 50 cancers and 50 normals.
    """
    import dataclasses
    import os

    from inference.labels import image_label, read_labels, rows_by_image, write_labels

    labels, out = Path(labels), Path(out)
    rel = Path(os.path.relpath(labels.parent.resolve(), out.parent.resolve()))
    grouped = rows_by_image(read_labels(labels))
    rng = np.random.default_rng(seed)
    keep: list[str] = [p for p, rows in grouped.items() if rows[0].split == "train"]
    for split, n in per_class.items():
        paths = [p for p, rows in grouped.items() if rows[0].split == split]
        for normal in (True, False):
            pool = [p for p in paths if (image_label(grouped[p]) == "normal") == normal]
            keep += [pool[i] for i in sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False))]
    rows = [dataclasses.replace(r, path=str(rel / r.path)) for p in keep for r in grouped[p]]
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_labels(out, rows)


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
