"""The method registry: what the viewer can do with each kind of model bundle.

A bundle's ``method`` (``projection``, ``translation``, ``inpainting``, ``synthesis``) picks a
:class:`MethodSpec`: its title, the maps its results carry and their units, the parameters the
side panel edits, and ``load`` -- the function that turns a bundle into a runnable engine. A
method whose engine is not written yet has ``load=None``: the viewer still shows its controls,
disabled, with ``needs`` as the reason. Plugging an engine in later means setting ``load`` here
and nothing else in the viewer.

Engine protocols (duck-typed, so ``inference`` stays free of any viewer notion):

* map methods (``produces_map``): ``engine.run_many(displays, lateralities, frames=...,
  progress=..., cancel=..., **parameters) -> list[Result]`` with maps on the original grid;
* ROI completion (``completes_roi``): ``engine.complete(display, laterality, box, progress=...,
  cancel=...) -> Result`` with ``maps["completion"]`` and ``maps["error"]``;
* synthesis (``generates_patches``): ``engine.generate(label, count, seed, truncation,
  progress=..., cancel=...) -> numpy array (count, h, w) in [0, 1]``.

Qt-free: loading and running happen on the job runner's worker threads.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from inference.bundle import Bundle


@dataclass(frozen=True)
class Parameter:
    """One method parameter the side panel edits.

    ``choices`` makes a drop-down, otherwise ``minimum``/``maximum`` a number box. Parameters with
    ``affects_result`` are part of the result cache key and are passed to the engine's run; the
    others choose how the engine is built (``device``) or what is shown (``map``).
    """

    name: str
    label: str
    default: Any
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    affects_result: bool = True


@dataclass(frozen=True)
class MethodSpec:
    method: str  # the bundle method it serves
    title: str
    needs: str  # why its controls are disabled when no engine or bundle is there
    maps: tuple[str, ...] = ()  # result maps the viewer can show; the first is the default
    units: dict[str, str] = field(default_factory=dict)  # map name -> units shown on the colour bar
    parameters: tuple[Parameter, ...] = ()
    produces_map: bool = False
    completes_roi: bool = False
    generates_patches: bool = False
    load: Callable[["Bundle", str], Any] | None = None  # (bundle, device) -> engine; None: no engine yet

    @property
    def has_engine(self) -> bool:
        return self.load is not None

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}

    def result_key(self, values: dict[str, Any]) -> tuple:
        """The part of the parameters that changes the result (for the result cache key)."""
        return tuple(sorted((p.name, values.get(p.name, p.default)) for p in self.parameters if p.affects_result))

    def run_arguments(self, values: dict[str, Any]) -> dict[str, Any]:
        return {p.name: values.get(p.name, p.default) for p in self.parameters if p.affects_result}


def _load_translation(bundle: "Bundle", device: str):
    from inference.translation import TranslationModel

    return TranslationModel(bundle, device=device)


_DEVICE = Parameter("device", "Device", "auto", choices=("auto", "CUDA", "CPU"),
                    help="where ONNX Runtime runs the networks; auto tries the GPU and falls back to the CPU",
                    affects_result=False)

METHODS: dict[str, MethodSpec] = {
    "translation": MethodSpec(
        method="translation", title="HealthyGAN translation", needs="needs a translation (HealthyGAN) model bundle",
        maps=("difference", "mask"),
        units={"difference": "|x - B'| (display units 0..1)", "mask": "mask M (0..1)"},
        parameters=(Parameter("map", "Map", "difference", choices=("difference", "mask"),
                              help="difference |x - B'| or the generator's mask M", affects_result=False), _DEVICE),
        produces_map=True, load=_load_translation),
    "projection": MethodSpec(
        method="projection", title="StyleGAN2 projection", needs="needs a projection (StyleGAN2) model bundle",
        maps=("difference", "projection"), units={"difference": "|x - mean projection| (display units)"},
        parameters=(Parameter("seeds", "Seeds", 9, choices=(1, 9, 16), help="projections averaged"), _DEVICE),
        produces_map=True),
    "inpainting": MethodSpec(
        method="inpainting", title="Inpainting heatmap", needs="needs an inpainting model bundle",
        maps=("difference",), units={"difference": "DMSE (MSE x critic loss)"},
        parameters=(Parameter("stride", "Stride (px)", 8, minimum=4, maximum=128, help="window step"), _DEVICE),
        produces_map=True, completes_roi=True),
    "synthesis": MethodSpec(
        method="synthesis", title="Lesion synthesis", needs="needs a synthesis model bundle",
        parameters=(_DEVICE,), generates_patches=True),
}


def spec_for(bundle: "Bundle") -> MethodSpec:
    return METHODS[bundle.method]


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
        if spec.load is None:
            raise RuntimeError(f"{bundle.name}: {spec.title} has no engine in this version")
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
