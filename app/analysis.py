"""Headless runs of a method over a study or a cohort: `mammolens analyze` and `evaluate`.

Outputs never carry patient identifiers: each image is named by its pseudonymous patient key,
study number and view ("Patient-1_study1_R-CC"), never by its file name (which often holds a
name). Everything is written atomically.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np

from inference.files import atomic_write_bytes, atomic_write_text

METHODS = {"healthygan": "translation", "translation": "translation"}


def load_model(method: str, model: str | None = None, device: str = "auto"):
    """The runnable model of ``method`` from an explicit bundle, a bundle name, or the bundled default."""
    from inference.bundle import resolve_bundle

    kind = METHODS.get(method)
    if kind is None:
        raise ValueError(f"unknown method {method!r}; available: {', '.join(sorted(METHODS))}")
    bundle = resolve_bundle(model, method=kind)
    if kind == "translation":
        from inference.translation import TranslationModel

        return TranslationModel(bundle, device=device)
    raise ValueError(f"method {method!r} has no engine yet")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def analyze_path(path: str | Path, method: str, out: str | Path, *, model: str | None = None, device: str = "auto",
                 all_slices: bool = False, progress=None, cancel=None) -> dict:
    """Run ``method`` on every image under ``path``; write maps, overlays and a score table."""
    from app.heatmap import VIRIDIS, compose, png_bytes, rgba_table, summarise
    from app.study import open_path

    engine = load_model(method, model, device)
    studies = open_path(path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for patient in studies.patients:
        for s_index, study in enumerate(patient.studies, 1):
            for image in study.images():
                name = _safe(f"{patient.key}_study{s_index}_{image.name}")
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
                                                  cancel=cancel)):
                if volume is not None:
                    volume[start + i] = r.maps["difference"]
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
        map_file, overlay_file = f"{name}{suffix}_difference.npy", f"{name}{suffix}_overlay.png"
        difference = shown.maps["difference"]
        np.save(buf := io.BytesIO(), difference.astype(np.float32))
        atomic_write_bytes(out / map_file, buf.getvalue())
        # coloured as the viewer colours it by default: the hottest 5 % of the breast over viridis
        summary = summarise(difference)
        table = rgba_table(VIRIDIS, summary.vmax, summary.default_threshold)
        atomic_write_bytes(out / overlay_file, png_bytes(compose(shown_display, difference, table, summary.vmax, 0.6)))
        if volume is not None:
            np.save(buf := io.BytesIO(), volume)
            atomic_write_bytes(out / f"{name}_difference_volume.npy", buf.getvalue())
        for k, r in zip(frames, results):
            records.append({
                "image": name, "laterality": image.laterality, "view": image.view,
                "slice": (k + 1) if image.is_volume else "", "score": r.score, "threshold": r.threshold,
                "decision": r.decision, "provider": r.provider,
                "map": map_file if r is shown else "", "overlay": overlay_file if r is shown else "",
                "seconds": round(sum(r.timings.values()), 4),
            })
    summary = {"method": method, "bundle": engine.bundle.name, "bundle_version": engine.bundle.version,
               "provider": engine.provider, "images": len(jobs), "results": records,
               "unreadable": [str(f) for f in studies.failures]}
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(records[0]) if records else ["image"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(out / "results.csv", text.getvalue())
    return summary


def evaluate_labels(labels: str | Path, *, method: str = "healthygan", model: str | None = None, split: str = "test",
                    device: str = "auto", progress=None) -> dict:
    """Scores of every 2D image of a labels split; metrics at the bundle's calibrated threshold."""
    from inference.metrics import evaluate
    from training.data import load_images

    engine = load_model(method, model, device)
    data = load_images(labels, engine.resolution, splits=(split,), progress=progress)
    scores = engine.score_prepared(data.images, data.masks)
    truth = (~data.is_normal).astype(int)
    threshold = engine.bundle.calibration.threshold if engine.bundle.calibration else None
    report = evaluate(truth, scores, threshold=threshold, classes=data.labels)
    report.update(bundle=engine.bundle.name, split=split, labels=Path(labels).name,
                  n_normal=int((truth == 0).sum()), n_abnormal=int((truth == 1).sum()),
                  threshold_source="bundle calibration" if threshold is not None else "Youden J on this split")
    return report
