"""Headless runs of a method over a study or a cohort: `mammolens analyze` (`evaluate`: app.evaluation).

Outputs never carry patient identifiers: each image is named by its pseudonymous patient key,
study number and view ("Patient-1_study1_R-CC"), never by its file name (which often holds a
name). Everything is written atomically.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from inference.files import (
    atomic_write_bytes,
    atomic_write_text,
    safe_file_name,
    staged_folder,
)


def load_engine(method: str, model: str | None = None, device: str = "auto"):
    """The engine of ``method`` (a registry name or alias) for an explicit bundle, a bundle name, or
    the first bundle of that method found."""
    from inference.bundle import resolve_bundle
    from inference.methods import get

    spec = get(method)
    if not spec.has_engine:
        raise ValueError(f"{spec.title} has no engine in this version")
    return spec.load(resolve_bundle(model, method=spec.method), device)



def analyze_path(path: str | Path, method: str, out: str | Path, **options) -> dict:
    """Run ``method`` on every image under ``path``; write maps, overlays and a score table.

    The outputs are one set: written into a hidden sibling of ``out`` and swapped in when all are
    written, so ``out`` holds either the previous run's files or this run's, never a mix, and an
    interrupted run leaves no temporaries (the next run cleans what a killed one left). ``out``
    must be new, empty or an earlier analyze output. Options: see :func:`_analyze_into`.
    """
    from inference.errors import MammolensError

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(p for p in out.iterdir() if not p.name.startswith("."))
                                              and not (out / "results.json").is_file())):
        raise MammolensError(f"{out.name}: analyze writes its outputs as one set and would replace what this "
                             f"folder holds; choose a new or empty folder, or an earlier analyze output.")
    with staged_folder(out) as staging:
        return _analyze_into(path, method, staging, **options)


def _analyze_into(path: str | Path, method: str, out: Path, *, model: str | None = None, device: str = "auto",
                  all_slices: bool = False, progress=None, cancel=None, parameters: dict | None = None,
                  identifiers: bool = False) -> dict:
    """Run ``method`` on every image under ``path``; write maps, overlays and a score table into ``out``
    (unreadable files are listed by position and key unless ``identifiers``)."""
    from app.heatmap import calibrated_style, map_label, npy_bytes, overlay_png
    from inference.studies.study import open_path

    engine = load_engine(method, model, device)
    if not engine.spec.produces_map:
        raise ValueError(f"{engine.spec.title} does not produce maps; analyze runs map methods")
    run_arguments = engine.spec.run_arguments(parameters or {})
    main = engine.spec.maps[0]  # the method's main map (difference / error / heatmap)
    # the files are named by what the map holds: inpainting's per-window DMSE / MSE / critic loss
    main_label = map_label(engine.spec, parameters or {}, main)[0].replace(" ", "-")
    studies = open_path(path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for patient in studies.patients:
        for s_index, study in enumerate(patient.studies, 1):
            for image in study.images():
                name = safe_file_name(f"{patient.key}_study{s_index}_{image.name}")
                frames = list(range(image.n_frames)) if (image.is_volume and all_slices) else \
                    [image.n_frames // 2 if image.is_volume else 0]
                jobs.append((name, image, frames))
    total = sum(len(f) for _, _, f in jobs)
    done = 0
    records = []
    for name, image, frames in jobs:
        # slices go through the network a chunk at a time: a full-size volume's displays and
        # maps never sit in memory all at once (70 x 4.6 Mpixel x float32 would be 1.3 GB)
        volume = np.zeros((len(frames), image.rows, image.cols), np.float16) if len(frames) > 1 else None
        results, shown, shown_display = [], None, None
        chunk = getattr(engine, "batch_size", 8)
        for start in range(0, len(frames), chunk):
            part = frames[start:start + chunk]
            displays = [image.display(k) for k in part]

            def step(d, t, msg, base=done + start):
                if progress:
                    progress(base + d, total, name)

            for i, r in enumerate(engine.run_many(displays, [image.laterality] * len(part),
                                                  frames=part if image.is_volume else None, progress=step,
                                                  cancel=cancel, **run_arguments)):
                if volume is not None:
                    volume[start + i] = r.maps[main]
                if shown is None or r.score > shown.score:
                    if shown is not None:
                        shown.maps = {}
                    shown, shown_display = r, displays[i]
                elif r is not shown:
                    r.maps = {}  # only the highest-scoring slice keeps its full-size maps
                results.append(r)
        done += len(frames)
        k_shown = frames[results.index(shown)]
        suffix = f"_slice{k_shown + 1:03d}" if image.is_volume else ""
        map_file, overlay_file = f"{name}{suffix}_{main_label}.npy", f"{name}{suffix}_overlay.png"
        difference = shown.maps[main]
        atomic_write_bytes(out / map_file, npy_bytes(difference.astype(np.float32)))
        # coloured as the viewer colours a first map by default, with the screen's own table
        atomic_write_bytes(out / overlay_file, overlay_png(shown_display, difference, calibrated_style(difference, main)))
        if volume is not None:
            atomic_write_bytes(out / f"{name}_{main_label}_volume.npy", npy_bytes(volume))
        for k, r in zip(frames, results):
            records.append({
                "image": name, "laterality": image.laterality, "view": image.view,
                "slice": (k + 1) if image.is_volume else "", "score": r.score, "threshold": r.threshold,
                "decision": r.decision, "provider": r.provider,
                "map": map_file if r is shown else "", "overlay": overlay_file if r is shown else "",
                "seconds": round(sum(r.timings.values()), 4),
            })
    summary = {"method": engine.spec.method, "parameters": run_arguments, "fallback_reason": engine.fallback_reason,
               "bundle": engine.bundle.name, "bundle_version": engine.bundle.version,
               "provider": engine.provider, "images": len(jobs), "results": records,
               "unreadable": studies.unreadable(identifiers)}
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(records[0]) if records else ["image"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(out / "results.csv", text.getvalue())
    return summary
