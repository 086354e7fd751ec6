"""The inpainting GAN of paper 002 (Swiecicki et al. 2021): complete a hole from its surroundings.

The training package of the ``inpainting`` method: networks (``networks``: Yu et al.'s v1
two-stage generator with contextual attention, local and global critics), the loss of Eq. 5 per
phase (``loss``), configuration and presets (``config``), and :class:`Inpainting`, what the
shared loop (:mod:`training.loop`) and export (:mod:`training.export`) need.

* Training data: FOV windows of the *normal* images of the training split (2D views; DBT volumes
  are skipped by :func:`training.datasets.load_images`), prepared by the shared preprocessing
  contract at ``resolution``; windows are drawn where the breast is (at least ``min_breast`` of the
  window, :func:`training.datasets.window_origins`), each with one square hole of ``hole_min`` to
  ``hole`` pixels at a random position inside the window (paper: 16-128 px in a 256 window).
* One iteration is one critic update; the generator steps every ``n_critic`` iterations.
* Images are in [-1, 1] inside the networks; the bundle says so (``input.value_range``).
* Exported graphs: ``generator`` (``image``, ``mask``) -> ``completion`` (the fine prediction;
  the engine composes it with the known pixels), and ``critic`` (``window``) -> ``global`` and
  ``local`` (the local critic on the centred ``hole`` x ``hole`` crop).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from inference.methods import get
from training.inpainting.config import PRESETS, InpaintingConfig
from training.inpainting.loss import InpaintingLoss, discount_weights
from training.inpainting.networks import (
    CentredCritics,
    Critic,
    Critics,
    ExportGenerator,
    InpaintingGenerator,
)
from training.loop import GANMethod

Config = InpaintingConfig
__all__ = ["Config", "PRESETS", "Inpainting", "InpaintingConfig", "Method"]

ORIGIN_STRIDE = 2  # training windows start on this grid (then jitter 0..stride-1)


class Inpainting(GANMethod):
    name = "inpainting"
    method = "inpainting"
    ema_network = "generator"
    ema_phase = "generator"
    description = "Inpainting GAN abnormality heatmaps (Swiecicki et al. 2021, after Yu et al. 2018)"

    def prepare_data(self, out: Path, log) -> None:
        from training.datasets import normal_train_images, window_origins

        cfg = self.cfg
        normal = normal_train_images(cfg.labels, cfg.resolution, cache_dir=out)
        origins = [window_origins(m, cfg.fov, ORIGIN_STRIDE, cfg.min_breast) for m in normal.masks]
        keep = [i for i, o in enumerate(origins) if len(o)]
        if not keep:
            raise ValueError(f"no {cfg.fov} px window of the training images lies on breast tissue")
        self.images = torch.from_numpy(normal.images[keep] * 2.0 - 1.0)
        self.origins = [torch.from_numpy(origins[i]) for i in keep]
        self.n_images, self.n_patients = len(keep), len(set(normal.patients))
        rng = np.random.default_rng(cfg.seed)
        fixed = []
        for i in rng.choice(len(keep), size=min(4, len(keep)), replace=False):
            o = self.origins[i][len(self.origins[i]) // 2]
            fixed.append(self.images[i, int(o[0]) : int(o[0]) + cfg.fov, int(o[1]) : int(o[1]) + cfg.fov])
        self.fixed = torch.stack(fixed)[:, None]
        log(f"inpainting: {self.n_images} normal training images ({self.n_patients} patients), "
            f"{sum(len(o) for o in self.origins)} breast windows of {cfg.fov} px at {cfg.resolution} px, "
            f"holes {cfg.hole_min}-{cfg.hole} px")

    def build_networks(self) -> dict[str, torch.nn.Module]:
        cfg = self.cfg
        # kept: the bundle carries the critics as trained (export loads them from the checkpoint)
        self.networks = {"generator": InpaintingGenerator(cfg.fov, cfg.width, cfg.dilation_rates()),
                         "critic": Critics(cfg.fov, cfg.hole, cfg.critic_width)}
        return self.networks

    def loss(self, networks):
        return InpaintingLoss(self.cfg, networks)

    def next_batch(self, device):
        cfg = self.cfg
        n = cfg.batch
        picks = torch.randint(self.n_images, (n,))
        windows = []
        for i in picks.tolist():
            origins = self.origins[i]
            r, c = (int(v) for v in origins[torch.randint(len(origins), ())])
            r = min(r + int(torch.randint(ORIGIN_STRIDE, ())), self.images.shape[1] - cfg.fov)
            c = min(c + int(torch.randint(ORIGIN_STRIDE, ())), self.images.shape[2] - cfg.fov)
            windows.append(self.images[i, r : r + cfg.fov, c : c + cfg.fov])
        sides = torch.randint(cfg.hole_min, cfg.hole + 1, (n,))
        tops = (torch.rand(n) * (cfg.fov - sides + 1).float()).long()
        lefts = (torch.rand(n) * (cfg.fov - sides + 1).float()).long()
        return {"image": torch.stack(windows)[:, None].to(device), "holes": torch.stack([tops, lefts, sides], 1).to(device)}

    def centre_holes(self, n: int) -> torch.Tensor:
        start = (self.cfg.fov - self.cfg.hole) // 2
        return torch.tensor([[start, start, self.cfg.hole]] * n)

    def sample_grid(self, ema) -> np.ndarray:
        """One row per fixed window (centre hole): input with the hole, coarse, fine, completion, 4 x |error|."""
        fixed = self.fixed.to(next(ema.parameters()).device)
        mask, _ = discount_weights(self.centre_holes(len(fixed)).to(fixed.device), self.cfg.fov, self.cfg.gamma)
        with torch.no_grad():
            coarse, fine = ema(fixed, mask)
        completion = fine * mask + fixed * (1 - mask)
        to01 = lambda t: ((t + 1) / 2).clamp(0, 1)  # noqa: E731
        cols = [to01(fixed * (1 - mask)), to01(coarse), to01(fine), to01(completion), (completion - fixed).abs() / 2 * 4]
        grid = torch.cat([torch.cat([c[i, 0] for c in cols], dim=1) for i in range(fixed.size(0))], dim=0)
        return (grid.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)

    def run_info(self) -> dict:
        return {"normal_images": self.n_images, "patients": self.n_patients} if hasattr(self, "n_images") else {}

    # -- export ------------------------------------------------------------------------------

    def export_networks(self, ema):
        from training.export import ExportNetwork

        cfg, f = self.cfg, self.cfg.fov
        mask, _ = discount_weights(self.centre_holes(2), f, cfg.gamma)
        critics = getattr(self, "networks", {}).get("critic") or Critics(f, cfg.hole, cfg.critic_width)
        critics = copy.deepcopy(critics).cpu().eval()
        return [ExportNetwork("generator", ExportGenerator(ema).eval(), ("image", "mask"), ("completion",),
                              example=(torch.rand(2, 1, f, f) * 2 - 1, mask)),
                ExportNetwork("critic", CentredCritics(critics).eval(), ("window",), ("global", "local"),
                              example=torch.rand(2, 1, f, f) * 2 - 1)]

    def bundle_parameters(self) -> dict:
        cfg = self.cfg
        return {"architecture": "Yu et al. v1 two-stage generator with contextual attention; local + global WGAN-GP critics",
                "fov": cfg.fov, "hole": cfg.hole, "hole_min": cfg.hole_min, "width": cfg.width,
                "critic_width": cfg.critic_width, "dilations": cfg.dilations,
                "stride": get("inpainting").parameter("stride").default,
                "score": "DMSE = MSE in the hole x critic loss softplus(D(x) - D(x_hat)), per window"}

    # -- the supervised ceiling of the evaluation card (training.ceiling) -----------------------

    def supervised_network(self) -> torch.nn.Module:
        """The global critic's convolutions with a global mean and one linear output: one logit per image."""
        critic = Critic(self.cfg.fov, self.cfg.critic_width, (1, 2, 4, 4))
        return torch.nn.Sequential(critic.features, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                   torch.nn.Linear(4 * self.cfg.critic_width, 1))


Method = Inpainting
