"""StyleGAN2 projection (paper 000, Park et al.): a StyleGAN2 trained on normal images only; a test
image is projected onto its manifold from several seeds and the difference to the mean
projection is the anomaly map.

The training package of the ``projection`` method: networks (``networks``), losses per phase
(``loss``), configuration and presets (``config``), the projector's export as a joint
forward-backward ONNX graph (``export``), the model-free baseline (``baseline``), the card's
pieces (``card``) and :class:`StyleGAN2`, what the shared loop (:mod:`training.loop`) and export
(:mod:`training.export`) need.

* Trained on the NORMAL images of the labels file's train split (the paper: normal mammograms
  only), right breasts flipped to face left and padded away from the chest wall (the shared
  preprocessing contract), in [-1, 1].
* Adam with StyleGAN2's betas (0, 0.99), one learning rate for both networks (the mapping
  network's x 0.01 through its equalised learning rate); lazy R1 and path-length
  regularisation; style mixing; an exponential moving average of the generator is exported.
* The bundle holds ``mapping`` (z -> w), ``synthesis`` (w, noise maps -> image) and
  ``project_step`` ((target, w, noise maps) -> loss, gradients, image), plus w_avg / w_std and
  the projector's settings in its parameters; the engine runs the schedule in numpy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.loop import GANMethod
from training.projection.config import PRESETS, ProjectionConfig
from training.projection.loss import ProjectionGANLoss
from training.projection.networks import Discriminator, Generator

Config = ProjectionConfig
__all__ = ["Config", "PRESETS", "StyleGAN2", "ProjectionConfig", "Method"]


class StyleGAN2(GANMethod):
    name = "projection"
    method = "projection"
    description = "StyleGAN2 projection anomaly maps (Park et al. 2023, after Karras et al. 2020)"

    def prepare_data(self, out: Path, log) -> None:
        from training.datasets import normal_train_images

        cfg = self.cfg
        normal = normal_train_images(cfg.labels, cfg.resolution, cache_dir=out)
        self.images = torch.from_numpy(normal.images[:, None] * 2.0 - 1.0)
        self.n_images, self.n_patients = len(normal), len(set(normal.patients))
        g = torch.Generator().manual_seed(cfg.seed + 1)
        self.fixed_z = torch.randn(8, cfg.z_dim, generator=g)
        self.fixed_noise = None
        log(f"StyleGAN2: {self.n_images} normal training images ({self.n_patients} patients) at {cfg.resolution} px")

    def build_networks(self) -> dict[str, torch.nn.Module]:
        cfg = self.cfg
        # kept: the projector's perceptual loss uses the critic as trained (export loads it from the checkpoint)
        self.networks = {"generator": Generator(cfg.resolution, cfg.z_dim, cfg.w_dim, cfg.mapping_layers,
                                                cfg.channel_base, cfg.channel_max),
                         "critic": Discriminator(cfg.resolution, cfg.channel_base, cfg.channel_max)}
        return self.networks

    def optimizers(self, networks):
        cfg, betas = self.cfg, (self.cfg.beta1, self.cfg.beta2)
        g = torch.optim.Adam(networks["generator"].parameters(), cfg.lr, betas, eps=1e-8)
        d = torch.optim.Adam(networks["critic"].parameters(), cfg.lr, betas, eps=1e-8)
        return {"generator": g, "generator_pl": g, "critic": d, "critic_r1": d}

    def loss(self, networks):
        return ProjectionGANLoss(self.cfg, networks)

    def phases(self, iteration: int) -> tuple[str, ...]:
        cfg = self.cfg
        pl = cfg.pl_weight > 0 and (iteration + 1) % cfg.pl_every == 0
        r1 = cfg.r1_gamma > 0 and (iteration + 1) % cfg.r1_every == 0
        return ("generator",) + (("generator_pl",) if pl else ()) + ("critic",) + (("critic_r1",) if r1 else ())

    def next_batch(self, device):
        cfg, n = self.cfg, self.cfg.batch
        real = self.images[torch.randint(len(self.images), (n,))]
        z, z2 = torch.randn(n, cfg.z_dim), torch.randn(n, cfg.z_dim)
        num_ws = (int(np.log2(cfg.resolution)) - 1) * 2  # layers + 1: one w per conv and the last tRGB
        cutoff = torch.randint(1, num_ws, (n,))
        cutoff = torch.where(torch.rand(n) < cfg.style_mixing, cutoff, torch.full_like(cutoff, num_ws))
        return {"real": real.to(device), "z": z.to(device), "z2": z2.to(device), "cutoff": cutoff.to(device)}

    def sample_grid(self, ema) -> np.ndarray:
        """Two rows of four images from fixed z and fixed noise (uint8)."""
        device = next(ema.parameters()).device
        if self.fixed_noise is None:
            g = torch.Generator().manual_seed(self.cfg.seed + 2)
            self.fixed_noise = [torch.randn(len(self.fixed_z), 1, h, w, generator=g)
                                for h, w in ema.synthesis.noise_shapes]
        with torch.no_grad():
            images = ema(self.fixed_z.to(device), noise=[n.to(device) for n in self.fixed_noise])
        images = ((images[:, 0] + 1) / 2).clamp(0, 1).cpu()
        grid = torch.cat([torch.cat(list(images[r * 4:(r + 1) * 4]), dim=1) for r in range(2)], dim=0)
        return (grid.numpy() * 255).astype(np.uint8)

    def run_info(self) -> dict:
        return {"normal_images": self.n_images, "patients": self.n_patients} if hasattr(self, "n_images") else {}

    # -- export ------------------------------------------------------------------------------

    def export_networks(self, ema):
        from training.projection.export import projection_networks

        critic = getattr(self, "networks", {}).get("critic") or Discriminator(
            self.cfg.resolution, self.cfg.channel_base, self.cfg.channel_max)
        return projection_networks(self.cfg, ema, critic)

    def bundle_parameters(self) -> dict:
        from training.projection.export import projector_parameters

        # export_run loads the averaged generator into the networks this method built
        return projector_parameters(self.cfg, self.networks["generator"]) if hasattr(self, "networks") else {}

    # -- the supervised ceiling of the evaluation card (training.ceiling) -----------------------

    def supervised_network(self) -> torch.nn.Module:
        """The discriminator family (features and head, no minibatch layer): one logit per image."""
        critic = Discriminator(self.cfg.resolution, self.cfg.channel_base, self.cfg.channel_max)
        return _FeatureHead(critic)


class _FeatureHead(torch.nn.Module):
    def __init__(self, critic: Discriminator):
        super().__init__()
        self.critic = critic
        channels = critic.out.weight.shape[1]
        self.head = torch.nn.Linear(channels, 1)

    def forward(self, x):
        return self.head(self.critic.features(x)[-1].mean(dim=(2, 3)))


Method = StyleGAN2
