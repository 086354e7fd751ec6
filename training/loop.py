"""The one GAN training loop every method runs (after NVlabs' stylegan2-ada ``training_loop``).

A method package hands the loop a :class:`GANMethod`: its networks built from keyword
arguments, one optimizer per phase, a loss object whose ``accumulate_gradients(phase, batch)``
back-propagates one phase (critic, generator, regularisation), the phases of each iteration,
its batches, the network whose exponential moving average is kept and exported, and what to
export. The loop owns everything else, once for all methods: seeding, torchrun /
DistributedDataParallel, EMA, the learning-rate schedule hook, checkpoints written atomically and
resumed by rerunning the same command (``checkpoint.pt``; a float16 ``carry.pt`` without
optimizer state, small enough to move between short GPU leases, when asked), sample grids, a
stats log (``stats.jsonl``: mean losses per interval, one JSON object a line), validation
through the exported graph and the engine's own ``score_prepared`` (so a run is measured the
way its bundle will be calibrated), a wall-clock budget, progress and abort callbacks.
"""
from __future__ import annotations

import json
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch

from training.torch_utils import (
    EMA,
    ProgressBar,
    code_revision,
    compact_state,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    setup_distributed,
    unwrap,
)

CHECKPOINT = "checkpoint.pt"
CARRY = "carry.pt"
RUN_JSON = "run.json"
STATS = "stats.jsonl"
VALIDATION = "validation.csv"


@dataclass
class TrainConfig:
    """What every method's configuration has; a method's dataclass adds its own fields."""

    labels: str
    out: str
    preset: str = "cpu"
    iterations: int = 1000
    batch: int = 8
    seed: int = 0
    ema_decay: float = 0.999
    checkpoint_every: int = 250
    sample_every: int = 500
    validate_every: int = 500  # 0: never
    stats_every: int = 50
    time_budget_s: float = 0.0  # 0: no budget; else stop (checkpointed) after this many seconds of training
    carry_checkpoint: bool = False  # also write carry.pt (float16 weights, no optimizer state)
    device: str = "auto"
    threads: int = 0
    command: str = ""
    beta1: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8
    n_critic: int = 1

    #: what each setting means, for `mammolens train METHOD --help`; a method's config adds its own
    HELP: ClassVar[dict[str, str]] = {
        "iterations": "training iterations (critic updates for WGAN methods)",
        "batch": "images per batch",
        "seed": "random seed of initialisation and sampling",
        "ema_decay": "decay of the exponential moving average of the generator weights that is exported",
        "checkpoint_every": "iterations between checkpoints (training resumes from the last one)",
        "sample_every": "iterations between sample grids written to the run folder",
        "validate_every": "iterations between validations through the exported ONNX graph (0: never)",
        "stats_every": "iterations between lines of stats.jsonl",
        "time_budget_s": "stop, checkpointed, after this many seconds of training (0: no budget)",
        "carry_checkpoint": "also write carry.pt: float16 weights without optimizer state, small enough to carry",
        "device": "auto, cuda or cpu",
        "threads": "torch CPU threads (0: torch's default)",
        "beta1": "Adam beta1 of every network",
        "beta2": "Adam beta2 of every network",
        "eps": "Adam epsilon of every network",
        "n_critic": "critic updates per generator update (the other phases run every n_critic-th iteration)",
    }


def config_from_preset(config_class, preset: str, presets: dict, **values):
    """A config: the preset's values, then ``values`` (explicit flags win)."""
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(presets)}")
    known = {f.name for f in fields(config_class)}
    merged = {**presets[preset], **{k: v for k, v in values.items() if v is not None}}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ValueError(f"{config_class.__name__} has no setting {', '.join(unknown)}")
    return config_class(preset=preset, **merged)


def config_parser(prog: str, config_class, presets: dict):
    """An argparse parser with one flag per configuration field and ``--preset``.

    Parsed settings carry ``make_config(**extra)``: the preset's values, overridden by the flags
    given. Flags are generated from the dataclass, so a method's settings are declared once.
    """
    import argparse

    doc = (config_class.__doc__ or "").strip()
    if doc.startswith(config_class.__name__ + "("):  # the signature dataclass writes: no description
        doc = ""
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(doc.splitlines()[0] + "\n\n" if doc else "")
        + "Each setting takes the preset's value unless given; the run folder resumes when it exists.",
        epilog=f"example:\n  {prog} --preset cpu --labels phantom/labels.csv --out runs/{prog.split()[-1]}")
    parser.add_argument("--preset", default="cpu", choices=tuple(presets),
                        help="paper: the paper's setting; cpu: the shipped bundle's (2 cores, < 1 h); "
                             "gpu: one short GPU lease; tiny: seconds, for smoke tests (default cpu)")
    defaults = {f.name: f.default for f in fields(config_class)}
    meanings: dict[str, str] = {}
    for klass in reversed(config_class.__mro__):
        meanings.update(vars(klass).get("HELP", {}))
    for f in fields(config_class):
        if f.name in ("preset", "command"):
            continue
        flag = "--" + f.name.replace("_", "-")
        shown = ", ".join(f"{k} {v[f.name]}" for k, v in presets.items() if f.name in v)
        text = (f"{meanings[f.name]}; " if f.name in meanings else "") + f"default {defaults[f.name]}" \
            + (f"; presets: {shown}" if shown else "")
        if f.name in ("labels", "out"):
            parser.add_argument(flag, dest=f.name, required=True, help="labels CSV with train / val splits"
                                if f.name == "labels" else "run folder (checkpoints, samples, stats); resumes if present")
        elif isinstance(defaults[f.name], bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(flag, dest=f.name, type=type(defaults[f.name]), default=None, help=text)

    def make_config(self, **extra):
        values = {k: v for k, v in vars(self).items() if k not in ("preset", "make_config")}
        return config_from_preset(config_class, self.preset, presets, **values, **extra)

    parser.set_defaults(make_config=None)
    original = parser.parse_args

    def parse_args(argv=None):
        ns = original(argv)
        ns.make_config = make_config.__get__(ns)
        return ns

    parser.parse_args = parse_args
    return parser


class GANMethod:
    """What a method package gives the loop and the export. Subclasses implement every method
    that raises here; the class attributes name the method and its exported network."""

    name = ""  # the training package's name ("healthygan")
    method = ""  # the registry key / bundle method ("translation")
    description = ""  # the bundle's description
    ema_network = "generator"  # averaged, exported and validated
    ema_phase = "generator"  # the EMA is updated after this phase's step
    calibrated = True  # export calibrates a threshold on held-out images (False: a method without a score)
    #: the phases of an iteration, each training the network of its name (as stylegan2-ada's phases
    #: are data): the first every iteration, the others every ``n_critic``-th
    phase_networks: tuple[str, ...] = ("critic", "generator")

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    @property
    def resolution(self) -> int:
        return int(getattr(self.cfg, "resolution"))

    @classmethod
    def paper_iterations(cls) -> int | None:
        """The paper's training length (its preset), for the card's budget line."""
        import importlib

        presets = getattr(importlib.import_module(cls.__module__), "PRESETS", {})
        return presets.get("paper", {}).get("iterations")

    # -- training ------------------------------------------------------------------------------

    def prepare_data(self, out: Path, log: Callable[[str], None]) -> None:
        """Load the training data (cached beside the run in ``out``)."""
        raise NotImplementedError

    def build_networks(self) -> dict[str, torch.nn.Module]:
        """The networks by name, built from the configuration's keyword arguments (order = RNG order)."""
        raise NotImplementedError

    def learning_rates(self) -> dict[str, float]:
        """The learning rate of each phase's network (default: the config's ``lr`` for all)."""
        return {name: self.cfg.lr for name in self.phase_networks}

    def optimizers(self, networks: dict) -> dict[str, torch.optim.Optimizer]:
        """One Adam per phase, over the network of the same name, with the config's betas and epsilon."""
        cfg, rates = self.cfg, self.learning_rates()
        return {name: torch.optim.Adam(networks[name].parameters(), rates[name], (cfg.beta1, cfg.beta2), eps=cfg.eps)
                for name in self.phase_networks}

    def loss(self, networks: dict):
        """An object with ``accumulate_gradients(phase, batch) -> dict of logged values``."""
        raise NotImplementedError

    def phases(self, iteration: int) -> tuple[str, ...]:
        """The phases this iteration runs, in order, from :attr:`phase_networks` and ``n_critic``:
        the first (the critic) every iteration, the others every ``n_critic``-th."""
        first, *others = self.phase_networks
        return (first, *others) if others and (iteration + 1) % self.cfg.n_critic == 0 else (first,)

    def learning_rate(self, iteration: int) -> float | None:
        """The learning rate of this iteration for every optimizer; None keeps them as they are."""
        return None

    def next_batch(self, device: torch.device):
        """One batch, handed to every phase of the iteration."""
        raise NotImplementedError

    def sample_grid(self, ema: torch.nn.Module) -> np.ndarray:
        """A uint8 picture of what the averaged network does on fixed examples."""
        raise NotImplementedError

    def run_info(self) -> dict:
        """Extra facts for run.json, the checkpoint and the bundle's provenance (set sizes)."""
        return {}

    def restore_run_info(self, info: dict) -> None:
        """Before export from a checkpoint: what :meth:`run_info` recorded (a method whose networks
        depend on its data, such as the class count of a conditional generator, reads it back)."""

    # -- export (training/export.py builds the bundle from these) --------------------------------

    def export_networks(self, ema: torch.nn.Module) -> list:
        """The networks of the bundle: a list of :class:`training.export.ExportNetwork`."""
        raise NotImplementedError

    def input_spec(self) -> dict:
        """The bundle's ``input`` (resolution, channels, value range, ...); by default one grey channel
        at ``resolution`` in [-1, 1] under the shared preprocessing contract."""
        return {"resolution": self.resolution, "channels": 1, "value_range": [-1.0, 1.0],
                "laterality": "flip_right_to_left", "padding": "square_away_from_chest_wall",
                "windowing": "dicom_voi"}

    def bundle_parameters(self) -> dict:
        """The bundle's method ``parameters`` (architecture, widths, ...)."""
        return {}


def command_line() -> str:
    return "mammolens " + " ".join(shlex.quote(a) for a in sys.argv[1:])


class _Stats:
    """Mean of every logged value over ``every`` iterations, appended to stats.jsonl."""

    def __init__(self, path: Path, every: int):
        self.path, self.every, self.sums, self.counts = path, max(1, every), {}, {}

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def flush(self, iteration: int, seconds: float) -> None:
        if not self.sums:
            return
        row = {"iteration": iteration, "seconds": round(seconds, 2),
               **{k: self.sums[k] / self.counts[k] for k in self.sums}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        self.sums, self.counts = {}, {}


class _Validation:
    """AUC of the exported EMA network on the val split, through the engine's ``score_prepared``."""

    def __init__(self, method: GANMethod, out: Path, log):
        from training.datasets import load_images

        self.method, self.path, self.log, self.data = method, out / VALIDATION, log, None
        if not method.cfg.validate_every:
            return
        try:
            data = load_images(method.cfg.labels, method.resolution, splits=("val",), cache_dir=out)
        except ValueError:
            return
        if data.is_normal.all() or not data.is_normal.any():
            return
        self.data = data
        self.rows = self.path.read_text().splitlines()[1:] if self.path.is_file() else []

    def __call__(self, iteration: int, ema: torch.nn.Module) -> dict | None:
        from inference.files import atomic_write_text
        from inference.methods import get
        from inference.metrics import evaluate
        from training.export import write_network_bundle

        if self.data is None:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            bundle = write_network_bundle(self.method, ema, Path(tmp) / "bundle", name="validation",
                                          provenance={"command": "", "seed": self.method.cfg.seed,
                                                      "iterations": iteration, "code_revision": "", "date": ""},
                                          check=False)
            scores = get(self.method.method).load(bundle, "cpu").score_prepared(self.data.images, self.data.masks)
        report = evaluate(~self.data.is_normal, scores, classes=self.data.labels)
        per_class = {k: v["auc"] for k, v in report["per_class"].items()}
        self.log(f"\n[{iteration}] val AUC {report['auc']:.3f} ("
                 + ", ".join(f"{k} {v:.2f}" for k, v in per_class.items()) + ")")
        self.rows = [r for r in self.rows if int(r.split(",")[0]) < iteration]
        self.rows.append(f"{iteration},{report['auc']:.4f}," + ";".join(f"{k}={v:.4f}" for k, v in per_class.items()))
        atomic_write_text(self.path, "iteration,auc,per_class_auc\n" + "\n".join(self.rows) + "\n")
        return report


def _save_grid(path: Path, grid: np.ndarray) -> None:
    from inference.files import atomic_write_bytes
    from inference.images import png_bytes

    atomic_write_bytes(path, png_bytes(grid))


def train(method: GANMethod, *, log: Callable[[str], None] = print,
          progress: Callable[[int, int, dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> Path:
    """Train ``method`` to ``cfg.iterations`` (or its time budget); resumes from the run folder."""
    cfg = method.cfg
    dist = setup_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed + dist.rank)

    method.prepare_data(out, log if dist.is_main else (lambda *a: None))
    networks = method.build_networks()
    for net in networks.values():
        net.to(dist.device)
    ema = EMA(networks[method.ema_network], cfg.ema_decay)
    ema.module.to(dist.device)
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [dist.local_rank] if dist.device.type == "cuda" else None
        networks = {k: DDP(v, device_ids=ids) for k, v in networks.items()}
    optimizers = method.optimizers(networks)
    loss = method.loss(networks)

    start = 0
    ckpt_path, carry_path = out / CHECKPOINT, out / CARRY
    if ckpt_path.is_file() or carry_path.is_file():
        full = ckpt_path.is_file()
        state = load_checkpoint(ckpt_path if full else carry_path)
        for name, net in networks.items():
            unwrap(net).load_state_dict({k: v.float() if v.is_floating_point() else v
                                         for k, v in state["networks"][name].items()})
        ema.module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["ema"].items()})
        ema.steps = int(state.get("ema_steps", 0))
        if full:
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            torch.set_rng_state(state["torch_rng"])
        start = int(state["iteration"])
        if dist.is_main:
            log(f"resuming {out} at iteration {start}" + ("" if full else " (carry checkpoint: fresh optimizer state)"))

    validate = _Validation(method, out, log) if dist.is_main else None
    stats = _Stats(out / STATS, cfg.stats_every)
    bar = ProgressBar(cfg.iterations, start, enabled=dist.is_main)
    logs: dict[str, float] = {}
    t0 = time.time()

    def checkpoint(done: int) -> None:
        state = {"method": method.name, "config": asdict(cfg), "iteration": done, "ema_steps": ema.steps,
                 "run_info": method.run_info(),
                 "networks": {k: unwrap(v).state_dict() for k, v in networks.items()},
                 "ema": ema.module.state_dict()}
        if cfg.carry_checkpoint:
            save_checkpoint(carry_path, {**state, "networks": {k: compact_state(v) for k, v in state["networks"].items()},
                                         "ema": compact_state(state["ema"])})
        save_checkpoint(ckpt_path, {**state, "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                                    "torch_rng": torch.get_rng_state()})

    done = start
    for it in range(start, cfg.iterations):
        lr = method.learning_rate(it)
        if lr is not None:
            for opt in optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = lr
        batch = method.next_batch(dist.device)
        for phase in method.phases(it):
            opt = optimizers[phase]
            opt.zero_grad(set_to_none=True)
            logs.update(loss.accumulate_gradients(phase, batch))
            opt.step()
            if phase == method.ema_phase:
                ema.update(networks[method.ema_network])
        done = it + 1
        stats.add(logs)
        bar.update(done, **logs)
        if progress is not None:
            progress(done, cfg.iterations, dict(logs))
        over_budget = bool(cfg.time_budget_s) and time.time() - t0 >= cfg.time_budget_s
        stop = over_budget or (should_stop is not None and should_stop())
        last = done == cfg.iterations or stop
        if dist.is_main:
            if done % cfg.stats_every == 0 or last:
                stats.flush(done, time.time() - t0)
            if done % cfg.checkpoint_every == 0 or last:
                checkpoint(done)
            if done % cfg.sample_every == 0 or last:
                _save_grid(out / "samples" / f"{done:07d}.png", method.sample_grid(ema.module))
            if cfg.validate_every and (done % cfg.validate_every == 0 or last):
                validate(done, ema.module)
        if stop:
            if dist.is_main:
                log(f"\nstopped at iteration {done} of {cfg.iterations}"
                    + (f" (time budget {cfg.time_budget_s:g} s)" if over_budget else " (aborted)"))
            break

    if dist.is_main:
        from inference.files import atomic_write_text

        previous = json.loads((out / RUN_JSON).read_text()) if (out / RUN_JSON).is_file() else {}
        run = {
            "method": method.method, "training": method.name, "preset": cfg.preset, "config": asdict(cfg),
            "iterations": done, "iterations_planned": cfg.iterations, "seed": cfg.seed,
            "command": cfg.command, "code_revision": code_revision(),
            "device": f"{dist.device} x{dist.world_size} ({platform.machine()})",
            "train_seconds": round(previous.get("train_seconds", 0.0) + time.time() - t0, 1),
            "date": time.strftime("%Y-%m-%d"), **method.run_info(),
        }
        atomic_write_text(out / RUN_JSON, json.dumps(run, indent=2))
    if dist.enabled:
        import torch.distributed as tdist

        tdist.destroy_process_group()
    return out
