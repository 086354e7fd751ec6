"""Contrast-detail curves: a virtual reader study on the phantom at several lesion conspicuities.

One AUC at the phantom's realistic lesions says only "works here" or "not here". A contrast-detail
sweep writes the same phantom seeds at several lesion contrast (or size) scales
(:mod:`training.phantom.lesions`: the anatomy, the splits and the lesion places stay the same)
and at each setting measures, on the held-out test split, the AUC with its DeLong 95 % interval
of four readers of the same prepared images:

* the method (its engine's image score, ``score_prepared``; and its focal score, the mean of the
  map's top 1 % breast pixels);
* its model-free baseline (the :class:`~training.evaluation.sections.Baseline` its card names,
  focal score of its map);
* the supervised ceiling (:func:`training.ceiling.supervised_ceiling`: the method's network
  family trained with the labels on the train split, epoch chosen on val);
* a channelized Hotelling observer (:func:`inference.observers.cho_on_sets`: Laguerre-Gauss
  channels, trained on the train split at the known lesion location), the standard model
  observer of virtual clinical trials of breast imaging.

For each reader the conspicuity at which it reaches AUC 0.75 is interpolated (in log scale)
between the settings that bracket it. Outputs: ``contrast_detail.json``, ``contrast_detail.md``
(a table) and ``contrast_detail.png`` (the curves with their intervals), written atomically.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

TARGET_AUC = 0.75
CHO_ABSENT = "lesion-free twins"  # where the CHO's signal-absent ROIs come from (inference.observers.twin_rois)
AXES = ("contrast", "size")
READERS = ("method", "method_focal", "baseline", "ceiling", "cho")
READER_TITLES = {"method": "method (its score)", "method_focal": "method (focal top 1 %)",
                 "baseline": "model-free baseline (focal)", "ceiling": "supervised ceiling",
                 "cho": "CHO (known location)"}
COLOURS = {"method": (31, 119, 180), "method_focal": (120, 170, 220), "baseline": (255, 127, 14),
           "ceiling": (44, 160, 44), "cho": (214, 39, 40)}


def parse_sweep(text: str) -> tuple[str, tuple[float, ...]]:
    """``contrast=0.5,1,2,4`` or ``size=...`` -> (axis, values); one sentence when it is not that."""
    axis, sep, rest = str(text).partition("=")
    axis = axis.strip()
    try:
        values = tuple(float(v) for v in rest.split(",") if v.strip())
    except ValueError:
        values = ()
    if not sep or axis not in AXES or not values or any(not (math.isfinite(v) and v >= 0) for v in values):
        raise ValueError(f"a sweep is contrast=V1,V2,... or size=V1,V2,... with scales >= 0 (1 = the realistic "
                         f"lesions), not {text!r}")
    if axis == "size" and min(values) <= 0:
        raise ValueError("size scales must be above 0")
    return axis, tuple(sorted(set(values)))


def threshold_conspicuity(values: Sequence[float], aucs: Sequence[float], target: float = TARGET_AUC) -> dict:
    """Where a reader's AUC first reaches ``target``, interpolated between the two settings around it.

    Interpolation is linear in AUC against log(scale) (against the scale when the lower setting is
    0). Returns ``value`` (the scale, or None) and ``status``: ``interpolated``, ``at or below the
    lowest setting`` (reached already at the first) or ``not reached`` (beyond the last).
    """
    v = [float(x) for x in values]
    a = [float(x) if x is not None else float("nan") for x in aucs]
    for i, auc in enumerate(a):
        if not math.isfinite(auc) or auc < target:
            continue
        if i == 0:
            return {"value": v[0], "status": "at or below the lowest setting"}
        lo_v, lo_a = v[i - 1], a[i - 1]
        if not math.isfinite(lo_a):
            return {"value": v[i], "status": "interpolated"}
        t = (target - lo_a) / (auc - lo_a) if auc != lo_a else 1.0
        if lo_v > 0:
            x = math.exp(math.log(lo_v) + t * (math.log(v[i]) - math.log(lo_v)))
        else:
            x = lo_v + t * (v[i] - lo_v)
        return {"value": float(x), "status": "interpolated"}
    return {"value": None, "status": "not reached"}


def training_classes(bundle) -> tuple[str, ...] | None:
    """The lesion classes of the phantom ``bundle`` was trained on (its recorded ``--classes``), if any.

    A sweep draws the lesions the bundle's card was measured on: a bundle trained without
    calcifications is not swept over them by default.
    """
    recipe = str((bundle.provenance or {}).get("training_data_recipe") or "").split()
    if "--classes" not in recipe or recipe.index("--classes") + 1 >= len(recipe):
        return None
    return tuple(c for c in recipe[recipe.index("--classes") + 1].split(",") if c)


def _auc_block(truth: np.ndarray, scores: np.ndarray) -> dict:
    from inference.metrics import auc_confidence_interval, roc_auc

    return {"auc": roc_auc(truth, scores), "auc_ci": list(auc_confidence_interval(truth, scores))}


def method_baseline(engine):
    """The Baseline section of the method's card (each method names its model-free baseline there)."""
    from training.evaluation.sections import Baseline

    found = [s for s in engine.spec.card_sections() if isinstance(s, Baseline)]
    if not found:
        raise ValueError(f"the {engine.spec.title} card names no model-free baseline.")
    return found[0]


def measure_setting(engine, labels: Path, *, parameters: dict | None = None, ceiling: bool = True,
                    ceiling_epochs: int = 30, cho_channels: int = 6, device: str = "cpu", seed: int = 0,
                    twins: Path | None = None, progress=None) -> dict:
    """The four readers' AUCs (with intervals) on the test split of one labels file.

    ``twins``: the labels file of the same phantom written without lesions (same seeds, same rows):
    the CHO's signal-absent ROIs are then the lesions' places on these twins.
    """
    from inference.metrics import compare_with_baseline, random_box_null
    from inference.observers import cho_on_sets
    from training.datasets import load_images
    from training.evaluation.sections import focal_scores

    parameters = dict(parameters or {})
    train = load_images(labels, engine.resolution, splits=("train",))
    test = load_images(labels, engine.resolution, splits=("test",))
    truth = ~test.is_normal
    out: dict = {"n_train": len(train), "n_test_normal": int(test.is_normal.sum()), "n_test_lesion": int(truth.sum())}
    t0 = time.perf_counter()
    method_scores = np.asarray(engine.score_prepared(test.images, test.masks, **parameters), dtype=np.float64)
    maps = engine.map_prepared(test.images, test.masks, **parameters)
    method_focal = focal_scores(maps, test.masks)
    out["method"] = _auc_block(truth, method_scores)
    out["method_focal"] = _auc_block(truth, method_focal)
    out["method"]["box_percentile"] = random_box_null(maps, test.masks, test.labels, test.boxes)
    out["method"]["seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    from training.evaluation import CardContext

    base = method_baseline(engine).make(CardContext(engine=engine, labels=Path(labels), split="test",
                                                    parameters=parameters))
    base_maps = base["maps"](test.images, test.masks)
    base_focal = focal_scores(base_maps, test.masks)
    out["baseline"] = {**_auc_block(truth, base_focal), "name": base["name"], "description": base["description"]}
    out["baseline"]["box_percentile"] = random_box_null(base_maps, test.masks, test.labels, test.boxes)
    out["baseline"]["seconds"] = time.perf_counter() - t0
    out["method_vs_baseline_focal"] = compare_with_baseline(truth, method_focal, base_focal)["auc"]
    if progress:
        progress(1, 3, "method and baseline")
    t0 = time.perf_counter()
    twin_sets = {}
    if twins is not None:
        for split, own in (("train", train), ("test", test)):
            twin = load_images(twins, engine.resolution, splits=(split,))
            if twin.paths != own.paths:
                raise ValueError(f"{twins} does not hold the same images as {labels}: not its lesion-free twins.")
            twin_sets[f"{split}_twins"] = twin
    out["cho"] = cho_on_sets(train, test, n_channels=cho_channels, seed=seed, **twin_sets)
    out["cho"]["seconds"] = time.perf_counter() - t0
    if progress:
        progress(2, 3, "CHO")
    if ceiling:
        from training.ceiling import supervised_ceiling

        t0 = time.perf_counter()
        c = supervised_ceiling(engine.bundle, labels, split="test", epochs=ceiling_epochs, seed=seed, device=device)
        out["ceiling"] = {"auc": c["auc"], "auc_ci": c["auc_ci"], "val_auc": c["val_auc"], "train_auc": c["train_auc"],
                          "epoch": c["epoch"], "epochs": c["epochs"], "description": c["description"],
                          "seconds": time.perf_counter() - t0}
    if progress:
        progress(3, 3, "ceiling")
    return out


def contrast_detail_sweep(engine, out_dir, *, axis: str = "contrast", values: Sequence[float] = (0.5, 1, 2, 4),
                          patients: int = 40, shape: tuple[int, int] = (512, 416), spacing: float = 0.4,
                          seed: int = 7, splits: Sequence[float] = (0.5, 0.2, 0.3), lesion_fraction: float = 1.0,
                          lesion_views: str = "breast", classes: Sequence[str] | None = None,
                          parameters: dict | None = None, ceiling: bool = True,
                          ceiling_epochs: int = 30, cho_channels: int = 6, device: str = "cpu",
                          progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Write the phantom at every setting of ``axis`` (same seeds) and measure every reader there.

    ``engine`` is a loaded method engine (its ``score_prepared`` / ``map_prepared`` and bundle);
    the phantom recipe (patients x 2 views x 2 breasts, ``lesion_fraction`` of the patients with
    a lesion in ``lesion_views``, the classes cycling through ``classes`` (default all four), split
    by patient) is the same at every setting, and lesion-free images are written once and reused.
    The report is written under ``out_dir`` after every setting; a sweep run again into the same
    folder with the same recipe keeps the settings it measured already (a killed sweep resumes).
    Returns the report.
    """
    from training.phantom import generate_dataset

    if axis not in AXES:
        raise ValueError(f"the sweep axis must be one of {', '.join(AXES)}, not {axis!r}")
    values = tuple(sorted(set(float(v) for v in values)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recipe = dict(n=int(patients), views=("CC", "MLO"), lateralities=("L", "R"), lesion_fraction=lesion_fraction,
                  lesion_views=lesion_views, shape=tuple(shape), pixel_spacing=float(spacing), seed=int(seed),
                  splits=tuple(splits), masks=False)
    if classes is not None:
        recipe["classes"] = tuple(classes)
    settings = []
    started = time.perf_counter()
    done = _measured(out, engine, axis, recipe, parameters, ceiling_epochs if ceiling else None)
    # the lesion-free twins of every setting (lesion contrast 0: the same images without lesions):
    # the CHO's signal-absent ROIs at the lesions' own places
    twins = out / "data" / "lesion-free"
    if not (twins / "labels.csv").is_file():
        generate_dataset(twins, **recipe, lesion_contrast=0.0)
    previous = twins
    for k, value in enumerate(values):
        folder = out / "data" / f"{axis}-{value:g}"
        if value in done and (folder / "labels.csv").is_file():
            settings.append(done[value])
            previous = folder
            continue
        scale = {"lesion_contrast": value} if axis == "contrast" else {"lesion_size": value}
        t0 = time.perf_counter()
        if not (folder / "labels.csv").is_file():
            generate_dataset(folder, reuse=previous, **recipe, **scale)
        phantom_seconds = time.perf_counter() - t0
        previous = folder
        if progress:
            progress(k, len(values), f"{axis} {value:g}")
        result = measure_setting(engine, folder / "labels.csv", parameters=parameters, ceiling=ceiling,
                                 ceiling_epochs=ceiling_epochs, cho_channels=cho_channels, device=device,
                                 seed=int(seed), twins=twins / "labels.csv")
        settings.append({axis: value, "phantom_seconds": phantom_seconds, **result})
        report = _report(engine, axis, values[: k + 1], recipe, parameters, ceiling, ceiling_epochs, settings,
                         time.perf_counter() - started)
        write_outputs(out, report)  # after every setting: a long sweep shows what it has so far
    report = _report(engine, axis, values, recipe, parameters, ceiling, ceiling_epochs, settings,
                     time.perf_counter() - started)
    write_outputs(out, report)
    return report


def add_to_card(bundle_dir: Path, report: dict) -> bool:
    """Put the sweep into the bundle's card (its ``contrast_detail`` section, one curve per axis).

    False when the bundle has no card yet (``mammolens evaluate`` writes it first).
    """
    from inference.bundle import CARD_JSON
    from training.evaluation.card import key_line, read_card, write_card

    card = read_card(Path(bundle_dir) / CARD_JSON)
    if not card:
        return False
    card["contrast_detail"] = {**(card.get("contrast_detail") or {}), report["axis"]: report}
    card["key_line"] = key_line(card)
    write_card(Path(bundle_dir), card)
    return True


def _measured(out: Path, engine, axis, recipe, parameters, ceiling_epochs) -> dict[float, dict]:
    """The settings an earlier sweep into ``out`` measured with the same bundle and recipe."""
    try:
        old = json.loads((out / "contrast_detail.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    same = (old.get("bundle") == engine.bundle.name and old.get("axis") == axis and old.get("cho_absent") == CHO_ABSENT
            and old.get("phantom") == {k: (list(v) if isinstance(v, tuple) else v) for k, v in recipe.items()}
            and old.get("parameters") == dict(parameters or {}) and old.get("ceiling_epochs") == ceiling_epochs)
    return {float(s[axis]): s for s in old.get("settings", [])} if same else {}


def _report(engine, axis, values, recipe, parameters, ceiling, ceiling_epochs, settings, seconds) -> dict:
    readers = [r for r in READERS if all(r in s for s in settings)]
    shape, splits = recipe["shape"], recipe["splits"]
    report = {
        "bundle": engine.bundle.name, "method": getattr(engine, "method", ""), "resolution": int(engine.resolution),
        "axis": axis, "values": list(values), "target_auc": TARGET_AUC,
        "phantom": {k: (list(v) if isinstance(v, tuple) else v) for k, v in recipe.items()},
        "parameters": dict(parameters or {}), "ceiling_epochs": ceiling_epochs if ceiling else None,
        "cho_absent": CHO_ABSENT,
        "settings": settings,
        "threshold": {r: threshold_conspicuity(values, [s[r]["auc"] for s in settings]) for r in readers},
        "seconds": seconds,
    }
    report["command_recipe"] = (f"mammolens phantom --n {recipe['n']} --views CC,MLO --lateralities L,R "
                                f"--lesion-fraction {recipe['lesion_fraction']:g} "
                                f"--lesion-views {recipe['lesion_views']} "
                                f"--shape {shape[0]}x{shape[1]} "
                                + (f"--classes {','.join(recipe['classes'])} " if "classes" in recipe else "")
                                + f"--spacing {recipe['pixel_spacing']:g} --seed {recipe['seed']} "
                                f"--splits {','.join(f'{x:g}' for x in splits)} --lesion-{axis} VALUE")
    return report


def _fmt(block: dict | None) -> str:
    if not block:
        return "n/a"
    lo, hi = block.get("auc_ci", [float("nan")] * 2)
    ci = f" ({lo:.2f}-{hi:.2f})" if lo is not None and math.isfinite(lo) else ""
    return f"{block['auc']:.2f}{ci}"


def markdown(report: dict) -> str:
    """The sweep as a Markdown table: one row per setting, AUC (95 % CI) per reader, then thresholds."""
    axis = report["axis"]
    readers = [r for r in READERS if r in report["threshold"]]
    s0 = report["settings"][0]
    lines = [f"Contrast-detail sweep of {report['bundle']} ({report['method']}, {report['resolution']} px): lesion "
             f"{axis} scale, test split of each setting ({s0['n_test_normal']} normal, {s0['n_test_lesion']} lesion "
             f"images; {s0['n_train']} training images). AUC (DeLong 95 % CI).", "",
             f"| {axis} | " + " | ".join(READER_TITLES[r] for r in readers) + " | box percentile, method / baseline |",
             "| --- | " + " | ".join("---" for _ in readers) + " | --- |"]
    for s in report["settings"]:
        pm = s["method"].get("box_percentile", {}).get("median", float("nan"))
        pb = s["baseline"].get("box_percentile", {}).get("median", float("nan"))
        lines.append(f"| {s[axis]:g} | " + " | ".join(_fmt(s.get(r)) for r in readers) + f" | {pm:.2f} / {pb:.2f} |")
    cells = []
    for r in readers:
        t = report["threshold"][r]
        cells.append(f"{t['value']:.2f}" if t["status"] == "interpolated" else
                     (f"<= {t['value']:g}" if t["value"] is not None else f"> {report['values'][-1]:g}"))
    lines.append(f"| **{axis} at AUC {report['target_auc']:.2f}** | " + " | ".join(cells) + " | |")
    base = s0["baseline"]
    lines += ["", f"Baseline: {base['name']}: {base['description']}. Box percentile: median over the test lesions of "
              "the lesion box's rank among same-size boxes on tissue of the same breast (0.5 = chance). CHO: "
              f"{s0['cho']['channels']} Laguerre-Gauss channels, width {s0['cho']['channel_width']:.1f} px, ROI "
              f"{s0['cho']['roi_size']} px, trained on the train split at the known lesion location, signal-absent ROIs "
              "at the same places of the lesion-free twins (the same seeds written without lesions)."]
    if "ceiling" in s0:
        lines.append(f"Ceiling: {s0['ceiling']['description']}")
    lines.append(f"Phantom at every setting: `{report['command_recipe']}` (same seeds; "
                 f"{report['seconds'] / 60:.1f} min in all).")
    return "\n".join(lines) + "\n"


def plot_png(report: dict, width: int = 720, height: int = 480) -> bytes:
    """The contrast-detail plot (AUC against the scale, log axis, 95 % intervals, the 0.75 line) as PNG."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 60, width - 210, 30, height - 50
    values = report["values"]
    positive = [v for v in values if v > 0]
    use_log = len(positive) >= 2
    floor = math.log(min(positive)) - math.log(2.0) if use_log else 0.0  # a 0 setting sits one octave lower

    def fx(v):
        return (math.log(v) if v > 0 else floor) if use_log else v

    xs = [fx(v) for v in values]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = 0.05 * (x1 - x0)
    x0, x1 = x0 - pad, x1 + pad
    y0, y1 = 0.3, 1.0

    def px(v):
        return left + (fx(v) - x0) / (x1 - x0) * (right - left)

    def py(a):
        return bottom - (min(max(a, y0), y1) - y0) / (y1 - y0) * (bottom - top)

    d.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    for a in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        d.line([left, py(a), right, py(a)], fill=(225, 225, 225))
        d.text((left - 32, py(a) - 6), f"{a:.1f}", fill=(0, 0, 0), font=font)
    d.line([left, py(report["target_auc"]), right, py(report["target_auc"])], fill=(90, 90, 90), width=1)
    d.line([left, py(0.5), right, py(0.5)], fill=(170, 170, 170))
    for v in values:
        d.line([px(v), bottom, px(v), bottom + 4], fill=(0, 0, 0))
        d.text((px(v) - 8, bottom + 8), f"{v:g}", fill=(0, 0, 0), font=font)
    d.text(((left + right) // 2 - 70, height - 22), f"lesion {report['axis']} scale" + (" (log)" if use_log else ""),
           fill=(0, 0, 0), font=font)
    d.text((left, 10), f"{report['bundle']}: AUC on the test split (95 % CI)", fill=(0, 0, 0), font=font)
    readers = [r for r in READERS if r in report["threshold"]]
    for k, r in enumerate(readers):
        colour = COLOURS[r]
        pts = []
        for j, s in enumerate(report["settings"]):
            block = s[r]
            x = px(values[j]) + (k - len(readers) / 2) * 3  # a small dodge so intervals do not hide each other
            lo, hi = block["auc_ci"]
            if lo is not None and math.isfinite(lo):
                d.line([x, py(lo), x, py(hi)], fill=colour, width=1)
            pts.append((x, py(block["auc"])))
        d.line(pts, fill=colour, width=2)
        for x, y in pts:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        d.line([right + 12, top + 10 + 18 * k, right + 32, top + 10 + 18 * k], fill=colour, width=3)
        d.text((right + 38, top + 4 + 18 * k), READER_TITLES[r], fill=(0, 0, 0), font=font)
    d.text((right + 12, top + 14 + 18 * len(readers)), f"grey line: AUC {report['target_auc']:.2f}", fill=(0, 0, 0),
           font=font)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def write_outputs(out_dir: Path, report: dict) -> None:
    """``contrast_detail.json``, ``.md`` and ``.png`` under ``out_dir``, each written atomically."""
    from inference.files import atomic_write_bytes, atomic_write_text

    out = Path(out_dir)
    atomic_write_text(out / "contrast_detail.json", json.dumps(report, indent=1, default=float) + "\n")
    atomic_write_text(out / "contrast_detail.md", markdown(report))
    atomic_write_bytes(out / "contrast_detail.png", plot_png(report))
