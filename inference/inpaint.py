"""Complete a box of an image headless (`mammolens inpaint`, paper 002's ROI completion).

The same call the viewer's "Inpaint rectangle" makes (:meth:`InpaintingEngine.complete`): the
box, in the image's pixel coordinates, becomes the hole of a window around it; the outputs are
crops around the box (the box plus half its size on each side, as the viewer shows them):
``original.png``, ``completion.png``, ``error.png`` (|original - completion| scaled to its
maximum, which ``scores.json`` records) and ``scores.json`` (MSE, critic loss, DMSE, the box in
model pixels, the scale, the bundle). All four are computed before any is written, then moved
into the folder together from a staging folder inside it; a failure leaves nothing behind.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from inference.errors import MammolensError

OUTPUTS = ("original.png", "completion.png", "error.png", "scores.json")


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` -> four numbers; MammolensError (one sentence) otherwise."""
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(np.isfinite(values)):
        raise MammolensError(f"--box must be four numbers x0,y0,x1,y1 in image pixels (e.g. 120,200,184,264), "
                             f"not {text!r}.")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise MammolensError(f"--box {text} is empty: it needs x0 < x1 and y0 < y1.")
    return values  # type: ignore[return-value]


def _crop(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[slice, slice]:
    x0, y0, x1, y1 = box
    pad = max(8, (x1 - x0) // 2, (y1 - y0) // 2)
    return slice(max(0, y0 - pad), min(shape[0], y1 + pad)), slice(max(0, x0 - pad), min(shape[1], x1 + pad))


def _grey(a: np.ndarray, top: float = 1.0) -> np.ndarray:
    return (np.clip(a / (top if top > 0 else 1.0), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def inpaint_file(path: str | Path, box, out: str | Path, *, model: str | None = None, device: str = "auto",
                 score: str = "dmse", frame: int | None = None, progress=None) -> dict:
    """Complete ``box`` of the first image under ``path`` (a DBT volume: ``frame``, default its middle slice)."""
    from inference.images import png_bytes
    from inference.methods import load_engine
    from inference.studies.study import open_path

    box = parse_box(",".join(str(v) for v in box)) if not isinstance(box, str) else parse_box(box)
    engine = load_engine("inpainting", model, device, capability="completes_roi")
    studies = open_path(path)
    images = [im for p in studies.patients for s in p.studies for im in s.images()]
    if not images:
        raise MammolensError(f"{Path(path).name} holds no image to inpaint.")
    image = images[0]
    k = (image.n_frames // 2 if frame is None else int(frame)) if image.is_volume else 0
    if not 0 <= k < image.n_frames:
        raise MammolensError(f"slice {k + 1} does not exist: the volume has {image.n_frames} slices.")
    display = np.asarray(image.display(k), dtype=np.float32)
    try:
        result = engine.complete(display, image.laterality or "L", box, progress=progress, score=score)
    except ValueError as exc:
        raise MammolensError(str(exc)) from None
    ibox = tuple(result.parameters["box"])
    rows, cols = _crop(ibox, display.shape)
    error = result.maps["error"][rows, cols]
    top = float(error.max())
    summary = {"image": image.name, "slice": (k + 1) if image.is_volume else None, "box": list(ibox),
               "crop": [cols.start, rows.start, cols.stop, rows.stop], "score": result.score,
               "score_kind": score, "mse": result.parameters["mse"], "critic": result.parameters["critic"],
               "dmse": result.parameters["dmse"], "error_png_max": top, "scale": result.parameters["scale"],
               "box_model": result.parameters["box_model"], "bundle": result.bundle_name,
               "bundle_version": result.bundle_version, "provider": result.provider,
               "threshold": result.threshold, "decision": result.decision, "no_decision": result.no_decision}
    files = {"original.png": png_bytes(_grey(display[rows, cols])),
             "completion.png": png_bytes(_grey(result.maps["completion"][rows, cols])),
             "error.png": png_bytes(_grey(error, top)),
             "scores.json": (json.dumps(summary, indent=2) + "\n").encode()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".inpaint-", dir=out))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        for name in files:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary
