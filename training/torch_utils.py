"""Tiny helpers shared by the training loop and the method packages: seeding, distributed setup,
EMA, the WGAN-GP gradient penalty, checkpoint I/O (loaded with ``weights_only=True``), the code
revision, a text progress bar. Nothing here knows a method."""
from __future__ import annotations

import copy
import io
import os
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inference.files import atomic_write_bytes
from inference.jobs import console_progress


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class Distributed:
    """Rank information when launched by torchrun (WORLD_SIZE > 1), else a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> Distributed:
    """Initialise torch.distributed from torchrun's environment; one CPU process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if world <= 1:
        return Distributed(device=torch.device("cuda" if cuda else "cpu"))
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local)
    return Distributed(rank, world, local, torch.device(f"cuda:{local}" if cuda else "cpu"))


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return module.module if hasattr(module, "module") else module


class EMA:
    """Exponential moving average of a module's weights (the generator that gets exported).

    The decay ramps up as ``min(decay, (1 + t) / (10 + t))`` over the first updates, so a short
    CPU run does not export an average still dominated by the random initial weights.
    """

    def __init__(self, module: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.steps = 0
        self.module = copy.deepcopy(unwrap(module)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        decay = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        self.steps += 1
        for ema_p, p in zip(self.module.parameters(), unwrap(module).parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.module.buffers(), unwrap(module).buffers()):
            ema_b.copy_(b)


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to memory, then an atomic replace: a killed run never leaves half a file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    """A checkpoint as plain tensors and containers: ``weights_only=True`` never runs pickled code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def compact_state(state_dict: dict) -> dict:
    """Floating-point tensors as float16: the carry checkpoint that moves between short GPU leases."""
    return {k: (v.half() if v.is_floating_point() else v) for k, v in state_dict.items()}


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(|grad D(x_hat)|_2 - 1)^2] on random interpolates."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(x_hat)
    grad = torch.autograd.grad(out, x_hat, torch.ones_like(out), create_graph=True)[0]
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def code_revision() -> str:
    """The git revision the code runs from, or "unknown" outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class ProgressBar:
    """One updating line on stderr: iteration, rate, ETA and the latest losses."""

    def __init__(self, total: int, start: int = 0, every: float = 2.0, enabled: bool = True):
        self.total, self.start, self.every, self.enabled = total, start, every, enabled
        self.t0 = self.last = time.time()

    def update(self, done: int, **values: float) -> None:
        now = time.time()
        if not self.enabled or (now - self.last < self.every and done < self.total):
            return
        self.last = now
        rate = (done - self.start) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        losses = " ".join(f"{k} {v:.3f}" for k, v in values.items())
        console_progress(done, self.total, f"{rate:.2f} it/s, eta {eta / 60:.1f} min  {losses}")
