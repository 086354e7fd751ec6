"""HealthyGAN's losses (paper 003), accumulated per phase as the shared loop asks.

Losses and schedule follow the paper and, where it is silent, its public implementation:

* Critic: WGAN-GP, ``L_D = E_A[D(B')] - E_B[D(x)] + lambda_gp * GP`` (Eq. 3), the penalty on
  random interpolates between real healthy images and B' (lambda_gp = 10).
* Generator, every ``n_critic`` = 2 critic updates: adversarial on both sets (Eq. 4),
  reconstruction ``|A - A'|`` (Eq. 6, A' from Eq. 2), identity ``|B - B_int|`` on the healthy set
  (Eq. 5: the intermediate image, before the mask), and the focus loss of Eq. 7 on both sets'
  masks, averaged (the code's 0.5 / 0.5), with its zero-one term relative to its minimum
  ``1 / (0.5 + eps)`` and eps = 0.01 as in the code. Weights of Appendix A: lambda_id = 1,
  lambda_rec = 1, lambda_f = 0.1, lambda_fs = 1, lambda_fz = 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from training.healthygan.networks import compose_healthy, compose_reconstruction
from training.torch_utils import gradient_penalty


def focus_loss(mask: torch.Tensor, fs: float, fz: float, eps: float) -> torch.Tensor:
    """Eq. 7: fs * mean(M)^2 + fz * (mean(1 / (|M - 0.5| + eps)) - 1 / (0.5 + eps))."""
    size = mask.mean() ** 2
    zero_one = (1.0 / (torch.abs(mask - 0.5) + eps)).mean() - 1.0 / (0.5 + eps)
    return fs * size + fz * zero_one


class HealthyGANLoss:
    """``accumulate_gradients(phase, batch)``: backward of one phase's loss; returns its stats."""

    def __init__(self, cfg, networks: dict):
        self.cfg = cfg
        self.generator, self.critic = networks["generator"], networks["critic"]

    def accumulate_gradients(self, phase: str, batch: dict) -> dict[str, float]:
        cfg, x_a, x_b = self.cfg, batch["a"], batch["b"]
        if phase == "critic":
            with torch.no_grad():
                inter, mask = self.generator(x_a)
                fake = compose_healthy(x_a, inter, mask)
            d_real = -self.critic(x_b).mean()
            d_fake = self.critic(fake).mean()
            gp = gradient_penalty(self.critic, x_b, fake)
            loss = d_real + d_fake + cfg.lambda_gp * gp
            loss.backward()
            return {"d": loss.item(), "gp": gp.item()}
        if phase == "generator":
            inter_a, mask_a = self.generator(x_a)
            healthy_a = compose_healthy(x_a, inter_a, mask_a)
            rec = F.l1_loss(compose_reconstruction(x_a, inter_a, mask_a), x_a)
            inter_b, mask_b = self.generator(x_b)
            healthy_b = compose_healthy(x_b, inter_b, mask_b)
            ident = F.l1_loss(inter_b, x_b)
            adv = -self.critic(healthy_a).mean() - self.critic(healthy_b).mean()
            focus = 0.5 * (focus_loss(mask_a, cfg.lambda_fs, cfg.lambda_fz, cfg.focus_eps)
                           + focus_loss(mask_b, cfg.lambda_fs, cfg.lambda_fz, cfg.focus_eps))
            loss = adv + cfg.lambda_rec * rec + cfg.lambda_id * ident + cfg.lambda_f * focus
            loss.backward()
            return {"g": loss.item(), "rec": rec.item(), "id": ident.item(), "mask": mask_a.mean().item()}
        raise ValueError(f"HealthyGAN has no phase {phase!r}")
