"""StyleGAN2 projection on ONNX Runtime (paper 000, Park et al.): project, average, subtract.

A test image is projected onto the manifold of a StyleGAN2 trained on normal images only, from
``seeds`` starting points (the paper: 1, 9 or 16); the projections are averaged, the difference
map is ``|x - mean projection|`` and the image score its sum inside the breast divided by the
breast area (paper 000, Methods). The closest single projection (smallest mean |x - projection|
in the breast) is kept for display, as the paper's Figure 3 shows it.

The paper fixes none of the projector's settings ("minimising a perceptual loss"); this engine
runs the reference StyleGAN2 projector's schedule, in numpy, around the bundle's
``project_step`` graph (loss and its gradients with respect to ``w`` and the noise maps, one
ONNX Runtime call per step; no torch):

* W space (one w for every layer; W+ would reconstruct the anomalies too), started at w_avg
  (the mean of 10,000 mapped z, in the bundle with w_std, the root mean squared distance to it);
* ``steps`` steps (default 1000), Adam (betas 0.9 / 0.999, eps 1e-8) at learning rate 0.1 with
  a cosine ramp-down over the last 25 % of the steps and a linear ramp-up over the first 5 %;
* W noise: Gaussian noise of standard deviation ``w_std * 0.05 * max(0, 1 - t / 0.75)^2``
  (t = step / steps) added to w at each step, so it is gone by 75 % of the steps;
* the per-layer noise maps are optimised too, with the autocorrelation regulariser at weight
  1e5 (inside ``project_step``), and renormalised to zero mean and unit variance after each
  step; the optimised noise is kept for the final render;
* a seed fixes the initial noise maps and the W-noise stream (``numpy.random.default_rng``);
  seeds 0..k-1 are used, and the k projections of an image run as one batch;
* the perceptual loss is the bundle's (``parameters.perceptual_loss``): by default the
  critic's first feature maps plus a pixel term, nothing downloaded.

Scores are computed in model space (where the calibration was measured); maps are returned on
the original pixel grid. The projections of prepared images are cached by content, seeds and
steps, so ``evaluate`` scores and maps each image once, and a seed's projection serves every seed
count that includes it.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from inference.jobs import CancelToken, check, report
from inference.methods.base import Engine
from inference.preprocess import ModelInput, preprocess, to_original
from inference.result import Result

DEFAULTS = {"steps": 1000, "learning_rate": 0.1, "lr_rampup": 0.05, "lr_rampdown": 0.25, "w_noise_factor": 0.05,
            "w_noise_ramp": 0.75, "adam_betas": (0.9, 0.999), "adam_eps": 1e-8}
PREVIEWS = 10  # partial results delivered during a projection (every steps / PREVIEWS steps)
MAX_BATCH = 32  # projections run together (images x seeds)


def learning_rate(t: float, base: float = 0.1, rampup: float = 0.05, rampdown: float = 0.25) -> float:
    """The reference projector's schedule at ``t`` = step / steps: cosine ramp-down, linear ramp-up."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return base * ramp * min(1.0, t / rampup)


def w_noise_scale(t: float, w_std: float, factor: float = 0.05, ramp: float = 0.75) -> float:
    """Standard deviation of the noise added to w at ``t``: ``w_std * factor * max(0, 1 - t / ramp)^2``."""
    return w_std * factor * max(0.0, 1.0 - t / ramp) ** 2


def difference_score(difference: np.ndarray, breast: np.ndarray) -> float:
    """Sum of the difference inside the breast divided by the breast area (whole map when empty)."""
    return float(difference[breast].sum() / breast.sum()) if breast.any() else float(difference.mean())


class Adam:
    """Adam on a list of arrays (the reference projector's optimizer), the learning rate given per step."""

    def __init__(self, params: list[np.ndarray], betas=(0.9, 0.999), eps: float = 1e-8):
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.b1, self.b2 = betas
        self.eps, self.t = eps, 0

    def step(self, params: list[np.ndarray], grads: list[np.ndarray], lr: float) -> list[np.ndarray]:
        self.t += 1
        c1, c2 = 1.0 - self.b1 ** self.t, 1.0 - self.b2 ** self.t
        out = []
        for i, (p, g) in enumerate(zip(params, grads)):
            self.m[i] = self.b1 * self.m[i] + (1.0 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1.0 - self.b2) * g * g
            denom = np.sqrt(self.v[i]) / math.sqrt(c2) + self.eps
            out.append((p - (lr / c1) * self.m[i] / denom).astype(np.float32))
        return out


def renormalise(noise: np.ndarray) -> np.ndarray:
    """Each map to zero mean and unit variance (the reference's step after the update)."""
    n = noise - noise.mean(axis=(1, 2), keepdims=True)
    return (n / np.sqrt(np.square(n).mean(axis=(1, 2), keepdims=True))).astype(np.float32)


@dataclass
class Projection:
    """The projections of some images: ``renders`` (n, k, R, R) in [0, 1], the loss per step (steps, n, k)."""

    renders: np.ndarray
    losses: np.ndarray
    w: np.ndarray  # (n, k, w_dim), the final w (without W noise)

    @property
    def mean(self) -> np.ndarray:
        return self.renders.mean(axis=1)


class ProjectionEngine(Engine):
    """A projection bundle ready to run; ``sessions`` may be injected (tests)."""

    method = "projection"
    supports_preview = True  # run_many accepts ``partial`` and delivers the current render every few steps

    def __init__(self, bundle, device: str = "auto", *, sessions: dict | None = None):
        super().__init__(bundle, device, sessions=sessions)
        p = bundle.parameters
        self.w_avg = np.asarray(p["w_avg"], dtype=np.float32)
        self.w_std = float(p["w_std"])
        self.noise_shapes = [tuple(int(v) for v in s) for s in p["noise_shapes"]]
        self.settings = {**DEFAULTS, **{k: v for k, v in (p.get("projector") or {}).items() if k in DEFAULTS}}
        self._renders: dict[tuple, np.ndarray] = {}  # (image digest, steps) -> renders (seeds, R, R)

    # -- the projector -------------------------------------------------------------------------

    def step(self, targets: np.ndarray, w: np.ndarray, noise: list[np.ndarray]):
        """One ``project_step`` call: (loss (B,), image (B, R, R) in the network range, grad_w, grad noise)."""
        session = self.sessions["project_step"]
        names = list(session.inputs)
        out = list(session.run(dict(zip(names, [targets, w] + noise))).values())
        return out[0], out[1][:, 0], out[2], out[3:]

    def synthesise(self, w: np.ndarray, noise: list[np.ndarray]) -> np.ndarray:
        """Images (B, R, R) in [0, 1] from w (B, w_dim) and noise maps (B, r, r)."""
        session = self.sessions["synthesis"]
        out = session.run(dict(zip(list(session.inputs), [w] + noise)))
        return np.clip(self.from_network(next(iter(out.values()))[:, 0]), 0.0, 1.0)

    def initial_noise(self, seeds: int, first: int = 0) -> tuple[list[np.ndarray], list[np.random.Generator]]:
        """Per seed s (``first`` .. ``first + seeds - 1``): noise maps from ``default_rng(s)``, and that
        generator for the W-noise stream."""
        rngs = [np.random.default_rng(s) for s in range(first, first + seeds)]
        maps = [[rng.standard_normal((h, w), dtype=np.float32) for h, w in self.noise_shapes] for rng in rngs]
        return [np.stack([m[i] for m in maps]) for i in range(len(self.noise_shapes))], rngs

    def project(self, images: np.ndarray, seeds: int = 9, steps: int | None = None, *,
                on_step: Callable[[int, np.ndarray], None] | None = None, every: int = 0,
                cancel: CancelToken | None = None, first_seed: int = 0) -> Projection:
        """Project model-space images (n, R, R) in [0, 1] from ``seeds`` seeds each (``first_seed``
        onwards), as one batch. A seed's projection does not depend on the others in the batch.

        ``on_step(done, renders)`` is called every ``every`` steps (renders (n, k, R, R) in [0, 1]:
        the images of that step, W noise included) and the cancel token checked at every step.
        """
        s = self.settings
        steps = int(steps or s["steps"])
        n, k = len(images), int(seeds)
        b = n * k
        targets = np.repeat(self.to_network(images)[:, None], k, axis=0)  # (b, 1, R, R), image-major
        w = np.tile(self.w_avg, (b, 1)).astype(np.float32)
        noise0, rngs = self.initial_noise(k, first_seed)
        noise = [np.tile(m, (n, 1, 1)) for m in noise0]
        adam = Adam([w] + noise, s["adam_betas"], s["adam_eps"])
        losses = np.zeros((steps, b), dtype=np.float32)
        w_dim = w.shape[1]
        for i in range(steps):
            check(cancel)
            t = i / steps
            scale = w_noise_scale(t, self.w_std, s["w_noise_factor"], s["w_noise_ramp"])
            draws = np.stack([rng.standard_normal(w_dim, dtype=np.float32) for rng in rngs])  # (k, w_dim): per seed
            w_in = (w + np.tile(draws, (n, 1)) * np.float32(scale)).astype(np.float32)
            loss, image, grad_w, grad_noise = self.step(targets, w_in, noise)
            losses[i] = loss
            updated = adam.step([w] + noise, [grad_w] + list(grad_noise),
                                learning_rate(t, s["learning_rate"], s["lr_rampup"], s["lr_rampdown"]))
            w, noise = updated[0], [renormalise(m) for m in updated[1:]]
            if on_step is not None and every and (i + 1) % every == 0 and i + 1 < steps:
                on_step(i + 1, np.clip(self.from_network(image), 0, 1).reshape(n, k, *image.shape[1:]))
        renders = self.synthesise(w, noise).reshape(n, k, *targets.shape[2:])
        return Projection(renders, losses.reshape(steps, n, k), w.reshape(n, k, w_dim))

    # -- scores and maps of prepared images --------------------------------------------------------

    def _parameters(self, parameters: dict) -> tuple[int, int]:
        """(seeds, steps) as given, else the registry's seeds and the bundle's steps (``projector.steps``)."""
        seeds = self.spec.parameter("seeds").parse(parameters.get("seeds", self.spec.parameter("seeds").default))
        steps = self.spec.parameter("steps").parse(parameters.get("steps", int(self.settings["steps"])))
        return seeds, steps

    def _key(self, image: np.ndarray, steps: int) -> tuple:
        return hashlib.sha1(np.ascontiguousarray(image, dtype=np.float32).tobytes()).hexdigest(), steps

    def _project_cached(self, images: np.ndarray, masks: np.ndarray, seeds: int, steps: int,
                        cancel: CancelToken | None = None, progress=None):
        """(difference maps, scores) in model space.

        The renders of every seed are cached by image content and steps: seeds 0..k-1 of a
        16-seed projection are the 9-seed and 1-seed projections (a seed's projection does not
        depend on the batch), so asking for more seeds projects only the missing ones and fewer
        seeds reuse the first renders (Table 1's three rows cost 16 projections an image, not 26).
        """
        keys = [self._key(im, steps) for im in images]
        have = [len(self._renders[key]) if key in self._renders else 0 for key in keys]
        todo = [i for i, n in enumerate(have) if n < seeds]
        for first in sorted({have[i] for i in todo}):
            group = [i for i in todo if have[i] == first]
            per_batch = max(1, MAX_BATCH // (seeds - first))
            for start in range(0, len(group), per_batch):
                check(cancel)
                idx = group[start : start + per_batch]
                proj = self.project(images[idx], seeds - first, steps, cancel=cancel, first_seed=first)
                for j, i in enumerate(idx):
                    previous = self._renders.get(keys[i])
                    renders = proj.renders[j] if previous is None else np.concatenate([previous, proj.renders[j]])
                    self._renders[keys[i]] = renders
                report(progress, min(start + per_batch, len(group)), len(group), self.spec.title)
        diffs = [np.abs(im - self._renders[key][:seeds].mean(axis=0)).astype(np.float32) for im, key in zip(images, keys)]
        return diffs, np.array([difference_score(d, m) for d, m in zip(diffs, masks)])

    @staticmethod
    def _closest(image: np.ndarray, renders: np.ndarray, breast: np.ndarray) -> np.ndarray:
        errors = [np.abs(image - r)[breast].mean() if breast.any() else np.abs(image - r).mean() for r in renders]
        return renders[int(np.argmin(errors))]

    def score_prepared(self, images: np.ndarray, masks: np.ndarray, cancel: CancelToken | None = None,
                       **parameters) -> np.ndarray:
        """Scores of already preprocessed images (calibration, evaluation); ``seeds`` / ``steps`` as run."""
        seeds, steps = self._parameters(parameters)
        return self._project_cached(images, masks, seeds, steps, cancel)[1].astype(np.float64)

    def map_prepared(self, images: np.ndarray, masks: np.ndarray, cancel: CancelToken | None = None,
                     **parameters) -> np.ndarray:
        """The difference maps |x - mean projection| of preprocessed images, in model space."""
        seeds, steps = self._parameters(parameters)
        masks = masks if masks is not None else np.ones(images.shape, dtype=bool)
        return np.stack(self._project_cached(images, masks, seeds, steps)[0])

    # -- maps of displayed frames ----------------------------------------------------------------

    def run_many(self, displays: Sequence[np.ndarray], lateralities: Sequence[str], *, frames=None, progress=None,
                 cancel: CancelToken | None = None, partial: Callable[[Result], None] | None = None,
                 **parameters) -> list[Result]:
        """Project each frame (a DBT volume slice by slice) and map it.

        Progress is in frames, as for every engine (``analyze`` adds it up over a cohort): the
        frames' worth of steps done, rounded down, with the step in the message; the cancel token
        is checked at every step. With ``partial``, every ``steps / 10`` steps the current
        mean render and its difference map are delivered (``result.parameters["preview"]`` True,
        ``["step"]`` the step), so the overlay refines while the projection converges.
        """
        seeds, steps = self._parameters(parameters)
        frames = list(frames) if frames is not None else [None] * len(displays)
        n_frames = len(displays)
        results: list[Result] = []
        report(progress, 0, n_frames, self.spec.title)
        for f, (display, laterality) in enumerate(zip(displays, lateralities)):
            check(cancel)
            t0 = time.perf_counter()
            prepared = preprocess(display, laterality, self.resolution)
            t1 = time.perf_counter()

            def on_step(done: int, renders: np.ndarray, f=f, prepared=prepared) -> None:
                report(progress, min(n_frames - 1, (f * steps + done) // steps), n_frames,
                       f"{self.spec.title}: frame {f + 1} / {n_frames}, step {done} / {steps}")
                if partial is not None:
                    partial(self._result(prepared, renders[0], frames[f], seeds, steps, {}, step=done))

            proj = self.project(prepared.image[None], seeds, steps, on_step=on_step,
                                every=max(1, steps // PREVIEWS) if partial is not None else max(1, steps // 100),
                                cancel=cancel)
            t2 = time.perf_counter()
            results.append(self._result(prepared, proj.renders[0], frames[f], seeds, steps,
                                        {"preprocess": t1 - t0, "network": t2 - t1},
                                        final_loss=float(proj.losses[-1, 0].mean())))
            report(progress, f + 1, n_frames, self.spec.title)
        return results

    def _result(self, prepared: ModelInput, renders: np.ndarray, frame, seeds: int, steps: int, timings: dict, *,
                step: int | None = None, final_loss: float | None = None) -> Result:
        t0 = time.perf_counter()
        mean = renders.mean(axis=0)
        diff = np.abs(prepared.image - mean)
        score = difference_score(diff, prepared.mask)
        g = prepared.geometry
        maps = {"difference": to_original(diff, g) * prepared.breast,
                "projection": to_original(mean, g),
                "closest": to_original(self._closest(prepared.image, renders, prepared.mask), g)}
        parameters = {"resolution": self.resolution, "seeds": seeds, "steps": steps}
        if step is not None:
            parameters.update(preview=True, step=step)
        if final_loss is not None:
            parameters["final_loss"] = final_loss
        timings = dict(timings, postprocess=time.perf_counter() - t0)
        return self.result(maps=maps, score=score, timings=timings, frame=frame, parameters=parameters)
