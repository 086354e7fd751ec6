"""ROI-mammoGAN networks (paper 004, Tables 2 and 3), class-conditional.

Generator (Table 2): the noise (100-d) goes through a fully connected projection to 4 x 4 x
``g_width`` with batch norm and ReLU, then 5 x 5 fractionally strided (transposed) convolutions
with stride 2 halve the width and double the size until the resolution is reached (1024 -> 512 ->
256 -> 128 -> 64 at 64 px), each with batch norm and ReLU, and a last 5 x 5 stride-1 convolution to
one channel with tanh. Table 2 lists a 128 x 128 x 32 layer and a 64 x 64 x 2 output that do not
fit its own 64 px output; we follow the DCGAN reference the paper builds on (one stride-2 layer per
doubling, tanh output of the image's channels). Weights are drawn from N(0, 0.02) (the paper's
initializer), batch-norm scales from N(1, 0.02).

Discriminator (Table 3): 5 x 5 convolutions with stride 2 doubling the width from ``d_width``
(64 -> 1024 in the paper) down to 4 x 4, each with batch norm (every layer but the last, as the
paper says) and LeakyReLU 0.2, then flatten, one fully connected unit and a sigmoid. The sigmoid
is folded into the loss (``BCEWithLogits``, numerically safer, identical maths). Dropout (paper:
0.5 in D and G) follows each hidden layer when its rate is non-zero; the exported graph runs in
eval mode, so generation never samples dropout.

Conditioning (the paper trains one model per class; mammolens also offers one model for every
class): the generator's input is the noise with the class's one-hot code appended, ``(N,
noise_dim + K)`` (Mirza & Osindero's cGAN, which keeps the exported graph a single input); the
discriminator sees the one-hot code as K constant image planes beside the image (Table 3's input
has a second channel). With one class (K = 1) the code is a constant and this is the paper's
per-class DCGAN.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for convolutions and linear layers, N(1, 0.02) for batch-norm scales (DCGAN)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _doublings(resolution: int) -> int:
    steps = int(round(math.log2(resolution / 4)))
    if resolution < 8 or 4 * 2 ** steps != resolution:
        raise ValueError(f"resolution must be 4 x a power of two (8, 16, 32, 64, 128), not {resolution}")
    return steps


class Generator(nn.Module):
    """``(N, noise_dim + classes)`` (noise, then the one-hot class) -> ``(N, 1, R, R)`` in [-1, 1]."""

    def __init__(self, noise_dim: int = 100, classes: int = 4, resolution: int = 64, width: int = 1024,
                 channels: int = 1, dropout: float = 0.0):
        super().__init__()
        self.noise_dim, self.classes, self.width = noise_dim, classes, width
        self.project = nn.Sequential(nn.Linear(noise_dim + classes, 4 * 4 * width, bias=False),
                                     nn.BatchNorm1d(4 * 4 * width), nn.ReLU(True))
        layers: list[nn.Module] = []
        c = width
        for _ in range(_doublings(resolution)):
            out = max(1, c // 2)
            layers += [nn.ConvTranspose2d(c, out, 5, 2, padding=2, output_padding=1, bias=False),
                       nn.BatchNorm2d(out), nn.ReLU(True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            c = out
        layers += [nn.Conv2d(c, channels, 5, 1, 2), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = self.project(code).view(-1, self.width, 4, 4)
        return self.main(x)


class Discriminator(nn.Module):
    """``(image (N, 1, R, R) in [-1, 1], one-hot (N, K))`` -> one logit per image (sigmoid in the loss)."""

    def __init__(self, classes: int = 4, resolution: int = 64, width: int = 64, channels: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.classes = classes
        layers: list[nn.Module] = []
        c_in, c = channels + classes, width
        for _ in range(_doublings(resolution)):
            layers += [nn.Conv2d(c_in, c, 5, 2, 2, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.2, True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            c_in, c = c, c * 2
        self.main = nn.Sequential(*layers)
        self.out = nn.Linear(c_in * 4 * 4, 1)
        init_weights(self)

    def features(self, image: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        planes = onehot[:, :, None, None].expand(-1, -1, image.shape[2], image.shape[3])
        return self.main(torch.cat([image, planes], dim=1)).flatten(1)

    def forward(self, image: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(image, onehot)).squeeze(1)
