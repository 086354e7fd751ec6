"""`mammolens evaluate`: one protocol for every method and bundle, written as a model card.

DESIGN.md, "Evaluating a model". A number without its baseline says nothing, so the card sets
every number beside its null:

* image level: AUC with its DeLong 95 % interval, sensitivity and specificity at the calibrated
  threshold, overall and per lesion class, for the paper's score and for a focal score (mean of
  the top 1 % of breast pixels of the map; its threshold is Youden's J on the val split, never on
  the split under test);
* localisation: paper 002's Table 2 ratio (mean map inside the lesion boxes / outside, breast
  pixels) next to its null, the same boxes laid on a normal image of the same view, with the
  paired Wilcoxon test; and the hit rate (share of the map's top 1 % inside the boxes) against
  the boxes' share of the breast (chance);
* the foreign-object plumbing check: phantom normals the model never saw, each with one metal
  clip or skin marker, against their twins without it (same seed, pixel-identical elsewhere):
  the map must light up on the object (median inside/outside ratio at least 2x the twin's on the
  same box) and the image score must rise;
* the supervised ceiling: the method's own network family trained with the labels on the same
  training images at the same resolution, scored on the same split (``training.ceiling``);
* the training budget next to the paper's.

The card goes into the bundle (``card.json`` and ``card.md``, written atomically) and its key
line is what the viewer shows beside the score.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from inference.bundle import CARD_JSON

CARD_MD = "card.md"
FOREIGN_OBJECT_PATIENTS = 10  # x 4 views: 40 images with an object, 40 twins
FOREIGN_OBJECT_SEED = 900_001  # far from any training seed: images the model never saw
FOREIGN_OBJECT_FACTOR = 2.0  # DESIGN.md: inside/outside ratio at least 2x its null
FOOTPRINT_MIN = 0.02  # display units: where the object changed the model input


def _reached(value_map: np.ndarray, breast: np.ndarray) -> np.ndarray:
    """The breast pixels the map has data for (a sliding-window map is NaN where no window reaches)."""
    return breast & np.isfinite(value_map)


def _maps(engine, images: np.ndarray, masks: np.ndarray, **parameters) -> np.ndarray:
    """The engine's main maps in model space; an engine that slides over the breast gets its masks."""
    import inspect

    if "masks" in inspect.signature(engine.map_prepared).parameters:
        return engine.map_prepared(images, masks, **parameters)
    return engine.map_prepared(images, **parameters)


def _has_both(data) -> bool:
    return data is not None and bool(data.is_normal.any()) and bool((~data.is_normal).any())


def _image_level(engine, data, val, maps, val_maps, parameters: dict | None = None) -> dict:
    """Paper and focal scores; ``parameters`` (a map variant) are scored with a threshold from the val split."""
    from inference.metrics import evaluate, focal_score, youden_threshold

    truth = (~data.is_normal).astype(int)
    paper = engine.score_prepared(data.images, data.masks, **(parameters or {}))
    calibration = engine.bundle.calibration
    threshold = calibration.threshold if calibration is not None and not parameters else None
    source = "bundle calibration" if threshold is not None else "Youden J on this split"
    if threshold is None and parameters and _has_both(val):
        threshold, _ = youden_threshold((~val.is_normal).astype(int), engine.score_prepared(val.images, val.masks,
                                                                                             **parameters))
        source = "Youden J on the val split"
    out = {"paper": evaluate(truth, paper, threshold=threshold, classes=data.labels)}
    out["paper"]["threshold_source"] = source
    focal = np.array([focal_score(m, _reached(m, b)) for m, b in zip(maps, data.masks)])
    focal_threshold, source = None, "Youden J on this split"
    if _has_both(val):
        val_focal = np.array([focal_score(m, _reached(m, b)) for m, b in zip(val_maps, val.masks)])
        focal_threshold, _ = youden_threshold((~val.is_normal).astype(int), val_focal)
        source = "Youden J on the val split"
    out["focal"] = evaluate(truth, focal, threshold=focal_threshold, classes=data.labels)
    out["focal"]["threshold_source"] = source
    return out


def _same_view_normals(data) -> dict[str, list[int]]:
    views: dict[str, list[int]] = {}
    for i, (label, view) in enumerate(zip(data.labels, data.views)):
        if label == "normal":
            views.setdefault(view, []).append(i)
    return views


def _localisation(data, maps) -> dict:
    from inference.metrics import box_ratio, hit_rate, paired_test

    normals = _same_view_normals(data)
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
        ratios.append(box_ratio(maps[i], _reached(maps[i], data.masks[i]), boxes))
        nulls.append(box_ratio(maps[j], _reached(maps[j], data.masks[j]), boxes))
        hit, chance = hit_rate(maps[i], _reached(maps[i], data.masks[i]), boxes)
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


def foreign_object_check(engine, labels: Path, *, patients: int = FOREIGN_OBJECT_PATIENTS, progress=None,
                         variants: dict | None = None, parameters: dict | None = None) -> dict:
    """Objects the model never saw must light up its map and raise its score (any correct pipeline).

    Each object image has a twin without the object (same seed, pixel-identical elsewhere), so the
    object's footprint in model space is exactly where the two model inputs differ (by more than
    ``FOOTPRINT_MIN`` display units, inside the breast): a 3 mm clip is a few model pixels, and its
    bounding box, mostly tissue (a 20 mm wire runs diagonally), would dilute what the map does on
    it. Ratio = mean map on the footprint / mean map on the rest of the breast; its null is the
    same footprint on the twin's map. Both image scores are tested, paired: the paper's mean over
    the breast (which a few pixels barely move, by construction) and the focal score.
    """
    from training.datasets import load_images
    from training.phantom import generate_dataset

    recipe = _phantom_parameters(labels)
    with tempfile.TemporaryDirectory() as tmp:
        common = dict(n=patients, lesion_fraction=0.0, seed=FOREIGN_OBJECT_SEED, shape=tuple(recipe["shape"]),
                      pixel_spacing=recipe["pixel_spacing"], bits_stored=recipe["bits_stored"])
        generate_dataset(Path(tmp) / "objects", foreign_objects=1.0, progress=progress, **common)
        generate_dataset(Path(tmp) / "twins", foreign_objects=0.0, progress=progress, **common)
        objects = load_images(Path(tmp) / "objects" / "labels.csv", engine.resolution)
        twins = load_images(Path(tmp) / "twins" / "labels.csv", engine.resolution)
    if objects.paths != twins.paths:
        raise RuntimeError("the foreign-object images and their twins do not line up")
    result = _object_check(engine, objects, twins, patients, parameters)
    if variants:
        result["variants"] = {name: _object_check(engine, objects, twins, patients, params)
                              for name, params in variants.items()}
    return result


def _object_check(engine, objects, twins, patients: int, parameters: dict | None = None) -> dict:
    from inference.metrics import focal_score, paired_test

    parameters = parameters or {}
    maps = _maps(engine, objects.images, objects.masks, **parameters)
    twin_maps = _maps(engine, twins.images, twins.masks, **parameters)
    ratio, null, sizes, on_object, elsewhere, percentile = [], [], [], [], [], []
    for i in range(len(objects)):
        # the breast pixels both maps have data for
        breast = _reached(maps[i], objects.masks[i]) & _reached(twin_maps[i], objects.masks[i])
        footprint = (np.abs(objects.images[i] - twins.images[i]) > FOOTPRINT_MIN) & breast
        rest = breast & ~footprint
        if not footprint.any() or not rest.any():
            continue
        sizes.append(int(footprint.sum()))
        ratio.append(float(maps[i][footprint].mean() / max(maps[i][rest].mean(), 1e-12)))
        null.append(float(twin_maps[i][footprint].mean() / max(twin_maps[i][rest].mean(), 1e-12)))
        # why a score moves or not: the mean score's change split into the object's own pixels
        # and the rest of the breast (which the network's global normalisation also shifts), and
        # where the object's hottest pixel ranks in its breast (the focal score takes the top 1 %)
        n = breast.sum()
        on_object.append(float((maps[i][footprint] - twin_maps[i][footprint]).sum() / n))
        elsewhere.append(float(abs((maps[i][rest] - twin_maps[i][rest]).sum()) / n))
        percentile.append(float(100.0 * np.mean(maps[i][breast] < maps[i][footprint].max())))
    ratios = paired_test(ratio, null)
    paper = paired_test(engine.score_prepared(objects.images, objects.masks, **parameters),
                        engine.score_prepared(twins.images, twins.masks, **parameters))
    focal = paired_test([focal_score(m, _reached(m, b)) for m, b in zip(maps, objects.masks)],
                        [focal_score(m, _reached(m, b)) for m, b in zip(twin_maps, twins.masks)])
    lights_up = bool(np.isfinite(ratios["median_a"]) and ratios["median_a"] >= FOREIGN_OBJECT_FACTOR * ratios["median_b"])

    def raised(test) -> bool:
        return bool(test["median_of_differences"] > 0 and test["p_value"] < 0.05)

    return {"n": len(ratio), "footprint_pixels_median": float(np.median(sizes)) if sizes else None,
            "ratio_median": ratios["median_a"], "null_ratio_median": ratios["median_b"],
            "ratio_p_value": ratios["p_value"], "lights_up": lights_up,
            "paper_score_difference_median": paper["median_of_differences"], "paper_score_p_value": paper["p_value"],
            "paper_score_raised": raised(paper),
            "focal_score_difference_median": focal["median_of_differences"], "focal_score_p_value": focal["p_value"],
            "focal_score_raised": raised(focal),
            "passed": lights_up and (raised(paper) or raised(focal)),
            "mean_score_change_on_object_median": float(np.median(on_object)) if on_object else None,
            "mean_score_change_elsewhere_abs_median": float(np.median(elsewhere)) if elsewhere else None,
            "object_peak_percentile_median": float(np.median(percentile)) if percentile else None,
            "object_peak_in_top_1_percent": int(sum(p >= 99.0 for p in percentile)),
            "data": f"{len(ratio)} phantom normals with one foreign object (seed {FOREIGN_OBJECT_SEED}, "
                    f"{patients} patients x 4 views) against their twins without it"}


def _phantom_parameters(labels: Path) -> dict:
    """The training data's phantom geometry (so the objects' images look like it), else the defaults."""
    manifest = Path(labels).parent / "phantom.json"
    defaults = {"shape": [1024, 832], "pixel_spacing": 0.2, "bits_stored": 12}
    if not manifest.is_file():
        return defaults
    p = json.loads(manifest.read_text()).get("parameters", {})
    return {k: p.get(k, v) for k, v in defaults.items()}


def _budget(bundle) -> dict:
    prov = bundle.provenance
    return {"device": prov.get("device"), "train_seconds": prov.get("train_seconds"),
            "iterations": prov.get("iterations"), "iterations_planned": prov.get("iterations_planned"),
            "preset": prov.get("preset"), "paper_iterations": prov.get("paper_iterations"),
            "command": prov.get("command")}


def evaluate_bundle(labels: str | Path, *, method: str = "translation", model: str | None = None, split: str = "test",
                    device: str = "auto", card: bool = True, ceiling: bool = True,
                    object_patients: int = FOREIGN_OBJECT_PATIENTS, completion_images: int = 30,
                    parameters: dict | None = None, progress=None) -> dict:
    """Everything the card holds, measured on ``split`` of ``labels``; the card written into the bundle.

    ``parameters``: the method's run parameters for every map and score (the command line's method
    flags, e.g. an inpainting stride); the paper score's threshold then comes from the val split
    (Youden's J), as for the map variants.
    """
    from app.analysis import load_engine
    from inference.methods import get
    from training.datasets import load_images

    if get(method).generates_patches:  # a generator: paper 004's quality tables (app.synthesis)
        from app.synthesis import evaluate_synthesis

        return evaluate_synthesis(labels, model=model, split=split, device=device, card=card, progress=progress)
    labels = Path(labels)
    engine = load_engine(method, model, device)
    data = load_images(labels, engine.resolution, splits=(split,), progress=progress)
    try:
        val = load_images(labels, engine.resolution, splits=("val",), progress=progress) if split != "val" else None
    except ValueError:
        val = None
    parameters = {k: v for k, v in (parameters or {}).items() if k != "device"}
    maps = _maps(engine, data.images, data.masks, **parameters)
    val_maps = _maps(engine, val.images, val.masks, **parameters) if val is not None else None
    variants = {name: {**parameters, **p} for name, p in engine.card_variants().items()} \
        if hasattr(engine, "card_variants") else {}
    report = {"bundle": engine.bundle.name, "version": engine.bundle.version, "method": engine.spec.method,
              "labels": labels.name, "split": split, "n_normal": int(data.is_normal.sum()),
              "n_abnormal": int((~data.is_normal).sum()), "provider": engine.provider,
              "parameters": parameters, "image_level": _image_level(engine, data, val, maps, val_maps, parameters),
              "localisation": _localisation(data, maps)}
    if variants:  # the method's other maps and scores (inpainting: MSE / critic / DMSE, averaged or not)
        report["variants"] = {}
        for name, params in variants.items():
            v_maps = _maps(engine, data.images, data.masks, **params)
            v_val = _maps(engine, val.images, val.masks, **params) if val is not None else None
            report["variants"][name] = {"parameters": params, "localisation": _localisation(data, v_maps),
                                        "image_level": _image_level(engine, data, val, v_maps, v_val, params)}
    if engine.spec.completes_roi and completion_images:  # ROI completion against a classical baseline
        from app.inpaint_quality import completion_quality

        report["completion_quality"] = completion_quality(engine, labels, split=split, images=completion_images,
                                                          progress=progress)
    if hasattr(engine, "card_reference"):
        report["paper_reference"] = engine.card_reference()
    if engine.spec.method == "projection":  # its model-free baseline (training/projection/card.py)
        from training.projection.card import baseline_section

        report["baseline"] = baseline_section(labels, engine.resolution, split=split)
    if object_patients:
        report["foreign_objects"] = foreign_object_check(engine, labels, patients=object_patients, progress=progress,
                                                         variants=variants, parameters=parameters)
    if ceiling:
        from training.ceiling import supervised_ceiling

        report["supervised_ceiling"] = supervised_ceiling(engine.bundle, labels, split=split)
    report["budget"] = _budget(engine.bundle)
    report["key_line"] = key_line(report)
    if card:
        write_card(engine.bundle.path, report)
    return report


def _f(value, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def key_line(report: dict) -> str:
    """One line for the viewer: what the model is, its AUC beside its ceiling, the plumbing check."""
    paper = report["image_level"]["paper"]
    lo, hi = paper.get("auc_ci", [None, None])
    parts = [f"test AUC {_f(paper['auc'])} ({_f(lo)}-{_f(hi)})"]
    ceiling = report.get("supervised_ceiling")
    if ceiling:
        parts.append(f"supervised ceiling {_f(ceiling['auc'])}")
    fo = report.get("foreign_objects")
    if fo:
        scores = [name for name, key in (("mean", "paper_score_raised"), ("focal", "focal_score_raised")) if fo[key]]
        parts.append(f"clip check {'passed' if fo['passed'] else 'FAILED'}: map "
                     f"{'lights up' if fo['lights_up'] else 'does not light up'} on the object "
                     f"({_f(fo['ratio_median'], 1)}x vs {_f(fo['null_ratio_median'], 1)}x on its twin), "
                     + (f"{' and '.join(scores)} score raised" if scores else "no score raised"))
    budget = report.get("budget") or {}
    if budget.get("iterations") is not None:
        paper_it = budget.get("paper_iterations")
        parts.append(f"{budget['iterations']:,} iterations" + (f" of the paper's {paper_it:,}" if paper_it else ""))
    return "; ".join(parts)


def card_markdown(report: dict) -> str:
    if "synthesis" in report:
        from app.synthesis import synthesis_card_markdown

        return synthesis_card_markdown(report)
    il = report["image_level"]
    lines = [f"# Evaluation card: {report['bundle']} {report['version']} ({report['method']})", "",
             f"**{report['key_line']}**", "",
             f"Split '{report['split']}' of {report['labels']}: {report['n_normal']} normal, "
             f"{report['n_abnormal']} abnormal images.", "",
             "## Image level", "",
             "| score | AUC (95 % CI) | sensitivity | specificity | threshold (source) |",
             "| --- | --- | --- | --- | --- |"]
    for name, block in (("paper", il["paper"]), ("focal (top 1 %)", il["focal"])):
        lo, hi = block.get("auc_ci", [None, None])
        c = block["confusion"]
        lines.append(f"| {name} | {_f(block['auc'])} ({_f(lo)}-{_f(hi)}) | {_f(c['sensitivity'])} | "
                     f"{_f(c['specificity'])} | {block['threshold']:.5g} ({block['threshold_source']}) |")
    lines += ["", "| class | n | paper AUC (95 % CI) | sensitivity | focal AUC |", "| --- | --- | --- | --- | --- |"]
    for cls, block in il["paper"].get("per_class", {}).items():
        focal = il["focal"].get("per_class", {}).get(cls, {})
        lines.append(f"| {cls} | {block['n']} | {_f(block['auc'])} ({_f(block.get('auc_ci_low'))}-"
                     f"{_f(block.get('auc_ci_high'))}) | {_f(block.get('sensitivity'))} | {_f(focal.get('auc'))} |")
    lines += ["", "## Localisation (paper 002 Table 2 ratio; null = the same boxes on a normal image of the same view)",
              "", "| lesions | n | ratio median | null median | paired p | top-1 % hit rate | chance |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for cls, block in report["localisation"].items():
        if block.get("n"):
            lines.append(f"| {cls} | {block['n']} | {_f(block['ratio_median'])} | {_f(block['null_ratio_median'])} | "
                         f"{_f(block['p_value'], 3)} | {_f(block['hit_rate'], 3)} | {_f(block['chance'], 3)} |")
    lines += _variants_markdown(report)
    if report.get("method") == "projection":  # paper 000's Table 1 layout and the baseline
        from training.projection.card import card_markdown_sections

        lines += card_markdown_sections(report)
    if report.get("completion_quality"):
        from app.inpaint_quality import quality_markdown

        lines += quality_markdown(report["completion_quality"])
    fo = report.get("foreign_objects")
    if fo:
        lines += ["", "## Foreign-object plumbing check", "",
                  fo["data"] + f"; the object's footprint in model space (median {_f(fo['footprint_pixels_median'], 0)} "
                  "pixels) is where the two inputs differ. Passes when the map's ratio on it is at least 2x the "
                  "twin's and an image score rises (paired Wilcoxon, p < 0.05).", "",
                  "| map ratio on the object | same pixels on the twin | paired p | mean score: median rise (p) | "
                  "focal score: median rise (p) | passed |", "| --- | --- | --- | --- | --- | --- |",
                  f"| {_f(fo['ratio_median'])} | {_f(fo['null_ratio_median'])} | {_f(fo['ratio_p_value'], 4)} | "
                  f"{fo['paper_score_difference_median']:.2e} ({_f(fo['paper_score_p_value'], 3)}) | "
                  f"{fo['focal_score_difference_median']:.2e} ({_f(fo['focal_score_p_value'], 3)}) | "
                  f"{'yes' if fo['passed'] else 'NO'} |", "",
                  f"Why a score moves or not: over the breast's pixels, the object's own pixels change the mean "
                  f"score by a median {fo['mean_score_change_on_object_median']:.2e}, the rest of the breast "
                  f"(the network's global response to the object) by a median |{fo['mean_score_change_elsewhere_abs_median']:.2e}|; "
                  f"the object's hottest map pixel ranks at the {_f(fo['object_peak_percentile_median'], 1)}th "
                  f"percentile of its breast (median), in the top 1 % (the focal score) in "
                  f"{fo['object_peak_in_top_1_percent']} of {fo['n']} images."]
    ceiling = report.get("supervised_ceiling")
    if ceiling:
        lines += ["", "## Supervised ceiling", "", ceiling["description"], "",
                  f"Train AUC {_f(ceiling['train_auc'])}, val AUC {_f(ceiling['val_auc'])} (epoch chosen on val), "
                  f"test AUC {_f(ceiling['auc'])} ({_f(ceiling['auc_ci'][0])}-{_f(ceiling['auc_ci'][1])})."]
    b = report.get("budget") or {}
    lines += ["", "## Training budget", "",
              f"{b.get('iterations')} iterations (planned {b.get('iterations_planned')}; paper "
              f"{b.get('paper_iterations')}), {b.get('train_seconds')} s on {b.get('device')}, preset "
              f"{b.get('preset')}.", "", f"Command: `{b.get('command')}`", ""]
    return "\n".join(lines)


def _variants_markdown(report: dict) -> list[str]:
    """The table of a method's map variants (paper 002 Table 2's rows), with the paper's own number."""
    variants = report.get("variants")
    if not variants:
        return []
    lines = ["", "## Map variants (the Table 2 ratio: mean (std) and median over lesions, beside the same boxes "
             "on normal images of the same view)", ""]
    if report.get("paper_reference"):
        lines += [report["paper_reference"], ""]
    lines += ["| map | lesions | ratio mean (std) | null mean (std) | ratio median | null median | paired p | "
              "paper-score AUC (95 % CI) | focal AUC (95 % CI) | clip ratio vs twin |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    objects = (report.get("foreign_objects") or {}).get("variants", {})
    for name, v in variants.items():
        paper, focal = v["image_level"]["paper"], v["image_level"]["focal"]
        fo = objects.get(name)
        clip = f"{_f(fo['ratio_median'])} vs {_f(fo['null_ratio_median'])}" if fo else "n/a"
        for cls, block in v["localisation"].items():
            if not block.get("n"):
                continue
            first = cls == "overall"
            auc = (f"{_f(paper['auc'])} ({_f(paper['auc_ci'][0])}-{_f(paper['auc_ci'][1])})" if first else
                   _f((paper.get("per_class") or {}).get(cls, {}).get("auc")))
            fauc = (f"{_f(focal['auc'])} ({_f(focal['auc_ci'][0])}-{_f(focal['auc_ci'][1])})" if first else
                    _f((focal.get("per_class") or {}).get(cls, {}).get("auc")))
            lines.append(f"| {name if first else ''} | {cls} {block['n']} | {_f(block['ratio_mean'])} "
                         f"({_f(block['ratio_std'])}) | {_f(block['null_ratio_mean'])} ({_f(block['null_ratio_std'])}) | "
                         f"{_f(block['ratio_median'])} | {_f(block['null_ratio_median'])} | {_f(block['p_value'], 3)} | "
                         f"{auc} | {fauc} | {clip if first else ''} |")
    return lines


def write_card(bundle_dir: Path, report: dict) -> None:
    from inference.files import atomic_write_text

    atomic_write_text(Path(bundle_dir) / CARD_JSON, json.dumps(report, indent=2, default=float) + "\n")
    atomic_write_text(Path(bundle_dir) / CARD_MD, card_markdown(report))


def format_report(report: dict) -> str:
    """The terminal summary of an evaluation."""
    if "synthesis" in report:
        from app.synthesis import quality_tables

        return quality_tables(report) + "\ncard: " + report["key_line"]
    paper = report["image_level"]["paper"]
    at = paper["confusion"]
    lines = [f"{report['bundle']} on {report['labels']} split '{report['split']}': {report['n_normal']} normal, "
             f"{report['n_abnormal']} abnormal; threshold {paper['threshold']:.5f} ({paper['threshold_source']})",
             f"overall  AUC {paper['auc']:.3f} ({_f(paper['auc_ci'][0])}-{_f(paper['auc_ci'][1])})  sensitivity "
             f"{at['sensitivity']:.3f}  specificity {at['specificity']:.3f}"]
    for cls, block in (paper.get("per_class") or {}).items():
        lines.append(f"{cls:<25} n={block['n']:<4} AUC {block['auc']:.3f}  sensitivity {block['sensitivity']:.3f}")
    lines.append("card: " + report["key_line"])
    return "\n".join(lines)
