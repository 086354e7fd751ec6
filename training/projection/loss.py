"""StyleGAN2's losses (Karras et al. 2020), accumulated per phase as the shared loop asks.

Phases of an iteration, in the reference's order: ``generator`` (non-saturating logistic loss
``softplus(-D(G(z)))``, with style mixing), ``generator_pl`` every ``pl_every`` iterations when
``pl_weight`` > 0 (path-length regularisation: ``(|J^T y| - a)^2`` with ``y`` image-space noise
scaled by 1 / sqrt(pixels), ``a`` the running mean of the lengths, scaled by the interval),
``critic`` (``softplus(D(G(z))) + softplus(-D(x))``) and ``critic_r1`` every ``r1_every``
iterations (lazy R1: ``gamma / 2 * |grad_x D(x)|^2``, scaled by the interval).

One saving against the reference: the critic phase scores the fakes the generator phase of the
same iteration made (detached, before the generator's update) instead of drawing new ones; the
critic sees fresh fakes every iteration all the same, and a CPU iteration costs one synthesis
pass less.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class ProjectionGANLoss:
    """``accumulate_gradients(phase, batch)``: backward of one phase's loss; returns its stats."""

    def __init__(self, cfg, networks: dict):
        self.cfg = cfg
        self.generator, self.critic = networks["generator"], networks["critic"]
        self.pl_mean = torch.zeros(())
        self.fake = None

    def _ws(self, z: torch.Tensor, z2: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
        g = self.generator.module if hasattr(self.generator, "module") else self.generator
        w = g.mapping(z)
        ws = w[:, None, :].expand(-1, g.synthesis.num_ws, -1)
        w2 = g.mapping(z2)[:, None, :].expand_as(ws)
        index = torch.arange(g.synthesis.num_ws, device=z.device)[None, :, None]
        return torch.where(index >= cutoff[:, None, None], w2, ws)

    def _synthesise(self, ws: torch.Tensor) -> torch.Tensor:
        g = self.generator.module if hasattr(self.generator, "module") else self.generator
        return g.synthesis(ws, *g.synthesis.random_noise(ws.shape[0], device=ws.device))

    def accumulate_gradients(self, phase: str, batch: dict) -> dict[str, float]:
        cfg = self.cfg
        if phase == "generator":
            fake = self._synthesise(self._ws(batch["z"], batch["z2"], batch["cutoff"]))
            self.fake = fake.detach()
            loss = F.softplus(-self.critic(fake)).mean()
            loss.backward()
            return {"g": loss.item()}
        if phase == "generator_pl":
            n = max(1, batch["z"].shape[0] // 2)
            ws = self._ws(batch["z"][:n], batch["z2"][:n], batch["cutoff"][:n])
            image = self._synthesise(ws)
            y = torch.randn_like(image) / (image.shape[2] * image.shape[3]) ** 0.5
            (grad,) = torch.autograd.grad((image * y).sum(), ws, create_graph=True)
            lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
            self.pl_mean = (self.pl_mean + cfg.pl_decay * (lengths.detach().mean().cpu() - self.pl_mean)).detach()
            penalty = (lengths - self.pl_mean.to(lengths.device)).square().mean()
            (penalty * cfg.pl_weight * cfg.pl_every + image[:, 0, 0, 0].mean() * 0).backward()
            return {"pl": penalty.item()}
        if phase == "critic":
            fake = self.fake if self.fake is not None else self._synthesise(
                self._ws(batch["z"], batch["z2"], batch["cutoff"])).detach()
            d_fake, d_real = self.critic(fake), self.critic(batch["real"])
            loss = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
            loss.backward()
            self.fake = None
            return {"d": loss.item(), "d_real": d_real.mean().item(), "d_fake": d_fake.mean().item()}
        if phase == "critic_r1":
            real = batch["real"].detach().requires_grad_(True)
            logits = self.critic(real)
            (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
            penalty = grad.square().sum(dim=(1, 2, 3)).mean()
            (penalty * (cfg.r1_gamma / 2) * cfg.r1_every + logits.mean() * 0).backward()
            return {"r1": penalty.item()}
        raise ValueError(f"StyleGAN2 has no phase {phase!r}")
