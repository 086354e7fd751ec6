"""StyleGAN2 projection's configuration: the paper's values (paper 000, Methods) and the presets.

``paper``: StyleGAN2 config-f as the paper trained it (512 px, channel base 32768,
maximum 512, z = w = 512, 8-layer mapping, batch 8, lr 0.001 (the paper's; config-f's default is
0.002), R1 gamma 10 every 16 steps, path-length regularisation weight 2 every 4 steps, style
mixing 0.9, EMA); the paper does not give its length (64 h on two V100s), config-f's default of
25 M images is 3.1 M iterations at batch 8. ``gpu``: the same at 512 px with channels at most 64,
for one short GPU lease (minutes; a carry checkpoint under 16 MB).
``cpu``: what the shipped bundle is trained with on a 2-core machine in under an hour: 128 px,
channel base 2048 and maximum 64, z = w = 128, 2-layer mapping, batch 8, lr 0.0025, R1 0.4
every 16 steps, no path-length regularisation.
``tiny``: seconds (tests, smoke runs; measures nothing).

The projector's settings (``proj_*``) are recorded in the bundle and are the reference
projector's defaults (see :mod:`inference.methods.projection`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from training.loop import TrainConfig


@dataclass
class ProjectionConfig(TrainConfig):
    resolution: int = 128
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 2
    channel_base: int = 2048
    channel_max: int = 64
    batch: int = 8
    iterations: int = 5000
    lr: float = 0.0025
    mapping_lr_mul: float = 0.01
    beta1: float = 0.0
    beta2: float = 0.99
    r1_gamma: float = 0.4
    r1_every: int = 16
    pl_weight: float = 0.0  # 0: no path-length regularisation
    pl_every: int = 4
    pl_decay: float = 0.01
    style_mixing: float = 0.9
    ema_decay: float = 0.999
    validate_every: int = 0  # a projection per validation image is minutes on a CPU; the bundle is calibrated at export
    # the projector's perceptual loss (recorded in the bundle)
    proj_feature_layers: int = 3  # critic feature maps compared (fromRGB and the first blocks)
    proj_pixel_weight: float = 1.0
    proj_noise_weight: float = 1e5
    proj_steps: int = 1000  # the projector's steps when a caller names none (calibration, evaluate, train-all)

    HELP: ClassVar[dict[str, str]] = {
        "resolution": "image size in pixels (paper 512)",
        "z_dim": "latent z size (paper 512)",
        "w_dim": "intermediate latent w size (paper 512)",
        "mapping_layers": "fully connected layers of the mapping network (paper 8)",
        "channel_base": "channels at resolution r are min(channel_base / r, channel_max) (config-f 32768)",
        "channel_max": "largest channel count (config-f 512)",
        "lr": "Adam learning rate of both networks (paper 0.001)",
        "mapping_lr_mul": "learning-rate multiplier of the mapping network (StyleGAN 0.01)",
        "beta1": "Adam beta1 (StyleGAN2 0)",
        "beta2": "Adam beta2 (StyleGAN2 0.99)",
        "r1_gamma": "R1 penalty weight gamma (config-f 10)",
        "r1_every": "lazy R1: every this many iterations, scaled by it (StyleGAN2 16)",
        "pl_weight": "path-length regularisation weight (config-f 2; 0 turns it off)",
        "pl_every": "lazy path-length regularisation interval (StyleGAN2 4)",
        "pl_decay": "decay of the path-length running mean (StyleGAN2 0.01)",
        "style_mixing": "probability of mixing two w in a generated image (StyleGAN2 0.9)",
        "proj_feature_layers": "projector loss: critic feature maps compared (recorded in the bundle)",
        "proj_pixel_weight": "projector loss: weight of the mean squared pixel difference",
        "proj_noise_weight": "projector: weight of the noise autocorrelation regulariser (reference 1e5)",
        "proj_steps": "projector steps recorded in the bundle, used when a caller names none (reference 1000)",
    }


PRESETS = {
    "paper": dict(resolution=512, z_dim=512, w_dim=512, mapping_layers=8, channel_base=32768, channel_max=512,
                  batch=8, lr=0.001, r1_gamma=10.0, pl_weight=2.0, iterations=3_125_000, ema_decay=0.9978),
    # one short GPU lease: the paper's resolution, latents, mapping, batch, lr, R1, path length and mixing,
    # channels at most 64 so a lease's fp16 carry checkpoint stays under 16 MB (config-f's 512 makes 180 MB)
    "gpu": dict(resolution=512, z_dim=512, w_dim=512, mapping_layers=8, channel_base=8192, channel_max=64,
                batch=8, lr=0.001, r1_gamma=10.0, pl_weight=2.0, iterations=3_125_000, ema_decay=0.9978,
                time_budget_s=480.0, checkpoint_every=500, sample_every=1000, carry_checkpoint=True),
    # the shipped bundle: about 0.7 s an iteration on 2 cores when alone; stops at its time budget
    "cpu": dict(resolution=128, z_dim=128, w_dim=128, mapping_layers=2, channel_base=2048, channel_max=64, batch=8,
                lr=0.0025, r1_gamma=0.4, r1_every=16, pl_weight=0.0, iterations=5000, checkpoint_every=200,
                sample_every=500, threads=1),
    "tiny": dict(resolution=16, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8, batch=4,
                 iterations=4, r1_every=2, pl_weight=2.0, pl_every=2, checkpoint_every=2, sample_every=4,
                 stats_every=2, threads=1, proj_steps=10),
}
