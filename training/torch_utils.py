"""Tiny helpers shared by the training loops: seeding, distributed setup, EMA, checkpoints,
a text progress bar. Nothing here knows a method."""
from __future__ import annotations

import copy
import io
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inference.files import atomic_write_bytes


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
    return torch.load(path, map_location="cpu", weights_only=False)


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
        print(f"\r[{done}/{self.total}] {rate:.2f} it/s, eta {eta / 60:.1f} min  {losses}   ",
              end="" if done < self.total else "\n", file=sys.stderr, flush=True)
