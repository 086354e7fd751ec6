"""The engine contract every method implements.

An engine is built from a bundle and a device and offers what its method can do. Each capability
is a typed method of :class:`Engine` with one signature, and the registry checks, when a method
registers, that its engine implements every capability its spec declares:

* maps (``produces_map``): :meth:`Engine.run_many` -> one :class:`Result` per frame, maps on the
  original grid; :meth:`Engine.score_prepared`, image scores of already preprocessed images
  (calibration, validation during training and ``evaluate`` all call this one function); and
  :meth:`Engine.map_prepared`, their main maps in model space (the card's localisation);
* ROI completion (``completes_roi``): :meth:`Engine.complete`;
* patch generation (``generates_patches``): :meth:`Engine.generate`.

What is shared lives here: the ONNX Runtime sessions by role (one provider, its fallback reason
recorded), the bundle's declared input value range (networks may be trained on [-1, 1] while the
preprocessing contract produces [0, 1]), and :meth:`Engine.result`, the one constructor every
result goes through, so each records its bundle, the provider really used and why the GPU was not.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from inference.jobs import CancelToken
from inference.result import Result

if TYPE_CHECKING:  # pragma: no cover
    from inference.bundle import Bundle


class Engine:
    """Base of the method engines; subclasses set ``method`` and implement their capabilities."""

    method = ""
    batch_size = 8
    supports_preview = False  # run_many accepts ``partial`` and calls it with early, coarser results

    def __init__(self, bundle: "Bundle", device: str = "auto", *, sessions: dict | None = None):
        from inference.methods import get

        self.bundle = bundle
        self.device = device
        self.spec = get(bundle.method)
        self.resolution = int(bundle.input.resolution)
        self.sessions = dict(sessions or {})
        for role in self.spec.roles:
            if role not in self.sessions:
                self.sessions[role] = self.open_session(role)

    def open_session(self, role: str):
        from inference.runtime import bundle_session

        return bundle_session(self.bundle, role, device=self.device)

    # -- what every result records ---------------------------------------------------------------

    @property
    def provider(self) -> str:
        """The provider the networks really run on ("CUDA", "CPU"): the least capable of the sessions."""
        labels = [getattr(s, "device_label", "CPU") for s in self.sessions.values()]
        return "CPU" if "CPU" in labels or not labels else labels[0]

    @property
    def fallback_reason(self) -> str | None:
        reasons = [r for s in self.sessions.values() if (r := getattr(s, "fallback_reason", None))]
        return " ".join(dict.fromkeys(reasons)) or None

    def result(self, *, maps: dict[str, np.ndarray], score: float, timings: dict[str, float] | None = None,
               frame: int | None = None, parameters: dict | None = None, no_decision: str | None = None) -> Result:
        """The one constructor of results: bundle, calibrated decision, provider and fallback reason.

        ``no_decision``: a score the bundle's cut-off does not apply to (a drawn box against an
        image-level calibration), with the reason the result shows instead of a decision.
        """
        return Result.for_bundle(self.bundle, provider=self.provider, maps=maps, score=score, timings=timings,
                                 frame=frame, parameters=parameters, fallback_reason=self.fallback_reason,
                                 no_decision=no_decision)

    # -- the bundle's value range ----------------------------------------------------------------

    def to_network(self, images: np.ndarray) -> np.ndarray:
        """[0, 1] images of the preprocessing contract -> the range the bundle's networks take."""
        lo, hi = self.bundle.input.value_range
        x = np.asarray(images, dtype=np.float32)
        return x if (lo, hi) == (0.0, 1.0) else (x * np.float32(hi - lo) + np.float32(lo)).astype(np.float32)

    def from_network(self, images: np.ndarray) -> np.ndarray:
        """Images in the networks' range -> [0, 1]."""
        lo, hi = self.bundle.input.value_range
        x = np.asarray(images, dtype=np.float32)
        return x if (lo, hi) == (0.0, 1.0) else ((x - np.float32(lo)) / np.float32(hi - lo)).astype(np.float32)

    # -- capabilities (a method implements those its registry entry declares) ---------------------

    def score_prepared(self, images: np.ndarray, masks: np.ndarray, cancel: CancelToken | None = None,
                       **parameters) -> np.ndarray:
        """Image scores of preprocessed images ([0, 1], (N, R, R)) with their breast masks, at the
        method's run parameters."""
        raise NotImplementedError(f"{self.spec.title} does not score images")

    def map_prepared(self, images: np.ndarray, masks: np.ndarray, cancel: CancelToken | None = None,
                     **parameters) -> np.ndarray:
        """The main maps of preprocessed images in model space ((N, R, R), NaN where the method has
        no data), at the method's run parameters (the card's localisation)."""
        raise NotImplementedError(f"{self.spec.title} does not produce maps")

    def run_many(self, displays: Sequence[np.ndarray], lateralities: Sequence[str], *, frames=None, progress=None,
                 cancel: CancelToken | None = None, **parameters) -> list[Result]:
        raise NotImplementedError(f"{self.spec.title} does not produce maps")

    def run(self, display: np.ndarray, laterality: str, *, frame: int | None = None, progress=None,
            cancel: CancelToken | None = None, partial=None, **parameters) -> Result:
        """One displayed frame ([0, 1]) -> its Result.

        ``partial(result)``, when given and the engine ``supports_preview``, receives early results
        (a coarse preview) before the final one is returned; other engines ignore it.
        """
        if partial is not None and self.supports_preview:
            parameters["partial"] = partial
        return self.run_many([display], [laterality], frames=[frame], progress=progress, cancel=cancel,
                             **parameters)[0]

    def complete(self, display: np.ndarray, laterality: str, box, *, progress=None,
                 cancel: CancelToken | None = None, **parameters) -> Result:
        raise NotImplementedError(f"{self.spec.title} does not complete regions")

    def generate(self, label: str, count: int, seed: int, truncation: float = 1.0, *, progress=None,
                 cancel: CancelToken | None = None) -> np.ndarray:
        raise NotImplementedError(f"{self.spec.title} does not generate patches")
