"""ROI synthesis (paper 004, ROI-mammoGAN): class-conditional DCGAN lesion patches.

The training package of the ``synthesis`` method: networks (``networks``), losses per phase
(``loss``), configuration and presets (``config``), the lesion-class classifier of the quality
and augmentation measurements (``classifier``), and :class:`Synthesis`, what the shared loop
(:mod:`training.loop`) and export (:mod:`training.export`) need.

* Data: one patch per annotated lesion of the labels file's train split
  (:func:`training.datasets.roi_patches`: crop around the box, or the mini-MIAS centre and
  radius, resize to 64, scale to [-1, 1]); the classes are read from the data and written into
  the bundle (``parameters.classes``), in the order of the generator's one-hot code.
* One iteration is one discriminator step then one generator step on the same real batch
  (Algorithm 2). Adam with beta1 0.5, the paper's learning rates per preset (``config``).
* The exported graph ``generator`` takes ``code`` = noise (uniform in [-1, 1], ``noise_dim``) with
  the one-hot class appended and returns ``patch`` (N, 1, R, R) in [-1, 1]; the engine draws the
  noise with numpy from the user's seed, so the same seed and bundle give the same bytes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.loop import GANMethod
from training.synthesis.config import PRESETS, SynthesisConfig
from training.synthesis.loss import SynthesisLoss, noise
from training.synthesis.networks import Discriminator, Generator

Config = SynthesisConfig
__all__ = ["Config", "PRESETS", "Synthesis", "SynthesisConfig", "Method", "dihedral"]

GRID_COLUMNS = 8


def dihedral(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each (C, H, W) image under a random one of the 8 flips / quarter turns (real-data augmentation)."""
    k = torch.randint(4, (images.size(0),), generator=generator)
    flip = torch.randint(2, (images.size(0),), generator=generator).bool()
    out = torch.stack([torch.rot90(im, int(r), dims=(1, 2)) for im, r in zip(images, k)])
    out[flip] = out[flip].flip(-1)
    return out


def wanted_classes(cfg) -> list[str]:
    return [c.strip() for c in cfg.classes.split(",") if c.strip()]


class Synthesis(GANMethod):
    name = "synthesis"
    method = "synthesis"
    ema_network = "generator"
    ema_phase = "generator"
    calibrated = False  # a generator has no anomaly score to calibrate
    phase_networks = ("discriminator", "generator")
    description = "ROI-mammoGAN class-conditional lesion patches (Oyelade et al. 2022)"

    def prepare_data(self, out: Path, log) -> None:
        from training.datasets import roi_patches

        cfg = self.cfg
        data = roi_patches(cfg.labels, cfg.resolution, splits=("train",), margin=cfg.margin,
                           min_side=cfg.min_side, cache_dir=out)
        wanted = wanted_classes(cfg)
        missing = [c for c in wanted if c not in data.labels]
        if missing:
            raise ValueError(f"the train split of {Path(cfg.labels).name} has no {', '.join(missing)} lesion "
                             f"(it has {', '.join(data.classes)})")
        if wanted:
            data = data.select([lab in wanted for lab in data.labels])
        self.classes = wanted or data.classes
        self.data = data
        self.images = torch.from_numpy(data.patches[:, None] * 2.0 - 1.0)
        self.targets = torch.tensor([self.classes.index(lab) for lab in data.labels])
        counts = ", ".join(f"{c} {int((self.targets == i).sum())}" for i, c in enumerate(self.classes))
        log(f"ROI synthesis: {len(data)} lesion patches of {cfg.resolution} px from the train split ({counts})")

    def onehot(self, index: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(index, len(self.classes)).float()

    def _n_classes(self) -> int:
        if not hasattr(self, "classes"):
            raise RuntimeError("the classes are unknown before prepare_data() or restore_run_info()")
        return len(self.classes)

    def build_networks(self) -> dict[str, torch.nn.Module]:
        cfg, k = self.cfg, self._n_classes()
        return {"generator": Generator(cfg.noise_dim, k, cfg.resolution, cfg.g_width, dropout=cfg.g_dropout),
                "discriminator": Discriminator(k, cfg.resolution, cfg.d_width, dropout=cfg.d_dropout)}

    def learning_rates(self):
        return {"generator": self.cfg.lr_g, "discriminator": self.cfg.lr_d}

    def loss(self, networks):
        return SynthesisLoss(self.cfg, networks)

    def next_batch(self, device):
        idx = torch.randint(len(self.images), (self.cfg.batch,))
        images = self.images[idx]
        if self.cfg.augment:
            images = dihedral(images)
        return {"image": images.to(device), "onehot": self.onehot(self.targets[idx]).to(device)}

    def sample_grid(self, ema) -> np.ndarray:
        """One row per class, ``GRID_COLUMNS`` fixed noise vectors (uint8)."""
        device = next(ema.parameters()).device
        k, n = self._n_classes(), GRID_COLUMNS
        z = noise(n, self.cfg.noise_dim, torch.Generator().manual_seed(1234)).repeat(k, 1)
        onehot = self.onehot(torch.arange(k).repeat_interleave(n))
        with torch.no_grad():
            patches = ema.eval()(torch.cat([z, onehot], 1).to(device))[:, 0]
        r = self.resolution
        grid = ((patches + 1) / 2).clamp(0, 1).reshape(k, n, r, r).permute(0, 2, 1, 3).reshape(k * r, n * r)
        return (grid.cpu().numpy() * 255).round().astype(np.uint8)

    def run_info(self) -> dict:
        if not hasattr(self, "data"):
            return {}
        return {"classes": list(self.classes), "patches": len(self.data),
                "patches_per_class": {c: int((self.targets == i).sum()) for i, c in enumerate(self.classes)}}

    # -- export ------------------------------------------------------------------------------

    def restore_run_info(self, info: dict) -> None:
        """Before export: the classes the run was trained with, in one-hot order."""
        if info.get("classes"):
            self.classes = list(info["classes"])

    def export_networks(self, ema):
        from training.export import ExportNetwork

        k = self._n_classes()
        example = torch.cat([noise(2, self.cfg.noise_dim), self.onehot(torch.arange(2) % k)], 1)
        return [ExportNetwork("generator", ema, ("code",), ("patch",), example=example)]

    def bundle_parameters(self) -> dict:
        cfg = self.cfg
        return {"architecture": "ROI-mammoGAN DCGAN (class-conditional)", "classes": list(self.classes),
                "noise_dim": cfg.noise_dim, "noise": "uniform(-1, 1)", "g_width": cfg.g_width,
                "d_width": cfg.d_width, "conditioning": "one-hot code appended to the noise",
                "roi_crop": f"{cfg.margin:g} x the lesion box's longer side, at least {cfg.min_side:g} film pixels",
                "per_class_model": len(self.classes) == 1}


Method = Synthesis
