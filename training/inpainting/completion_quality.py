"""How well an inpainting bundle completes held-out normal tissue, against a classical baseline.

For the normal images of a labels split, boxes of each size (original pixels) are placed at random
positions wholly inside the breast (seeded), completed through the engine's ROI completion (the
call the viewer and `mammolens inpaint` make) and by scikit-image's biharmonic inpainting
(``skimage.restoration.inpaint_biharmonic``, on the same display, same box) as the baseline.
Against the truth inside the box: L1 (mean absolute error, display units), PSNR (peak 1) and SSIM
(scikit-image, window 7). Texture: the power-spectrum slope beta (P(f) ~ f^-beta, radial average
of the Hann-windowed, mean-removed square, fitted on log-log between 2 cycles per box and a
quarter of the sampling rate) of the completed box against the mean beta of those of the four
same-size squares beside it (the ring around the box) that lie wholly in the breast; the truth's
own beta is given too. Boxes lie, with a margin of half their size where the breast allows it,
wholly inside the breast. The phantom's
anatomical noise has beta about 3 (a power-law spectrum, as in the breast-imaging observer literature),
flattened at high frequencies by detector noise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SIZES = (32, 64, 128)


def spectral_slope(patch: np.ndarray) -> float:
    """beta of P(f) ~ f^-beta for a square patch (NaN when it is too small or flat)."""
    p = np.asarray(patch, dtype=np.float64)
    n = min(p.shape)
    if n < 16:
        return float("nan")
    p = p[:n, :n] - p[:n, :n].mean()
    w = np.hanning(n)
    f = np.fft.fftshift(np.abs(np.fft.fft2(p * np.outer(w, w))) ** 2)
    yy, xx = np.indices((n, n)) - n // 2
    r = np.hypot(yy, xx).astype(int)
    counts = np.bincount(r.ravel())
    power = np.bincount(r.ravel(), f.ravel()) / np.maximum(counts, 1)
    radii = np.arange(len(power))
    keep = (radii >= 2) & (radii <= n // 4) & (power > 0)
    if keep.sum() < 3:
        return float("nan")
    slope = np.polyfit(np.log(radii[keep] / n), np.log(power[keep]), 1)[0]
    return float(-slope)


def _ring_slope(image: np.ndarray, breast: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    s = x1 - x0
    rows, cols = image.shape
    values = []
    for dy, dx in ((-s, 0), (s, 0), (0, -s), (0, s)):
        r, c = y0 + dy, x0 + dx
        if 0 <= r and r + s <= rows and 0 <= c and c + s <= cols and breast[r : r + s, c : c + s].all():
            values.append(spectral_slope(image[r : r + s, c : c + s]))
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _metrics(truth: np.ndarray, filled: np.ndarray) -> dict:
    from skimage.metrics import structural_similarity

    err = filled - truth
    mse = float(np.mean(err**2))
    return {"l1": float(np.mean(np.abs(err))), "psnr": float(10 * np.log10(1.0 / max(mse, 1e-12))),
            "ssim": float(structural_similarity(truth, filled, data_range=1.0, win_size=7)),
            "beta": spectral_slope(filled)}


def completion_quality(engine, labels: str | Path, *, split: str = "test", sizes=SIZES, images: int = 30,
                       seed: int = 0, progress=None) -> dict:
    """Completion quality of ``engine`` (an inpainting engine) on the normal images of ``split``."""
    from inference.baselines import biharmonic_box
    from inference.labels import image_label, read_labels, rows_by_image
    from inference.preprocess import breast_mask
    from inference.studies.study import open_path
    from inference.windows import window_origins

    labels = Path(labels)
    grouped = rows_by_image(read_labels(labels))
    normals = [rows for rows in grouped.values() if rows[0].split == split and image_label(rows) == "normal"]
    rng = np.random.default_rng(seed)
    chosen = [normals[i] for i in sorted(rng.choice(len(normals), size=min(images, len(normals)), replace=False))]
    rows_out = {s: {"model": [], "biharmonic": [], "truth_beta": [], "ring_beta": []} for s in sizes}
    for i, rows in enumerate(chosen):
        image = open_path(rows[0].resolve(labels.parent)).images()[0]
        if image.is_volume:
            continue
        display = np.clip(np.asarray(image.display(0), dtype=np.float32), 0, 1)
        breast = breast_mask(display)
        laterality = rows[0].laterality or image.laterality or "L"
        for s in sizes:
            # the box with a margin of half its size inside the breast; the ring squares that lie
            # wholly in the breast give the surroundings' beta
            origins, margin = window_origins(breast, 2 * s, 4, min_breast=1.0), s // 2
            if not len(origins):  # a large box in a small breast: the box alone inside it
                origins, margin = window_origins(breast, s, 4, min_breast=1.0), 0
            if not len(origins):
                continue
            r, c = origins[rng.integers(len(origins))] + margin
            box = (int(c), int(r), int(c + s), int(r + s))
            truth = display[r : r + s, c : c + s]
            result = engine.complete(display, laterality, box)
            model = result.maps["completion"][r : r + s, c : c + s]
            rows_out[s]["model"].append(_metrics(truth, model))
            rows_out[s]["biharmonic"].append(_metrics(truth, biharmonic_box(display, box)))
            rows_out[s]["truth_beta"].append(spectral_slope(truth))
            rows_out[s]["ring_beta"].append(_ring_slope(display, breast, box))
        if progress:
            progress(i + 1, len(chosen), "completion quality")
    summary = {"split": split, "images": len(chosen), "seed": seed, "sizes": {}}
    for s, block in rows_out.items():
        if not block["model"]:
            continue
        entry = {"n": len(block["model"]), "truth_beta_median": float(np.nanmedian(block["truth_beta"])),
                 "ring_beta_median": float(np.nanmedian(block["ring_beta"]))}
        for name in ("model", "biharmonic"):
            values = {k: np.array([m[k] for m in block[name]]) for k in ("l1", "psnr", "ssim", "beta")}
            entry[name] = {f"{k}_mean": float(np.nanmean(v)) for k, v in values.items()}
            entry[name]["beta_minus_ring_median"] = float(np.nanmedian(values["beta"] - np.array(block["ring_beta"])))
        summary["sizes"][str(s)] = entry
    return summary


def quality_markdown(q: dict) -> list[str]:
    lines = ["", f"## Completion quality (held-out normal tissue, split '{q['split']}', {q['images']} images, seed "
             f"{q['seed']})", "",
             "Boxes wholly inside the breast, completed by the model (ROI completion) and by scikit-image's biharmonic "
             "inpainting; L1 / PSNR / SSIM against the truth; beta = power-spectrum slope of the completed box, beside "
             "that of the four same-size squares around it (ring) and of the truth.", "",
             "| box (px) | n | model L1 | model PSNR | model SSIM | biharmonic L1 | biharmonic PSNR | biharmonic SSIM | "
             "beta model | beta biharmonic | beta truth | beta ring |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s, e in q["sizes"].items():
        m, b = e["model"], e["biharmonic"]
        lines.append(f"| {s} | {e['n']} | {m['l1_mean']:.4f} | {m['psnr_mean']:.2f} | {m['ssim_mean']:.3f} | "
                     f"{b['l1_mean']:.4f} | {b['psnr_mean']:.2f} | {b['ssim_mean']:.3f} | {m['beta_mean']:.2f} | "
                     f"{b['beta_mean']:.2f} | {e['truth_beta_median']:.2f} | {e['ring_beta_median']:.2f} |")
    return lines
