"""What every method hands back: maps on the original pixels, a score and the calibrated decision.

The viewer draws ``maps`` straight over the image it already shows, so every map is in the
ORIGINAL image grid (the preprocessing has been undone; a method may keep them in model space
until read, :class:`~inference.preprocess.ModelSpaceMaps`); ``"difference"`` is the main map
(difference / error / heatmap), extras are named by the method (``"mask"`` for HealthyGAN's M,
``"translated"`` or ``"projection"`` for the reconstructed image, ...). The decision follows the
one rule of :mod:`inference.metrics`: ``score >= threshold`` is abnormal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from inference.bundle import Bundle, Calibration

ABNORMAL = "abnormal"
NORMAL = "normal"


def decide(score: float, calibration: "Calibration | float | None") -> tuple[float | None, str | None]:
    """``(threshold, decision)`` for a score under a bundle's calibration (or a bare threshold).

    No calibration, or a score that is not a finite number, gives no decision rather than a
    guessed one.
    """
    if calibration is None:
        return None, None
    threshold = float(getattr(calibration, "threshold", calibration))
    if not (math.isfinite(float(score)) and math.isfinite(threshold)):
        return threshold, None
    return threshold, ABNORMAL if float(score) >= threshold else NORMAL


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python numbers, arrays summarised by shape, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Result:
    """One method run on one frame (or one DBT slice)."""

    method: str
    bundle_name: str
    bundle_version: str
    provider: str  # device label actually used: "CUDA", "CPU", "TensorRT"
    maps: dict[str, np.ndarray]
    score: float
    threshold: float | None = None
    decision: str | None = None  # "abnormal" / "normal"; None without calibration
    no_decision: str | None = None  # why there is no decision, when the bundle has a calibration
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    frame: int | None = None  # DBT slice index
    parameters: dict = field(default_factory=dict)  # the method parameters actually used
    fallback_reason: str | None = None  # why the GPU was not used, when it was asked for

    @classmethod
    def for_bundle(cls, bundle: "Bundle", *, provider: str, maps: dict[str, np.ndarray], score: float,
                   timings: dict[str, float] | None = None, frame: int | None = None,
                   parameters: dict | None = None, fallback_reason: str | None = None,
                   no_decision: str | None = None) -> "Result":
        """A result stamped with the bundle's name, version and method, decided by its calibration.

        A calibrated cut-off belongs to the run parameters it was measured at: at other values the
        result has no threshold and no decision, and ``no_decision`` says why; a caller whose score
        no cut-off applies to passes its own ``no_decision``.
        """
        from inference.methods import get

        calibration = None if no_decision else bundle.calibration
        if calibration is not None and not calibration.applies_to(get(bundle.method), parameters or {}):
            calibration, no_decision = None, bundle.calibration.not_applicable(get(bundle.method), parameters or {})
        threshold, decision = decide(score, calibration)
        return cls(method=bundle.method, bundle_name=bundle.name, bundle_version=bundle.version,
                   provider=provider, maps=dict(maps) if isinstance(maps, dict) else maps,  # model-space maps stay lazy
                   score=float(score), threshold=threshold,
                   decision=decision, no_decision=no_decision, timings=dict(timings or {}), frame=frame,
                   parameters=dict(parameters or {}), fallback_reason=fallback_reason)

    @property
    def difference(self) -> np.ndarray:
        """The main map (``maps["difference"]``)."""
        try:
            return self.maps["difference"]
        except KeyError:
            raise KeyError(f"this {self.method} result has no 'difference' map (it has {sorted(self.maps)})") from None

    def map_shape(self, name: str) -> tuple[int, ...]:
        """A map's shape, without putting a model-space map on the original grid."""
        shape = getattr(self.maps, "shape_of", None)
        return shape(name) if shape is not None else np.shape(self.maps[name])

    def to_json_dict(self) -> dict:
        """Everything but the pixels: maps appear as their names and shapes (for logs and CSV/JSON exports)."""
        return {
            "method": self.method,
            "bundle_name": self.bundle_name,
            "bundle_version": self.bundle_version,
            "provider": self.provider,
            "score": _plain(float(self.score)),
            "threshold": _plain(self.threshold),
            "decision": self.decision,
            "no_decision": self.no_decision,
            "frame": self.frame,
            "maps": {name: list(self.map_shape(name)) for name in self.maps},
            "timings": _plain({k: float(v) for k, v in self.timings.items()}),
            "parameters": _plain(self.parameters),
            "fallback_reason": self.fallback_reason,
        }
