"""Card sections: what a card measures, one block each, and how each block reads.

A :class:`CardSection` measures one block of the report from a :class:`CardContext` (the engine,
the split under test, the val split, the maps, cached once for every section) and renders it: its
Markdown lines and its part of the key line. The card is the report's header, then every section
of the method's list in order, then the training budget. The sections below are those every map
method shares (:data:`DETECTION`); a method's training package adds its own in its ``card``
module, named by its registry entry.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np


def fmt(value, digits: int = 2) -> str:
    """A number for a card table ("n/a" for None / NaN)."""
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def reached(value_map: np.ndarray, breast: np.ndarray) -> np.ndarray:
    """The breast pixels the map has data for (a sliding-window map is NaN where no window reaches)."""
    return breast & np.isfinite(value_map)


def has_both(data) -> bool:
    return data is not None and bool(data.is_normal.any()) and bool((~data.is_normal).any())


@dataclass
class CardContext:
    """What the sections of one card share: the engine, the data, the maps (each computed once).

    ``parameters`` are the method's run parameters for every map and score (the command line's
    method flags, defaults filled in); ``options`` the card's own settings (``ceiling``,
    ``object_patients``, ``completion_images``, ...: what a section reads, with its default);
    ``previous`` the card already in the bundle (a section may keep a block measured by another
    command, such as synthesis's augmentation experiment).
    """

    engine: Any
    labels: Path
    split: str = "test"
    parameters: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    previous: dict = field(default_factory=dict)
    progress: Callable | None = None
    log: Callable = print
    cache: dict = field(default_factory=dict, repr=False)  # what sections share (data made once)
    _maps: dict = field(default_factory=dict, repr=False)

    def option(self, name: str, default: Any = None) -> Any:
        value = self.options.get(name)
        return default if value is None else value

    @cached_property
    def data(self):
        from training.datasets import load_images

        return load_images(self.labels, self.engine.resolution, splits=(self.split,), progress=self.progress)

    @cached_property
    def val(self):
        """The val split, or None (no val rows, or the split under test is val)."""
        from training.datasets import load_images

        if self.split == "val":
            return None
        try:
            return load_images(self.labels, self.engine.resolution, splits=("val",), progress=self.progress)
        except ValueError:
            return None

    def maps(self, data, parameters: dict | None = None) -> np.ndarray:
        """The engine's main maps of ``data`` in model space, at ``parameters`` (default: the run's)."""
        parameters = self.parameters if parameters is None else parameters
        key = (id(data), json.dumps(parameters, sort_keys=True, default=str))
        if key not in self._maps:
            self._maps[key] = self.engine.map_prepared(data.images, data.masks, **parameters)
        return self._maps[key]

    def reference_boxes(self) -> list:
        """Lesion boxes (model space) of a split other than the one under test: val, else train (a
        baseline's lesion scale must not come from the images it is tested on)."""
        if self.val is not None and any(self.val.boxes):
            return self.val.boxes
        from training.datasets import load_images

        return load_images(self.labels, self.engine.resolution, splits=("train",)).boxes

    def calibrated_threshold(self, parameters: dict) -> float | None:
        """The bundle's calibrated threshold when it was measured at these run parameters."""
        calibration = self.engine.bundle.calibration
        if calibration is None or not calibration.applies_to(self.engine.spec, parameters):
            return None
        return calibration.threshold


class CardSection:
    """One block of the card. ``name`` is its key in the report (``card.json``)."""

    name = ""

    def measure(self, context: CardContext) -> dict | None:
        """The block (JSON-safe), or None to leave the section out."""
        raise NotImplementedError

    def markdown(self, block: dict, report: dict) -> list[str]:
        """Its lines of ``card.md``."""
        return []

    def key_part(self, block: dict, report: dict) -> str | None:
        """Its part of the one-line summary the viewer shows (None: nothing)."""
        return None

    def files(self, block: dict, report: dict) -> dict[str, str | bytes]:
        """Files written into the bundle beside the card (name -> text or bytes), e.g. a table as CSV."""
        return {}


# ---------------------------------------------------------------------------------------------
# image level


def threshold_for(context: CardContext, parameters: dict, score) -> tuple[float | None, str]:
    """The threshold of a score and where it came from; never the split under test.

    The bundle's calibration when it was measured at the same run parameters (the paper score
    only), else Youden's J on the val split; with neither, no threshold (AUC only).
    """
    from inference.metrics import youden_threshold

    if score == "paper":
        threshold = context.calibrated_threshold(parameters)
        if threshold is not None:
            return threshold, "bundle calibration"
    val = context.val
    if has_both(val):
        truth = (~val.is_normal).astype(int)
        if score == "paper":
            values = context.engine.score_prepared(val.images, val.masks, **parameters)
        else:
            values = focal_scores(context.maps(val, parameters), val.masks)
        threshold, _ = youden_threshold(truth, values)
        return threshold, "Youden J on the val split"
    return None, NO_THRESHOLD


NO_THRESHOLD = ("none: no calibration at these run parameters and no val split with normal and lesion images, "
                "so no sensitivity or specificity (a threshold from the split under test would flatter them)")


def focal_scores(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    from inference.metrics import focal_score

    return np.array([focal_score(m, reached(m, b)) for m, b in zip(maps, masks)])


def image_level(context: CardContext, parameters: dict | None = None) -> dict:
    """Paper and focal scores on the split under test, thresholds from calibration or val only."""
    from inference.metrics import evaluate

    parameters = context.parameters if parameters is None else parameters
    data = context.data
    truth = (~data.is_normal).astype(int)
    out = {}
    for name, scores in (("paper", lambda: context.engine.score_prepared(data.images, data.masks, **parameters)),
                         ("focal", lambda: focal_scores(context.maps(data, parameters), data.masks))):
        threshold, source = threshold_for(context, parameters, name)
        block = evaluate(truth, scores(), threshold=threshold, classes=data.labels)
        if threshold is None:  # AUC only: nothing tuned on the split under test is reported
            block = {k: v for k, v in block.items() if k in ("auc", "auc_ci", "n_normal", "n_abnormal")}
            block["per_class"] = {}
            block["threshold"] = None
        block["threshold_source"] = source
        out[name] = block
    return out


class ImageLevel(CardSection):
    name = "image_level"

    def measure(self, context):
        return image_level(context)

    def markdown(self, block, report):
        lines = [f"Split '{report['split']}' of {report['labels']}: {report['n_normal']} normal, "
                 f"{report['n_abnormal']} abnormal images.", "", "## Image level", "",
                 "| score | AUC (95 % CI) | sensitivity | specificity | threshold (source) |",
                 "| --- | --- | --- | --- | --- |"]
        for name, b in (("paper", block["paper"]), ("focal (top 1 %)", block["focal"])):
            lo, hi = b.get("auc_ci", [None, None])
            c = b.get("confusion") or {}
            threshold = "none" if b.get("threshold") is None else f"{b['threshold']:.5g}"
            lines.append(f"| {name} | {fmt(b['auc'])} ({fmt(lo)}-{fmt(hi)}) | {fmt(c.get('sensitivity'))} | "
                         f"{fmt(c.get('specificity'))} | {threshold} ({b['threshold_source']}) |")
        lines += ["", "| class | n | paper AUC (95 % CI) | sensitivity | focal AUC |", "| --- | --- | --- | --- | --- |"]
        for cls, b in block["paper"].get("per_class", {}).items():
            focal = block["focal"].get("per_class", {}).get(cls, {})
            lines.append(f"| {cls} | {b['n']} | {fmt(b['auc'])} ({fmt(b.get('auc_ci_low'))}-"
                         f"{fmt(b.get('auc_ci_high'))}) | {fmt(b.get('sensitivity'))} | {fmt(focal.get('auc'))} |")
        return lines

    def key_part(self, block, report):
        paper = block["paper"]
        lo, hi = paper.get("auc_ci", [None, None])
        return f"{report['split']} AUC {fmt(paper['auc'])} ({fmt(lo)}-{fmt(hi)})"


# ---------------------------------------------------------------------------------------------
# localisation


def lesion_ratios(data, maps) -> list[float]:
    """Paper 002's Table 2 ratio of every lesion image (mean map inside its boxes / outside, breast
    pixels with data), in the data's order."""
    from inference.metrics import box_ratio

    return [box_ratio(maps[i], reached(maps[i], data.masks[i]), boxes) for i, boxes in enumerate(data.boxes)
            if data.labels[i] != "normal" and boxes]


def localisation(data, maps) -> dict:
    """Paper 002 Table 2's ratio beside the same boxes on a normal image of the same view, hit rate vs chance."""
    from inference.metrics import box_ratio, hit_rate, paired_test

    normals: dict[str, list[int]] = {}
    for i, (label, view) in enumerate(zip(data.labels, data.views)):
        if label == "normal":
            normals.setdefault(view, []).append(i)
    any_normals = [i for ids in normals.values() for i in ids]
    ratios, nulls, hits, chances, classes = [], [], [], [], []
    used: dict[str, int] = {}
    for i, boxes in enumerate(data.boxes):
        if data.labels[i] == "normal" or not boxes:
            continue
        key = data.views[i]
        pool = normals.get(key) or any_normals
        if not pool:
            break
        j = pool[used.get(key, 0) % len(pool)]  # each lesion gets the next normal of its view
        used[key] = used.get(key, 0) + 1
        ratios.append(box_ratio(maps[i], reached(maps[i], data.masks[i]), boxes))
        nulls.append(box_ratio(maps[j], reached(maps[j], data.masks[j]), boxes))
        hit, chance = hit_rate(maps[i], reached(maps[i], data.masks[i]), boxes)
        hits.append(hit)
        chances.append(chance)
        classes.append(data.labels[i])

    def block(sel) -> dict:
        a, b = np.asarray(ratios)[sel], np.asarray(nulls)[sel]
        test = paired_test(a, b)
        finite_a, finite_b = a[np.isfinite(a)], b[np.isfinite(b)]
        spread = {"ratio_mean": float(finite_a.mean()) if finite_a.size else None,
                  "ratio_std": float(finite_a.std(ddof=1)) if finite_a.size > 1 else None,
                  "null_ratio_mean": float(finite_b.mean()) if finite_b.size else None,
                  "null_ratio_std": float(finite_b.std(ddof=1)) if finite_b.size > 1 else None}
        return {"n": int(len(a)), **spread, "ratio_median": test["median_a"], "null_ratio_median": test["median_b"],
                "p_value": test["p_value"], "hit_rate": float(np.nanmean(np.asarray(hits)[sel])) if len(a) else None,
                "chance": float(np.nanmean(np.asarray(chances)[sel])) if len(a) else None}

    every = np.arange(len(ratios))
    result = {"overall": block(every) if len(every) else {"n": 0}}
    for cls in sorted(set(classes)):
        result[cls] = block(np.array([c == cls for c in classes]))
    return result


class Localisation(CardSection):
    name = "localisation"

    def measure(self, context):
        return localisation(context.data, context.maps(context.data))

    def markdown(self, block, report):
        lines = ["", "## Localisation (paper 002 Table 2 ratio; null = the same boxes on a normal image of the "
                 "same view, a weak null: maps are heavy-tailed)", "",
                 "| lesions | n | ratio median | null median | paired p | top-1 % hit rate | chance |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for cls, b in block.items():
            if b.get("n"):
                lines.append(f"| {cls} | {b['n']} | {fmt(b['ratio_median'])} | {fmt(b['null_ratio_median'])} | "
                             f"{fmt(b['p_value'], 3)} | {fmt(b['hit_rate'], 3)} | {fmt(b['chance'], 3)} |")
        return lines


# ---------------------------------------------------------------------------------------------
# the foreign-object plumbing check


class ForeignObjects(CardSection):
    name = "foreign_objects"

    def measure(self, context):
        from training.evaluation.foreign_objects import FOREIGN_OBJECT_PATIENTS, object_check, object_images

        patients = int(context.option("object_patients", FOREIGN_OBJECT_PATIENTS))
        if not patients:
            return None
        objects, twins = object_images(context, patients)
        return object_check(context.engine, objects, twins, patients, context.parameters)

    def markdown(self, block, report):
        from training.evaluation.foreign_objects import object_markdown

        return object_markdown(block)

    def key_part(self, block, report):
        from training.evaluation.foreign_objects import verdict

        return verdict(block)


# ---------------------------------------------------------------------------------------------
# the supervised ceiling


class SupervisedCeiling(CardSection):
    name = "supervised_ceiling"

    def measure(self, context):
        if not context.option("ceiling", True):
            return None
        from training.ceiling import supervised_ceiling

        return supervised_ceiling(context.engine.bundle, context.labels, split=context.split,
                                  epochs=int(context.option("ceiling_epochs", 30)))

    def markdown(self, block, report):
        return ["", "## Supervised ceiling", "", block["description"], "",
                f"Train AUC {fmt(block['train_auc'])}, val AUC {fmt(block['val_auc'])} (epoch chosen on val), "
                f"test AUC {fmt(block['auc'])} ({fmt(block['auc_ci'][0])}-{fmt(block['auc_ci'][1])})."]

    def key_part(self, block, report):
        return f"supervised ceiling {fmt(block['auc'])}"


# ---------------------------------------------------------------------------------------------
# the training budget (every card ends with it)


class Budget(CardSection):
    name = "budget"

    def measure(self, context):
        prov = context.engine.bundle.provenance
        return {"device": prov.get("device"), "train_seconds": prov.get("train_seconds"),
                "iterations": prov.get("iterations"), "iterations_planned": prov.get("iterations_planned"),
                "preset": prov.get("preset"), "paper_iterations": prov.get("paper_iterations"),
                "command": prov.get("command")}

    def markdown(self, block, report):
        return ["", "## Training budget", "",
                f"{block.get('iterations')} iterations (planned {block.get('iterations_planned')}; paper "
                f"{block.get('paper_iterations')}), {block.get('train_seconds')} s on {block.get('device')}, preset "
                f"{block.get('preset')}.", "", f"Command: `{block.get('command')}`", ""]

    def key_part(self, block, report):
        if block.get("iterations") is None:
            return None
        paper = block.get("paper_iterations")
        return f"{block['iterations']:,} iterations" + (f" of the paper's {paper:,}" if paper else "")


# ---------------------------------------------------------------------------------------------
# nulls that mean something: random boxes in the same breast, a model-free baseline


def percentile_rows(block: dict) -> list[str]:
    rows = [f"| overall | {block['n']} | {fmt(block['median'])} | {fmt(block['share_above_0.5'])} | "
            f"{fmt(block['p_value'], 3)} |"]
    for cls, b in (block.get("per_class") or {}).items():
        rows.append(f"| {cls} | {b['n']} | {fmt(b['median'])} | {fmt(b['share_above_0.5'])} | {fmt(b['p_value'], 3)} |")
    return rows


class RandomBoxNull(CardSection):
    """Each lesion box ranked among every same-size box on tissue of the same breast (0.5: chance)."""

    name = "random_box_null"

    def measure(self, context):
        from inference.metrics import random_box_null

        data = context.data
        return random_box_null(context.maps(data), data.masks, data.labels, data.boxes)

    def markdown(self, block, report):
        return ["", "## Random boxes in the same breast", "",
                "Each lesion box's percentile among every same-size placement on tissue of the same breast (its "
                "other boxes excluded); 0.5 is chance, 1 the hottest spot of the breast; Wilcoxon against 0.5.", "",
                "| lesions | n | median percentile | share above 0.5 | p |", "| --- | --- | --- | --- | --- |",
                *percentile_rows(block)]

    def key_part(self, block, report):
        return f"lesion boxes at the {fmt(block['median'])} percentile of their breast (p {fmt(block['p_value'], 3)})"


class Baseline(CardSection):
    """The method's model-free baseline map on the same images and boxes: does the GAN beat image processing?

    ``make(context)`` returns ``{"name", "description", "maps"}`` where ``maps(images, masks)``
    computes the baseline in model space from what the context offers (the engine, its run
    parameters, :meth:`CardContext.reference_boxes` for a lesion scale, the labels' train split).
    Both maps are scored the same way (focal score: mean of the top 1 % of the breast), ranked the
    same way (Table 2 ratio, random-box percentile) and compared paired (DeLong for the AUCs,
    Wilcoxon for the ratios).
    """

    name = "baseline"

    def __init__(self, make):
        self.make = make

    def measure(self, context):
        from inference.metrics import auc_confidence_interval, compare_with_baseline, random_box_null

        data = context.data
        base = self.make(context)
        base_maps = base["maps"](data.images, data.masks)
        maps = context.maps(data)
        truth = (~data.is_normal).astype(int)
        method_focal, base_focal = focal_scores(maps, data.masks), focal_scores(base_maps, data.masks)
        comparison = compare_with_baseline(truth, method_focal, base_focal, lesion_ratios(data, maps),
                                           lesion_ratios(data, base_maps))
        comparison["auc"]["ci_a"] = list(auc_confidence_interval(truth, method_focal))
        comparison["auc"]["ci_b"] = list(auc_confidence_interval(truth, base_focal))
        return {"name": base["name"], "description": base["description"], "comparison": comparison,
                "localisation": localisation(data, base_maps),
                "random_box_null": random_box_null(base_maps, data.masks, data.labels, data.boxes)}

    def markdown(self, block, report):
        auc, ratios = block["comparison"]["auc"], block["comparison"].get("ratios", {})
        method_null = report.get("random_box_null") or {}
        method_loc = (report.get("localisation") or {}).get("overall", {})
        base_loc = block["localisation"].get("overall", {})
        return ["", f"## Model-free baseline: {block['name']}", "", block["description"] + ".", "",
                "| | focal AUC (95 % CI) | Table 2 ratio, median | box percentile in its breast, median |",
                "| --- | --- | --- | --- |",
                f"| the method | {fmt(auc['auc_a'])} ({fmt(auc['ci_a'][0])}-{fmt(auc['ci_a'][1])}) | "
                f"{fmt(method_loc.get('ratio_median'))} | {fmt(method_null.get('median'))} |",
                f"| {block['name']} | {fmt(auc['auc_b'])} ({fmt(auc['ci_b'][0])}-{fmt(auc['ci_b'][1])}) | "
                f"{fmt(base_loc.get('ratio_median'))} | {fmt(block['random_box_null']['median'])} |",
                "", f"Paired: AUC difference {fmt(auc['difference'], 3)} (DeLong p {fmt(auc['p_value'], 3)}); "
                    f"ratios, Wilcoxon p {fmt(ratios.get('p_value'), 3)}."]

    def key_part(self, block, report):
        auc = block["comparison"]["auc"]
        return (f"model-free baseline ({block['name']}) focal AUC {fmt(auc['auc_b'])} vs the method's "
                f"{fmt(auc['auc_a'])} (paired p {fmt(auc['p_value'], 2)})")


# ---------------------------------------------------------------------------------------------
# where the card stands: the lesions' conspicuity, and the contrast-detail curves around it


class Conspicuity(CardSection):
    """The lesion contrast and size scales of the split under test (the phantom's labels record them).

    A card measured on conspicuous phantom lesions must say so wherever its numbers are read: the
    key line names the setting, the realistic one (scale 1) is in the contrast-detail section.
    Real films (no such columns) leave the section out.
    """

    name = "conspicuity"

    def measure(self, context):
        from inference.labels import read_labels

        rows = [r for r in read_labels(context.labels) if r.split == context.split and r.is_lesion]
        contrasts = sorted({r.contrast for r in rows if r.contrast is not None})
        sizes = sorted({r.size_scale for r in rows if r.size_scale is not None})
        if not rows or not (contrasts or sizes):
            return None
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.label] = counts.get(r.label, 0) + 1
        return {"contrast": contrasts or [1.0], "size": sizes or [1.0], "classes": counts}

    @staticmethod
    def _scales(values) -> str:
        return "/".join(f"{v:g}" for v in values)

    def markdown(self, block, report):
        ceiling = (report.get("supervised_ceiling") or {}).get("auc")
        text = (f"The lesions of the split under test are the phantom's at {self._scales(block['contrast'])}x its "
                f"realistic contrast and {self._scales(block['size'])}x its realistic size (classes: "
                + ", ".join(f"{c} {n}" for c, n in sorted(block["classes"].items())) + ").")
        if ceiling is not None:
            text += (f" Here the supervised ceiling reaches {fmt(ceiling)}: the card's rule is to train and measure "
                     "where it reaches 0.75, so that a method near chance is a method that did not learn, not a "
                     "setting that hides the lesions.")
        text += " The realistic lesions (scale 1) are in the contrast-detail curves, where the bundle has them."
        return ["", "## Lesion conspicuity", "", text]

    def key_part(self, block, report):
        if block["contrast"] == [1.0] and block["size"] == [1.0]:
            return "the phantom's realistic lesions"
        parts = []
        if block["contrast"] != [1.0]:
            parts.append(f"{self._scales(block['contrast'])}x")
        text = f"phantom lesions at {' '.join(parts)} the realistic contrast" if parts else "phantom lesions"
        if block["size"] != [1.0]:
            text += f", {self._scales(block['size'])}x the size"
        return text


class ContrastDetail(CardSection):
    """The contrast-detail curves ``mammolens evaluate --sweep`` added to the card (one per axis).

    A sweep takes an hour or more on a CPU, so it is its own command; a card measured again
    keeps the curves of the same bundle (an export writes a new bundle folder without them).
    """

    name = "contrast_detail"

    def measure(self, context):
        return context.previous.get(self.name) or None

    def markdown(self, block, report):
        from training.contrast_detail import markdown

        lines = ["", "## Contrast-detail curves", "",
                 "The same phantom seeds written at several lesion conspicuities (1 = the realistic lesions); at "
                 "each, the method, its model-free baseline, the supervised ceiling and a channelized Hotelling "
                 "observer on that setting's test split."]
        for axis, sweep in block.items():
            lines += ["", markdown(sweep).rstrip("\n"), "", f"![contrast-detail curve, {axis}]({self.png(axis)})"]
        return lines

    @staticmethod
    def png(axis: str) -> str:
        return f"contrast_detail_{axis}.png"

    def key_part(self, block, report):
        parts = []
        for axis, sweep in block.items():
            reached = []
            for reader, title in (("method", "method"), ("ceiling", "ceiling"), ("cho", "CHO")):
                t = sweep["threshold"].get(reader)
                if t is None:
                    continue
                value = (f"{t['value']:.2g}" if t["status"] == "interpolated" else
                         f"<= {t['value']:g}" if t["value"] is not None else f"> {sweep['values'][-1]:g}")
                reached.append(f"{title} {value}")
            parts.append(f"AUC 0.75 at {axis} " + ", ".join(reached))
        return "; ".join(parts) or None

    def files(self, block, report):
        from training.contrast_detail import plot_png

        return {self.png(axis): plot_png(sweep) for axis, sweep in block.items()}


#: the sections every map method's card holds, in order (the budget is added to every card); a
#: method adds its :class:`Baseline` and its own sections after them
DETECTION: tuple[CardSection, ...] = (ImageLevel(), Conspicuity(), Localisation(), RandomBoxNull(),
                                      SupervisedCeiling(), ForeignObjects(), ContrastDetail())
BUDGET = Budget()
