"""StyleGAN2 networks (Karras et al. 2020, config-f), written for this project in plain torch.

Written from the paper's description (its Figures 2 and 7, Appendix B), not copied from the
reference code (whose licence is non-commercial). Choices that keep forward *and* backward
exportable to ONNX (the projector runs its gradients inside ONNX Runtime):

* Equalised learning rate: weights stored ~N(0, 1 / lr_mul), scaled at run time by
  ``lr_mul / sqrt(fan_in)``.
* Modulated / demodulated 3x3 convolution with the modulation applied to the *activations*
  (``x * s``, a convolution with the shared weight, then ``* d``, the per-sample demodulation
  coefficients): the convolution weight is a constant of the graph, so its backward is a
  transposed convolution with a constant weight. Mathematically the same as scaling the weights.
* Noise maps are explicit inputs of the synthesis network, one per convolution layer
  (``noise_shapes``), each scaled by a learned per-layer strength; nothing random inside.
* Resampling: the [1, 3, 3, 1] binomial filter as a depthwise (single-channel per channel)
  convolution; up-sampling is zero insertion by a depthwise transposed convolution with that
  filter (gain 4), then the 3x3 modulated convolution at the new resolution (the reference fuses
  a strided transposed convolution with the filter; this order costs more multiply-adds and
  gives the same function class). Down-sampling is the filter then a stride-2 convolution.
* Skip generator (tRGB outputs summed over resolutions after up-sampling), residual
  discriminator with a minibatch standard-deviation layer (group 4) before its last block.
  The discriminator's ``features`` (the block outputs before the minibatch layer) depend on one
  image only; the projector's perceptual loss uses them (so the k seeds of a batch stay
  independent).
* No in-place operations anywhere (the joint forward-backward trace must be functional).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def _binomial() -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[:, None] * k[None, :]
    return k / k.sum()


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU (0.2) with the gain sqrt(2) that keeps the activations' magnitude."""
    return F.leaky_relu(x, 0.2) * SQRT2


class Resample(nn.Module):
    """Binomial [1, 3, 3, 1] filtering as a depthwise convolution: ``up`` (x2) or ``down`` (/2)."""

    def __init__(self, channels: int, mode: str):
        super().__init__()
        self.channels, self.mode = channels, mode
        kernel = _binomial() * (4.0 if mode == "up" else 1.0)
        self.register_buffer("kernel", kernel[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "up":  # zero insertion and filter: output 2H x 2W
            return F.conv_transpose2d(x, self.kernel, stride=2, padding=1, groups=self.channels)
        # down: filter and take every second pixel, H / 2 x W / 2
        return F.conv2d(F.pad(x, (1, 1, 1, 1)), self.kernel, stride=2, groups=self.channels)


class FullyConnected(nn.Module):
    def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul, self.activation = lr_mul, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mul)
        return lrelu(y) if self.activation else y


class MappingNetwork(nn.Module):
    """z (N, z_dim) -> w (N, w_dim): second-moment normalisation of z, then ``layers`` FC + lrelu (lr x 0.01)."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float = 0.01):
        super().__init__()
        self.z_dim, self.w_dim = z_dim, w_dim
        dims = [z_dim] + [w_dim] * layers
        self.layers = nn.ModuleList(FullyConnected(a, b, lr_mul=lr_mul, activation=True) for a, b in zip(dims, dims[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = layer(x)
        return x


class ModulatedConv(nn.Module):
    """Style-modulated k x k convolution; modulation and demodulation act on the activations."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel: int = 3, *, demodulate: bool = True,
                 up: bool = False):
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.demodulate, self.padding = demodulate, kernel // 2
        self.up = Resample(in_channels, "up") if up else None

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # (N, Cin)
        weight = self.weight * self.weight_gain
        x = x * styles[:, :, None, None]
        if self.up is not None:
            x = self.up(x)
        x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # sigma_j = sqrt(sum_i,k (w_ijk s_i)^2): sum_i s_i^2 * sum_k w_ijk^2
            d = torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8)  # (N, Cout)
            x = x * d[:, :, None, None]
        return x


class SynthesisLayer(nn.Module):
    """Modulated conv, plus noise (explicit input x learned strength), plus bias, lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, *, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv(in_channels, out_channels, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w) + noise * self.noise_strength
        return lrelu(x + self.bias[None, :, None, None])


class ToImage(nn.Module):
    """tRGB (here one grey channel): 1x1 modulated convolution without demodulation, plus bias."""

    def __init__(self, in_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv(in_channels, 1, w_dim, kernel=1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


def channels_at(resolution: int, base: int, maximum: int) -> int:
    return int(min(base // resolution, maximum))


class SynthesisNetwork(nn.Module):
    """(w per layer, noise maps) -> image (N, 1, R, R) in about [-1, 1]; skip architecture.

    ``forward(ws, *noise)``: ``ws`` is (N, w_dim) (the same w for every layer: projection in W)
    or (N, num_ws, w_dim) (style mixing); ``noise`` one (N, 1, r, r) map per entry of
    :attr:`noise_shapes`.
    """

    def __init__(self, resolution: int, w_dim: int, channel_base: int, channel_max: int):
        super().__init__()
        self.resolution, self.w_dim = resolution, w_dim
        levels = int(math.log2(resolution))
        self.resolutions = [2 ** i for i in range(2, levels + 1)]
        c4 = channels_at(4, channel_base, channel_max)
        self.const = nn.Parameter(torch.randn(c4, 4, 4))
        self.layers = nn.ModuleList([SynthesisLayer(c4, c4, w_dim)])
        self.to_images = nn.ModuleList([ToImage(c4, w_dim)])
        self.upsample_image = Resample(1, "up")
        noise = [(4, 4)]
        for res in self.resolutions[1:]:
            cin, cout = channels_at(res // 2, channel_base, channel_max), channels_at(res, channel_base, channel_max)
            self.layers.append(SynthesisLayer(cin, cout, w_dim, up=True))
            self.layers.append(SynthesisLayer(cout, cout, w_dim))
            self.to_images.append(ToImage(cout, w_dim))
            noise += [(res, res), (res, res)]
        self.noise_shapes = noise
        self.num_ws = len(self.layers) + 1  # one w per convolution layer, plus the last tRGB's

    def forward(self, ws: torch.Tensor, *noise: torch.Tensor) -> torch.Tensor:
        if ws.dim() == 2:
            ws = ws[:, None, :].expand(ws.shape[0], self.num_ws, ws.shape[1])
        x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        x = self.layers[0](x, ws[:, 0], noise[0])
        image = self.to_images[0](x, ws[:, 1])
        for i in range(1, len(self.resolutions)):
            a, b = 2 * i - 1, 2 * i
            x = self.layers[a](x, ws[:, a], noise[a])
            x = self.layers[b](x, ws[:, b], noise[b])
            image = self.upsample_image(image) + self.to_images[i](x, ws[:, b + 1])
        return image

    def random_noise(self, n: int, generator: torch.Generator | None = None, device=None) -> list[torch.Tensor]:
        return [torch.randn(n, 1, h, w, generator=generator, device=device) for h, w in self.noise_shapes]


class Generator(nn.Module):
    """Mapping plus synthesis; ``forward(z)`` draws fresh noise maps (training and sample grids)."""

    def __init__(self, resolution: int, z_dim: int, w_dim: int, mapping_layers: int, channel_base: int,
                 channel_max: int):
        super().__init__()
        self.z_dim = z_dim
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.synthesis = SynthesisNetwork(resolution, w_dim, channel_base, channel_max)

    def forward(self, z: torch.Tensor, z2: torch.Tensor | None = None, mixing_cutoff: torch.Tensor | None = None,
                noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``z2`` and ``mixing_cutoff`` (N,) mix styles: layers at or after the cutoff take w(z2)."""
        w = self.mapping(z)
        ws = w[:, None, :].expand(-1, self.synthesis.num_ws, -1)
        if z2 is not None:
            w2 = self.mapping(z2)[:, None, :].expand_as(ws)
            index = torch.arange(self.synthesis.num_ws, device=z.device)[None, :, None]
            ws = torch.where(index >= mixing_cutoff[:, None, None], w2, ws)
        noise = noise if noise is not None else self.synthesis.random_noise(z.shape[0], device=z.device)
        return self.synthesis(ws, *noise)


class DiscriminatorBlock(nn.Module):
    """conv 3x3, filter-and-subsample then conv 3x3, plus a down-sampled 1x1 skip; sum x 1 / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv(in_channels, in_channels, 3)
        self.down = Resample(in_channels, "down")
        self.conv1 = EqualConv(in_channels, out_channels, 3)
        self.skip = EqualConv(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(self.down(x))
        y = lrelu(self.conv0(x))
        y = lrelu(self.conv1(self.down(y)))
        return (skip + y) * (1.0 / SQRT2)


class EqualConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, *, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.gain, self.padding = 1.0 / math.sqrt(in_channels * kernel * kernel), kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.gain, self.bias, padding=self.padding)


class Discriminator(nn.Module):
    """Residual discriminator: fromRGB, blocks down to 4 x 4, minibatch stddev, conv, FC, FC -> one logit."""

    def __init__(self, resolution: int, channel_base: int, channel_max: int, mbstd_group: int = 4):
        super().__init__()
        levels = int(math.log2(resolution))
        self.from_image = EqualConv(1, channels_at(resolution, channel_base, channel_max), 1)
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(channels_at(2 ** i, channel_base, channel_max),
                               channels_at(2 ** (i - 1), channel_base, channel_max))
            for i in range(levels, 2, -1))
        c4 = channels_at(4, channel_base, channel_max)
        self.mbstd_group = mbstd_group
        self.conv = EqualConv(c4 + 1, c4, 3)
        self.fc = FullyConnected(c4 * 16, c4, activation=True)
        self.out = FullyConnected(c4, 1)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The activations after fromRGB and after each block (per image; no minibatch coupling)."""
        x = lrelu(self.from_image(image))
        feats = [x]
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.features(image)[-1]
        n, c, h, w = x.shape
        g = min(self.mbstd_group, n)
        while n % g:
            g -= 1
        y = x.reshape(g, n // g, c, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n // g,)
        y = y.repeat(g)[:, None, None, None].expand(n, 1, h, w)
        x = lrelu(self.conv(torch.cat([x, y], dim=1)))
        x = self.fc(x.flatten(1))
        return self.out(x)


def noise_regulariser(noise: list[torch.Tensor]) -> torch.Tensor:
    """Per sample: sum over maps and scales of the squared lag-1 autocorrelations (rows and columns).

    The reference projector's regulariser: at each scale, ``mean(n * roll(n, 1, W))^2 +
    mean(n * roll(n, 1, H))^2``, then 2x2 average pooling (here reshape-and-mean) until the map
    is 8 x 8 or smaller. Returns (N,).
    """
    total = 0.0
    for n in noise:
        while True:
            b, _, h, w = n.shape
            total = total + (n * torch.roll(n, 1, dims=3)).mean(dim=(1, 2, 3)).square()
            total = total + (n * torch.roll(n, 1, dims=2)).mean(dim=(1, 2, 3)).square()
            if h <= 8:
                break
            n = n.reshape(b, 1, h // 2, 2, w // 2, 2).mean(dim=(3, 5))
    return total


def critic_distance(critic: Discriminator, target: torch.Tensor, image: torch.Tensor, layers: int,
                    pixel_weight: float) -> torch.Tensor:
    """The default perceptual loss, per sample (N,): the critic's features plus a pixel term.

    For each of the first ``layers`` feature maps (after fromRGB and after each block): the mean
    squared difference of the features, relative to the target's mean squared feature (so every
    layer counts about equally, whatever its scale); the layers averaged; plus ``pixel_weight`` x
    the mean squared pixel difference (images in [-1, 1]). LPIPS normalises each pixel's feature
    vector to unit length instead; on a grey image's first layers that is close to the sign of
    the pixel, whose gradient explodes near zero, so the normalisation here is per layer.
    """
    pixels = pixel_weight * (target - image).square().mean(dim=(1, 2, 3))
    if layers == 0:
        return pixels
    dist = 0.0
    for a, b in list(zip(critic.features(target), critic.features(image)))[:layers]:
        scale = a.square().mean(dim=(1, 2, 3)) + 1e-8
        dist = dist + (a - b).square().mean(dim=(1, 2, 3)) / scale
    return dist / layers + pixels


class ProjectStep(nn.Module):
    """One projection step's forward: ``(target, w, *noise) -> (loss (N,), image)``.

    ``target`` (N, 1, R, R) in [-1, 1], ``w`` (N, w_dim), one noise map (N, r, r) per synthesis
    layer (rank 3: the bundle's image inputs are the rank-4 ones).
    ``loss = perceptual(target, G(w, noise)) + noise_weight x noise_regulariser(noise)``, per
    sample; its gradients with respect to ``w`` and the noise maps are what the projector needs
    (:func:`training.projection.export.export_project_step` traces them jointly).
    """

    def __init__(self, synthesis: SynthesisNetwork, critic: Discriminator, *, layers: int, pixel_weight: float,
                 noise_weight: float):
        super().__init__()
        self.synthesis, self.critic = synthesis, critic
        self.layers, self.pixel_weight, self.noise_weight = layers, pixel_weight, noise_weight

    def forward(self, target: torch.Tensor, w: torch.Tensor, *noise: torch.Tensor):
        maps = [n[:, None] for n in noise]
        image = self.synthesis(w, *maps)
        dist = critic_distance(self.critic, target, image, self.layers, self.pixel_weight)
        return dist + self.noise_weight * noise_regulariser(maps), image


def w_statistics(mapping: MappingNetwork, samples: int = 10_000, seed: int = 123) -> tuple[np.ndarray, float]:
    """``(w_avg, w_std)`` of ``samples`` mapped z (the reference projector's 10,000): w_std is the
    root mean squared distance of w to w_avg (one number)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = mapping(torch.randn(samples, mapping.z_dim, generator=g))
    avg = w.mean(dim=0)
    std = float(((w - avg).square().sum() / samples).sqrt())
    return avg.numpy().astype(np.float32), std
