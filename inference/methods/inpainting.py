"""Inpainting heatmaps and ROI completion on ONNX Runtime (paper 002, Swiecicki et al. 2021).

Heatmap: windows of the model's field of view (``parameters.fov``) slide over the prepared image
(the preprocessing contract at ``input.resolution``) every ``stride`` pixels (paper 8); only
windows on breast tissue run (at least ``parameters.min_breast`` of the window, as in training).
In each window the centre ``hole`` x ``hole`` square is removed and completed by the generator,
and three errors are measured:

* **MSE**: mean squared error of the completion inside the hole, in display units ([0, 1]);
* **critic loss**: a WGAN critic's output D is an unbounded score (higher = more real) whose
  offset is arbitrary and drifts during training, so D of the completion alone is not a loss.
  We use the critic's own view of the pair it was trained to tell apart, the truth ``x`` and the
  completion ``x_hat`` of the same window: the gap ``D(x) - D(x_hat)`` (global critic on the window
  plus local critic on the hole; the offset cancels), mapped to a non-negative loss with the
  softplus, ``log(1 + exp(D(x) - D(x_hat)))``: monotone in the gap, about the gap itself when the
  completion is clearly judged less real than the truth, log 2 when the critic cannot tell them
  apart, towards 0 when it prefers the completion. The paper does not say how it made its
  "discriminator loss" non-negative; this is mammolens' choice;
* **DMSE** = MSE x critic loss (the paper's best, Table 2).

Two maps, on the model grid and then on the original pixels: **non-averaged** (paper Table 2):
each window's error fills the ``stride`` x ``stride`` cell around the window's centre;
**averaged**: each window's error is added to every pixel the window covers and divided by the
number of windows covering it. Pixels no window reaches (the border half a window wide, where
the windows cannot be centred, and breast tissue under windows that are mostly background) are
NaN: no data, not zero. The image score is the mean of the chosen map over the breast pixels that
have data.

Windows run in batches sized to the provider; a coarse stride gives a preview first, delivered
to ``partial(result)`` before the fine pass (:meth:`InpaintingEngine.run_many`). ROI completion
(:meth:`InpaintingEngine.complete`) takes a box in image coordinates, builds the window around it
with the box as the hole (the window is taken larger and resized down when the box exceeds the
model's hole) and returns completion, error and the three scores.

Graphs: ``generator`` (``image``, ``mask``: (N, 1, F, F), image in the bundle's value range, mask 1
on the hole) -> ``completion`` (the fine prediction everywhere; composed with the known pixels
here), ``critic`` (``window``) -> ``global``, ``local`` (N, 1) (the local critic on the centred
``hole`` crop).
"""
from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from inference.jobs import CancelToken, check, report
from inference.methods.base import Engine
from inference.preprocess import ModelInput, box_to_model_space, preprocess, to_original
from inference.result import Result
from inference.windows import window_origins

SCORES = ("dmse", "mse", "critic")
#: a drawn box's error is not an image score: the bundle's cut-off (whole images) does not apply
BOX_NO_DECISION = ("no cut-off for a drawn box: the bundle's is calibrated on whole-image scores, so the box's "
                   "error is shown without a decision")
HEATMAPS = ("non-averaged", "averaged")
CACHE_SIZE = 4096  # window errors of this many (networks, image, stride) kept: export's calibration and
# evaluate's card (six map kinds, val and test) reuse one pass per image within a process
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


@dataclass
class WindowErrors:
    """The errors of one image's windows: origins (N, 2) in model pixels and one value per window."""

    origins: np.ndarray
    mse: np.ndarray
    critic: np.ndarray

    @property
    def dmse(self) -> np.ndarray:
        return self.mse * self.critic

    def values(self, score: str) -> np.ndarray:
        if score not in SCORES:
            raise ValueError(f"the inpainting score must be one of {', '.join(SCORES)}, not {score!r}")
        return getattr(self, score)


def heatmap(errors: WindowErrors, shape: tuple[int, int], fov: int, stride: int, score: str = "dmse",
            kind: str = "non-averaged") -> np.ndarray:
    """A window error map on the model grid (float32, NaN where no window reaches).

    non-averaged: each window's value fills the ``stride`` x ``stride`` cell centred on the window's
    centre; averaged: added to every pixel the window covers, divided by the coverage.
    """
    values = errors.values(score).astype(np.float64)
    rows, cols = shape
    if kind == "non-averaged":
        out = np.full(shape, np.nan, dtype=np.float32)
        half = fov // 2 - stride // 2
        for (r, c), v in zip(errors.origins, values):
            out[r + half : r + half + stride, c + half : c + half + stride] = v
        return out
    if kind != "averaged":
        raise ValueError(f"the heatmap must be one of {', '.join(HEATMAPS)}, not {kind!r}")
    # 2-D difference arrays: +v at the window's corner, -v past its edges; two cumulative sums
    total = np.zeros((rows + 1, cols + 1), dtype=np.float64)
    count = np.zeros((rows + 1, cols + 1), dtype=np.float64)
    r, c = errors.origins[:, 0], errors.origins[:, 1]
    for arr, w in ((total, values), (count, np.ones_like(values))):
        np.add.at(arr, (r, c), w)
        np.add.at(arr, (r + fov, c), -w)
        np.add.at(arr, (r, c + fov), -w)
        np.add.at(arr, (r + fov, c + fov), w)
    total = total.cumsum(0).cumsum(1)[:rows, :cols]
    count = np.rint(count.cumsum(0).cumsum(1)[:rows, :cols])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def map_score(value_map: np.ndarray, breast: np.ndarray) -> float:
    """Mean of the map over the breast pixels that have data; 0 when no window reached the breast."""
    valid = breast & np.isfinite(value_map)
    return float(value_map[valid].mean()) if valid.any() else 0.0


class InpaintingEngine(Engine):
    """An inpainting bundle ready to run; ``sessions={"generator": ..., "critic": ...}`` may be injected."""

    method = "inpainting"
    supports_preview = True  # run_many accepts ``partial`` and delivers a coarse preview first

    def __init__(self, bundle, device: str = "auto", *, sessions: dict | None = None):
        super().__init__(bundle, device, sessions=sessions)
        p = bundle.parameters
        self.fov = int(p.get("fov", self.resolution))
        self.hole = int(p.get("hole", p.get("mask", self.fov // 2)))
        self.min_breast = float(p.get("min_breast", 0.5))
        self.window_batch = 256 if self.provider in ("CUDA", "TensorRT") else 64
        # the networks' hashes: the same weights give the same window errors, whatever the bundle's folder
        self.identity = tuple(bundle.networks[r].sha256 for r in self.spec.roles) if sessions is None else id(self)

    def preview_stride(self, stride: int) -> int:
        """The coarse pass's stride: half a window (at least twice the fine stride)."""
        return max(2 * int(stride), self.fov // 2)

    def _parameters(self, parameters: dict) -> dict:
        values = {**self.spec.defaults(), **parameters}
        return {name: self.spec.parameter(name).parse(values[name]) for name in ("stride", "score", "heatmap")}

    # -- the networks ----------------------------------------------------------------------------

    def centre_mask(self, n: int) -> np.ndarray:
        s = (self.fov - self.hole) // 2
        mask = np.zeros((n, self.fov, self.fov), np.float32)
        mask[:, s : s + self.hole, s : s + self.hole] = 1.0
        return mask

    def complete_windows(self, windows: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(N, F, F) windows in [0, 1] and hole masks -> completions in [0, 1] (known pixels kept)."""
        out = self.sessions["generator"].run({"image": self.to_network(windows)[:, None],
                                              "mask": np.ascontiguousarray(masks[:, None], dtype=np.float32)})
        fine = np.clip(self.from_network(next(iter(out.values()))[:, 0]), 0.0, 1.0)
        return fine * masks + windows * (1.0 - masks)

    def critic(self, windows: np.ndarray) -> np.ndarray:
        """D(window) = global + local (on the centred hole) critic outputs, one value per window."""
        out = self.sessions["critic"].run({"window": self.to_network(windows)[:, None]})
        return sum(np.asarray(v, dtype=np.float64).reshape(len(windows)) for v in out.values())

    def errors(self, windows: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(completions, MSE in the hole, critic loss softplus(D(x) - D(x_hat))) of a batch of windows."""
        completions = self.complete_windows(windows, masks)
        area = masks.reshape(len(masks), -1).sum(1)
        mse = ((completions - windows) ** 2 * masks).reshape(len(masks), -1).sum(1) / np.maximum(area, 1)
        d = self.critic(np.concatenate([windows, completions]))
        return completions, mse.astype(np.float64), softplus(d[: len(windows)] - d[len(windows) :])

    # -- window errors of one prepared image -----------------------------------------------------

    def window_errors(self, image: np.ndarray, breast: np.ndarray, stride: int, *,
                      progress: Callable[[int], None] | None = None, cancel: CancelToken | None = None) -> WindowErrors:
        """The errors of every breast window of a prepared image at ``stride`` (cached per image)."""
        digest = hashlib.sha1(np.ascontiguousarray(image, dtype=np.float32).tobytes() + np.packbits(breast).tobytes())
        key = (self.identity, self.window_batch, digest.hexdigest(), stride)
        with _CACHE_LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
        origins = window_origins(breast, self.fov, stride, self.min_breast)
        views = np.lib.stride_tricks.sliding_window_view(image, (self.fov, self.fov))
        mse, critic = np.zeros(len(origins)), np.zeros(len(origins))
        for start in range(0, len(origins), self.window_batch):
            check(cancel)
            part = origins[start : start + self.window_batch]
            windows = np.ascontiguousarray(views[part[:, 0], part[:, 1]], dtype=np.float32)
            _, mse[start : start + len(part)], critic[start : start + len(part)] = self.errors(
                windows, self.centre_mask(len(part)))
            if progress is not None:
                progress(len(part))
        errors = WindowErrors(origins, mse, critic)
        with _CACHE_LOCK:
            _CACHE[key] = errors
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
        return errors

    def count_windows(self, breast: np.ndarray, stride: int) -> int:
        return len(window_origins(breast, self.fov, stride, self.min_breast))

    # -- capabilities used by calibration and the card -------------------------------------------

    def map_prepared(self, images: np.ndarray, masks: np.ndarray, cancel: CancelToken | None = None,
                     **parameters) -> np.ndarray:
        """Heatmaps of prepared images in model space (NaN = no data), windows over the breast masks."""
        p = self._parameters(parameters)
        out = []
        for image, breast in zip(images, masks):
            check(cancel)
            errors = self.window_errors(image, breast, p["stride"])
            out.append(heatmap(errors, image.shape, self.fov, p["stride"], p["score"], p["heatmap"]))
        return np.stack(out) if out else np.zeros((0,) + tuple(np.shape(images)[1:]), np.float32)

    def score_prepared(self, images: np.ndarray, masks: np.ndarray, cancel: CancelToken | None = None,
                       **parameters) -> np.ndarray:
        """Image scores: the mean of the map over the breast pixels with data (paper's default: DMSE, non-averaged)."""
        scores = []
        for image, breast in zip(images, masks):
            check(cancel)
            scores.append(map_score(self.map_prepared(image[None], breast[None], **parameters)[0], breast))
        return np.asarray(scores, dtype=np.float64)

    # -- maps of displayed frames ----------------------------------------------------------------

    def run_many(self, displays: Sequence[np.ndarray], lateralities: Sequence[str], *, frames=None, progress=None,
                 cancel: CancelToken | None = None, partial: Callable[[Result], None] | None = None,
                 preview: bool | None = None, **parameters) -> list[Result]:
        """Heatmaps of several frames (a folder, or a DBT volume's slices) as one job.

        With ``partial`` (or ``preview=True``), every frame first gets a coarse pass at
        :meth:`preview_stride`, delivered to ``partial(result)`` at once (``result.parameters["preview"]``
        is True), then the fine pass at ``stride``; the returned results are the fine ones.
        Progress is in frames, as for every engine (``analyze`` adds it up over a cohort): after each
        batch of windows, the frames' worth of windows done over both passes, rounded down, with
        the window count in the message; the cancel token is checked between batches.
        """
        p = self._parameters(parameters)
        frames = list(frames) if frames is not None else [None] * len(displays)
        coarse = self.preview_stride(p["stride"])
        do_preview = (partial is not None if preview is None else preview) and coarse > p["stride"]
        prepared: list[ModelInput] = []
        for display, laterality in zip(displays, lateralities):
            check(cancel)
            prepared.append(preprocess(display, laterality, self.resolution))
        passes = ([coarse] if do_preview else []) + [p["stride"]]
        total = sum(self.count_windows(m.mask, s) for m in prepared for s in passes)
        n_frames, done = len(prepared), 0
        report(progress, 0, n_frames, self.spec.title)

        def step(n: int) -> None:
            nonlocal done
            done += n
            report(progress, min(n_frames - 1, n_frames * done // max(total, 1)), n_frames,
                   f"{self.spec.title}: {done} / {total} windows")

        results: list[Result] = []
        for stride in passes:
            final = stride == passes[-1]
            for i, m in enumerate(prepared):
                check(cancel)  # also between frames whose windows are cached
                t0 = time.perf_counter()
                errors = self.window_errors(m.image, m.mask, stride, progress=step, cancel=cancel)
                t1 = time.perf_counter()
                result = self._map_result(m, errors, stride, p, frames[i], preview=not final,
                                          timings={"network": t1 - t0})
                if final:
                    results.append(result)
                elif partial is not None:
                    partial(result)
        report(progress, n_frames, n_frames, self.spec.title)
        return results

    def _map_result(self, prepared: ModelInput, errors: WindowErrors, stride: int, p: dict, frame, *,
                    preview: bool, timings: dict) -> Result:
        t0 = time.perf_counter()
        model_map = heatmap(errors, prepared.image.shape, self.fov, stride, p["score"], p["heatmap"])
        score = map_score(model_map, prepared.mask)
        original = to_original(model_map, prepared.geometry)
        original = np.where(prepared.breast, original, np.float32(np.nan)).astype(np.float32)
        timings = dict(timings, postprocess=time.perf_counter() - t0)
        return self.result(maps={"difference": original}, score=score, timings=timings, frame=frame,
                           parameters={**p, "stride": stride, "preview": preview, "windows": len(errors.origins),
                                       "fov": self.fov, "hole": self.hole, "resolution": self.resolution})

    # -- ROI completion --------------------------------------------------------------------------

    def complete(self, display: np.ndarray, laterality: str, box, *, progress=None, cancel: CancelToken | None = None,
                 **parameters) -> Result:
        """Complete a user's box ``(x0, y0, x1, y1)`` (image pixels, x1 / y1 exclusive) from its surroundings.

        The window is centred on the box in model space; when the box is larger than the model's
        hole the window is taken ``scale`` times larger and resized to the FOV, so the box fits the
        hole. Maps on the original grid: ``completion`` (the image with the box completed) and
        ``error`` (|image - completion|, zero outside the box). ``score`` is the chosen error
        (default DMSE); ``parameters`` holds all three, the scale and the window in model pixels.
        """
        from skimage.transform import resize

        p = self._parameters(parameters)
        display = np.clip(np.asarray(display, dtype=np.float32), 0.0, 1.0)
        x0, y0, x1, y1 = _checked_box(box, display.shape)
        check(cancel)
        t0 = time.perf_counter()
        prepared = preprocess(display, laterality, self.resolution)
        _check_on_tissue((x0, y0, x1, y1), display, prepared.breast)
        bx0, by0, bx1, by1 = box_to_model_space((x0, y0, x1, y1), prepared.geometry)
        longest = max(bx1 - bx0, by1 - by0, 1e-6)
        scale = max(1.0, longest / self.hole)  # model pixels per window pixel
        side = int(math.ceil(self.fov * scale))
        cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
        r0, c0 = int(round(cy - side / 2)), int(round(cx - side / 2))
        res = self.resolution
        pad = side  # the window may reach past the image: edge padding, cut again below
        padded = np.pad(prepared.image, pad, mode="edge")
        region = padded[r0 + pad : r0 + pad + side, c0 + pad : c0 + pad + side]
        window = region if side == self.fov else resize(region, (self.fov, self.fov), order=1, anti_aliasing=True,
                                                        preserve_range=True).astype(np.float32)
        # the hole: the box in window pixels (at least one pixel)
        hx0, hx1 = (bx0 - c0) / scale, (bx1 - c0) / scale
        hy0, hy1 = (by0 - r0) / scale, (by1 - r0) / scale
        mask = np.zeros((self.fov, self.fov), np.float32)
        ry0, ry1 = int(math.floor(hy0)), max(int(math.ceil(hy1)), int(math.floor(hy0)) + 1)
        rx0, rx1 = int(math.floor(hx0)), max(int(math.ceil(hx1)), int(math.floor(hx0)) + 1)
        mask[max(0, ry0) : min(self.fov, ry1), max(0, rx0) : min(self.fov, rx1)] = 1.0
        report(progress, 0, 1, "completing")
        completion, mse, critic = self.errors(window[None], mask[None])
        t1 = time.perf_counter()
        # back to the model grid, then the original pixels; only the box changes
        filled = completion[0] if side == self.fov else resize(completion[0], (side, side), order=1,
                                                               preserve_range=True).astype(np.float32)
        model = padded.copy()
        model[r0 + pad : r0 + pad + side, c0 + pad : c0 + pad + side] = filled
        model = model[pad : pad + res, pad : pad + res]
        back = to_original(model, prepared.geometry)
        inside = np.zeros(display.shape, bool)
        inside[y0:y1, x0:x1] = True
        completed = np.where(inside, np.clip(back, 0.0, 1.0), display).astype(np.float32)
        error = np.abs(display - completed).astype(np.float32)
        scores = {"mse": float(mse[0]), "critic": float(critic[0]), "dmse": float(mse[0] * critic[0])}
        report(progress, 1, 1, "completed")
        return self.result(maps={"completion": completed, "error": error}, score=scores[p["score"]],
                           timings={"network": t1 - t0, "postprocess": time.perf_counter() - t1},
                           parameters={**scores, "score": p["score"], "box": [x0, y0, x1, y1],
                                       "box_model": [bx0, by0, bx1, by1], "scale": scale,
                                       "window_model": [c0, r0, c0 + side, r0 + side], "fov": self.fov,
                                       "hole": self.hole, "error_in_box_mean": float(error[inside].mean())},
                           no_decision=BOX_NO_DECISION)


#: at least this share of a box to complete must be breast: the model completes tissue from tissue
MIN_BREAST_IN_BOX = 0.5


def _check_on_tissue(box: tuple[int, int, int, int], display: np.ndarray, breast: np.ndarray) -> None:
    """ValueError (one sentence) for a box mostly outside the breast, or on pixels with no
    tissue in them (one flat value): completing air gives an all-black completion, MSE 0 and a
    "normal" that mean nothing."""
    x0, y0, x1, y1 = box
    share = float(np.asarray(breast[y0:y1, x0:x1], dtype=bool).mean())
    if share < MIN_BREAST_IN_BOX:
        raise ValueError(f"the box ({x0}, {y0}, {x1}, {y1}) lies outside the breast ({share:.0%} of it is breast, "
                         f"at least {MIN_BREAST_IN_BOX:.0%} needed): draw it on the tissue to complete.")
    pixels = display[y0:y1, x0:x1]
    if float(pixels.max()) - float(pixels.min()) < 1.0 / 255:
        raise ValueError(f"the box ({x0}, {y0}, {x1}, {y1}) holds no tissue (its pixels are one flat value "
                         f"{float(pixels.mean()):.3f}): draw it on the breast to complete.")


def _checked_box(box, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Integer box clipped to the image; ValueError (one sentence) when it is not a box inside it."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"the box must be four numbers x0,y0,x1,y1, not {box!r}.") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError("the box has a coordinate that is not a finite number.")
    rows, cols = shape
    ix0, iy0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    ix1, iy1 = min(cols, int(math.ceil(x1))), min(rows, int(math.ceil(y1)))
    if ix1 <= ix0 or iy1 <= iy0:
        raise ValueError(f"the box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) covers no pixel of the {cols} x {rows} image "
                         f"(it needs x0 < x1 and y0 < y1 inside the image).")
    return ix0, iy0, ix1, iy1
