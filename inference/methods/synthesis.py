"""ROI synthesis on ONNX Runtime (paper 004): class, count, seed -> lesion patches.

The bundle's ``generator`` graph takes ``code`` (N, noise_dim + K): the noise with the one-hot
class appended, and returns ``patch`` (N, 1, R, R) in the bundle's ``input.value_range``. The
classes, in the one-hot order, are the bundle's ``parameters.classes`` (read from the training
data), so the engine, the command line and the viewer's pane all take their class list from the
bundle, never from a fixed vocabulary.

Reproducibility: the noise is drawn here with numpy from the seed (``default_rng(seed)``, uniform
in [-1, 1] as the paper's Algorithm 2 draws it, row by row), never inside the graph, and every
chunk sent to ONNX Runtime has the same batch size (the last one padded with zeros), so the same
seed and bundle give the same bytes, and patch ``i`` of a seed does not depend on how many were
asked for. ``truncation`` t scales the noise by t (t < 1 draws from the centre of the noise box:
more typical, less diverse patches; 1 is the paper's sampling).
"""
from __future__ import annotations

import numpy as np

from inference.errors import MammolensError
from inference.jobs import CancelToken, check, report
from inference.methods.base import Engine


class GenerationError(MammolensError, ValueError):
    """A generation request the bundle cannot serve (unknown class, count < 1, bad truncation)."""


def bundle_classes(bundle) -> list[str]:
    """The lesion classes a synthesis bundle generates, in its one-hot order."""
    classes = bundle.parameters.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise GenerationError(f"{bundle.path.name}: model.json field 'parameters.classes' must list the lesion "
                              f"classes the generator was trained on.")
    return list(classes)


def check_request(classes: list[str], label: str, count: int, seed: int, truncation: float = 1.0) -> None:
    """GenerationError (one sentence) unless the bundle's ``classes`` can serve this request."""
    if label not in classes:
        raise GenerationError(f"Unknown class {label!r}: this model generates {', '.join(classes)}.")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise GenerationError(f"The number of patches must be a whole number of at least 1, not {count!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise GenerationError(f"The seed must be a whole number from 0, not {seed!r}.")
    if not 0.0 < float(truncation) <= 1.0:
        raise GenerationError(f"Truncation must lie in (0, 1], not {truncation!r}.")


def noise_codes(classes: list[str], noise_dim: int, label: str, count: int, seed: int,
                truncation: float = 1.0) -> np.ndarray:
    """The generator's input for ``count`` patches of ``label``: seeded uniform noise, then the one-hot class."""
    check_request(classes, label, count, seed, truncation)
    z = np.random.default_rng(int(seed)).uniform(-1.0, 1.0, size=(int(count), noise_dim))
    z = (z * float(truncation)).astype(np.float32)
    onehot = np.zeros((int(count), len(classes)), dtype=np.float32)
    onehot[:, classes.index(label)] = 1.0
    return np.concatenate([z, onehot], axis=1)


class SynthesisEngine(Engine):
    """A synthesis bundle ready to generate; ``sessions={"generator": ...}`` may be injected (tests)."""

    method = "synthesis"
    batch_size = 16

    def __init__(self, bundle, device: str = "auto", *, sessions: dict | None = None):
        super().__init__(bundle, device, sessions=sessions)
        self.classes = bundle_classes(bundle)
        self.noise_dim = int(bundle.parameters.get("noise_dim", 100))

    @property
    def session(self):
        return self.sessions["generator"]

    def generate(self, label: str, count: int, seed: int, truncation: float = 1.0, *, progress=None,
                 cancel: CancelToken | None = None) -> np.ndarray:
        """``count`` patches of class ``label`` from ``seed``: float32 (count, R, R) in [0, 1]."""
        codes = noise_codes(self.classes, self.noise_dim, label, count, seed, truncation)
        name = next(iter(self.session.inputs))
        out = []
        for start in range(0, len(codes), self.batch_size):
            check(cancel)
            chunk = codes[start : start + self.batch_size]
            padded = np.zeros((self.batch_size, codes.shape[1]), dtype=np.float32)
            padded[: len(chunk)] = chunk
            result = self.session.run({name: padded})
            out.append(np.asarray(next(iter(result.values())))[: len(chunk), 0])
            report(progress, start + len(chunk), len(codes), f"{label}: {start + len(chunk)} of {len(codes)}")
        return np.clip(self.from_network(np.concatenate(out)), 0.0, 1.0).astype(np.float32)
