"""HealthyGAN's configuration: the paper's values (paper 003, Appendix A) and the presets.

``paper`` is the paper's setting (widths 64, batch 16, 400k critic iterations, 6 critic layers);
``cpu`` is what the shipped bundle is trained with on a 2-core machine in under an hour;
``gpu`` fits one short H100/H200 lease (minutes) and a carry checkpoint under 16 MB;
``tiny`` runs in seconds (tests, smoke runs; measures nothing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from training.loop import TrainConfig


@dataclass
class HealthyGANConfig(TrainConfig):
    resolution: int = 128
    width: int = 16  # generator base width (paper 64)
    critic_width: int = 16  # critic base width (paper 64)
    residual_blocks: int = 6
    critic_depth: int = 0  # 0: as many stride-2 layers as fit, at most the paper's 6
    batch: int = 8  # per set (A and B); paper 16
    iterations: int = 4000  # critic updates; paper 400k
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 2
    lambda_gp: float = 10.0
    lambda_id: float = 1.0
    lambda_rec: float = 1.0
    lambda_f: float = 0.1
    lambda_fs: float = 1.0
    lambda_fz: float = 1.0
    focus_eps: float = 0.01
    b_fraction: float = 0.5

    HELP: ClassVar[dict[str, str]] = {
        "resolution": "model input size in pixels (the preprocessing contract's square; paper 256)",
        "width": "generator base channels (paper 64)",
        "critic_width": "critic base channels (paper 64)",
        "residual_blocks": "residual blocks in the generator's bottleneck (paper 6)",
        "critic_depth": "stride-2 critic layers (0: as many as fit, at most the paper's 6)",
        "lr": "Adam learning rate of both networks (paper 1e-4)",
        "beta1": "Adam beta1 (paper 0.5)",
        "beta2": "Adam beta2 (paper 0.999)",
        "n_critic": "critic updates per generator update",
        "lambda_gp": "weight of the WGAN-GP gradient penalty (paper 10)",
        "lambda_id": "weight of the identity loss on healthy images (paper 1)",
        "lambda_rec": "weight of the reconstruction loss (paper 1)",
        "lambda_f": "weight of the focus loss (paper 0.1)",
        "lambda_fs": "weight of the focus loss' sparsity term",
        "lambda_fz": "weight of the focus loss' zero term on healthy images",
        "focus_eps": "epsilon of the focus loss",
        "b_fraction": "fraction of each batch drawn from the abnormal set B",
    }

    def depth(self) -> int:
        return self.critic_depth or max(1, min(6, int(math.log2(self.resolution)) - 1))


PRESETS = {
    "paper": dict(resolution=256, width=64, critic_width=64, batch=16, iterations=400_000, critic_depth=6),
    # the configuration measured on mini-MIAS and the phantom (README): 128 px, widths 16 / 32,
    # 2000 critic iterations, about 30 min on 2 CPU cores
    "cpu": dict(resolution=128, width=16, critic_width=32, batch=8, iterations=2000, threads=2),
    # one short GPU lease: widths 32, 5 critic layers; fp16 carry checkpoint about 12 MB
    "gpu": dict(resolution=128, width=32, critic_width=32, critic_depth=5, batch=16, iterations=20_000,
                time_budget_s=240.0, validate_every=1000, checkpoint_every=500),
    "tiny": dict(resolution=32, width=4, critic_width=4, residual_blocks=1, batch=2, iterations=4,
                 checkpoint_every=2, sample_every=4, validate_every=4, threads=1),
}
