"""HealthyGAN (paper 003): one-directional translation of any image to a healthy one.

The training package of the ``translation`` method: networks (``networks``), losses per phase
(``loss``), configuration and presets (``config``), and :class:`HealthyGAN`, what the shared loop
(:mod:`training.loop`) and export (:mod:`training.export`) need.

* Adam, lr 1e-4 for both networks, betas (0.5, 0.999) from the code; the learning rate decays
  linearly to zero over the last quarter of the iterations (paper: the last 100k of 400k).
  An iteration is one critic update, as in the code; the generator steps every ``n_critic``.
* Images are in [-1, 1] inside the networks (the code's normalisation) and the exported graph
  keeps that range; the bundle says so (``input.value_range``) and the engine maps to and from it.
* Set A (mixed, unlabelled to the model) and set B (known healthy) come from the training split,
  disjoint by patient (:func:`training.datasets.healthy_and_mixed_sets`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.healthygan.config import PRESETS, HealthyGANConfig
from training.healthygan.loss import HealthyGANLoss, focus_loss
from training.healthygan.networks import (
    HealthyGANGenerator,
    PatchCritic,
    compose_healthy,
)
from training.loop import GANMethod

Config = HealthyGANConfig
__all__ = ["Config", "PRESETS", "HealthyGAN", "HealthyGANConfig", "focus_loss", "Method"]


class HealthyGAN(GANMethod):
    name = "healthygan"
    method = "translation"
    ema_network = "generator"
    ema_phase = "generator"
    description = "HealthyGAN translation to a healthy image (Rahman Siddiquee et al. 2022)"

    def prepare_data(self, out: Path, log) -> None:
        from training.datasets import healthy_and_mixed_sets, load_images

        cfg = self.cfg
        train = load_images(cfg.labels, cfg.resolution, splits=("train",), cache_dir=out)
        self.set_a, self.set_b = healthy_and_mixed_sets(train, cfg.b_fraction, cfg.seed)
        if len(self.set_a) == 0 or len(self.set_b) == 0:
            raise ValueError("the training split needs both a mixed set A and healthy images for set B")
        to_tensor = lambda d: torch.from_numpy(d.images[:, None] * 2.0 - 1.0)  # noqa: E731
        self.data_a, self.data_b = to_tensor(self.set_a), to_tensor(self.set_b)
        self.fixed = self.data_a[np.argsort(self.set_a.is_normal, kind="stable")[:4]]
        log(f"HealthyGAN: set A {len(self.set_a)} images ({int((~self.set_a.is_normal).sum())} with lesions, "
            f"unlabelled to the model), set B {len(self.set_b)} healthy images, {cfg.resolution} px")

    def build_networks(self) -> dict[str, torch.nn.Module]:
        cfg = self.cfg
        return {"generator": HealthyGANGenerator(channels=1, width=cfg.width, residual_blocks=cfg.residual_blocks),
                "critic": PatchCritic(channels=1, width=cfg.critic_width, depth=cfg.depth())}

    def loss(self, networks):
        return HealthyGANLoss(self.cfg, networks)

    def learning_rate(self, iteration: int) -> float:
        cfg = self.cfg
        decay_start = cfg.iterations - cfg.iterations // 4
        if iteration < decay_start:
            return cfg.lr
        return cfg.lr * (cfg.iterations - iteration) / max(1, cfg.iterations - decay_start)

    def next_batch(self, device):
        pick = lambda data: data[torch.randint(len(data), (self.cfg.batch,))].to(device)  # noqa: E731
        a = pick(self.data_a)
        return {"a": a, "b": pick(self.data_b)}

    def sample_grid(self, ema) -> np.ndarray:
        """One row per fixed image: input, B_int, B', mask, 4 x |x - B'| (uint8)."""
        fixed = self.fixed.to(next(ema.parameters()).device)
        with torch.no_grad():
            inter, mask = ema(fixed)
            healthy = compose_healthy(fixed, inter, mask)
        to01 = lambda t: ((t + 1) / 2).clamp(0, 1)  # noqa: E731
        cols = [to01(fixed), to01(inter), to01(healthy), mask, (fixed - healthy).abs() / 2 * 4]
        grid = torch.cat([torch.cat([c[i, 0] for c in cols], dim=1) for i in range(fixed.size(0))], dim=0)
        return (grid.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)

    def run_info(self) -> dict:
        return {"set_a": len(self.set_a), "set_b": len(self.set_b)} if hasattr(self, "set_a") else {}

    # -- export ------------------------------------------------------------------------------

    def export_networks(self, ema):
        from training.export import ExportNetwork

        r = self.resolution
        return [ExportNetwork("generator", ema, ("image",), ("intermediate", "mask"),
                              example=torch.rand(2, 1, r, r) * 2 - 1)]

    def input_spec(self) -> dict:
        return {"resolution": self.resolution, "channels": 1, "value_range": [-1.0, 1.0],
                "laterality": "flip_right_to_left", "padding": "square_away_from_chest_wall",
                "windowing": "dicom_voi"}

    def bundle_parameters(self) -> dict:
        cfg = self.cfg
        return {"architecture": "HealthyGAN", "width": cfg.width, "critic_width": cfg.critic_width,
                "residual_blocks": cfg.residual_blocks, "score": "mean of |x - B'| inside the breast (model space)"}

    # -- the supervised ceiling of the evaluation card (training.ceiling) -----------------------

    def supervised_network(self) -> torch.nn.Module:
        """The critic family with a global mean over its patch scores: one logit per image."""
        critic = PatchCritic(channels=1, width=self.cfg.critic_width, depth=self.cfg.depth())
        return torch.nn.Sequential(critic, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


Method = HealthyGAN
