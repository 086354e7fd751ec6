"""The one place that creates ONNX Runtime sessions: provider choice and a CPU fallback that is real.

Provider order: TensorRT (only with ``MAMMOLENS_TENSORRT=1``: engine builds take minutes and
need the TensorRT libraries), CUDA, CPU, filtered by what the installed onnxruntime offers.

Why the fallback is checked after the fact: onnxruntime-gpu lists ``CUDAExecutionProvider`` as
available whenever the package is installed, and when the CUDA / cuDNN libraries or the GPU are
missing it does not raise; it logs an error to stderr and quietly builds a CPU session. So after
creating a session we compare ``get_providers()`` with what was asked for, and when a GPU
provider is missing we say so (``fallback_reason``) instead of labelling a CPU run "CUDA". A
provider that failed that way is not tried again in this process (the libraries will not appear
while it runs, and each try costs a library load and a stderr message); the warning is logged
once per provider per process. A session whose creation raises on a GPU provider, or whose
``run`` raises on one (out of GPU memory, a kernel the provider lacks), is rebuilt on CPU and the
work repeated; those failures are recorded on the session but do not disable the provider for
later sessions, since they can depend on the model or the moment.

onnxruntime is imported inside the functions so that importing ``inference`` stays fast.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from inference.devices import DEVICES
from inference.errors import MammolensError  # the one list of devices; the registry offers it
from inference.jobs import CancelToken, Progress, check, report

if TYPE_CHECKING:  # pragma: no cover
    from inference.bundle import Bundle

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)
TENSORRT_ENV = "MAMMOLENS_TENSORRT"
DEVICE_LABELS = {TENSORRT: "TensorRT", CUDA: "CUDA", CPU: "CPU", "ROCMExecutionProvider": "ROCm",
                 "DmlExecutionProvider": "DirectML", "CoreMLExecutionProvider": "CoreML",
                 "OpenVINOExecutionProvider": "OpenVINO"}

log = logging.getLogger("mammolens.runtime")

_state_lock = threading.Lock()
_warned: set[str] = set()
_disabled: dict[str, str] = {}  # provider -> why it cannot start in this process
_ort_configured = False

_NUMPY_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


_MISSING = {
    CUDA: "no usable GPU, or the CUDA / cuDNN libraries this onnxruntime-gpu needs are missing",
    TENSORRT: "the TensorRT libraries are missing or the GPU is unsupported",
}


class ModelLoadError(MammolensError, ValueError):
    """An ONNX file that ONNX Runtime cannot load even on CPU (not a provider problem)."""


def _ort():
    global _ort_configured
    import onnxruntime

    if not _ort_configured:
        # its own messages (the red "FAIL : Failed to load library ...providers_cuda.so" error among
        # them) are replaced by our one sentence on the fallback: only fatal ones pass
        onnxruntime.set_default_logger_severity(4)
        _ort_configured = True
    return onnxruntime


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def _warn_once(provider: str, reason: str) -> None:
    with _state_lock:
        if provider in _warned:
            return
        _warned.add(provider)
    log.warning(reason)


def reset_provider_failures() -> None:
    """Forget which GPU providers failed and were warned about (a settings "retry GPU"; tests)."""
    with _state_lock:
        _warned.clear()
        _disabled.clear()


def available_providers() -> list[str]:
    return list(_ort().get_available_providers())


def _requested_providers(device: str, providers: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """``(providers to try in order, reasons for requested ones that are not even installed)``."""
    available = available_providers()
    if providers is not None:
        wanted = [p for p in providers]
        explicit = True
    else:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}.")
        if device == "cpu":
            wanted = [CPU]
        else:
            wanted = ([TENSORRT] if os.environ.get(TENSORRT_ENV) == "1" else []) + [CUDA, CPU]
        explicit = device == "cuda"
    reasons = []
    chain = []
    for p in wanted:
        if p in available:
            chain.append(p)
        elif explicit and p != CPU:
            reason = f"{p} is not available in this onnxruntime build (install onnxruntime-gpu); running on CPU."
            reasons.append(reason)
            _warn_once(p, reason)
    if CPU not in chain:
        chain.append(CPU)
    return chain, reasons


def _provider_options(provider: str) -> dict:
    if provider == TENSORRT:
        import platformdirs

        cache = os.path.join(platformdirs.user_cache_dir("mammolens", appauthor=False), "tensorrt")
        os.makedirs(cache, exist_ok=True)
        return {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache}
    return {}


def _session_options(threads: int | None):
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # the intra-op threads sleep between ops instead of spinning: the viewer's UI thread and read-ahead
    # share the cores, and on a loaded machine spinning threads slow every run (benchmark:
    # tests/benchmarks/test_translation_speed.py, "spinning" against "no spinning")
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 4
    return options


def _shape(arg) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))


class ModelSession:
    """One ONNX network ready to run, with the provider it really runs on.

    ``inputs`` / ``outputs`` map tensor names to shapes (None for a dynamic dim). ``run`` takes
    and returns numpy arrays; float inputs are cast to the tensor's declared type (float32 for
    the usual export, float16 for a half-precision one) and float outputs come back as float32.
    """

    def __init__(self, path: str | os.PathLike, *, device: str = "auto", providers: Sequence[str] | None = None,
                 threads: int | None = None) -> None:
        self.path = os.fspath(path)
        self.name = os.path.basename(self.path)
        self.threads = threads
        self.resolution: int | None = None  # spatial size for warm_up when the model's is dynamic
        self._lock = threading.Lock()
        self.requested, reasons = _requested_providers(device, providers)
        self._session, self.provider, more = self._open(self.requested)
        reasons += more
        self.fallback_reason: str | None = " ".join(reasons) if reasons else None
        ins, outs = self._session.get_inputs(), self._session.get_outputs()
        self.inputs: dict[str, tuple[int | None, ...]] = {a.name: _shape(a) for a in ins}
        self.outputs: dict[str, tuple[int | None, ...]] = {a.name: _shape(a) for a in outs}
        self._input_types = {a.name: _NUMPY_TYPES.get(a.type, np.float32) for a in ins}

    # -- creation ----------------------------------------------------------------------------

    def _create(self, providers: list[str]):
        ort = _ort()
        return ort.InferenceSession(self.path, sess_options=_session_options(self.threads), providers=[
            (p, _provider_options(p)) for p in providers])

    def _create_cpu(self):
        try:
            return self._create([CPU])
        except Exception as exc:
            if not os.path.isfile(self.path):
                raise ModelLoadError(f"ONNX model {self.path} does not exist.") from None
            raise ModelLoadError(f"ONNX Runtime cannot load {self.name}: {_first_line(exc)}") from exc

    def _open(self, chain: list[str]):
        """``(session, provider used, fallback reasons)`` trying GPU providers first."""
        if not os.path.isfile(self.path):
            raise ModelLoadError(f"ONNX model {self.path} does not exist.")
        reasons: list[str] = []
        with _state_lock:
            disabled = dict(_disabled)
        gpus = [p for p in chain if p != CPU]
        for p in gpus:
            if p in disabled:
                reasons.append(disabled[p])
        gpus = [p for p in gpus if p not in disabled]
        if gpus:
            try:
                session = self._create(gpus + [CPU])
            except Exception as exc:
                session = self._create_cpu()  # raises ModelLoadError if the model itself is bad
                reason = (f"{gpus[0]} failed to create a session for {self.name} ({_first_line(exc)}); "
                          f"running on CPU.")
                reasons.append(reason)
                _warn_once(gpus[0], reason)
                return session, CPU, reasons
            actual = session.get_providers()
            for p in gpus:
                if p not in actual:
                    why = _MISSING.get(p, "its libraries or device are missing")
                    reason = (f"{p} was requested but ONNX Runtime could not enable it ({why}); running on "
                              f"{DEVICE_LABELS.get(actual[0], actual[0])}.")
                    with _state_lock:
                        _disabled.setdefault(p, reason)
                    reasons.append(reason)
                    _warn_once(p, reason)
            return session, actual[0], reasons
        return self._create_cpu(), CPU, reasons

    # -- properties --------------------------------------------------------------------------

    @property
    def device_label(self) -> str:
        return DEVICE_LABELS.get(self.provider, self.provider.replace("ExecutionProvider", ""))

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)

    def __repr__(self) -> str:
        return f"ModelSession({self.name!r}, provider={self.provider!r})"

    # -- running -----------------------------------------------------------------------------

    def _prepare(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        for name in feeds:
            if name not in self.inputs:
                raise ValueError(f"{self.name} has no input named {name!r} (its inputs: {', '.join(self.inputs)}).")
        prepared = {}
        for name, shape in self.inputs.items():
            if name not in feeds:
                raise ValueError(f"{self.name} needs the input {name!r} (its inputs: {', '.join(self.inputs)}).")
            arr = np.ascontiguousarray(feeds[name], dtype=self._input_types[name])
            if shape and (arr.ndim != len(shape)
                          or any(d is not None and d != a for d, a in zip(shape, arr.shape))):
                want = "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
                raise ValueError(f"input {name!r} of {self.name} must have shape {want}, got {tuple(arr.shape)}.")
            prepared[name] = arr
        return prepared

    def _outputs(self, values: list) -> dict[str, np.ndarray]:
        out = {}
        for name, value in zip(self.outputs, values):
            arr = np.asarray(value)
            out[name] = arr.astype(np.float32, copy=False) if np.issubdtype(arr.dtype, np.floating) else arr
        return out

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run the network on ``{input name: array}`` and return ``{output name: array}``."""
        prepared = self._prepare(feeds)
        session, provider = self._session, self.provider
        try:
            return self._outputs(session.run(None, prepared))
        except Exception as exc:
            if provider == CPU:
                raise
            gpu_error = exc
        # the GPU run failed: repeat on a fresh CPU session; only if that works was it the GPU's fault
        cpu_session = self._create_cpu()
        values = cpu_session.run(None, prepared)
        reason = f"{provider} failed while running {self.name} ({_first_line(gpu_error)}); re-ran on CPU."
        with self._lock:
            if self._session is session:
                self._session, self.provider = cpu_session, CPU
                self.fallback_reason = reason if self.fallback_reason is None else f"{self.fallback_reason} {reason}"
        _warn_once(f"{provider}:run", reason)
        return self._outputs(values)

    def _batch_dim(self) -> int | None:
        """The static batch size if any input fixes axis 0, else None (dynamic batch)."""
        for shape in self.inputs.values():
            if shape and shape[0] is not None:
                return shape[0]
        return None

    def run_batched(self, feeds: Mapping[str, Any], batch_size: int, *, progress: Progress | None = None,
                    cancel: CancelToken | None = None) -> dict[str, np.ndarray]:
        """``run`` over axis 0 in chunks of ``batch_size`` (GPU memory bounded), outputs concatenated.

        A model exported with a static batch ``B`` runs in chunks of ``B``; its last chunk is
        padded by repeating the last sample and the padding is cut from the outputs. Progress is
        reported and the token checked between chunks.
        """
        arrays = {name: np.asarray(value) for name, value in feeds.items()}
        lengths = {len(a) if a.ndim else -1 for a in arrays.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise ValueError(f"run_batched needs every input to share the same first axis, got lengths {sorted(lengths)}.")
        total = lengths.pop()
        if total == 0:
            raise ValueError("run_batched got empty inputs (0 samples).")
        static = self._batch_dim()
        step = static if static is not None else max(1, int(batch_size))
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.outputs}
        for start in range(0, total, step):
            check(cancel)
            stop = min(start + step, total)
            chunk = {name: a[start:stop] for name, a in arrays.items()}
            pad = 0
            if static is not None and stop - start < step:
                pad = step - (stop - start)
                chunk = {name: np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for name, a in chunk.items()}
            out = self.run(chunk)
            for name, value in out.items():
                parts[name].append(value[: len(value) - pad] if pad else value)
            report(progress, stop, total, f"{self.name}: {stop} / {total}")
        return {name: np.concatenate(values, axis=0) for name, values in parts.items()}

    def warm_up(self, batch: int = 1, size: int | None = None) -> float:
        """Run once on zeros so the first real run does not pay for allocation/kernel selection; seconds taken.

        Dynamic dims become ``batch`` (axis 0), ``size`` / :attr:`resolution` / 64 (the last two
        axes of rank >= 3 inputs) or 1 (anything else).
        """
        spatial = size or self.resolution or 64
        feeds = {}
        for name, shape in self.inputs.items():
            dims = []
            for axis, d in enumerate(shape):
                if d is not None:
                    dims.append(d)
                elif axis == 0:
                    dims.append(batch)
                elif len(shape) >= 3 and axis >= len(shape) - 2:
                    dims.append(spatial)
                else:
                    dims.append(1)
            feeds[name] = np.zeros(dims, dtype=self._input_types[name])
        start = time.perf_counter()
        self.run(feeds)
        return time.perf_counter() - start


def create_session(onnx_path: str | os.PathLike, *, device: str = "auto", providers: Sequence[str] | None = None,
                   threads: int | None = None) -> ModelSession:
    """A :class:`ModelSession` on the best provider ``device`` allows ("auto", "cuda" or "cpu").

    ``providers`` (e.g. ``["CPUExecutionProvider"]``) overrides ``device`` with an explicit
    order; CPU is always appended as the last resort. ``threads`` sets the CPU intra-op thread
    count (default: all cores).
    """
    return ModelSession(onnx_path, device=device, providers=providers, threads=threads)


def bundle_session(bundle: "Bundle", role: str, device: str = "auto", *, providers: Sequence[str] | None = None,
                   threads: int | None = None) -> ModelSession:
    """The session for one network of a bundle, refused (BundleError) when it disagrees with model.json."""
    from inference.bundle import BundleError

    network = bundle.network(role)
    try:
        session = create_session(network.path, device=device, providers=providers, threads=threads)
    except (KeyboardInterrupt, SystemExit, MemoryError, BundleError):
        raise
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types on a file it cannot parse
        log.info("ONNX Runtime refused %s: %s", role, " ".join(str(exc).split())[:500])
        raise BundleError(f"{bundle.path.name}: networks.{role}: {network.path.name[:80]} is not an ONNX model "
                          f"ONNX Runtime can load (its sha256 matches, so the bundle was written this way).") from None
    bundle.check_io_names(role, session.inputs, session.outputs)
    bundle.check_input_size(role, session.inputs)
    session.resolution = bundle.expected_size(role)[0]
    return session
