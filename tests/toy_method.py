"""A toy method in one file: a numpy engine, a tiny torch network and its training package.

It is what tests/test_method_contract.py registers to show the one-folder rule: with this module
and one ``register`` call, the method appears in the viewer's panel, ``analyze``, ``evaluate``,
``train`` and ``export`` without any other file of mammolens touched, with a capability beyond
maps (ROI completion: the box filled by the reconstruction) and a card section of its own. The
method itself is a plain autoencoder: map = gain x |x - reconstruction|, score = mean of the map
inside the breast.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.jobs import check, report
from inference.methods import DEVICE, MethodSpec, Parameter
from inference.methods.base import Engine
from inference.preprocess import preprocess, to_original

SPEC = MethodSpec(
    method="toy", title="Toy autoencoder", needs="needs a toy model bundle", roles=("generator",),
    maps=("difference",), units={"difference": "gain x |x - reconstruction|"},
    parameters=(Parameter("gain", "Gain", 1.0, minimum=0.1, maximum=10.0, help="scales the map"), DEVICE),
    produces_map=True, completes_roi=True, engine="tests.toy_method:ToyEngine", training="tests.toy_method",
    card="tests.toy_method:CARD", score="mean of the map inside the breast")


class ToyEngine(Engine):
    method = "toy"

    def _reconstruct(self, images):
        session = self.sessions["generator"]
        out = session.run_batched({"image": self.to_network(images)[:, None]}, self.batch_size)
        return self.from_network(out["reconstruction"][:, 0])

    def map_prepared(self, images, masks, cancel=None, gain: float = 1.0):
        check(cancel)
        return gain * np.abs(images - self._reconstruct(images))

    def score_prepared(self, images, masks, cancel=None, gain: float = 1.0):
        maps = self.map_prepared(images, masks, cancel, gain=gain)
        return np.array([m[b].mean() if b.any() else m.mean() for m, b in zip(maps, masks)])

    def complete(self, display, laterality, box, *, progress=None, cancel=None, **parameters):
        """The box replaced by the reconstruction of the whole view (a toy ROI completion)."""
        prepared = preprocess(display, laterality, self.resolution)
        filled = to_original(self._reconstruct(prepared.image[None])[0], prepared.geometry)
        x0, y0, x1, y1 = (int(v) for v in box)
        completed = np.array(display, dtype=np.float32)
        completed[y0:y1, x0:x1] = filled[y0:y1, x0:x1]
        error = np.abs(display - completed)
        return self.result(maps={"completion": completed, "error": error}, score=float(error[y0:y1, x0:x1].mean()),
                           parameters={"box": [x0, y0, x1, y1]}, no_decision="the toy has no box cut-off")

    def run_many(self, displays, lateralities, *, frames=None, progress=None, cancel=None, gain: float = 1.0):
        frames = list(frames) if frames is not None else [None] * len(displays)
        results = []
        for i, (display, laterality) in enumerate(zip(displays, lateralities)):
            check(cancel)
            prepared = preprocess(display, laterality, self.resolution)
            m = self.map_prepared(prepared.image[None], prepared.mask[None], gain=gain)[0]
            score = float(m[prepared.mask].mean()) if prepared.mask.any() else float(m.mean())
            results.append(self.result(maps={"difference": to_original(m, prepared.geometry) * prepared.breast},
                                       score=score, frame=frames[i], parameters={"gain": gain}))
            report(progress, i + 1, len(displays), self.spec.title)
        return results


# ---- the card: the shared detection sections plus one of the toy's own ---------------------------

try:
    from training.evaluation import DETECTION, CardSection
except ImportError:  # pragma: no cover - inference-only installs
    CARD = ()
else:

    class ReconstructionError(CardSection):
        """Mean |x - reconstruction| over the breasts of the normal images under test."""

        name = "toy_reconstruction"

        def measure(self, context):
            data = context.data.select(context.data.is_normal)
            maps = context.engine.map_prepared(data.images, data.masks)
            return {"n": len(data), "error": float(np.mean([m[b].mean() for m, b in zip(maps, data.masks)]))}

        def markdown(self, block, report):
            return ["", "## Toy reconstruction", "", f"Mean error on {block['n']} normal images: {block['error']:.4f}."]

        def key_part(self, block, report):
            return f"toy reconstruction error {block['error']:.4f}"

    CARD = DETECTION + (ReconstructionError(),)


# ---- the training package (torch imported here only) -------------------------------------------

try:
    import torch

    from training.loop import GANMethod, TrainConfig
except ImportError:  # pragma: no cover - inference-only installs
    torch = None
else:

    @dataclass
    class Config(TrainConfig):
        resolution: int = 32
        width: int = 4
        lr: float = 1e-3

    PRESETS = {"paper": dict(iterations=1000), "cpu": dict(iterations=20), "gpu": dict(iterations=200),
               "tiny": dict(iterations=3, checkpoint_every=1, sample_every=3, validate_every=3)}

    class _Autoencoder(torch.nn.Module):
        def __init__(self, width: int = 4):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Conv2d(1, width, 3, 2, 1), torch.nn.ReLU(),
                torch.nn.ConvTranspose2d(width, 1, 4, 2, 1), torch.nn.Tanh())

        def forward(self, x):
            return self.net(x)

    class _Loss:
        def __init__(self, networks):
            self.generator = networks["generator"]

        def accumulate_gradients(self, phase, batch):
            loss = (self.generator(batch) - batch).abs().mean()
            loss.backward()
            return {"l1": loss.item()}

    class Method(GANMethod):
        name = "toy"
        method = "toy"
        description = "toy autoencoder (tests)"
        phase_networks = ("generator",)  # one phase: default Adam optimizer and phase list

        def prepare_data(self, out, log):
            from training.datasets import load_images

            data = load_images(self.cfg.labels, self.cfg.resolution, splits=("train",), cache_dir=out)
            self.data = torch.from_numpy(data.images[:, None] * 2 - 1)

        def build_networks(self):
            return {"generator": _Autoencoder(self.cfg.width)}

        def loss(self, networks):
            return _Loss(networks)

        def next_batch(self, device):
            return self.data[torch.randint(len(self.data), (self.cfg.batch,))].to(device)

        def sample_grid(self, ema):
            with torch.no_grad():
                x = self.data[:2]
                return (torch.cat([x, ema(x)], 3)[:, 0].reshape(-1, 2 * x.shape[3]).add(1).mul(127.5)
                        .clamp(0, 255).byte().numpy())

        def export_networks(self, ema):
            from training.export import ExportNetwork

            r = self.cfg.resolution
            return [ExportNetwork("generator", ema, ("image",), ("reconstruction",), torch.zeros(1, 1, r, r))]

        def input_spec(self):
            return {"resolution": self.cfg.resolution, "channels": 1, "value_range": [-1.0, 1.0]}

        def supervised_network(self):
            return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 4, 4), torch.nn.AdaptiveAvgPool2d(1),
                                       torch.nn.Flatten(), torch.nn.Linear(4, 1))
