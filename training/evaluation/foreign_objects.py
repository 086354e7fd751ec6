"""The foreign-object plumbing check, and its verdict (the one text every place shows).

Any correct pipeline passes it whatever its training length: phantom normals the model never saw,
each with one metal biopsy clip or skin marker, against their twins without it (same seed,
pixel-identical elsewhere). The object's footprint in model space is exactly where the two model
inputs differ (by more than :data:`FOOTPRINT_MIN` display units, inside the breast): a 3 mm clip
is a few model pixels, and its bounding box, mostly tissue, would dilute what the map does on it.

Two criteria, each passed or not, with its numbers:

* the map criterion: the object is HOTTER than the rest of its breast (median ratio of the mean
  map on the footprint to the mean on the rest of the breast > 1, and the footprint's percentile
  among every same-size placement in the same breast above 0.5, Wilcoxon p < 0.05) AND at least
  :data:`FOREIGN_OBJECT_FACTOR` x the same pixels on the twin's map (paired p < 0.05). An object
  colder than the breast around it is not lit, however much colder its twin is (maps are
  heavy-tailed); :func:`inference.metrics.foreign_object_verdict` decides;
* the score criterion: an image score rises on the object images against their twins (the paper's
  mean over the breast, which a few pixels barely move by construction, or the focal score; paired
  Wilcoxon, p < 0.05).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from training.evaluation.sections import fmt, focal_scores, reached

FOREIGN_OBJECT_PATIENTS = 10  # x 4 views: 40 images with an object, 40 twins
FOREIGN_OBJECT_SEED = 900_001  # far from any training seed: images the model never saw
FOREIGN_OBJECT_FACTOR = 2.0  # the map on the object at least 2x the same pixels on its twin
FOOTPRINT_MIN = 0.02  # display units: where the object changed the model input


def phantom_recipe(labels: Path) -> dict:
    """The training data's phantom geometry (so the objects' images look like it), else the defaults."""
    manifest = Path(labels).parent / "phantom.json"
    defaults = {"shape": [1024, 832], "pixel_spacing": 0.2, "bits_stored": 12}
    if not manifest.is_file():
        return defaults
    p = json.loads(manifest.read_text()).get("parameters", {})
    return {k: p.get(k, v) for k, v in defaults.items()}


def object_images(context, patients: int = FOREIGN_OBJECT_PATIENTS):
    """(objects, twins) prepared at the engine's resolution, made once per card."""
    cached = context.cache.get("foreign_object_images")
    if cached is not None and cached[0] == patients:
        return cached[1], cached[2]
    from training.datasets import load_images
    from training.phantom import generate_dataset

    recipe = phantom_recipe(context.labels)
    with tempfile.TemporaryDirectory() as tmp:
        common = dict(n=patients, lesion_fraction=0.0, seed=FOREIGN_OBJECT_SEED, shape=tuple(recipe["shape"]),
                      pixel_spacing=recipe["pixel_spacing"], bits_stored=recipe["bits_stored"])
        generate_dataset(Path(tmp) / "objects", foreign_objects=1.0, progress=context.progress, **common)
        generate_dataset(Path(tmp) / "twins", foreign_objects=0.0, progress=context.progress, **common)
        objects = load_images(Path(tmp) / "objects" / "labels.csv", context.engine.resolution)
        twins = load_images(Path(tmp) / "twins" / "labels.csv", context.engine.resolution)
    if objects.paths != twins.paths:
        raise RuntimeError("the foreign-object images and their twins do not line up")
    context.cache["foreign_object_images"] = (patients, objects, twins)
    return objects, twins


def object_check(engine, objects, twins, patients: int, parameters: dict | None = None) -> dict:
    """Both criteria on prepared object images and their twins (see the module docstring)."""
    from inference.metrics import foreign_object_verdict, footprint_percentile

    parameters = parameters or {}
    maps = engine.map_prepared(objects.images, objects.masks, **parameters)
    twin_maps = engine.map_prepared(twins.images, twins.masks, **parameters)
    ratio, null, sizes, on_object, elsewhere, peak, percentile = [], [], [], [], [], [], []
    for i in range(len(objects)):
        breast = reached(maps[i], objects.masks[i]) & reached(twin_maps[i], objects.masks[i])
        footprint = (np.abs(objects.images[i] - twins.images[i]) > FOOTPRINT_MIN) & breast
        rest = breast & ~footprint
        if not footprint.any() or not rest.any():
            continue
        sizes.append(int(footprint.sum()))
        ratio.append(float(maps[i][footprint].mean() / max(maps[i][rest].mean(), 1e-12)))
        null.append(float(twin_maps[i][footprint].mean() / max(twin_maps[i][rest].mean(), 1e-12)))
        # why a score moves or not: the mean score's change split into the object's own pixels and
        # the rest of the breast (which the network's global normalisation also shifts)
        n = breast.sum()
        on_object.append(float((maps[i][footprint] - twin_maps[i][footprint]).sum() / n))
        elsewhere.append(float(abs((maps[i][rest] - twin_maps[i][rest]).sum()) / n))
        peak.append(float(100.0 * np.mean(maps[i][breast] < maps[i][footprint].max())))
        percentile.append(footprint_percentile(np.nan_to_num(maps[i]), breast, footprint)["percentile"])
    scores = {"paper": (engine.score_prepared(objects.images, objects.masks, **parameters),
                        engine.score_prepared(twins.images, twins.masks, **parameters)),
              "focal": (focal_scores(maps, objects.masks), focal_scores(twin_maps, twins.masks))}
    judged = foreign_object_verdict(ratio, null, percentile, scores, factor=FOREIGN_OBJECT_FACTOR)
    paper, focal = judged["scores"]["paper"], judged["scores"]["focal"]
    return {"n": len(ratio), "footprint_pixels_median": float(np.median(sizes)) if sizes else None,
            "ratio_median": judged["ratio_median"], "null_ratio_median": judged["twin_ratio_median"],
            "ratio_p_value": judged["ratio_vs_twin_p_value"],
            "footprint_percentile_median": judged["percentile_median"],
            "footprint_percentile_p_value": judged["percentile_p_value"],
            "hotter_than_breast": judged["hotter_than_breast"], "above_twin": judged["above_twin"],
            "lights_up": judged["lights_up"],
            "paper_score_difference_median": paper["median_of_differences"], "paper_score_p_value": paper["p_value"],
            "paper_score_raised": paper["raised"],
            "focal_score_difference_median": focal["median_of_differences"], "focal_score_p_value": focal["p_value"],
            "focal_score_raised": focal["raised"], "passed": judged["passed"],
            "mean_score_change_on_object_median": float(np.median(on_object)) if on_object else None,
            "mean_score_change_elsewhere_abs_median": float(np.median(elsewhere)) if elsewhere else None,
            "object_peak_percentile_median": float(np.median(peak)) if peak else None,
            "object_peak_in_top_1_percent": int(sum(p >= 99.0 for p in peak)),
            "data": f"{len(ratio)} phantom normals with one foreign object (seed {FOREIGN_OBJECT_SEED}, "
                    f"{patients} patients x 4 views) against their twins without it"}


def verdict(block: dict) -> str:
    """The check's verdict in one line: each criterion passed or not, with its numbers."""
    pct = block.get("footprint_percentile_median")
    p_value = fmt(block.get("footprint_percentile_p_value"), 3)
    where = f", footprint at the {fmt(pct, 2)} percentile of its breast (p {p_value})" if pct is not None else ""
    map_text = (f"map criterion {'passed' if block['lights_up'] else 'failed'} (object "
                f"{fmt(block['ratio_median'], 1)}x the rest of the breast{where}; twin "
                f"{fmt(block['null_ratio_median'], 1)}x; needs hotter than the breast and >= "
                f"{FOREIGN_OBJECT_FACTOR:g}x the twin)")
    raised = [name for name, key in (("mean", "paper_score_raised"), ("focal", "focal_score_raised")) if block.get(key)]
    score_text = (f"score criterion {'passed' if raised else 'failed'} ("
                  + (f"{' and '.join(raised)} score raised" if raised else "no score raised") + ")")
    return f"clip check {'passed' if block['passed'] else 'failed'}: {map_text}, {score_text}"


def object_markdown(fo: dict) -> list[str]:
    pct = fo.get("footprint_percentile_median")
    lines = ["", "## Foreign-object plumbing check", "",
             fo["data"] + f"; the object's footprint in model space (median {fmt(fo['footprint_pixels_median'], 0)} "
             "pixels) is where the two inputs differ.", "", "**" + verdict(fo) + "**", "",
             "| map ratio on the object | footprint percentile in its breast | same pixels on the twin | paired p | "
             "mean score: median rise (p) | focal score: median rise (p) |", "| --- | --- | --- | --- | --- | --- |",
             f"| {fmt(fo['ratio_median'])} | {fmt(pct)} | {fmt(fo['null_ratio_median'])} | "
             f"{fmt(fo['ratio_p_value'], 4)} | {fo['paper_score_difference_median']:.2e} "
             f"({fmt(fo['paper_score_p_value'], 3)}) | {fo['focal_score_difference_median']:.2e} "
             f"({fmt(fo['focal_score_p_value'], 3)}) |"]
    if fo.get("mean_score_change_on_object_median") is not None:
        lines += ["", f"Why a score moves or not: over the breast's pixels, the object's own pixels change the mean "
                      f"score by a median {fo['mean_score_change_on_object_median']:.2e}, the rest of the breast "
                      f"(the network's global response to the object) by a median "
                      f"|{fo['mean_score_change_elsewhere_abs_median']:.2e}|; the object's hottest map pixel ranks at "
                      f"the {fmt(fo['object_peak_percentile_median'], 1)}th percentile of its breast (median), in "
                      f"the top 1 % (the focal score) in {fo['object_peak_in_top_1_percent']} of {fo['n']} images."]
    return lines
