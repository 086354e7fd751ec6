"""The projection bundle's networks, and the projector step as one joint forward-backward ONNX graph.

ONNX Runtime has no autograd. One projection step needs the loss *and* its gradients with
respect to ``w`` and the noise maps, so the step is traced as a joint graph: ``make_fx`` (symbolic
shapes, so the batch stays dynamic) of a function that runs the forward and
``torch.autograd.grad``. The network weights are constants of that graph, which is why the few
backward operators the ONNX exporter lacks can be written as forward operators:

* ``convolution_backward`` (input gradient only: weights are constants) -> a transposed
  convolution with the same weight (or, for a transposed convolution, a plain one), its output
  padding computed so the gradient has the input's shape;
* ``slice_backward`` -> ``slice_scatter`` into zeros.

The networks themselves avoid in-place operations, and the noise regulariser pools by
reshape-and-mean; the traced graph is exported with the dynamo exporter at opset 18 and checked
against torch (forward to 1e-4, gradients to 1e-3 relative; measured about 1e-6).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch

from training.projection.networks import ProjectStep, w_statistics

OPSET = 18
GRADIENT_TOLERANCE = 1e-3  # relative: max |ORT - torch| / max |torch| per gradient
FORWARD_TOLERANCE = 1e-4

#: the reference projector's schedule (Karras et al.'s projector defaults), recorded in the bundle
PROJECTOR_DEFAULTS = {"steps": 1000, "w_avg_samples": 10_000, "learning_rate": 0.1, "lr_rampup": 0.05,
                      "lr_rampdown": 0.25, "w_noise_factor": 0.05, "w_noise_ramp": 0.75, "adam_betas": [0.9, 0.999],
                      "adam_eps": 1e-8, "space": "W", "noise_renormalise": True}

aten = torch.ops.aten


def _convolution_backward(grad_out, inp, weight, bias_sizes, stride, padding, dilation, transposed, output_padding,
                          groups, output_mask):
    """The input gradient of a convolution with a constant weight, as a forward convolution."""
    if output_mask[1] or output_mask[2]:
        raise RuntimeError("the projector graph differentiates a network weight: weights must be constants")
    if not output_mask[0]:
        return None, None, None
    if transposed:
        grad = aten.convolution.default(grad_out, weight, None, stride, padding, dilation, False,
                                        [0] * len(stride), groups)
    else:
        k = weight.shape[2:]
        pad_out = [inp.shape[2 + i] - ((grad_out.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                                       + dilation[i] * (k[i] - 1) + 1) for i in range(len(stride))]
        grad = aten.convolution.default(grad_out, weight, None, stride, padding, dilation, True, pad_out, groups)
    return grad, None, None


def _slice_backward(grad, input_sizes, dim, start, end, step):
    return aten.slice_scatter.default(grad.new_zeros(input_sizes), grad, dim, start, end, step)


DECOMPOSITIONS = {aten.convolution_backward.default: _convolution_backward,
                  aten.slice_backward.default: _slice_backward}


def joint_step(step: ProjectStep):
    """``f(target, w, *noise) -> (loss, image, grad_w, *grad_noise)``: one step's forward and backward."""

    def f(target, w, *noise):
        loss, image = step(target, w, *noise)
        grads = torch.autograd.grad(loss.sum(), [w, *noise])
        return (loss.detach(), image.detach(), *grads)

    return f


def step_names(n_noise: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    noise = tuple(f"noise_{i}" for i in range(n_noise))
    return ("target", "w") + noise, ("loss", "image", "grad_w") + tuple("grad_" + n for n in noise)


def example_step_inputs(step: ProjectStep, n: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = step.synthesis
    target = torch.rand(n, 1, s.resolution, s.resolution, generator=g) * 2 - 1
    w = torch.randn(n, s.w_dim, generator=g)
    noise = [torch.randn(n, h, w_, generator=g) for h, w_ in s.noise_shapes]
    return target, w, noise


def export_project_step(step: ProjectStep, path: Path) -> Path:
    """The joint graph of one projection step as ONNX (dynamic batch) at ``path``."""
    from torch.export import Dim
    from torch.fx.experimental.proxy_tensor import make_fx

    step = step.eval().requires_grad_(False)
    target, w, noise = example_step_inputs(step)
    w.requires_grad_(True)
    for n in noise:
        n.requires_grad_(True)
    graph = make_fx(joint_step(step), decomposition_table=DECOMPOSITIONS, tracing_mode="symbolic",
                    _allow_non_fake_inputs=True)(target, w, *noise).eval()
    inputs, outputs = step_names(len(noise))
    batch = Dim("batch", min=1, max=4096)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
        torch.onnx.export(graph, (target, w.detach(), *[n.detach() for n in noise]), str(path), dynamo=True,
                          opset_version=OPSET, input_names=list(inputs), output_names=list(outputs),
                          dynamic_shapes=tuple({0: batch} for _ in inputs), optimize=True, external_data=False)
    return path


def check_project_step(step: ProjectStep, path: Path, n: int = 5) -> dict:
    """ONNX Runtime against torch eager on a batch other than the traced one; raises past the tolerances."""
    from inference.runtime import create_session

    target, w, noise = example_step_inputs(step, n=n, seed=1)
    w.requires_grad_(True)
    for x in noise:
        x.requires_grad_(True)
    reference = joint_step(step.eval())(target, w, *noise)
    session = create_session(path, device="cpu")
    feeds = [target.numpy(), w.detach().numpy()] + [x.detach().numpy() for x in noise]
    out = list(session.run(dict(zip(session.inputs, feeds))).values())
    image = float(np.abs(out[1] - reference[1].numpy()).max())
    rel = lambda a, b: float(np.abs(a - b.numpy()).max() / (np.abs(b.numpy()).max() + 1e-12))  # noqa: E731
    loss = rel(out[0], reference[0])
    gradient = max(rel(a, b) for a, b in zip(out[2:], reference[2:]) if float(b.abs().max()) > 0)
    if image > FORWARD_TOLERANCE or loss > FORWARD_TOLERANCE or gradient > GRADIENT_TOLERANCE:
        raise RuntimeError(f"the exported project_step differs from torch: image {image:.1e}, loss {loss:.1e} "
                           f"(relative), gradients {gradient:.1e} (relative)")
    return {"random": image, "loss_relative": loss, "gradient_relative": gradient}


class _Synthesis(torch.nn.Module):
    def __init__(self, synthesis):
        super().__init__()
        self.synthesis = synthesis

    def forward(self, w, *noise):  # noise maps (N, r, r), as project_step takes them
        return self.synthesis(w, *[n[:, None] for n in noise])


def projection_networks(cfg, generator, critic) -> list:
    """``mapping``, ``synthesis`` and ``project_step`` of the averaged generator (and the critic as trained)."""
    from training.export import ExportNetwork

    generator = generator.eval().cpu()
    critic = critic.eval().cpu()
    step = step_module(cfg, generator, critic)
    s = generator.synthesis
    g = torch.Generator().manual_seed(0)
    noise = tuple(torch.randn(2, h, w, generator=g) for h, w in s.noise_shapes)
    names, _ = step_names(len(noise))
    return [
        ExportNetwork("mapping", generator.mapping, ("z",), ("w",), example=torch.randn(2, cfg.z_dim, generator=g)),
        ExportNetwork("synthesis", _Synthesis(s).eval(), ("w",) + names[2:], ("image",),
                      example=(torch.randn(2, cfg.w_dim, generator=g),) + noise),
        ExportNetwork("project_step", step, names, step_names(len(noise))[1], example=None,
                      exporter=lambda path: export_project_step(step, path),
                      checker=lambda path: check_project_step(step, path)),
    ]


def step_module(cfg, generator, critic) -> ProjectStep:
    import copy

    return ProjectStep(copy.deepcopy(generator.synthesis).eval().requires_grad_(False),
                       copy.deepcopy(critic).eval().requires_grad_(False), layers=cfg.proj_feature_layers,
                       pixel_weight=cfg.proj_pixel_weight, noise_weight=cfg.proj_noise_weight)


def projector_parameters(cfg, generator) -> dict:
    """The bundle's parameters: architecture, w statistics, noise shapes and the projector's settings."""
    w_avg, w_std = w_statistics(generator.mapping.eval().cpu(), PROJECTOR_DEFAULTS["w_avg_samples"])
    return {"architecture": "StyleGAN2 (skip generator, residual discriminator), modulation on activations",
            "z_dim": cfg.z_dim, "w_dim": cfg.w_dim, "mapping_layers": cfg.mapping_layers,
            "channel_base": cfg.channel_base, "channel_max": cfg.channel_max,
            "noise_shapes": [list(s) for s in generator.synthesis.noise_shapes],
            "w_avg": [round(float(v), 7) for v in w_avg], "w_std": w_std,
            "perceptual_loss": {"name": "critic_features", "layers": cfg.proj_feature_layers,
                                "pixel_weight": cfg.proj_pixel_weight,
                                "description": "mean squared difference of the critic's first feature maps, each "
                                               "relative to the target's mean square, averaged, plus the pixel term"},
            "noise_regularisation": cfg.proj_noise_weight, "projector": {**PROJECTOR_DEFAULTS, "steps": cfg.proj_steps},
            "score": "sum of |x - mean projection| inside the breast / breast area (model space)"}
