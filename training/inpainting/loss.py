"""The inpainting GAN's loss (paper 002, Eq. 5), accumulated per phase as the shared loop asks.

``L_total = a_mask L_mask + a_FOV L_FOV + a_GAN L_WGAN,G + L_WGAN,D + lambda L_WGAN-GP`` with the
weights of Yu et al. the paper adopts (a_mask = a_FOV = 1.2, a_GAN = 0.001, lambda = 10):

* ``L_mask``: L1 between the coarse prediction and the truth inside the hole, plus the same for
  the fine prediction, each pixel weighted by the spatial discount ``gamma ** l`` (gamma = 0.99,
  l = distance to the nearest known pixel outside the hole), normalised by the hole's weight;
* ``L_FOV``: L1 between the coarse (and the fine) prediction and the truth outside the hole;
* ``L_WGAN,G`` = -(D_global(x_hat) + D_local(x_hat_hole)) on the completion
  ``x_hat = fine * m + x * (1 - m)``; ``L_WGAN,D`` the critics' Wasserstein loss on the truth
  against the completion, with one gradient penalty per critic on random interpolates.

The critic phase updates both critics (one optimizer), the generator phase the generator.
"""
from __future__ import annotations

import torch

from training.torch_utils import gradient_penalty, unwrap


def discount_weights(holes: torch.Tensor, size: int, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask, weight) of square holes ``(top, left, side)`` per sample, both (N, 1, size, size).

    The weight is ``gamma ** l`` inside the hole with l the distance (in pixels, 1 at the hole's
    edge) to the nearest pixel outside it; 0 outside.
    """
    idx = torch.arange(size, device=holes.device, dtype=torch.float32)
    top, left, side = (holes[:, i].float()[:, None] for i in range(3))
    rows = torch.minimum(idx[None] - top + 1, top + side - idx[None])  # (N, size): distance to the hole's rows edge
    cols = torch.minimum(idx[None] - left + 1, left + side - idx[None])
    dist = torch.minimum(rows[:, :, None], cols[:, None, :])  # (N, size, size)
    mask = (dist > 0).float()
    weight = torch.where(dist > 0, gamma ** dist.clamp_min(0), torch.zeros_like(dist))
    return mask[:, None], weight[:, None]


def local_crops(images: torch.Tensor, holes: torch.Tensor, crop: int) -> torch.Tensor:
    """``crop`` x ``crop`` windows centred on each hole (clamped inside the FOV), (N, 1, crop, crop)."""
    size = images.shape[-1]
    out = []
    for i in range(images.shape[0]):
        top, left, side = (int(v) for v in holes[i])
        r = min(max(0, top + side // 2 - crop // 2), size - crop)
        c = min(max(0, left + side // 2 - crop // 2), size - crop)
        out.append(images[i : i + 1, :, r : r + crop, c : c + crop])
    return torch.cat(out)


class InpaintingLoss:
    """``accumulate_gradients(phase, batch)``: backward of one phase's loss; returns its stats.

    ``batch``: ``image`` (N, 1, F, F) in [-1, 1] and ``holes`` (N, 3) integer ``(top, left, side)``.
    """

    def __init__(self, cfg, networks: dict):
        self.cfg = cfg
        self.generator, self.critics = networks["generator"], networks["critic"]

    def _complete(self, batch, grad: bool):
        x, holes = batch["image"], batch["holes"]
        mask, weight = discount_weights(holes, x.shape[-1], self.cfg.gamma)
        with torch.set_grad_enabled(grad):
            coarse, fine = self.generator(x, mask)
        return x, holes, mask, weight, coarse, fine

    def accumulate_gradients(self, phase: str, batch: dict) -> dict[str, float]:
        cfg = self.cfg
        crop = cfg.hole
        if phase == "critic":
            x, holes, mask, _, _, fine = self._complete(batch, grad=False)
            fake = (fine * mask + x * (1 - mask)).detach()
            real_local, fake_local = local_crops(x, holes, crop), local_crops(fake, holes, crop)
            g_real, l_real = self.critics(x, real_local)
            g_fake, l_fake = self.critics(fake, fake_local)
            wasserstein = g_fake.mean() - g_real.mean() + l_fake.mean() - l_real.mean()
            critics = unwrap(self.critics)
            gp = gradient_penalty(critics.global_, x, fake) + gradient_penalty(critics.local, real_local, fake_local)
            loss = wasserstein + cfg.lambda_gp * gp
            loss.backward()
            return {"d": wasserstein.item(), "gp": gp.item()}
        if phase == "generator":
            x, holes, mask, weight, coarse, fine = self._complete(batch, grad=True)
            known = 1 - mask
            hole_weight = weight.sum().clamp_min(1.0)
            l_mask = ((coarse - x).abs() * weight).sum() / hole_weight + ((fine - x).abs() * weight).sum() / hole_weight
            known_count = known.sum().clamp_min(1.0)
            l_fov = ((coarse - x).abs() * known).sum() / known_count + ((fine - x).abs() * known).sum() / known_count
            fake = fine * mask + x * known
            g_fake, l_fake = self.critics(fake, local_crops(fake, holes, crop))
            adversarial = -(g_fake.mean() + l_fake.mean())
            loss = cfg.alpha_mask * l_mask + cfg.alpha_fov * l_fov + cfg.alpha_gan * adversarial
            loss.backward()
            return {"g": loss.item(), "l1_hole": l_mask.item() / 2, "l1_fov": l_fov.item() / 2, "adv": adversarial.item()}
        raise ValueError(f"inpainting has no phase {phase!r}")
