"""The inpainting GAN's networks (paper 002, after Yu et al. 2018, "Generative image inpainting
with contextual attention", the v1 design the paper cites as its reference 9).

Paper 002 names the design (two-stage generator, contextual attention, local and global WGAN-GP
critics) but not the layers; where it is silent we follow Yu et al.'s v1 code
(JiahuiYu/generative_inpainting, ``inpaint_model.py``), scaled by a channel knob ``width`` (Yu's
``cnum`` = 32) and a ``dilations`` tuple (Yu's 2, 4, 8, 16) so a CPU preset can shrink both:

* Inputs are the FOV window in [-1, 1] and the hole mask (1 inside the hole). The generator sees
  ``[x * (1 - m), ones, m]`` (Yu: the incomplete image, a channel of ones, the mask).
* Coarse network: 5x5 conv, two stride-2 stages (3x3 convs), dilated 3x3 convs at the given
  rates, two 3x3 convs, two nearest-neighbour x2 upsamplings each followed by 3x3 convs, and a
  3x3 conv to the image, clipped to [-1, 1]. ELU activations, as in v1.
* Refinement network on ``x_coarse * m + x * (1 - m)``: a dilated branch (the coarse network's
  encoder) and a contextual-attention branch (same encoder without dilations, then
  :class:`ContextualAttention` and two 3x3 convs), concatenated and decoded as in the coarse
  network. Yu's attention-score "fuse" step (a 3x3 identity convolution along the diagonals of
  the score matrix) is left out: it is a smoothing prior, not part of the paper's description.
* Critics (Yu's v1 ``build_wgan_local/global_discriminator``): four 5x5 stride-2 convolutions with
  LeakyReLU(0.2) (widths w, 2w, 4w, 8w for the local critic on the hole, w, 2w, 4w, 4w for the
  global critic on the FOV), flattened, one linear output. The local critic sees a fixed-size
  ``hole`` x ``hole`` crop centred on the hole (the whole hole for the largest holes, the hole with
  some context for smaller ones), since training holes vary from ``hole_min`` to ``hole``.

Contextual attention is written as batched matrix products over unfolded patches (cosine
similarity, scaled softmax, fold back). The unfold and fold are convolutions with fixed one-hot
kernels, so the graph exports to ONNX (opset 17) with a dynamic batch and runs in ONNX Runtime
without custom ops; Yu's per-sample loop that uses each image's patches as convolution weights
would trace to a fixed batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, act: bool = True) -> nn.Module:
    pad = dilation * (k - 1) // 2
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation)]
    if act:
        layers.append(nn.ELU())
    return nn.Sequential(*layers)


class _Up(nn.Module):
    """Nearest x2 upsampling then a 3x3 conv (Yu's ``gen_deconv``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = _conv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _encoder(cin: int, w: int, dilations: tuple[int, ...], first_stride_width: int | None = None) -> nn.Sequential:
    """5x5 conv, two stride-2 stages, dilated convs (Yu's coarse / refinement encoders)."""
    w1 = first_stride_width or 2 * w
    layers = [_conv(cin, w, 5), _conv(w, w1, 3, 2), _conv(w1, 2 * w), _conv(2 * w, 4 * w, 3, 2),
              _conv(4 * w, 4 * w), _conv(4 * w, 4 * w)]
    layers += [_conv(4 * w, 4 * w, 3, dilation=d) for d in dilations]
    return nn.Sequential(*layers)


def _decoder(cin: int, w: int) -> nn.Sequential:
    return nn.Sequential(_conv(cin, 4 * w), _conv(4 * w, 4 * w), _Up(4 * w, 2 * w), _conv(2 * w, 2 * w),
                         _Up(2 * w, w), _conv(w, max(1, w // 2)), _conv(max(1, w // 2), 1, act=False))


def _patch_kernel(channels: int, k: int) -> torch.Tensor:
    """One-hot kernels (channels * k * k, 1, k, k): a grouped conv with them is ``F.unfold``."""
    eye = torch.eye(k * k).reshape(k * k, 1, k, k)
    return eye.repeat(channels, 1, 1, 1)


class ContextualAttention(nn.Module):
    """Yu et al.'s contextual attention as batched matmuls (exports with a dynamic batch).

    Foreground and background are the same feature map ``x`` (N, C, H, W); ``mask`` (N, 1, H, W)
    is 1 on the hole. Matching is done at 1 / ``rate`` resolution with ``k`` x ``k`` patches
    (Yu: k = 3, rate = 2): every foreground patch is compared with every background patch by
    cosine similarity, background patches touching the hole are excluded, a softmax with
    ``scale`` (Yu: 10) weighs them, and the full-resolution ``2 rate`` x ``2 rate`` background
    patches are pasted back with those weights (a transposed convolution, divided by the 4
    overlaps, as Yu's ``conv2d_transpose(...) / 4``).
    """

    def __init__(self, channels: int, size: int, k: int = 3, rate: int = 2, scale: float = 10.0):
        super().__init__()
        if size % rate:
            raise ValueError(f"contextual attention needs a feature size divisible by {rate}, got {size}")
        self.channels, self.size, self.k, self.rate, self.scale = channels, size, k, rate, scale
        self.raw_k = 2 * rate
        self.register_buffer("match_kernel", _patch_kernel(channels, k), persistent=False)
        self.register_buffer("raw_kernel", _patch_kernel(channels, self.raw_k), persistent=False)
        self.register_buffer("mask_kernel", torch.full((1, 1, k, k), 1.0 / (k * k)), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        c, k, r, rk = self.channels, self.k, self.rate, self.raw_k
        small = self.size // r
        n_patches = small * small
        # full-resolution background patches (raw), stride = rate: (N, C*rk*rk, L)
        raw = F.conv2d(x, self.raw_kernel, stride=r, padding=r // 2, groups=c).reshape(-1, c * rk * rk, n_patches)
        xs = x[:, :, ::r, ::r]
        ms = mask[:, :, ::r, ::r]
        patches = F.conv2d(xs, self.match_kernel, padding=k // 2, groups=c).reshape(-1, c * k * k, n_patches)
        norm = torch.sqrt((patches * patches).sum(dim=1, keepdim=True) + 1e-8).clamp_min(1e-4)
        background = patches / norm  # (N, C*k*k, L) normalised background patches
        # scores[n, l_b, l_f] = <background patch l_b, foreground patch l_f> (cosine up to the
        # foreground's norm, which the softmax over l_b does not need)
        scores = torch.bmm(background.transpose(1, 2), patches)  # (N, L_b, L_f)
        # background patches that overlap the hole carry no information: excluded
        valid = (F.conv2d(ms, self.mask_kernel, padding=k // 2).reshape(-1, n_patches, 1) < 1e-3).to(x.dtype)
        scores = scores * valid
        attention = torch.softmax(scores * self.scale, dim=1) * valid  # (N, L_b, L_f)
        out = torch.bmm(raw, attention)  # (N, C*rk*rk, L_f)
        out = out.reshape(-1, c * rk * rk, small, small)
        # fold back: transposed grouped conv with the one-hot kernels sums the overlapping patches
        return F.conv_transpose2d(out, self.raw_kernel, stride=r, padding=r // 2, groups=c) / 4.0


class InpaintingGenerator(nn.Module):
    """(image (N, 1, F, F) in [-1, 1], mask (N, 1, F, F) 1 on the hole) -> (coarse, fine) in [-1, 1].

    The fine output is the prediction everywhere; the completion is ``fine * m + x * (1 - m)``.
    """

    def __init__(self, fov: int = 256, width: int = 32, dilations: tuple[int, ...] = (2, 4, 8, 16)):
        super().__init__()
        if fov % 8:
            raise ValueError(f"the FOV must be a multiple of 8, got {fov}")
        w, dilations = width, tuple(dilations)
        self.coarse_encoder = _encoder(3, w, dilations)
        self.coarse_decoder = _decoder(4 * w, w)
        self.refine_conv = _encoder(3, w, dilations, first_stride_width=w)
        att = [_conv(3, w, 5), _conv(w, w, 3, 2), _conv(w, 2 * w), _conv(2 * w, 4 * w, 3, 2), _conv(4 * w, 4 * w),
               nn.Sequential(nn.Conv2d(4 * w, 4 * w, 3, 1, 1), nn.ReLU())]
        self.refine_att_encoder = nn.Sequential(*att)
        self.attention = ContextualAttention(4 * w, fov // 4)
        self.refine_att_after = nn.Sequential(_conv(4 * w, 4 * w), _conv(4 * w, 4 * w))
        self.refine_decoder = _decoder(8 * w, w)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ones = torch.ones_like(mask)
        x_in = image * (1.0 - mask)
        coarse = self.coarse_decoder(self.coarse_encoder(torch.cat([x_in, ones, mask], 1))).clamp(-1.0, 1.0)
        merged = coarse * mask + image * (1.0 - mask)
        y = torch.cat([merged, ones, mask], 1)
        conv_branch = self.refine_conv(y)
        att = self.refine_att_encoder(y)
        mask_small = mask[:, :, ::4, ::4]
        att = self.refine_att_after(self.attention(att, mask_small))
        fine = self.refine_decoder(torch.cat([conv_branch, att], 1)).clamp(-1.0, 1.0)
        return coarse, fine


class Critic(nn.Module):
    """WGAN critic (Yu's v1 local / global discriminators): four 5x5 stride-2 convs, one linear."""

    def __init__(self, size: int, width: int = 64, widths: tuple[int, ...] = (1, 2, 4, 8)):
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for m in widths:
            layers += [nn.Conv2d(c, width * m, 5, 2, 2), nn.LeakyReLU(0.2)]
            c = width * m
        self.features = nn.Sequential(*layers)
        side = size
        for _ in widths:
            side = (side + 1) // 2
        self.linear = nn.Linear(c * side * side, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x).flatten(1))


class Critics(nn.Module):
    """The local critic on the ``hole`` crop and the global critic on the FOV, one module (one optimizer)."""

    def __init__(self, fov: int = 256, hole: int = 128, width: int = 64):
        super().__init__()
        self.fov, self.hole = fov, hole
        self.local = Critic(hole, width, (1, 2, 4, 8))
        self.global_ = Critic(fov, width, (1, 2, 4, 4))

    def forward(self, fov_image: torch.Tensor, local_patch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.global_(fov_image), self.local(local_patch)


class CentredCritics(nn.Module):
    """The exported critic graph: (N, 1, F, F) window -> (global score, local score on the centre hole)."""

    def __init__(self, critics: Critics):
        super().__init__()
        self.critics = critics
        self.start = (critics.fov - critics.hole) // 2

    def forward(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, h = self.start, self.critics.hole
        return self.critics(window, window[:, :, s : s + h, s : s + h])


class ExportGenerator(nn.Module):
    """The exported generator graph: (image, mask) -> the fine prediction only."""

    def __init__(self, generator: InpaintingGenerator):
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.generator(image, mask)[1]
