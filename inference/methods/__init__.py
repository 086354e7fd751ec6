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
``training/<name>/`` (with its card sections) and one :func:`register` call; nothing else changes.

Capabilities are declared by the spec (``produces_map``, ``completes_roi``, ``generates_patches``)
and are typed methods of :class:`inference.methods.base.Engine`, one signature each;
:func:`register` checks that the engine class implements every capability its spec declares
(:data:`CAPABILITIES`) and refuses the spec with a sentence otherwise. A spec without an engine is
listed (the viewer says it is not there yet) but offered by no verb.
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inference.devices import DEVICES
from inference.errors import MammolensError

if TYPE_CHECKING:  # pragma: no cover
    from inference.bundle import Bundle
    from inference.methods.base import Engine


class MethodError(MammolensError, ValueError):
    """A method that is unknown, has no engine, or cannot do what was asked (one sentence)."""


#: each capability a spec can declare -> the Engine methods its engine must implement
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "produces_map": ("run_many", "map_prepared", "score_prepared"),
    "completes_roi": ("complete",),
    "generates_patches": ("generate",),
}

#: what each capability is, in words (for the sentence of a verb a method cannot do)
CAPABILITY_WORDS = {"produces_map": "draw anomaly maps", "completes_roi": "complete a drawn region",
                    "generates_patches": "generate lesion patches"}


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
    aliases: tuple[str, ...] = ()  # other command-line flags for it ("--n" for count)

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
    card: str | None = None  # "module:ATTRIBUTE", the method's evaluation-card sections (training side)

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

    def capabilities(self) -> tuple[str, ...]:
        return tuple(c for c in CAPABILITIES if getattr(self, c))

    def require(self, capability: str) -> "MethodSpec":
        """This spec, when it has an engine with ``capability``; else one sentence (MethodError)."""
        if not self.has_engine:
            raise MethodError(f"{self.title} has no engine in this version of mammolens.")
        if capability not in self.capabilities():
            able = [s.method for s in METHODS.values() if s.has_engine and capability in s.capabilities()]
            raise MethodError(f"{self.title} cannot {CAPABILITY_WORDS[capability]}"
                              + (f"; methods that can: {', '.join(able)}." if able else "."))
        return self

    def engine_class(self) -> type["Engine"]:
        if self.engine is None:
            raise MethodError(f"{self.title} has no engine in this version of mammolens.")
        return _import(self.engine)

    def card_sections(self) -> tuple:
        """The method's evaluation-card sections (imports its training package: torch)."""
        if self.card is None:
            raise MethodError(f"{self.title} has no evaluation card in this version of mammolens.")
        return tuple(_import(self.card))

    def load(self, bundle: "Bundle", device: str = "auto", *, threads: int | None = None) -> "Engine":
        """The engine for ``bundle`` on ``device`` (opens its ONNX Runtime sessions; ``threads`` caps
        each session's CPU threads, e.g. when several worker processes share the cores)."""
        check_engine(self)  # a deferred built-in entry is checked when first used
        sessions = None
        if threads is not None:
            from inference.runtime import bundle_session

            sessions = {role: bundle_session(bundle, role, device=device, threads=threads) for role in self.roles}
        return self.engine_class()(bundle, device=device, sessions=sessions)

    def training_package(self):
        """The method's training package (imports torch)."""
        if self.training is None:
            raise LookupError(f"{self.title} has no training package in this version")
        return importlib.import_module(self.training)


def _import(dotted: str):
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


METHODS: dict[str, MethodSpec] = {}


def check_engine(spec: MethodSpec) -> None:
    """The engine class implements every capability the spec declares (MethodError otherwise)."""
    from inference.methods.base import Engine

    cls = spec.engine_class()
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise MethodError(f"{spec.title}: its engine {spec.engine} is not an Engine.")
    missing = [f"{name} ({capability})" for capability in spec.capabilities() for name in CAPABILITIES[capability]
               if getattr(cls, name) is getattr(Engine, name)]
    if missing:
        raise MethodError(f"{spec.title} declares what its engine {cls.__name__} does not implement: "
                          f"{', '.join(missing)}.")


def register(spec: MethodSpec, *, defer_check: bool = False) -> MethodSpec:
    """Add (or replace) a method after checking its engine's capabilities; every consumer sees it from then on.

    ``defer_check``: the built-in entries below, whose engines are imported (numpy, ...) only when
    first used, so that ``mammolens --help`` stays fast; the suite checks them as register() would.
    """
    if spec.has_engine and not defer_check:
        check_engine(spec)
    METHODS[spec.method] = spec
    return spec


def unregister(method: str) -> None:
    METHODS.pop(method, None)


def get(name: str) -> MethodSpec:
    """The spec for a method key or alias ("translation" or "healthygan"); MethodError otherwise."""
    for spec in METHODS.values():
        if name in spec.names:
            return spec
    raise MethodError(f"unknown method {name!r}; available: {', '.join(method_names())}")


def method_names(capability: str | None = None) -> list[str]:
    """Every name the command line accepts for methods with an engine (and ``capability``), keys first."""
    specs = with_capability(capability)
    return [s.method for s in specs] + [a for s in specs for a in s.aliases]


def load_engine(method: str, model: str | None = None, device: str = "auto", *, capability: str | None = None,
                threads: int | None = None):
    """The engine of ``method`` (a registry name or alias) for an explicit bundle, a bundle name, or
    the first bundle of that method found; ``capability``: what the caller needs it to do;
    ``threads``: ONNX Runtime's CPU threads per session."""
    from inference.bundle import resolve_bundle

    spec = get(method)
    if capability is not None:
        spec.require(capability)
    elif not spec.has_engine:
        raise MethodError(f"{spec.title} has no engine in this version of mammolens.")
    return spec.load(resolve_bundle(model, method=spec.method), device, threads=threads)


def trainable() -> list[MethodSpec]:
    return [s for s in METHODS.values() if s.training is not None and s.engine is not None]


def with_capability(capability: str | None) -> list[MethodSpec]:
    """The methods with an engine that can do ``capability`` (None: every method with an engine)."""
    return [s for s in METHODS.values() if s.has_engine and (capability is None or capability in s.capabilities())]


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


def _builtin(spec: MethodSpec) -> MethodSpec:
    return register(spec, defer_check=True)


_builtin(MethodSpec(
    method="translation", title="HealthyGAN translation", aliases=("healthygan",),
    needs="needs a translation (HealthyGAN) model bundle", roles=("generator",),
    maps=("difference", "mask"),
    units={"difference": "|x - B'| (display units 0..1)", "mask": "mask M (0..1)"},
    parameters=(Parameter("map", "Map", "difference", choices=("difference", "mask"),
                          help="difference |x - B'| or the generator's mask M", affects_result=False), DEVICE),
    produces_map=True, engine="inference.methods.translation:TranslationEngine", training="training.healthygan",
    card="training.healthygan.card:SECTIONS", score="mean |x - B'| inside the breast"))

_builtin(MethodSpec(
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
    card="training.projection.card:SECTIONS", score="sum of |x - mean projection| inside the breast / breast area"))

_builtin(MethodSpec(
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
    card="training.inpainting.card:SECTIONS",
    score="mean of the non-averaged DMSE map over the breast pixels the windows reach"))

_builtin(MethodSpec(
    method="synthesis", title="Lesion synthesis", needs="needs a synthesis model bundle", roles=("generator",),
    parameters=(Parameter("label", "Class", "mass", help="lesion class (the bundle's parameters.classes)",
                          aliases=("--class",)),
                Parameter("count", "Count", 16, minimum=1, maximum=4096, help="patches to generate (per class)",
                          aliases=("--n",)),
                Parameter("seed", "Seed", 0, minimum=0, maximum=2**32 - 1,
                          help="noise seed: the same seed and bundle give the same patches"),
                Parameter("truncation", "Truncation", 1.0, minimum=0.01, maximum=1.0,
                          help="scales the uniform noise toward 0: < 1 trades diversity for typical patches"),
                DEVICE),
    generates_patches=True, engine="inference.methods.synthesis:SynthesisEngine", training="training.synthesis",
    card="training.synthesis.card:SECTIONS",
    score="none (a generator); quality by the paper's metrics"))
