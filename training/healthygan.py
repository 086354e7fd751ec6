"""HealthyGAN training (paper 003): one-directional translation of any image to a healthy one.

Losses and schedule follow the paper and, where it is silent, its public implementation:

* Critic: WGAN-GP, ``L_D = E_A[D(B')] - E_B[D(x)] + lambda_gp * GP`` (Eq. 3), the penalty on
  random interpolates between real healthy images and B' (lambda_gp = 10).
* Generator, every ``n_critic`` = 2 critic updates: adversarial on both sets (Eq. 4),
  reconstruction ``|A - A'|`` (Eq. 6, A' from Eq. 2), identity ``|B - B_int|`` on the healthy set
  (Eq. 5: the intermediate image, before the mask), and the focus loss of Eq. 7 on both sets'
  masks, averaged (the code's 0.5 / 0.5), with its zero-one term relative to its minimum
  ``1 / (0.5 + eps)`` and eps = 0.01 as in the code. Weights of Appendix A: lambda_id = 1,
  lambda_rec = 1, lambda_f = 0.1, lambda_fs = 1, lambda_fz = 1.
* Adam, lr 1e-4 for both networks, betas (0.5, 0.999) from the code; the learning rate decays
  linearly to zero over the last quarter of the iterations (paper: the last 100k of 400k).
  An iteration is one critic update, as in the code.
* Images are in [-1, 1] inside the networks (the code's normalisation); data come in [0, 1]
  from the shared preprocessing.
* An exponential moving average of the generator (decay 0.999) is kept and exported.

Runs are resumable: ``checkpoint.pt`` in the run folder is written atomically every
``checkpoint_every`` iterations and picked up by the same command.
"""
from __future__ import annotations

import json
import math
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.networks import HealthyGANGenerator, PatchCritic, compose_healthy, compose_reconstruction
from training.torch_utils import (EMA, ProgressBar, load_checkpoint, save_checkpoint, seed_everything,
                                  setup_distributed, unwrap)


@dataclass
class HealthyGANConfig:
    labels: str
    out: str
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
    ema_decay: float = 0.999
    b_fraction: float = 0.5
    seed: int = 0
    checkpoint_every: int = 250
    sample_every: int = 500
    validate_every: int = 500  # 0: never; AUC of the EMA generator on the val split, as at export
    device: str = "auto"
    threads: int = 0
    command: str = field(default="", repr=False)

    def depth(self) -> int:
        return self.critic_depth or max(1, min(6, int(math.log2(self.resolution)) - 1))


def focus_loss(mask: torch.Tensor, fs: float, fz: float, eps: float) -> torch.Tensor:
    """Eq. 7: fs * mean(M)^2 + fz * (mean(1 / (|M - 0.5| + eps)) - 1 / (0.5 + eps))."""
    size = mask.mean() ** 2
    zero_one = (1.0 / (torch.abs(mask - 0.5) + eps)).mean() - 1.0 / (0.5 + eps)
    return fs * size + fz * zero_one


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(x_hat)
    grad = torch.autograd.grad(out, x_hat, torch.ones_like(out), create_graph=True)[0]
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def build_networks(cfg: HealthyGANConfig) -> tuple[HealthyGANGenerator, PatchCritic]:
    return (HealthyGANGenerator(1, cfg.width, cfg.residual_blocks),
            PatchCritic(1, cfg.critic_width, cfg.depth()))


def _code_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _save_samples(path: Path, generator, fixed: torch.Tensor) -> None:
    """A grid, one row per fixed image: input, B_int, B', mask, 4 x |x - B'| (all in [0, 1])."""
    from app.heatmap import png_bytes
    from inference.files import atomic_write_bytes

    with torch.no_grad():
        inter, mask = generator(fixed)
        healthy = compose_healthy(fixed, inter, mask)
    to01 = lambda t: ((t + 1) / 2).clamp(0, 1)  # noqa: E731
    cols = [to01(fixed), to01(inter), to01(healthy), mask, (fixed - healthy).abs() / 2 * 4]
    grid = torch.cat([torch.cat([c[i, 0] for c in cols], dim=1) for i in range(fixed.size(0))], dim=0)
    atomic_write_bytes(path, png_bytes((grid.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)))


def validation_scores(generator, images: np.ndarray, masks: np.ndarray, batch: int = 32) -> np.ndarray:
    """The deployed score (mean |x - B'| inside the breast, [0, 1] units) computed in torch."""
    from inference.translation import difference_score

    device = next(generator.parameters()).device
    scores = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start:start + batch, None] * 2.0 - 1.0).to(device)
            inter, mask = generator(x)
            diff = ((x - compose_healthy(x, inter, mask)).abs() / 2.0)[:, 0].cpu().numpy()
            scores += [difference_score(d, m) for d, m in zip(diff, masks[start:start + batch])]
    return np.asarray(scores, dtype=np.float64)


class _Validation:
    """AUC on the val split every ``validate_every`` iterations, logged and kept in validation.csv,
    so a run's progress is measured the way its bundle will be calibrated."""

    def __init__(self, cfg: HealthyGANConfig, out: Path, log):
        from training.data import load_images

        self.path, self.log, self.data = out / "validation.csv", log, None
        if not cfg.validate_every:
            return
        try:
            data = load_images(cfg.labels, cfg.resolution, splits=("val",), cache_dir=out)
        except ValueError:
            return
        if data.is_normal.all() or not data.is_normal.any():
            return
        self.data = data
        self.rows = self.path.read_text().splitlines()[1:] if self.path.is_file() else []

    def __call__(self, iteration: int, generator) -> None:
        from inference.files import atomic_write_text
        from inference.metrics import evaluate

        if self.data is None:
            return
        was_training = generator.training
        generator.eval()
        scores = validation_scores(generator, self.data.images, self.data.masks)
        generator.train(was_training)
        report = evaluate(~self.data.is_normal, scores, classes=self.data.labels)
        per_class = {k: v["auc"] for k, v in report["per_class"].items()}
        self.log(f"\n[{iteration}] val AUC {report['auc']:.3f} ("
                 + ", ".join(f"{k} {v:.2f}" for k, v in per_class.items()) + ")")
        self.rows = [r for r in self.rows if int(r.split(",")[0]) < iteration]
        self.rows.append(f"{iteration},{report['auc']:.4f}," + ";".join(f"{k}={v:.4f}" for k, v in per_class.items()))
        atomic_write_text(self.path, "iteration,auc,per_class_auc\n" + "\n".join(self.rows) + "\n")


def train_healthygan(cfg: HealthyGANConfig, *, log=print) -> Path:
    from training.data import healthy_and_mixed_sets, load_images

    dist = setup_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed + dist.rank)

    train = load_images(cfg.labels, cfg.resolution, splits=("train",), cache_dir=out, progress=None)
    set_a, set_b = healthy_and_mixed_sets(train, cfg.b_fraction, cfg.seed)
    if len(set_a) == 0 or len(set_b) == 0:
        raise ValueError("the training split needs both a mixed set A and healthy images for set B")
    to_tensor = lambda d: torch.from_numpy(d.images[:, None] * 2.0 - 1.0)  # noqa: E731
    data_a, data_b = to_tensor(set_a), to_tensor(set_b)
    if dist.is_main:
        log(f"HealthyGAN: set A {len(set_a)} images ({int((~set_a.is_normal).sum())} with lesions, unlabelled "
            f"to the model), set B {len(set_b)} healthy images, {cfg.resolution} px, device {dist.device}")

    generator, critic = build_networks(cfg)
    generator.to(dist.device)
    critic.to(dist.device)
    ema = EMA(generator, cfg.ema_decay)
    ema.module.to(dist.device)
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [dist.local_rank] if dist.device.type == "cuda" else None
        generator, critic = DDP(generator, device_ids=ids), DDP(critic, device_ids=ids)
    betas = (cfg.beta1, cfg.beta2)
    g_opt = torch.optim.Adam(generator.parameters(), cfg.lr, betas)
    d_opt = torch.optim.Adam(critic.parameters(), cfg.lr, betas)

    start = 0
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        unwrap(generator).load_state_dict(state["generator"])
        unwrap(critic).load_state_dict(state["critic"])
        ema.module.load_state_dict(state["generator_ema"])
        ema.steps = int(state.get("ema_steps", 0))
        g_opt.load_state_dict(state["g_opt"])
        d_opt.load_state_dict(state["d_opt"])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["iteration"])
        if dist.is_main:
            log(f"resuming {out} at iteration {start}")

    validate = _Validation(cfg, out, log) if dist.is_main else None
    lesion_first = np.argsort(set_a.is_normal, kind="stable")[:4]
    fixed = data_a[lesion_first].to(dist.device)
    decay_start = cfg.iterations - cfg.iterations // 4
    bar = ProgressBar(cfg.iterations, start, enabled=dist.is_main)
    logs: dict[str, float] = {}
    t0 = time.time()

    def batch(data: torch.Tensor) -> torch.Tensor:
        return data[torch.randint(len(data), (cfg.batch,))].to(dist.device)

    for it in range(start, cfg.iterations):
        lr = cfg.lr if it < decay_start else cfg.lr * (cfg.iterations - it) / max(1, cfg.iterations - decay_start)
        for opt in (g_opt, d_opt):
            for group in opt.param_groups:
                group["lr"] = lr
        x_a, x_b = batch(data_a), batch(data_b)

        # critic
        with torch.no_grad():
            inter, mask = generator(x_a)
            fake = compose_healthy(x_a, inter, mask)
        d_real = -critic(x_b).mean()
        d_fake = critic(fake).mean()
        gp = gradient_penalty(critic, x_b, fake)
        d_loss = d_real + d_fake + cfg.lambda_gp * gp
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        logs.update(d=d_loss.item(), gp=gp.item())

        # generator, every n_critic critic updates
        if (it + 1) % cfg.n_critic == 0:
            inter_a, mask_a = generator(x_a)
            healthy_a = compose_healthy(x_a, inter_a, mask_a)
            rec = F.l1_loss(compose_reconstruction(x_a, inter_a, mask_a), x_a)
            inter_b, mask_b = generator(x_b)
            healthy_b = compose_healthy(x_b, inter_b, mask_b)
            ident = F.l1_loss(inter_b, x_b)
            adv = -critic(healthy_a).mean() - critic(healthy_b).mean()
            focus = 0.5 * (focus_loss(mask_a, cfg.lambda_fs, cfg.lambda_fz, cfg.focus_eps)
                           + focus_loss(mask_b, cfg.lambda_fs, cfg.lambda_fz, cfg.focus_eps))
            g_loss = adv + cfg.lambda_rec * rec + cfg.lambda_id * ident + cfg.lambda_f * focus
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            ema.update(generator)
            logs.update(g=g_loss.item(), rec=rec.item(), id=ident.item(), mask=mask_a.mean().item())

        done = it + 1
        bar.update(done, **logs)
        if dist.is_main and (done % cfg.checkpoint_every == 0 or done == cfg.iterations):
            save_checkpoint(ckpt_path, {
                "generator": unwrap(generator).state_dict(), "critic": unwrap(critic).state_dict(),
                "generator_ema": ema.module.state_dict(), "ema_steps": ema.steps, "g_opt": g_opt.state_dict(), "d_opt": d_opt.state_dict(),
                "torch_rng": torch.get_rng_state(), "iteration": done, "config": asdict(cfg),
            })
        if dist.is_main and (done % cfg.sample_every == 0 or done == cfg.iterations):
            _save_samples(out / "samples" / f"{done:07d}.png", ema.module, fixed)
        if validate is not None and cfg.validate_every and (done % cfg.validate_every == 0 or done == cfg.iterations):
            validate(done, ema.module)

    if dist.is_main:
        run = {
            "method": "translation", "architecture": "HealthyGAN", "config": asdict(cfg),
            "iterations": cfg.iterations, "seed": cfg.seed, "command": cfg.command,
            "code_revision": _code_revision(), "device": f"{dist.device} x{dist.world_size} ({platform.machine()})",
            "train_seconds_this_session": round(time.time() - t0, 1),
            "set_a": len(set_a), "set_b": len(set_b), "date": time.strftime("%Y-%m-%d"),
        }
        from inference.files import atomic_write_text

        atomic_write_text(out / "run.json", json.dumps(run, indent=2))
    if dist.enabled:
        import torch.distributed as tdist

        tdist.destroy_process_group()
    return out


def command_line() -> str:
    return "mammolens " + " ".join(shlex.quote(a) for a in sys.argv[1:])
