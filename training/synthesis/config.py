"""ROI synthesis configuration: the paper's values (paper 004, Tables 2 and 3) and the presets.

``paper``: 64 px, noise 100, generator widths 1024 -> 64 and discriminator widths 64 -> 1024
(Tables 2 / 3), batch 32, Adam with lr 1e-5 (generator, Table 2) and 1e-4 (discriminator,
Table 3), beta1 0.5, beta2 0.999, eps 1e-8, one-sided label smoothing 0.1, dropout 0.5 in both
networks, no real-data augmentation, and the 25,000 iterations within which the paper's Fig. 12
shows the models improving ("epochs of 20,000-25,000"; the paper trains each class until its
samples look right, so there is no one number).
``cpu``: the shipped bundle (one thread; 4000 iterations took 59 min on a core shared with two other
trainings): widths 128 -> 16 and 16 -> 128, the
pair of learning rates the paper also tried (generator 1e-4, discriminator 4e-4), dropout only in
the discriminator, and dihedral flips / rotations of the real patches (``augment``; lesion patches
have no preferred orientation) because the phantom's train split holds only about 55 lesions a
class. ``gpu``: one short lease; ``tiny``: seconds, for tests (measures nothing).

``classes``: empty trains one class-conditional generator for every lesion class the labels file
holds (one bundle serves all); a single class (``--classes mass``) is the paper's one model per
class. ``resolution`` 64 (the paper's) or 128.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from training.loop import TrainConfig


@dataclass
class SynthesisConfig(TrainConfig):
    resolution: int = 64
    noise_dim: int = 100
    g_width: int = 1024  # generator width at 4 x 4; halves per upsampling (paper 1024 -> 64)
    d_width: int = 64  # discriminator width of the first layer; doubles per layer (paper 64 -> 1024)
    batch: int = 32
    iterations: int = 25_000
    lr_g: float = 1e-5
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8
    label_smoothing: float = 0.1  # one-sided: real targets 1 - 0.1
    g_dropout: float = 0.5
    d_dropout: float = 0.5
    augment: bool = False  # random flips / 90-degree rotations of real patches (not in the paper)
    classes: str = ""  # comma-separated lesion classes; empty: every class in the labels file
    margin: float = 1.5  # ROI crop side = margin x the lesion box's longer side ...
    min_side: float = 32.0  # ... and at least this many film pixels
    ema_decay: float = 0.0  # the paper keeps no average: the exported generator is the trained one
    validate_every: int = 0  # synthesis has no anomaly score to validate; quality is `evaluate`'s job

    HELP: ClassVar[dict[str, str]] = {
        "resolution": "patch size in pixels, 4 x a power of two (paper 64; 128 also works)",
        "noise_dim": "length of the uniform noise vector (paper 100)",
        "g_width": "generator channels at 4 x 4, halved per upsampling (paper 1024)",
        "d_width": "discriminator channels of its first layer, doubled per layer (paper 64)",
        "lr_g": "Adam learning rate of the generator (paper 1e-5)",
        "lr_d": "Adam learning rate of the discriminator (paper 1e-4)",
        "beta1": "Adam beta1 (paper 0.5)",
        "beta2": "Adam beta2 (paper 0.999)",
        "eps": "Adam epsilon (paper 1e-8)",
        "label_smoothing": "one-sided label smoothing: real targets 1 - this (paper 0.1)",
        "g_dropout": "dropout after each generator layer while training (paper 0.5)",
        "d_dropout": "dropout after each discriminator layer (paper 0.5)",
        "augment": "random flips and quarter turns of the real patches (not in the paper)",
        "classes": "comma-separated lesion classes to train on (empty: every class of the labels file; one "
                   "class: the paper's one model per class)",
        "margin": "ROI crop side as a multiple of the lesion box's longer side",
        "min_side": "smallest ROI crop side in film pixels",
    }


PRESETS = {
    "paper": dict(resolution=64, g_width=1024, d_width=64, batch=32, iterations=25_000, lr_g=1e-5, lr_d=1e-4,
                  g_dropout=0.5, d_dropout=0.5, augment=False),
    # the shipped bundle: 4000 iterations, 59 min on one (shared) CPU core
    "cpu": dict(resolution=64, g_width=128, d_width=16, batch=32, iterations=4000, lr_g=1e-4, lr_d=4e-4,
                g_dropout=0.0, d_dropout=0.5, augment=True, threads=1, checkpoint_every=250, sample_every=500),
    "gpu": dict(resolution=64, g_width=256, d_width=32, batch=64, iterations=20_000, lr_g=1e-4, lr_d=4e-4,
                g_dropout=0.0, d_dropout=0.5, augment=True, time_budget_s=240.0, checkpoint_every=1000),
    "tiny": dict(resolution=32, g_width=16, d_width=4, noise_dim=8, batch=4, iterations=4, lr_g=1e-4, lr_d=4e-4,
                 g_dropout=0.0, d_dropout=0.0, checkpoint_every=2, sample_every=4, threads=1, min_side=8.0),
}
