"""Model bundles: a folder with ``model.json`` and one ONNX file per network.

A bundle is the only thing that travels from ``training`` (export) to the app (inference), so
``model.json`` carries everything needed to use the networks correctly and to trust the result:
the method and the network roles it needs, each file's sha256, the preprocessing contract the
networks were trained with (input spec), the method parameters, the calibration measured on
held-out data and the provenance of the training run. Format version 1::

    {
      "format_version": 1,
      "name": "healthygan-phantom", "version": "1.0", "method": "translation",
      "description": "...",
      "networks": {"generator": {"file": "generator.onnx", "sha256": "<64 hex>",
                                 "inputs": ["image"], "outputs": ["intermediate", "mask"]}},
      "input": {"resolution": 256, "channels": 1, "value_range": [-1, 1],
                "laterality": "flip_right_to_left", "padding": "square_away_from_chest_wall",
                "windowing": "dicom_voi"},
      "parameters": {...free-form method parameters...},
      "calibration": {"score": "mean |x - B'| inside the breast", "threshold": 0.041,
                      "youden_j": 0.52, "auc": 0.83, "equal_sens_spec_threshold": 0.039,
                      "sensitivity": 0.8, "specificity": 0.72, "data": "phantom test split, seed 7",
                      "n_normal": 100, "n_abnormal": 100, "per_class": {"mass": {...}}} | null,
      "provenance": {"command": "...", "seed": 0, "iterations": 20000, "code_revision": "abc123",
                     "date": "2026-11-21", "device": "...", "training_data": "..."}
    }

Loading validates all of it, files and hashes included, because a model that silently runs with
the wrong preprocessing or a swapped file produces plausible-looking but wrong maps. Every
failure is a :class:`BundleError` whose message is one sentence naming the bundle folder and the
field. Unknown fields are rejected (a typo such as ``"calibraton"`` would otherwise silently drop
the calibration); ``parameters`` and ``provenance`` accept extra keys.

``inputs``/``outputs`` list the ONNX tensor names so the methods address tensors by name.
Image inputs are NCHW: every rank-4 input must take ``resolution x resolution`` pixels when its
spatial size is static (for inpainting, ``parameters.fov``, the window the networks see, when
given), and the first rank-4 input ``channels`` channels. Extra image-like inputs (an inpainting
mask) are expected as separate inputs, not extra channels.

Discovery (:func:`find_bundles`) looks, most specific first, in: folders the caller passes,
``$MAMMOLENS_MODELS`` (``os.pathsep``-separated), the user's data folder
(:func:`user_models_dir`) and the bundles shipped in ``resources/models``. Each of those is a
folder of bundle folders (or a bundle folder itself).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from inference.errors import MammolensError
from inference.files import atomic_write_text

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
CARD_JSON = "card.json"  # the evaluation card beside model.json (app.evaluation writes it)
MODELS_ENV = "MAMMOLENS_MODELS"



def _spec(method: str):
    """The registry entry of a method (the roles its bundles carry); imported late, no cycle."""
    from inference.methods import get

    return get(method)


def _method_names() -> tuple[str, ...]:
    from inference.methods import METHODS

    return tuple(METHODS)


# The preprocessing contract (inference/preprocess.py) implements exactly these; a bundle asking
# for anything else would be fed inputs it was not trained on, so it is refused at load time.
LATERALITY = ("flip_right_to_left",)
PADDING = ("square_away_from_chest_wall",)
WINDOWING = ("dicom_voi",)

_TOP_FIELDS = ("format_version", "name", "version", "method", "description", "networks", "input",
               "parameters", "calibration", "provenance")
_NETWORK_FIELDS = ("file", "sha256", "inputs", "outputs")
_INPUT_FIELDS = ("resolution", "channels", "value_range", "laterality", "padding", "windowing")
_CAL_RATES = ("auc", "sensitivity", "specificity", "precision", "f1")  # in [0, 1]
_CAL_NUMBERS = ("youden_j", "equal_sens_spec_threshold") + _CAL_RATES
_CAL_COUNTS = ("n_normal", "n_abnormal")
_CAL_FIELDS = ("score", "threshold", "data", "per_class", "parameters") + _CAL_NUMBERS + _CAL_COUNTS
_PROVENANCE_REQUIRED = {"command": str, "seed": int, "iterations": int, "code_revision": str, "date": str}
_PROVENANCE_OPTIONAL = {"device": str, "training_data": str}


#: Largest image side a bundle may ask for, channels, |value_range| and |scores| it may declare.
MAX_RESOLUTION = 8192
MAX_CHANNELS = 16
MAX_VALUE = 1e6
MAX_SCORE = 1e9
MAX_MODEL_JSON = 16 << 20

log = logging.getLogger("mammolens.bundle")


class BundleError(MammolensError, ValueError):
    """A model bundle that cannot be used; the message is one sentence naming the folder and field."""


# ---------------------------------------------------------------------------------------------
# data classes


@dataclass(frozen=True)
class InputSpec:
    """How images must be prepared for the networks (the preprocessing contract's parameters)."""

    resolution: int
    channels: int = 1
    value_range: tuple[float, float] = (0.0, 1.0)
    laterality: str = LATERALITY[0]
    padding: str = PADDING[0]
    windowing: str = WINDOWING[0]

    def to_dict(self) -> dict:
        return {"resolution": self.resolution, "channels": self.channels,
                "value_range": [self.value_range[0], self.value_range[1]], "laterality": self.laterality,
                "padding": self.padding, "windowing": self.windowing}


@dataclass(frozen=True)
class Calibration:
    """The cut-off on the method's score and how good it was, measured on held-out data."""

    threshold: float
    score: str = ""  # what the score is, in words
    data: str = ""  # what it was measured on
    youden_j: float | None = None
    auc: float | None = None
    equal_sens_spec_threshold: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    precision: float | None = None
    f1: float | None = None
    n_normal: int | None = None
    n_abnormal: int | None = None
    per_class: Mapping[str, Mapping[str, float]] = field(default_factory=dict, hash=False)
    #: the run parameters that change the score, as measured (empty: the method's defaults); a
    #: cut-off belongs to them and decides nothing at other values
    parameters: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def measured_at(self, spec) -> dict:
        """The run parameters this calibration was measured at (the method's defaults filled in)."""
        return spec.run_arguments(dict(self.parameters))

    def applies_to(self, spec, parameters: Mapping[str, Any]) -> bool:
        """True when a score at ``parameters`` is comparable with this cut-off."""
        return self.measured_at(spec) == spec.run_arguments(dict(parameters))

    def not_applicable(self, spec, parameters: Mapping[str, Any]) -> str:
        """Why there is no decision at ``parameters`` (one phrase naming the values that differ)."""
        measured, asked = self.measured_at(spec), spec.run_arguments(dict(parameters))
        differ = [name for name in asked if asked[name] != measured.get(name)]
        here = ", ".join(f"{n} {asked[n]}" for n in differ)
        there = ", ".join(f"{n} {measured.get(n)}" for n in differ)
        return f"no calibrated cut-off for {here} (the bundle's is for {there})"

    @classmethod
    def from_evaluation(cls, evaluation: Mapping[str, Any], *, score: str, data: str,
                        parameters: Mapping[str, Any] | None = None) -> "Calibration":
        """A calibration from :func:`inference.metrics.evaluate`'s result (at its ``threshold``)."""
        confusion = evaluation.get("confusion", {})

        def rate(key):
            value = confusion.get(key)
            return None if value is None or not math.isfinite(value) else float(value)

        per_class = {name: {k: v for k, v in block.items() if v is None or math.isfinite(v)}
                     for name, block in evaluation.get("per_class", {}).items()}
        return cls(threshold=float(evaluation["threshold"]), score=score, data=data,
                   youden_j=evaluation.get("youden_j"), auc=evaluation.get("auc"),
                   equal_sens_spec_threshold=evaluation.get("equal_sens_spec_threshold"),
                   sensitivity=rate("sensitivity"), specificity=rate("specificity"),
                   precision=rate("precision"), f1=rate("f1"),
                   n_normal=evaluation.get("n_normal"), n_abnormal=evaluation.get("n_abnormal"),
                   per_class=per_class, parameters=dict(parameters or {}))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"score": self.score, "threshold": self.threshold}
        for key in _CAL_NUMBERS + _CAL_COUNTS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["data"] = self.data
        if self.per_class:
            out["per_class"] = {name: dict(block) for name, block in self.per_class.items()}
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        return out


@dataclass(frozen=True)
class Network:
    """One ONNX file of a bundle, by the role the method gives it."""

    role: str
    path: Path  # absolute
    sha256: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def file(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Bundle:
    """A validated model bundle. Treat the mappings as read-only."""

    path: Path  # the bundle folder
    name: str
    version: str
    method: str
    networks: Mapping[str, Network] = field(hash=False)
    input: InputSpec
    parameters: Mapping[str, Any] = field(hash=False)
    calibration: Calibration | None = field(hash=False)
    provenance: Mapping[str, Any] = field(hash=False)
    description: str = ""

    def __hash__(self) -> int:  # usable as a cache key (sessions per bundle)
        return hash((self.path, self.name, self.version, self.method))

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def card(self) -> dict | None:
        """The evaluation card (``card.json``, written by ``mammolens evaluate``), or None."""
        try:
            return json.loads((self.path / CARD_JSON).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    @property
    def card_line(self) -> str | None:
        """The card's key line: what this model is worth, beside its baselines."""
        card = self.card
        return card.get("key_line") if isinstance(card, dict) else None

    @property
    def model_json(self) -> Path:
        return self.path / MODEL_JSON

    def network(self, role: str) -> Network:
        try:
            return self.networks[role]
        except KeyError:
            raise BundleError(f"{self.path.name}: this {self.method} bundle has no '{role}' network "
                              f"(it has {', '.join(self.networks)}).") from None

    def expected_size(self, role: str) -> tuple[int, str]:
        """The spatial size the role's image inputs must have, and the model.json field that says so.

        A method whose registry entry names an ``input_size_parameter`` (inpainting: ``fov``, the
        sliding window of paper 002) feeds networks that size; every other method the whole image.
        """
        name = _spec(self.method).input_size_parameter
        if name is not None and _is_int(self.parameters.get(name)):
            return int(self.parameters[name]), f"parameters.{name}"
        return self.input.resolution, "input.resolution"

    def check_input_size(self, role: str, input_shapes: Mapping[str, Sequence[int | None]]) -> None:
        """Refuse a network whose static NCHW input size disagrees with model.json.

        ``input_shapes`` maps input name to shape with None (or a string) for dynamic dims, as
        :attr:`inference.runtime.ModelSession.inputs` gives it.
        """
        network = self.network(role)
        size, field_name = self.expected_size(role)
        first_image = True
        for name, shape in input_shapes.items():
            if len(shape) != 4:
                continue
            dims = [d if _is_int(d) and d > 0 else None for d in shape]
            c, h, w = dims[1], dims[2], dims[3]
            if (h is not None and h != size) or (w is not None and w != size):
                shown = f"{h if h is not None else 'any'} x {w if w is not None else 'any'}"
                raise BundleError(f"{self.path.name}: {network.file} takes {shown} inputs but model.json says "
                                  f"{field_name} {size}.")
            if first_image and c is not None and c != self.input.channels:
                raise BundleError(f"{self.path.name}: {network.file} takes {c}-channel inputs but model.json says "
                                  f"input.channels {self.input.channels}.")
            first_image = False

    def check_io_names(self, role: str, inputs: Iterable[str], outputs: Iterable[str]) -> None:
        """Refuse a network whose tensor names differ from the ones model.json lists."""
        network = self.network(role)
        for kind, listed, actual in (("inputs", network.inputs, tuple(inputs)),
                                     ("outputs", network.outputs, tuple(outputs))):
            if set(listed) != set(actual):
                raise BundleError(f"{self.path.name}: networks.{role}.{kind} lists {list(listed)} but {network.file} "
                                  f"has {list(actual)}.")

    def to_dict(self) -> dict:
        """The model.json content of this bundle."""
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "method": self.method,
            "description": self.description,
            "networks": {role: {"file": _relative(n.path, self.path), "sha256": n.sha256,
                                "inputs": list(n.inputs), "outputs": list(n.outputs)}
                         for role, n in self.networks.items()},
            "input": self.input.to_dict(),
            "parameters": _plain_json(self.parameters),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "provenance": _plain_json(self.provenance),
        }


# ---------------------------------------------------------------------------------------------
# validation


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return path.as_posix()


def _plain_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays in parameters/provenance become plain JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Streamed sha256 of a file (ONNX files can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class _Reader:
    """Field checks that fail with the bundle's one-sentence error."""

    def __init__(self, label: str) -> None:
        self.label = label

    def error(self, text: str) -> BundleError:
        return BundleError(f"{self.label}: {text}")

    def bad(self, name: str, requirement: str, value: Any) -> BundleError:
        return self.error(f"model.json field '{name}' must be {requirement}, not {_show(value)}.")

    def take(self, mapping: Mapping, key: str, prefix: str, *, required: bool = True, default: Any = None) -> Any:
        if key in mapping:
            return mapping[key]
        if required:
            raise self.error(f"model.json is missing the field '{prefix}{key}'.")
        return default

    def no_unknown(self, mapping: Mapping, known: Sequence[str], where: str) -> None:
        for key in mapping:
            if key not in known:
                place = f"field '{where}'" if where else "top level"
                raise self.error(f"model.json has an unknown field '{key}' in its {place} "
                                 f"(known: {', '.join(known)}).")

    def obj(self, value: Any, name: str) -> Mapping:
        if not isinstance(value, dict):
            raise self.bad(name, "a JSON object", value)
        return value

    def text(self, value: Any, name: str, *, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.bad(name, "a string" if empty else "a non-empty string", value)
        return value

    def positive_int(self, value: Any, name: str, high: int | None = None) -> int:
        if not _is_int(value) or value <= 0:
            raise self.bad(name, "a positive integer", value)
        if high is not None and value > high:
            raise self.bad(name, f"a positive integer of at most {high}", value)
        return int(value)

    def count(self, value: Any, name: str) -> int:
        if not _is_int(value) or value < 0:
            raise self.bad(name, "a non-negative integer", value)
        return int(value)

    def finite(self, value: Any, name: str, limit: float | None = None) -> float:
        if not _is_number(value) or not math.isfinite(value):
            raise self.bad(name, "a finite number", value)
        if limit is not None and abs(value) > limit:
            raise self.bad(name, f"a number between -{limit:g} and {limit:g}", value)
        return float(value)

    def choice(self, value: Any, name: str, choices: Sequence[str]) -> str:
        if value not in choices:
            raise self.bad(name, "one of " + ", ".join(choices), value)
        return value

    def names(self, value: Any, name: str) -> tuple[str, ...]:
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, str) and v for v in value) or len(set(value)) != len(value)):
            raise self.bad(name, "a non-empty list of distinct tensor names", value)
        return tuple(value)


def _parse_input(r: _Reader, data: Any) -> InputSpec:
    spec = r.obj(data, "input")
    r.no_unknown(spec, _INPUT_FIELDS, "input")
    resolution = r.positive_int(r.take(spec, "resolution", "input."), "input.resolution", MAX_RESOLUTION)
    channels = r.positive_int(r.take(spec, "channels", "input."), "input.channels", MAX_CHANNELS)
    value_range = r.take(spec, "value_range", "input.")
    if (not isinstance(value_range, list) or len(value_range) != 2
            or not all(_is_number(v) and math.isfinite(v) for v in value_range) or value_range[0] >= value_range[1]):
        raise r.bad("input.value_range", "two finite numbers [lo, hi] with lo < hi", value_range)
    if any(abs(v) > MAX_VALUE for v in value_range):
        raise r.bad("input.value_range", f"two numbers between -{MAX_VALUE:g} and {MAX_VALUE:g}", value_range)
    laterality = r.choice(spec.get("laterality", LATERALITY[0]), "input.laterality", LATERALITY)
    padding = r.choice(spec.get("padding", PADDING[0]), "input.padding", PADDING)
    windowing = r.choice(spec.get("windowing", WINDOWING[0]), "input.windowing", WINDOWING)
    return InputSpec(resolution, channels, (float(value_range[0]), float(value_range[1])),
                     laterality, padding, windowing)


def _parse_calibration(r: _Reader, data: Any) -> Calibration | None:
    if data is None:
        return None
    cal = r.obj(data, "calibration")
    r.no_unknown(cal, _CAL_FIELDS, "calibration")
    values: dict[str, Any] = {
        "threshold": r.finite(r.take(cal, "threshold", "calibration."), "calibration.threshold", MAX_SCORE),
        "score": r.text(cal.get("score", ""), "calibration.score", empty=True),
        "data": r.text(cal.get("data", ""), "calibration.data", empty=True),
    }
    for key in _CAL_NUMBERS:
        value = cal.get(key)
        if value is not None:
            value = r.finite(value, f"calibration.{key}", MAX_SCORE)
            if key in _CAL_RATES and not 0.0 <= value <= 1.0:
                raise r.bad(f"calibration.{key}", "a number between 0 and 1", value)
        values[key] = value
    for key in _CAL_COUNTS:
        value = cal.get(key)
        values[key] = None if value is None else r.count(value, f"calibration.{key}")
    per_class = {}
    for name, block in r.obj(cal.get("per_class", {}), "calibration.per_class").items():
        block = r.obj(block, f"calibration.per_class.{name}")
        for key, value in block.items():
            if value is not None:
                r.finite(value, f"calibration.per_class.{name}.{key}")
        per_class[name] = dict(block)
    parameters = dict(r.obj(cal.get("parameters", {}), "calibration.parameters"))
    for name, value in parameters.items():
        if not isinstance(value, (str, int, float, bool)):
            raise r.bad(f"calibration.parameters.{name}", "a number, text or true/false", value)
    return Calibration(per_class=per_class, parameters=parameters, **values)


def _parse_provenance(r: _Reader, data: Any) -> dict:
    prov = r.obj(data, "provenance")
    for key, kind in _PROVENANCE_REQUIRED.items():
        value = r.take(prov, key, "provenance.")
        if kind is int:
            r.count(value, f"provenance.{key}")
        else:
            r.text(value, f"provenance.{key}", empty=True)
    for key in _PROVENANCE_OPTIONAL:
        if key in prov:
            r.text(prov[key], f"provenance.{key}", empty=True)
    return dict(prov)


def _parse_networks(r: _Reader, data: Any, method: str, folder: Path) -> dict[str, dict]:
    networks = r.obj(data, "networks")
    spec = _spec(method)
    required = spec.roles
    allowed = required + spec.optional_roles
    for role in required:
        if role not in networks:
            raise r.error(f"model.json field 'networks' lacks the '{role}' network {_a(method)} bundle requires.")
    for role in networks:
        if role not in allowed:
            raise r.error(f"model.json field 'networks' has a '{role}' network, which {_a(method)} bundle does not "
                          f"use (it uses {', '.join(allowed)}).")
    parsed = {}
    root = folder.resolve()
    for role, entry in networks.items():
        prefix = f"networks.{role}."
        entry = r.obj(entry, f"networks.{role}")
        r.no_unknown(entry, _NETWORK_FIELDS, f"networks.{role}")
        file = r.text(r.take(entry, "file", prefix), prefix + "file")
        if (len(file) > 1024 or any(len(part) > 255 for part in Path(file).parts)
                or any(ord(c) < 32 or c == "\x7f" for c in file)):
            raise r.bad(prefix + "file", "a file name of at most 255 characters per folder, without control "
                                         "characters", file)
        path = (folder / file)
        try:
            inside = not Path(file).is_absolute() and path.resolve().is_relative_to(root)
        except (OSError, ValueError, RuntimeError):  # a loop of links, a name the system refuses
            inside = False
        if not inside:
            raise r.bad(prefix + "file", "a path inside the bundle folder", file)
        sha = r.take(entry, "sha256", prefix)
        if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdefABCDEF" for c in sha)):
            raise r.bad(prefix + "sha256", "64 hexadecimal digits", sha)
        parsed[role] = {"path": path, "sha256": sha.lower(),
                        "inputs": r.names(r.take(entry, "inputs", prefix), prefix + "inputs"),
                        "outputs": r.names(r.take(entry, "outputs", prefix), prefix + "outputs")}
    return parsed


def _parse(folder: Path, data: Any, label: str | None = None) -> Bundle:
    """Validate model.json content for ``folder``; files and hashes are checked last (the slow part)."""
    r = _Reader(label or folder.name)
    if not isinstance(data, dict):
        raise r.error(f"model.json must hold a JSON object, not {type(data).__name__}.")
    r.no_unknown(data, _TOP_FIELDS, "")
    fmt = r.take(data, "format_version", "")
    if not _is_int(fmt):
        raise r.bad("format_version", "an integer", fmt)
    if fmt != FORMAT_VERSION:
        raise r.error(f"model.json format_version {fmt} is not supported (this mammolens reads {FORMAT_VERSION}).")
    name = r.text(r.take(data, "name", ""), "name")
    version = r.text(r.take(data, "version", ""), "version")
    method = r.choice(r.take(data, "method", ""), "method", _method_names())
    description = r.text(data.get("description", ""), "description", empty=True)
    networks = _parse_networks(r, r.take(data, "networks", ""), method, folder)
    spec = _parse_input(r, r.take(data, "input", ""))
    parameters = dict(r.obj(data.get("parameters", {}), "parameters"))
    size_parameter = _spec(method).input_size_parameter
    if size_parameter is not None and size_parameter in parameters:
        r.positive_int(parameters[size_parameter], f"parameters.{size_parameter}", MAX_RESOLUTION)
    calibration = _parse_calibration(r, r.take(data, "calibration", ""))
    provenance = _parse_provenance(r, r.take(data, "provenance", ""))

    built = {}
    for role, n in networks.items():
        path: Path = n["path"]
        if not path.is_file():
            raise r.error(f"networks.{role}: file {_relative(path, folder)} does not exist.")
        try:
            actual = sha256_of(path)
        except OSError as exc:
            raise r.error(f"networks.{role}: {_relative(path, folder)} cannot be read ({exc.strerror or exc}).") from None
        if actual != n["sha256"]:
            raise r.error(f"networks.{role}: {_relative(path, folder)} does not match its sha256 "
                          f"(file changed or corrupt).")
        built[role] = Network(role, path.resolve(), n["sha256"], n["inputs"], n["outputs"])
    return Bundle(path=folder.resolve(), name=name, version=version, method=method, networks=built, input=spec,
                  parameters=parameters, calibration=calibration, provenance=provenance, description=description)


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Load and fully validate the bundle in folder ``path`` (or ``path`` = its model.json)."""
    path = Path(path).expanduser()
    folder = path.parent if path.name == MODEL_JSON and path.is_file() else path
    if not folder.is_dir():
        raise BundleError(f"{folder.name or folder}: model bundle folder {folder} does not exist.")
    model_json = folder / MODEL_JSON
    if not model_json.is_file():
        raise BundleError(f"{folder.name}: no {MODEL_JSON} in {folder} (not a model bundle).")
    try:
        outside = model_json.is_symlink() and not model_json.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        outside = True
    if outside:
        raise BundleError(f"{folder.name}: model.json is a link to a file outside the bundle folder; "
                          f"a bundle's files must be inside it.")
    try:
        if model_json.stat().st_size > MAX_MODEL_JSON:
            raise BundleError(f"{folder.name}: model.json is larger than {MAX_MODEL_JSON // 2**20} MB, "
                              f"too large to be a model description.")
        text = model_json.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"{folder.name}: model.json is not UTF-8 text.") from None
    except OSError as exc:
        raise BundleError(f"{folder.name}: model.json cannot be read ({exc.strerror or exc}).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{folder.name}: model.json is not valid JSON ({exc.msg} at line {exc.lineno}, "
                          f"column {exc.colno}).") from None
    except RecursionError:
        raise BundleError(f"{folder.name}: model.json is nested too deeply to be a model description.") from None
    try:
        return _parse(folder, data)
    except RecursionError:
        raise BundleError(f"{folder.name}: model.json is nested too deeply to be a model description.") from None


# ---------------------------------------------------------------------------------------------
# writing


def _place_network(stage: Path, final: Path, role: str, source: Path, taken: dict[Path, str]) -> Path:
    """The network's file in the staging folder: at its relative place when it already lies inside the
    bundle folder ``final`` (or the stage; hard-linked when possible), else copied as ``<role>.onnx``."""
    source = source.expanduser()
    if not source.is_file():
        raise BundleError(f"{final.name}: networks.{role}: {source} does not exist.")
    resolved = source.resolve()
    inside = next((resolved.relative_to(root) for root in (stage.resolve(), final.resolve())
                   if resolved.is_relative_to(root)), None)
    target = stage.resolve() / (inside if inside is not None else f"{role}.onnx")
    if target in taken:
        if inside is not None:
            raise BundleError(f"{final.name}: networks.{role} and networks.{taken[target]} are the same file.")
        raise BundleError(f"{final.name}: networks.{role}: cannot copy {source.name} to {target.name}, "
                          f"which holds the '{taken[target]}' network.")
    if resolved != target:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if inside is None:
                raise OSError("a file from outside is copied: a link would change when its source is rewritten")
            os.link(resolved, target)  # the old bundle folder goes away after the swap
        except OSError:
            shutil.copyfile(resolved, target)
    taken[target] = role
    return target


def write_bundle(folder: str | os.PathLike, *, name: str, version: str, method: str,
                 networks: Mapping[str, Any], input: InputSpec | Mapping[str, Any],
                 parameters: Mapping[str, Any] | None = None,
                 calibration: Calibration | Mapping[str, Any] | None = None,
                 provenance: Mapping[str, Any], description: str = "", calibrate=None) -> Bundle:
    """Write a bundle into ``folder`` and return it loaded (so it is validated exactly as users will load it).

    ``networks`` maps role to an ONNX file path (copied into the folder as ``<role>.onnx`` when
    it lies outside; kept at its place when inside), or to ``{"path": ..., "inputs": [...],
    "outputs": [...]}`` to give the tensor names; without names a CPU ONNX Runtime session reads
    them, and the static input size is checked against ``input`` at the same time.

    The bundle is written as a set: into a hidden sibling folder, validated, then swapped in
    (:func:`inference.files.staged_folder`), so ``folder`` holds the previous good bundle or the
    new one, never a mix; a failed or killed write leaves the old bundle and no temporaries.
    Other files of an old bundle folder (an evaluation card) do not carry over: they described it.

    ``calibrate(bundle)``, when given, is called with the validated bundle before model.json is
    written (its networks already in place, staged) and returns the calibration model.json is then
    written with: an export's model.json is written once, calibrated.
    """
    from inference.files import staged_folder

    final = Path(folder).expanduser()
    with staged_folder(final) as stage:
        _write_bundle_files(stage, final, name=name, version=version, method=method, networks=networks,
                            input=input, parameters=parameters, calibration=calibration, provenance=provenance,
                            description=description, calibrate=calibrate)
    return load_bundle(final)


def _write_bundle_files(folder: Path, final: Path, *, name, version, method, networks, input, parameters,
                        calibration, provenance, description, calibrate=None) -> None:
    """The bundle's files in the staging ``folder``; messages name the ``final`` folder."""
    taken: dict[Path, str] = {}
    entries: dict[str, dict] = {}
    shapes: dict[str, dict] = {}
    for role, source in networks.items():
        given_inputs = given_outputs = None
        if isinstance(source, Network):
            source, given_inputs, given_outputs = source.path, source.inputs, source.outputs
        elif isinstance(source, Mapping):
            given_inputs, given_outputs = source.get("inputs"), source.get("outputs")
            source = source.get("path", source.get("file"))
            if source is None:
                raise BundleError(f"{final.name}: networks.{role} needs a 'path' to its ONNX file.")
        target = _place_network(folder, final, role, Path(source), taken)
        if given_inputs is None or given_outputs is None:
            from inference.runtime import create_session

            try:
                session = create_session(target, device="cpu", threads=1)
            except (KeyboardInterrupt, SystemExit, MemoryError):
                raise
            except Exception:  # noqa: BLE001 - ONNX Runtime's own types
                raise BundleError(f"{final.name}: networks.{role}: {Path(source).name[:80]} is not an ONNX model "
                                  f"ONNX Runtime can load.") from None
            shapes[role] = session.inputs
            given_inputs = given_inputs or list(session.inputs)
            given_outputs = given_outputs or list(session.outputs)
        entries[role] = {"file": _relative(target, folder.resolve()), "sha256": sha256_of(target),
                         "inputs": list(given_inputs), "outputs": list(given_outputs)}

    spec = input.to_dict() if isinstance(input, InputSpec) else dict(input)
    if isinstance(calibration, Calibration):
        calibration = calibration.to_dict()
    data = {
        "format_version": FORMAT_VERSION, "name": name, "version": version, "method": method,
        "description": description, "networks": entries, "input": spec,
        "parameters": dict(parameters or {}),
        "calibration": None if calibration is None else dict(calibration),
        "provenance": dict(provenance),
    }
    try:
        text = json.dumps(data, indent=2, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{final.name}: model.json content is not JSON-serialisable ({exc}).") from None
    bundle = _parse(folder, json.loads(text), label=final.name)
    named = dataclasses.replace(bundle, path=final)  # its sentences name the final folder, not the stage
    for role, role_shapes in shapes.items():
        named.check_input_size(role, role_shapes)
    if calibrate is not None:
        result = calibrate(bundle)
        data["calibration"] = result.to_dict() if isinstance(result, Calibration) else dict(result)
        bundle = _parse(folder, json.loads(json.dumps(data, default=_json_default, allow_nan=True)), label=final.name)
    # written in its normalised form: defaults filled in, so the file says everything that applies
    atomic_write_text(folder / MODEL_JSON, json.dumps(bundle.to_dict(), indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# discovery


def user_models_dir() -> Path:
    """Where a user installs bundles: ``<user data dir>/mammolens/models``."""
    import platformdirs

    # appauthor=False: no "mammolens\mammolens" doubling on Windows
    return Path(platformdirs.user_data_dir("mammolens", appauthor=False)) / "models"


def bundled_models_dir() -> Path:
    """The bundles shipped with the package (``resources/models``; may not exist)."""
    from importlib.resources import files

    return Path(os.fspath(files("resources") / "models"))


def model_search_dirs(extra_dirs: Iterable[str | os.PathLike] = ()) -> list[tuple[Path, str]]:
    """``(folder, where it came from)``, most specific first: caller, $MAMMOLENS_MODELS, user, bundled."""
    dirs: list[tuple[Path, str]] = [(Path(d).expanduser(), "extra folder") for d in extra_dirs]
    for entry in os.environ.get(MODELS_ENV, "").split(os.pathsep):
        if entry.strip():
            dirs.append((Path(entry.strip()).expanduser(), MODELS_ENV))
    dirs.append((user_models_dir(), "user models folder"))
    dirs.append((bundled_models_dir(), "bundled models"))
    return dirs


def _candidates(folder: Path) -> list[Path]:
    if (folder / MODEL_JSON).is_file():
        return [folder]
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    return [p for p in children if (p / MODEL_JSON).is_file()]


def find_bundles(extra_dirs: Iterable[str | os.PathLike] = ()) -> tuple[list[Bundle], list[BundleError]]:
    """Every valid bundle in the search folders, and one error per invalid one (never raised).

    Folders without model.json are not bundles and are skipped silently; a folder the caller or
    $MAMMOLENS_MODELS names that does not exist is reported. Bundles are ordered as the search
    folders (most specific first), then by folder name.
    """
    bundles: list[Bundle] = []
    errors: list[BundleError] = []
    seen: set[Path] = set()
    for folder, origin in model_search_dirs(extra_dirs):
        if not folder.is_dir():
            if origin in ("extra folder", MODELS_ENV):
                errors.append(BundleError(f"{folder.name or folder}: the models folder {folder} ({origin}) "
                                          f"does not exist."))
            continue
        for candidate in _candidates(folder):
            key = candidate.resolve()
            if key in seen:
                continue
            seen.add(key)
            try:
                bundles.append(load_bundle(candidate))
            except BundleError as exc:
                errors.append(exc)
            except OSError as exc:
                errors.append(BundleError(f"{candidate.name}: cannot be read ({exc.strerror or exc})."))
            except (KeyboardInterrupt, SystemExit, MemoryError):
                raise
            except Exception as exc:  # noqa: BLE001 - one broken bundle never stops the others
                log.warning("bundle %s skipped: %s", candidate.name, type(exc).__name__)
                errors.append(BundleError(f"{candidate.name}: cannot be loaded (an unexpected "
                                          f"{type(exc).__name__}; details in the log)."))
    return bundles, errors


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or (os.altsep is not None and os.altsep in text) or text.endswith(".json")


def resolve_bundle(name_or_path: str | os.PathLike | None = None, method: str | None = None, *,
                   extra_dirs: Iterable[str | os.PathLike] = ()) -> Bundle:
    """The bundle a user means: an explicit folder, else a bundle name, else the first bundle of ``method``."""
    if method is not None and method not in _method_names():
        raise BundleError(f"Unknown method {method!r} (known: {', '.join(_method_names())}).")
    if name_or_path is None and method is None:
        raise BundleError("Name a model bundle (a folder or a bundle name) or a method to pick one for.")

    def check_method(bundle: Bundle) -> Bundle:
        if method is not None and bundle.method != method:
            raise BundleError(f"{bundle.path.name}: this is {_a(bundle.method)} bundle, but {_a(method)} bundle is needed.")
        return bundle

    if name_or_path is not None:
        candidate = Path(name_or_path).expanduser()
        if isinstance(name_or_path, os.PathLike) or candidate.exists() or _looks_like_path(str(name_or_path)):
            return check_method(load_bundle(candidate))

    extra_dirs = list(extra_dirs)
    bundles, errors = find_bundles(extra_dirs)
    searched = ", ".join(str(d) for d, _ in model_search_dirs(extra_dirs))
    if name_or_path is not None:
        wanted = str(name_or_path)
        for bundle in bundles:
            if bundle.name == wanted and (method is None or bundle.method == method):
                return bundle
        for bundle in bundles:
            if bundle.name == wanted:
                return check_method(bundle)
        for error in errors:  # a broken bundle in a folder of that name: its own error says why
            if str(error).startswith(f"{wanted}: "):
                raise error
        names = ", ".join(sorted({b.name for b in bundles})) or "none"
        raise BundleError(f"No model bundle named {wanted!r} in {searched} (found: {names}).")
    for bundle in bundles:
        if bundle.method == method:
            return bundle
    raise BundleError(f"No {method} model bundle found in {searched}; install one into {user_models_dir()} "
                      f"or set {MODELS_ENV}.")
