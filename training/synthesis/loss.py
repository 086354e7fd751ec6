"""ROI-mammoGAN's losses (paper 004, Algorithm 2), accumulated per phase as the shared loop asks.

Binary cross-entropy on the discriminator's sigmoid output: ``L_D = -(log D(x) + log(1 - D(G(z))))``
with one-sided label smoothing (real targets ``1 - 0.1``, the paper's "smooth factor of 0.1"; fake
targets stay 0, as Salimans et al. recommend), and the generator's non-saturating
``L_G = -log D(G(z))`` (Algorithm 2, line 7). Real and fake batches go through the discriminator
separately (DCGAN: batch-norm statistics per batch kind). Noise is uniform in [-1, 1] (Algorithm 2,
line 9), the class of each fake drawn like the real batch's (so every class gets its share).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def noise(n: int, dim: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Uniform noise in [-1, 1] (Algorithm 2, line 9)."""
    return (torch.rand(n, dim, generator=generator) * 2.0 - 1.0).to(device)


class SynthesisLoss:
    """``accumulate_gradients(phase, batch)``: backward of one phase's loss; returns its stats."""

    def __init__(self, cfg, networks: dict):
        self.cfg = cfg
        self.generator, self.discriminator = networks["generator"], networks["discriminator"]

    def _fake(self, onehot: torch.Tensor) -> torch.Tensor:
        z = noise(onehot.size(0), self.cfg.noise_dim, device=onehot.device)
        return self.generator(torch.cat([z, onehot], dim=1))

    def accumulate_gradients(self, phase: str, batch: dict) -> dict[str, float]:
        real, onehot = batch["image"], batch["onehot"]
        if phase == "discriminator":
            with torch.no_grad():
                fake = self._fake(onehot)
            d_real = self.discriminator(real, onehot)
            d_fake = self.discriminator(fake, onehot)
            target = torch.full_like(d_real, 1.0 - self.cfg.label_smoothing)
            loss = (F.binary_cross_entropy_with_logits(d_real, target)
                    + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
            loss.backward()
            return {"d": loss.item(), "d_real": torch.sigmoid(d_real).mean().item(),
                    "d_fake": torch.sigmoid(d_fake).mean().item()}
        if phase == "generator":
            d_fake = self.discriminator(self._fake(onehot), onehot)
            loss = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
            loss.backward()
            return {"g": loss.item()}
        raise ValueError(f"ROI synthesis has no phase {phase!r}")
