"""The inpainting GAN's configuration: the paper's values (paper 002, Methods) and the presets.

``paper``: FOV 256 with a 128 hole at full resolution (the DBT slices' own pixels; mammolens
prepares images at ``resolution``, so the paper preset prepares them at 2048 px), holes of
16 to 128 px at random positions, Adam 1e-4, batch 9, 2,000,000 iterations, Yu et al.'s
widths (32 generator, 64 critics), dilations 2-4-8-16 and 5 critic steps per generator step
(Yu's v1 trainer). ``cpu``: what the shipped bundle trains with on this 2-core machine in under
an hour, chosen from measurements (README, "Inpainting"). ``gpu``: one short GPU lease.
``tiny``: seconds, for tests (measures nothing). The gpu preset's widths keep its float16 carry
checkpoint (weights, EMA and critics) under 16 MB.

The FOV and the holes are in model pixels: the image is prepared at ``resolution`` (the
preprocessing contract: flip, pad to a square, resize) and the windows slide over that.
"""
from __future__ import annotations

from dataclasses import dataclass

from training.loop import TrainConfig


@dataclass
class InpaintingConfig(TrainConfig):
    resolution: int = 256  # the model scale images are prepared at
    fov: int = 64  # window the networks see (paper 256)
    hole: int = 32  # the largest training hole = the centre hole of the heatmap (paper 128)
    hole_min: int = 8  # smallest training hole (paper 16)
    width: int = 8  # generator base width (Yu's cnum 32)
    critic_width: int = 8  # critics' base width (Yu 64)
    dilations: str = "2,4,8"  # dilated convolutions' rates (Yu 2,4,8,16)
    batch: int = 9  # paper 9
    iterations: int = 3000  # critic updates
    lr: float = 1e-4  # paper
    beta1: float = 0.5  # Yu's code
    beta2: float = 0.9
    n_critic: int = 1  # critic updates per generator update (Yu's v1 trainer: 5)
    alpha_mask: float = 1.2  # paper Eq. 5
    alpha_fov: float = 1.2
    alpha_gan: float = 0.001
    lambda_gp: float = 10.0
    gamma: float = 0.99  # spatial discount
    min_breast: float = 0.5  # share of breast a training window needs
    validate_every: int = 0  # the val AUC needs a whole sliding-window pass per image: at export instead

    def __post_init__(self):
        # a window cannot exceed the prepared image (e.g. train-all's --set resolution=64 on the
        # gpu preset): shrink FOV and holes together to half the image, keeping their ratio, so
        # that windows mostly on the breast exist
        if self.fov > self.resolution:
            fov = max(16, (self.resolution // 2) // 8 * 8)
            scale = fov / self.fov
            self.fov = fov
            self.hole = max(4, int(self.hole * scale) // 4 * 4)
            self.hole_min = max(2, min(self.hole, int(self.hole_min * scale)))
        if not (0 < self.hole_min <= self.hole < self.fov):
            raise ValueError(f"holes must satisfy 0 < hole_min <= hole < fov, got {self.hole_min}, {self.hole}, {self.fov}")

    def dilation_rates(self) -> tuple[int, ...]:
        return tuple(int(v) for v in str(self.dilations).split(",") if v.strip())


PRESETS = {
    "paper": dict(resolution=2048, fov=256, hole=128, hole_min=16, width=32, critic_width=64, dilations="2,4,8,16",
                  batch=9, iterations=2_000_000, n_critic=5),
    "cpu": dict(resolution=256, fov=64, hole=32, hole_min=8, width=8, critic_width=8, dilations="2,4,8", batch=9,
                iterations=5000, time_budget_s=2700.0, threads=1, checkpoint_every=200, sample_every=500),
    "gpu": dict(resolution=512, fov=128, hole=64, hole_min=16, width=24, critic_width=32, dilations="2,4,8,16",
                batch=18, iterations=200_000, time_budget_s=240.0, checkpoint_every=500),
    "tiny": dict(resolution=64, fov=32, hole=16, hole_min=8, width=2, critic_width=2, dilations="2", batch=2,
                 iterations=3, checkpoint_every=2, sample_every=3, threads=1),
}
