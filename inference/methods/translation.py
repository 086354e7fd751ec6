"""HealthyGAN inference on ONNX Runtime (paper 003): translate to a healthy image, subtract.

One forward pass gives the intermediate image B_int and the mask M; the healthy image is
``B' = B_int * M + x * (1 - M)`` (Eq. 1), the difference map ``|x - B'|`` and the image score the
mean of the map inside the breast (the paper scores with the mean of the difference image, which
its code computes over the whole image; mammolens restricts it to the breast so the background
and padding do not dilute it). Scores are computed in model space, where the calibration was
measured; maps are returned on the original pixel grid, each put there when first read
(:class:`~inference.preprocess.ModelSpaceMaps`).

The generator graph takes ``image`` (N, 1, R, R) in the bundle's ``input.value_range`` and returns
``intermediate`` (B_int, same range) and ``mask`` (M in [0, 1]); composition and scoring stay here,
in numpy, so the formula is visible and tested in one place.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from inference.jobs import CancelToken, check, report
from inference.methods.base import Engine
from inference.preprocess import ModelInput, ModelSpaceMaps, preprocess
from inference.result import Result


def healthy_image(x: np.ndarray, intermediate: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Eq. 1: B' = B_int * M + x * (1 - M)."""
    return intermediate * mask + x * (1.0 - mask)


def difference_score(difference: np.ndarray, breast: np.ndarray) -> float:
    """Mean of the difference map inside the breast (whole map when the mask is empty)."""
    return float(difference[breast].mean()) if breast.any() else float(difference.mean())


class TranslationEngine(Engine):
    """A translation bundle ready to run; ``sessions={"generator": ...}`` may be injected (tests)."""

    method = "translation"

    @property
    def session(self):
        return self.sessions["generator"]

    def forward(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, R, R) model-space images in [0, 1] -> (B_int in [0, 1], M), both (N, R, R)."""
        name = next(iter(self.session.inputs))
        feeds = {name: np.ascontiguousarray(self.to_network(images)[:, None])}
        out = self.session.run_batched(feeds, self.batch_size)
        intermediate, mask = (np.asarray(out[k])[:, 0] for k in list(out)[:2])
        return self.from_network(intermediate), mask

    def map_prepared(self, images: np.ndarray, masks: np.ndarray, cancel: CancelToken | None = None,
                     **parameters) -> np.ndarray:
        """The difference maps |x - B'| of preprocessed images, in model space (the masks are not needed)."""
        out = []
        for i in range(0, len(images), self.batch_size):
            check(cancel)
            out.append(self._maps(images[i : i + self.batch_size])[0])
        return np.concatenate(out) if out else np.zeros(np.shape(images), np.float32)

    def _maps(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(difference |x - B'|, B', M) of preprocessed images, all in model space."""
        inter, mask = self.forward(images)
        healthy = healthy_image(images, inter, mask)
        return np.abs(images - healthy), healthy, mask

    def score_prepared(self, images: np.ndarray, masks: np.ndarray, cancel: CancelToken | None = None,
                       **parameters) -> np.ndarray:
        """Scores of already preprocessed images (training data, calibration, evaluation)."""
        scores = []
        for start in range(0, len(images), self.batch_size):
            check(cancel)
            diff, _, _ = self._maps(images[start : start + self.batch_size])
            scores += [difference_score(d, m) for d, m in zip(diff, masks[start : start + self.batch_size])]
        return np.asarray(scores, dtype=np.float64)

    def run_many(self, displays: Sequence[np.ndarray], lateralities: Sequence[str], *, frames=None, progress=None,
                 cancel: CancelToken | None = None, **parameters) -> list[Result]:
        """Several frames (a folder, or the slices of a DBT volume), batched through the network."""
        frames = list(frames) if frames is not None else [None] * len(displays)
        results: list[Result] = []
        total = len(displays)
        for start in range(0, total, self.batch_size):
            check(cancel)
            t0 = time.perf_counter()
            chunk = [preprocess(d, lat, self.resolution)
                     for d, lat in zip(displays[start : start + self.batch_size], lateralities[start : start + self.batch_size])]
            t1 = time.perf_counter()
            x = np.stack([c.image for c in chunk])
            diff, healthy, mask = self._maps(x)
            t2 = time.perf_counter()
            for i, prepared in enumerate(chunk):
                results.append(self._result(prepared, diff[i], healthy[i], mask[i], frames[start + i],
                                            {"preprocess": (t1 - t0) / len(chunk), "network": (t2 - t1) / len(chunk)}))
            report(progress, min(start + self.batch_size, total), total, self.spec.title)
        return results

    def _result(self, prepared: ModelInput, difference, healthy, mask, frame, timings) -> Result:
        t0 = time.perf_counter()
        score = difference_score(difference, prepared.mask)
        # on the original grid when read (the difference inside the breast): a volume's slices
        # pay for the full-size maps only when one is shown or written
        maps = ModelSpaceMaps({"difference": difference, "mask": mask, "healthy": healthy}, prepared.geometry,
                              prepared.coarse_breast, masked=("difference",))
        timings = dict(timings, postprocess=time.perf_counter() - t0)
        return self.result(maps=maps, score=score, timings=timings, frame=frame,
                           parameters={"resolution": self.resolution})
