"""HealthyGAN inference on ONNX Runtime (paper 003): translate to a healthy image, subtract.

One forward pass gives the intermediate image B_int and the mask M; the healthy image is
``B' = B_int * M + x * (1 - M)`` (Eq. 1), the difference map ``|x - B'|`` and the image score the
mean of the map inside the breast (the paper scores with the mean of the difference image, which
its code computes over the whole image; mammolens restricts it to the breast so the background
and padding do not dilute it). Scores are computed in model space, where the calibration was
measured; maps are returned on the original pixel grid.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from inference.jobs import CancelToken, report
from inference.preprocess import ModelInput, preprocess, to_original
from inference.result import Result


def healthy_image(x: np.ndarray, intermediate: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Eq. 1: B' = B_int * M + x * (1 - M)."""
    return intermediate * mask + x * (1.0 - mask)


def difference_score(difference: np.ndarray, breast: np.ndarray) -> float:
    """Mean of the difference map inside the breast (whole map when the mask is empty)."""
    return float(difference[breast].mean()) if breast.any() else float(difference.mean())


class TranslationModel:
    """A translation bundle ready to run; ``session`` may be injected (tests, benchmarks)."""

    method = "translation"

    def __init__(self, bundle, device: str = "auto", session=None, batch_size: int = 8):
        from inference.runtime import bundle_session

        self.bundle = bundle
        self.resolution = int(bundle.input.resolution)
        self.session = session or bundle_session(bundle, "generator", device=device)
        self.batch_size = batch_size
        self.input_name = next(iter(self.session.inputs))

    @property
    def provider(self) -> str:
        return getattr(self.session, "device_label", "CPU")

    def forward(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, R, R) model-space images in [0, 1] -> (B_int, M), both (N, R, R)."""
        feeds = {self.input_name: np.ascontiguousarray(images[:, None], dtype=np.float32)}
        out = self.session.run_batched(feeds, self.batch_size)
        intermediate, mask = (np.asarray(out[k])[:, 0] for k in list(out)[:2])
        return intermediate, mask

    def score_prepared(self, images: np.ndarray, masks: np.ndarray, cancel: CancelToken | None = None) -> np.ndarray:
        """Scores of already preprocessed images (training data, calibration, evaluation)."""
        scores = []
        for start in range(0, len(images), self.batch_size):
            if cancel is not None:
                cancel.raise_if_cancelled()
            x = images[start : start + self.batch_size]
            inter, mask = self.forward(x)
            diff = np.abs(x - healthy_image(x, inter, mask))
            scores += [difference_score(d, m) for d, m in zip(diff, masks[start : start + self.batch_size])]
        return np.asarray(scores, dtype=np.float64)

    def run(self, display: np.ndarray, laterality: str, *, frame: int | None = None, progress=None,
            cancel: CancelToken | None = None) -> Result:
        """One displayed frame ([0, 1]) -> Result with maps on the frame's own pixel grid."""
        return self.run_many([display], [laterality], frames=[frame], progress=progress, cancel=cancel)[0]

    def run_many(self, displays: Sequence[np.ndarray], lateralities: Sequence[str], *, frames=None, progress=None,
                 cancel: CancelToken | None = None) -> list[Result]:
        """Several frames (a folder, or the slices of a DBT volume), batched through the network."""
        frames = list(frames) if frames is not None else [None] * len(displays)
        results: list[Result] = []
        total = len(displays)
        for start in range(0, total, self.batch_size):
            if cancel is not None:
                cancel.raise_if_cancelled()
            t0 = time.perf_counter()
            chunk = [preprocess(d, lat, self.resolution)
                     for d, lat in zip(displays[start : start + self.batch_size], lateralities[start : start + self.batch_size])]
            t1 = time.perf_counter()
            x = np.stack([c.image for c in chunk])
            inter, mask = self.forward(x)
            t2 = time.perf_counter()
            for i, prepared in enumerate(chunk):
                results.append(self._result(prepared, x[i], inter[i], mask[i], frames[start + i],
                                            {"preprocess": (t1 - t0) / len(chunk), "network": (t2 - t1) / len(chunk)}))
            report(progress, min(start + self.batch_size, total), total, "HealthyGAN")
        return results

    def _result(self, prepared: ModelInput, x, inter, mask, frame, timings) -> Result:
        from inference.result import decide

        t0 = time.perf_counter()
        healthy = healthy_image(x, inter, mask)
        difference = np.abs(x - healthy)
        score = difference_score(difference, prepared.mask)
        g = prepared.geometry
        maps = {
            "difference": to_original(difference, g) * prepared.breast,
            "mask": to_original(mask, g),
            "healthy": to_original(healthy, g),
        }
        timings = dict(timings, postprocess=time.perf_counter() - t0)
        calibration = self.bundle.calibration
        threshold, decision = decide(score, calibration)
        return Result(method=self.method, bundle_name=self.bundle.name, bundle_version=self.bundle.version,
                      provider=self.provider, maps=maps, score=score, threshold=threshold, decision=decision,
                      timings=timings, frame=frame, parameters={"resolution": self.resolution})
