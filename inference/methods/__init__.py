"""The method registry: the one table every consumer reads.

A bundle's ``method`` picks a :class:`MethodSpec`. The spec declares, once, everything the rest
of mammolens needs to know about a method: the network roles its bundles carry (the bundle
validator), the maps its results hold and their units (the viewer's colour bar, ``analyze``),
its run parameters with defaults, ranges, help and whether they change the result (the side
panel's controls, ``analyze`` / ``evaluate`` flags, the result cache key), what the engine can
do (maps, ROI completion, patch generation), where its engine class lives and where its training
package lives (``mammolens train`` / ``export``). Modules are named by dotted path and imported
only when used, so this table costs nothing to import and ``inference`` never imports
``training`` (the layers point down).

Adding a method is one engine module in ``inference/methods/``, one package in
``training/<name>/`` and one :func:`register` call below; nothing else changes.
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inference.devices import DEVICES

if TYPE_CHECKING:  # pragma: no cover
    from inference.bundle import Bundle
    from inference.methods.base import Engine


@dataclass(frozen=True)
class Parameter:
    """One method parameter, declared once for the side panel and the command line.

    ``choices`` makes a drop-down (and an argparse ``choices``), otherwise ``minimum`` /
    ``maximum`` bound a number. Parameters with ``affects_result`` are part of the result cache
    key and are passed to the engine's ``run_many``; the others choose how the engine is built
    (``device``) or what is shown (``map``).
    """

    name: str
    label: str
    default: Any
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    affects_result: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, value: Any) -> Any:
        """``value`` converted to the default's type and checked against choices / range (ValueError)."""
        kind = type(self.default)
        try:
            value = kind(value) if not isinstance(value, kind) else value
        except (TypeError, ValueError):
            raise ValueError(f"{self.label} must be {kind.__name__}, not {value!r}.") from None
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.label} must be one of {', '.join(map(str, self.choices))}, not {value!r}.")
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            raise ValueError(f"{self.label} must lie in {self.minimum}..{self.maximum}, not {value!r}.")
        return value


DEVICE = Parameter("device", "Device", DEVICES[0], choices=DEVICES,
                   help="where ONNX Runtime runs the networks; auto tries the GPU and falls back to the CPU",
                   affects_result=False)


@dataclass(frozen=True)
class MethodSpec:
    method: str  # the bundle's "method" field
    title: str
    needs: str  # why its controls are disabled when no engine or bundle is there
    roles: tuple[str, ...]  # networks every bundle of this method carries
    optional_roles: tuple[str, ...] = ()
    maps: tuple[str, ...] = ()  # result maps the viewer shows and caches; the first is the main one
    units: dict[str, str] = field(default_factory=dict)  # map name -> units on the colour bar
    parameters: tuple[Parameter, ...] = (DEVICE,)
    produces_map: bool = False
    completes_roi: bool = False
    generates_patches: bool = False
    engine: str | None = None  # "module:Class" of the engine; None: not written yet
    training: str | None = None  # the training package ("training.healthygan")
    aliases: tuple[str, ...] = ()  # other names the command line accepts ("healthygan")
    input_size_parameter: str | None = None  # a bundle parameter that sets the networks' input size ("fov")
    score: str = ""  # the paper's image score, in words (calibration and cards)

    @property
    def has_engine(self) -> bool:
        return self.engine is not None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.method,) + self.aliases

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}

    def result_key(self, values: dict[str, Any]) -> tuple:
        """The part of the parameters that changes the result (for the result cache key)."""
        return tuple(sorted((p.name, values.get(p.name, p.default)) for p in self.parameters if p.affects_result))

    def run_arguments(self, values: dict[str, Any]) -> dict[str, Any]:
        return {p.name: values.get(p.name, p.default) for p in self.parameters if p.affects_result}

    def engine_class(self) -> type["Engine"]:
        if self.engine is None:
            raise LookupError(f"{self.title} has no engine in this version")
        module, _, name = self.engine.partition(":")
        return getattr(importlib.import_module(module), name)

    def load(self, bundle: "Bundle", device: str = "auto") -> "Engine":
        """The engine for ``bundle`` on ``device`` (opens its ONNX Runtime sessions)."""
        return self.engine_class()(bundle, device=device)

    def training_package(self):
        """The method's training package (imports torch)."""
        if self.training is None:
            raise LookupError(f"{self.title} has no training package in this version")
        return importlib.import_module(self.training)


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add (or replace) a method; every consumer sees it from then on."""
    METHODS[spec.method] = spec
    return spec


def unregister(method: str) -> None:
    METHODS.pop(method, None)


def get(name: str) -> MethodSpec:
    """The spec for a method key or alias ("translation" or "healthygan"); ValueError otherwise."""
    for spec in METHODS.values():
        if name in spec.names:
            return spec
    raise ValueError(f"unknown method {name!r}; available: {', '.join(method_names())}")


def method_names() -> list[str]:
    """Every name the command line accepts, method keys first."""
    return [s.method for s in METHODS.values()] + [a for s in METHODS.values() for a in s.aliases]


def trainable() -> list[MethodSpec]:
    return [s for s in METHODS.values() if s.training is not None and s.engine is not None]


def spec_for(bundle: "Bundle") -> MethodSpec:
    return get(bundle.method)


def usable(bundle: "Bundle") -> bool:
    """True when this version has an engine for the bundle's method."""
    spec = METHODS.get(bundle.method)
    return spec is not None and spec.has_engine


def first_usable(bundles, capability: str) -> "Bundle | None":
    """The first bundle whose method has ``capability`` (``completes_roi``, ...) and an engine."""
    for bundle in bundles:
        spec = METHODS.get(bundle.method)
        if spec is not None and spec.has_engine and getattr(spec, capability):
            return bundle
    return None


def unavailable_reason(bundles, capability: str) -> str:
    """Why a capability's control is disabled (one tooltip sentence)."""
    spec = next(s for s in METHODS.values() if getattr(s, capability))
    reason = spec.needs[0].upper() + spec.needs[1:]
    if not spec.has_engine and any(b.method == spec.method for b in bundles):
        return f"{reason}; this version has no {spec.method} engine yet"
    return reason


class EngineCache:
    """Engines built once per (bundle, device), safe to ask for from several worker threads.

    Building an engine opens ONNX Runtime sessions (hundreds of ms), so it happens inside the job
    that first needs it, never on the UI thread.
    """

    def __init__(self):
        self._engines: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def get(self, bundle: "Bundle", device: str = "auto"):
        spec = spec_for(bundle)
        key = (bundle, device)
        with self._lock:  # one build per key even when two jobs ask at once
            engine = self._engines.get(key)
            if engine is None:
                engine = spec.load(bundle, device)
                self._engines[key] = engine
            return engine

    def clear(self) -> None:
        with self._lock:
            self._engines.clear()


# ---------------------------------------------------------------------------------------------
# the methods (defaults from the papers)

register(MethodSpec(
    method="translation", title="HealthyGAN translation", aliases=("healthygan",),
    needs="needs a translation (HealthyGAN) model bundle", roles=("generator",),
    maps=("difference", "mask"),
    units={"difference": "|x - B'| (display units 0..1)", "mask": "mask M (0..1)"},
    parameters=(Parameter("map", "Map", "difference", choices=("difference", "mask"),
                          help="difference |x - B'| or the generator's mask M", affects_result=False), DEVICE),
    produces_map=True, engine="inference.methods.translation:TranslationEngine", training="training.healthygan",
    score="mean |x - B'| inside the breast"))

register(MethodSpec(
    method="projection", title="StyleGAN2 projection", needs="needs a projection (StyleGAN2) model bundle",
    roles=("mapping", "synthesis", "project_step"), optional_roles=("encoder",),
    maps=("difference", "projection", "closest"),
    units={"difference": "|x - mean projection| (display units)", "projection": "mean projection (display units)",
           "closest": "closest single projection (display units)"},
    parameters=(Parameter("seeds", "Seeds", 9, choices=(1, 9, 16),
                          help="projections from different seeds, averaged (paper: 1, 9 or 16; 9 best)"),
                Parameter("steps", "Steps", 1000, minimum=1, maximum=10_000,
                          help="projector steps (reference projector 1000; the overlay refines while it runs)"),
                Parameter("map", "Map", "difference", choices=("difference", "projection", "closest"),
                          help="|x - mean projection|, the mean projection, or the closest single projection",
                          affects_result=False),
                DEVICE),
    produces_map=True, engine="inference.methods.projection:ProjectionEngine", training="training.projection",
    score="sum of |x - mean projection| inside the breast / breast area"))

register(MethodSpec(
    method="inpainting", title="Inpainting heatmap", needs="needs an inpainting model bundle",
    roles=("generator", "critic"), maps=("difference",),
    units={"difference": "completion error per window (DMSE = MSE x critic loss, or the one chosen)"},
    parameters=(Parameter("stride", "Stride (px)", 8, minimum=1, maximum=128,
                          help="window step in model pixels (paper 8); a coarse preview comes first"),
                Parameter("score", "Error", "dmse", choices=("dmse", "mse", "critic"),
                          help="per-window error: MSE in the hole, the critic's loss, or their product DMSE (paper)"),
                Parameter("heatmap", "Heatmap", "non-averaged", choices=("non-averaged", "averaged"),
                          help="non-averaged: each window's error at its centre (paper Table 2); averaged: added "
                               "to every pixel the window covers, divided by coverage"),
                DEVICE),
    produces_map=True, completes_roi=True, input_size_parameter="fov",
    engine="inference.methods.inpainting:InpaintingEngine", training="training.inpainting",
    score="mean of the non-averaged DMSE map over the breast pixels the windows reach"))

register(MethodSpec(
    method="synthesis", title="Lesion synthesis", needs="needs a synthesis model bundle", roles=("generator",),
    parameters=(Parameter("label", "Class", "mass", help="lesion class (the bundle's parameters.classes)"),
                Parameter("count", "Count", 16, minimum=1, maximum=4096, help="patches to generate"),
                Parameter("seed", "Seed", 0, minimum=0, maximum=2**32 - 1,
                          help="noise seed: the same seed and bundle give the same patches"),
                Parameter("truncation", "Truncation", 1.0, minimum=0.01, maximum=1.0,
                          help="scales the uniform noise toward 0: < 1 trades diversity for typical patches"),
                DEVICE),
    generates_patches=True, engine="inference.methods.synthesis:SynthesisEngine", training="training.synthesis",
    score="none (a generator); quality by the paper's metrics"))
