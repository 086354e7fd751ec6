"""The projector in torch eager: the same loop as the ONNX engine, from the same weights.

:func:`project_torch` follows :meth:`inference.methods.projection.ProjectionEngine.project` line
for line (W from w_avg, the reference schedule, W noise from the same per-seed numpy streams,
noise maps from the same seeds, renormalised each step) with ``torch.autograd`` and
``torch.optim.Adam`` instead of the exported graph and the numpy Adam. Tests hold the two paths
together; the benchmark times both.
"""
from __future__ import annotations

import numpy as np
import torch

from inference.methods.projection import DEFAULTS, learning_rate, w_noise_scale
from training.projection.networks import ProjectStep


def step_from_bundle_run(run_dir) -> tuple[ProjectStep, np.ndarray, float]:
    """The projector module of a run's checkpoint (EMA generator, critic as trained), with w_avg and w_std."""
    from training.export import method_for_run
    from training.projection.export import PROJECTOR_DEFAULTS, step_module
    from training.projection.networks import w_statistics

    method, state = method_for_run(run_dir)
    networks = method.build_networks()
    networks["generator"].load_state_dict({k: v.float() for k, v in state["ema"].items()})
    networks["critic"].load_state_dict({k: v.float() for k, v in state["networks"]["critic"].items()})
    w_avg, w_std = w_statistics(networks["generator"].mapping.eval(), PROJECTOR_DEFAULTS["w_avg_samples"])
    return step_module(method.cfg, networks["generator"], networks["critic"]), w_avg, w_std


def project_torch(step: ProjectStep, w_avg: np.ndarray, w_std: float, images: np.ndarray, seeds: int = 9,
                  steps: int = 1000, settings: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Project model-space images (n, R, R) in [0, 1]: ``(renders (n, k, R, R) in [0, 1], losses (steps, n, k))``."""
    s = {**DEFAULTS, **(settings or {})}
    step = step.eval().requires_grad_(False)
    n, k = len(images), int(seeds)
    targets = torch.from_numpy(np.repeat(images[:, None].astype(np.float32) * 2 - 1, k, axis=0))
    w = torch.from_numpy(np.tile(w_avg, (n * k, 1)).astype(np.float32)).requires_grad_(True)
    rngs = [np.random.default_rng(i) for i in range(k)]
    shapes = step.synthesis.noise_shapes
    maps = [[rng.standard_normal((h, w_), dtype=np.float32) for h, w_ in shapes] for rng in rngs]
    noise = [torch.from_numpy(np.tile(np.stack([m[i] for m in maps]), (n, 1, 1))).requires_grad_(True)
             for i in range(len(shapes))]
    optimizer = torch.optim.Adam([w] + noise, lr=s["learning_rate"], betas=tuple(s["adam_betas"]), eps=s["adam_eps"])
    losses = np.zeros((steps, n * k), dtype=np.float32)
    for i in range(steps):
        t = i / steps
        scale = w_noise_scale(t, w_std, s["w_noise_factor"], s["w_noise_ramp"])
        draws = torch.from_numpy(np.stack([rng.standard_normal(w.shape[1], dtype=np.float32) for rng in rngs]))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(t, s["learning_rate"], s["lr_rampup"], s["lr_rampdown"])
        loss, _ = step(targets, w + draws.repeat(n, 1) * scale, *noise)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        losses[i] = loss.detach().numpy()
        with torch.no_grad():
            for m in noise:
                m -= m.mean(dim=(1, 2), keepdim=True)
                m *= m.square().mean(dim=(1, 2), keepdim=True).rsqrt()
    with torch.no_grad():
        renders = step.synthesis(w, *[m[:, None] for m in noise])[:, 0]
    renders = ((renders + 1) / 2).clamp(0, 1).numpy().reshape(n, k, *images.shape[1:])
    return renders, losses.reshape(steps, n, k)
