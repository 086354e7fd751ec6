"""The synthesis card (paper 004): quality tables per class and the augmentation experiment.

A generator has no anomaly map, so its card is its own sections, named by its registry entry:

* :class:`Quality`: paper 004 Tables 6-9 per class (PSNR, SSIM, ... of synthetic against real
  held-out patches, beside real against real), the Frechet classifier distance on the project's
  lesion classifier and, with a user's InceptionV3, FID (:mod:`training.synthesis.quality`); its
  CSV is written into the bundle beside the card (``quality.csv``);
* :class:`Augmentation`: the augmentation experiment (:mod:`training.synthesis.augmentation`),
  measured by ``mammolens augmentation`` and kept when the quality card is measured again.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from training.evaluation import CardSection

QUALITY_CSV = "quality.csv"


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def quality_csv(q: dict) -> str:
    """Tables 6-9 as one CSV: class, row (1..10, average, real vs real), the metrics, FCD."""
    from training.synthesis.quality import METRICS

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["class", "image", *METRICS, "frechet_classifier_distance", "ms_ssim_pairs"]
                    + list(q["not_computed"]))
    for cls, block in q["classes"].items():
        for i, row in enumerate(block.get("rows", []), start=1):
            writer.writerow([cls, i, *(f"{row[m]:.4f}" for m in METRICS), "", ""] + ["n/a"] * len(q["not_computed"]))
        if "average" in block:
            writer.writerow([cls, "average", *(f"{block['average'][m]:.4f}" for m in METRICS),
                             f"{block.get('frechet_classifier_distance', float('nan')):.4f}",
                             f"{block['ms_ssim_synthetic']:.4f}"] + ["n/a"] * len(q["not_computed"]))
        if "real_vs_real" in block:
            writer.writerow([cls, "real vs real", *(f"{block['real_vs_real'][m]:.4f}" for m in METRICS),
                             f"{block.get('frechet_classifier_distance_real_train', float('nan')):.4f}",
                             f"{block['ms_ssim_real']:.4f}"] + ["n/a"] * len(q["not_computed"]))
    return out.getvalue()


def quality_tables(q: dict) -> str:
    """The terminal / Markdown layout of Tables 6-9: one table per class (Markdown pipes)."""
    from training.synthesis.quality import METRICS

    lines = []
    head = list(METRICS) + ["FCD*", "MS-SSIM"] + list(q["not_computed"])
    for cls, block in q["classes"].items():
        lines += ["", f"{cls} (synthetic vs the {block['n_real']} real held-out patches of the class, mean over them)",
                  "", "| image | " + " | ".join(head) + " |", "|" + " --- |" * (len(head) + 1)]
        na = ["n/a"] * len(q["not_computed"])
        for i, row in enumerate(block.get("rows", []), start=1):
            lines.append(f"| {i} | " + " | ".join([_num(row[m], 4 if m in ('SSIM', 'DSSIM', 'FSIM') else 2)
                                                   for m in METRICS] + ["", ""] + na) + " |")
        if "average" in block:
            a = block["average"]
            lines.append("| **average** | " + " | ".join(
                [_num(a[m], 4 if m in ("SSIM", "DSSIM", "FSIM") else 2) for m in METRICS]
                + [_num(block.get("frechet_classifier_distance")), _num(block["ms_ssim_synthetic"], 3)] + na) + " |")
            if "fid" in block:
                lines.append(f"| FID (user InceptionV3) | {_num(block['fid'])} |")
        if "real_vs_real" in block:
            a = block["real_vs_real"]
            lines.append("| real vs real | " + " | ".join(
                [_num(a[m], 4 if m in ("SSIM", "DSSIM", "FSIM") else 2) for m in METRICS]
                + [_num(block.get("frechet_classifier_distance_real_train")), _num(block["ms_ssim_real"], 3)]
                + na) + " |")
    lines += ["", "*FCD: Frechet classifier distance on the project's lesion-class classifier's features (not FID); "
              "in the real-vs-real row, real train patches vs the same held-out ones. MS-SSIM: mean over random "
              "pairs (synthetic pairs; real pairs in the real-vs-real row), lower is more diverse."]
    for name, why in q["not_computed"].items():
        lines.append(f"{name}: not computed ({why}).")
    return "\n".join(lines)


def augmentation_markdown(experiments: dict) -> list[str]:
    lines = []
    for name, exp in experiments.items():
        classes = exp["classes"]
        lines += ["", f"### {name}: {exp['labels']} (train {', '.join(exp['train_splits'])}; held out "
                      f"{', '.join(exp['test_splits'])}: " + ", ".join(f"{c} {exp['n_test'][c]}" for c in classes)
                  + ")", "",
                  "Real train patches: " + ", ".join(f"{c} {exp['n_train_real'][c]}" for c in classes)
                  + f"; synthetic added: {exp['synthetic_per_class']} per class. Same classifier, "
                  f"{exp['steps']} steps x batch {exp['batch']}, seeds {', '.join(map(str, exp['seeds']))}; "
                  "mean +/- sd over seeds.", "",
                  "| training set | accuracy | " + " | ".join(f"recall {c}" for c in classes) + " |",
                  "|" + " --- |" * (len(classes) + 2)]
        for arm, block in exp["arms"].items():
            cells = [f"{block['accuracy']['mean']:.3f} +/- {block['accuracy']['sd']:.3f}"]
            cells += [f"{block['recall'][c]['mean']:.2f} +/- {block['recall'][c]['sd']:.2f}" for c in classes]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


class Quality(CardSection):
    """Paper 004's quality tables on the held-out split."""

    name = "synthesis"

    def measure(self, context):
        from training.synthesis.quality import quality_report

        return quality_report(context.engine, context.labels, split=context.split,
                              n_fcd=int(context.option("n_fcd", 256)),
                              classifier_steps=int(context.option("classifier_steps", 400)),
                              inception=context.option("inception"), progress=context.progress, log=context.log)

    def markdown(self, block, report):
        lines = [f"Paper 004 Tables 6-9 layout, split '{report['split']}' of {report['labels']}.", quality_tables(block)]
        clf = block.get("classifier") or {}
        lines += ["", "Feature network: " + clf.get("description", "n/a") + "."]
        if clf.get("held_out"):
            lines.append(f"Its held-out accuracy: {clf['held_out']['accuracy']:.3f}.")
        return lines

    def key_part(self, block, report):
        fcd = [b.get("frechet_classifier_distance") for b in block["classes"].values()]
        null = [b.get("frechet_classifier_distance_real_train") for b in block["classes"].values()]
        fcd = [v for v in fcd if v is not None]
        null = [v for v in null if v is not None]
        text = f"synthetic lesion patches of {', '.join(block['classes'])}"
        if fcd:
            text += (f"; Frechet classifier distance {np.mean(fcd):.2f} (real train vs held-out {np.mean(null):.2f})"
                     if null else f"; Frechet classifier distance {np.mean(fcd):.2f}")
        return text

    def files(self, block, report):
        return {QUALITY_CSV: quality_csv(block)}


class Augmentation(CardSection):
    """The augmentation experiments already in the bundle's card (``mammolens augmentation`` adds them)."""

    name = "augmentation"

    def measure(self, context):
        return context.previous.get("augmentation") or None

    def markdown(self, block, report):
        return ["", "## Augmentation experiment"] + augmentation_markdown(block)

    def key_part(self, block, report):
        parts = []
        for name, exp in block.items():
            real, mixed = exp["arms"]["real"]["accuracy"], exp["arms"]["real + synthetic"]["accuracy"]
            parts.append(f"augmentation ({name}): accuracy {real['mean']:.2f} +/- {real['sd']:.2f} real only vs "
                         f"{mixed['mean']:.2f} +/- {mixed['sd']:.2f} with synthetic")
        return "; ".join(parts) or None


SECTIONS = (Quality(), Augmentation())


def run_augmentation(labels: str | os.PathLike, *, model=None, name: str | None = None, seeds=(0, 1, 2, 3, 4),
                     steps: int = 400, train_splits=("train",), test_splits=("test",), device: str = "auto",
                     card: bool = True, log=print) -> dict:
    """`mammolens augmentation`: the experiment, added to the bundle's card under ``name``."""
    from inference.bundle import CARD_JSON
    from inference.patches import load_generator
    from training.evaluation.card import key_line, read_card, write_card
    from training.evaluation.sections import BUDGET, CardContext
    from training.synthesis.augmentation import augmentation_experiment

    engine = load_generator(model, device)
    result = augmentation_experiment(engine, labels, seeds=seeds, steps=steps, train_splits=train_splits,
                                     test_splits=test_splits, log=log)
    if card:
        report = read_card(engine.bundle.path / CARD_JSON)
        if not report:  # no quality card yet: a card that holds only the experiment
            report = {"bundle": engine.bundle.name, "version": engine.bundle.version, "method": "synthesis",
                      "labels": Path(labels).name, "split": ",".join(test_splits), "provider": engine.provider,
                      "budget": BUDGET.measure(CardContext(engine=engine, labels=Path(labels)))}
        report.setdefault("augmentation", {})[name or Path(labels).parent.name] = result
        report["key_line"] = key_line(report)
        write_card(engine.bundle.path, report)
    return result
