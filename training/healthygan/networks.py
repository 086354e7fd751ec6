"""Network modules, small and explicit (after NVlabs' training/networks.py).

HealthyGAN (paper 003, Appendix B, Tables 2 and 3), grayscale, with a channel-width knob
(``width``; the paper's is 64) so a small configuration trains on a CPU. Where the paper is
silent we follow its public implementation (mahfuzmohammad/HealthyGAN, StarGAN-derived):

* Residual blocks hold two 3x3 convolutions with instance norm (Table 3 lists one line per
  block; the code has conv-IN-ReLU-conv-IN plus the skip). Convolutions have no bias.
* Instance norm is affine. The reference builds it with ``track_running_stats=True`` but never
  switches the generator to eval mode, so every forward pass normalises with the image's own
  statistics; ``track_running_stats=False`` gives exactly that behaviour in train and eval mode
  alike (and in the exported ONNX graph).
* The last convolution has two output channels (image, mask) instead of the code's four
  (RGB, mask). Both are squashed with tanh: ``B_int = tanh(y0)`` in [-1, 1] and
  ``M = (tanh(y1) + 1) / 2`` in [0, 1], as in the reference's training and test code.
* The PatchGAN critic (Table 2): 4x4 stride-2 convolutions with LeakyReLU(0.01), doubling the
  width, then a 3x3 convolution to one channel without bias; ``depth`` strided layers (6 in the
  paper) with the output of ``resolution / 2**depth`` patches.
"""
from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _norm(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class HealthyGANGenerator(nn.Module):
    """Image in [-1, 1], shape (N, C, H, W) -> (B_int in [-1, 1], mask M in [0, 1])."""

    def __init__(self, channels: int = 1, width: int = 64, residual_blocks: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 7, 1, 3, bias=False), _norm(width), nn.ReLU(inplace=True)]
        c = width
        for _ in range(2):  # encoder: two stride-2 convolutions
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), _norm(2 * c), nn.ReLU(inplace=True)]
            c *= 2
        layers += [ResidualBlock(c) for _ in range(residual_blocks)]
        for _ in range(2):  # decoder
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), _norm(c // 2), nn.ReLU(inplace=True)]
            c //= 2
        layers.append(nn.Conv2d(c, channels + 1, 7, 1, 3, bias=False))
        self.main = nn.Sequential(*layers)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.main(x)
        intermediate = torch.tanh(y[:, : self.channels])
        mask = (torch.tanh(y[:, self.channels :]) + 1.0) / 2.0
        return intermediate, mask


def compose_healthy(x: torch.Tensor, intermediate: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 1: B' = B_int * M + x * (1 - M)."""
    return intermediate * mask + x * (1.0 - mask)


def compose_reconstruction(x: torch.Tensor, intermediate: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 2: A' = x * M + B_int * (1 - M)."""
    return x * mask + intermediate * (1.0 - mask)


class PatchCritic(nn.Module):
    """WGAN critic, PatchGAN style: (N, C, H, W) -> (N, 1, H / 2**depth, W / 2**depth) scores."""

    def __init__(self, channels: int = 1, width: int = 64, depth: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.01)]
        c = width
        for _ in range(1, depth):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.01)]
            c *= 2
        self.main = nn.Sequential(*layers)
        self.out = nn.Conv2d(c, 1, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.main(x))
