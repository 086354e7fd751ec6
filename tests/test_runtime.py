"""ONNX Runtime sessions: CPU runs, a GPU fallback that is real and said once, batching, cancellation."""
from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from inference import runtime
from inference.jobs import Cancelled, CancelToken, report
from inference.runtime import CPU, CUDA, ModelLoadError, bundle_session, create_session
from tests.test_bundle import conv_model, make_translation_bundle


@pytest.fixture(autouse=True)
def fresh_provider_state():
    runtime.reset_provider_failures()
    yield
    runtime.reset_provider_failures()


@pytest.fixture()
def model(tmp_path):
    return conv_model(tmp_path / "conv.onnx")  # dynamic (N, 1, H, W)


def expected(x):
    return 2.0 * x + 0.5


def warnings_about(caplog, text):
    return [r for r in caplog.records if r.name == "mammolens.runtime" and r.levelno == logging.WARNING
            and text in r.getMessage()]


def test_cpu_session_runs_and_reports_its_provider(model):
    session = create_session(model, device="cpu", threads=1)
    assert session.provider == CPU and session.device_label == "CPU" and session.fallback_reason is None
    assert session.inputs == {"x": (None, 1, None, None)} and list(session.outputs) == ["y"]
    x = np.random.default_rng(0).random((2, 1, 5, 7))  # float64 in: cast to the model's float32
    y = session.run({"x": x})["y"]
    assert y.dtype == np.float32 and y.shape == (2, 1, 5, 7)
    np.testing.assert_allclose(y, expected(x), rtol=1e-6)


def test_explicit_cpu_provider_list(model):
    session = create_session(model, providers=[CPU])
    assert session.provider == CPU and session.fallback_reason is None


def test_cuda_without_a_gpu_falls_back_to_cpu_and_says_so_once(model, caplog):
    caplog.set_level(logging.WARNING, logger="mammolens.runtime")
    first = create_session(model, device="cuda")
    if first.provider != CPU:
        pytest.skip(f"this machine really runs {first.provider}")
    second = create_session(model, device="cuda")
    for session in (first, second):
        assert session.provider == CPU and session.device_label == "CPU"
        assert "CUDA" in session.fallback_reason and session.fallback_reason.endswith(".")
        np.testing.assert_allclose(session.run({"x": np.ones((1, 1, 2, 2))})["y"], 2.5)
    assert len(warnings_about(caplog, "CUDA")) == 1


def test_silent_fallback_is_detected_on_any_machine(model, monkeypatch, caplog):
    """onnxruntime-gpu without CUDA libraries builds a CPU session without raising: we must notice."""
    import onnxruntime

    real = onnxruntime.InferenceSession
    asked = []

    def silently_cpu(path, sess_options=None, providers=None, **kwargs):
        asked.append([p[0] if isinstance(p, tuple) else p for p in providers])
        return real(path, sess_options=sess_options, providers=[(CPU, {})], **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", silently_cpu)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    caplog.set_level(logging.WARNING, logger="mammolens.runtime")
    first, second = create_session(model), create_session(model)
    assert first.provider == second.provider == CPU
    assert first.fallback_reason == second.fallback_reason == (
        "CUDAExecutionProvider was requested but ONNX Runtime could not enable it (no usable GPU, or the CUDA / "
        "cuDNN libraries this onnxruntime-gpu needs are missing); running on CPU.")
    assert asked == [[CUDA, CPU], [CPU]]  # not tried again in this process
    assert len(warnings_about(caplog, "CUDA")) == 1


def test_session_creation_raising_on_a_gpu_provider_falls_back(model, monkeypatch, caplog):
    import onnxruntime

    real = onnxruntime.InferenceSession
    asked = []

    def fake(path, sess_options=None, providers=None, **kwargs):
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        asked.append(names)
        if CUDA in names:
            raise RuntimeError("simulated: CUDA driver version is insufficient\nsecond line")
        return real(path, sess_options=sess_options, providers=providers, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", fake)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    caplog.set_level(logging.WARNING, logger="mammolens.runtime")
    sessions = [create_session(model, device="auto") for _ in range(2)]
    for session in sessions:
        assert session.provider == CPU
        assert session.fallback_reason == ("CUDAExecutionProvider failed to create a session for conv.onnx "
                                           "(simulated: CUDA driver version is insufficient); running on CPU.")
        np.testing.assert_allclose(session.run({"x": np.zeros((1, 1, 1, 1))})["y"], 0.5)
    assert asked == [[CUDA, CPU], [CPU], [CUDA, CPU], [CPU]]  # a raising creation is retried per session
    assert len(warnings_about(caplog, "CUDAExecutionProvider failed")) == 1  # but said once


class _GpuThatFailsToRun:
    """A session that claims CUDA and fails in run (out of GPU memory), wrapping a real CPU one."""

    def __init__(self, inner):
        self._inner = inner

    def get_providers(self):
        return [CUDA, CPU]

    def get_inputs(self):
        return self._inner.get_inputs()

    def get_outputs(self):
        return self._inner.get_outputs()

    def run(self, *args, **kwargs):
        raise RuntimeError("simulated: CUDA failure 2: out of memory")


def test_run_failing_on_the_gpu_reruns_on_cpu(model, monkeypatch, caplog):
    import onnxruntime

    real = onnxruntime.InferenceSession

    def fake(path, sess_options=None, providers=None, **kwargs):
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        session = real(path, sess_options=sess_options, providers=[(CPU, {})], **kwargs)
        return _GpuThatFailsToRun(session) if CUDA in names else session

    monkeypatch.setattr(onnxruntime, "InferenceSession", fake)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    caplog.set_level(logging.WARNING, logger="mammolens.runtime")
    session = create_session(model, device="cuda")
    assert session.provider == CUDA and session.device_label == "CUDA" and session.fallback_reason is None
    x = np.full((1, 1, 3, 3), 2.0, np.float32)
    np.testing.assert_allclose(session.run({"x": x})["y"], 4.5)
    assert session.provider == CPU and session.device_label == "CPU"
    assert session.fallback_reason == ("CUDAExecutionProvider failed while running conv.onnx "
                                       "(simulated: CUDA failure 2: out of memory); re-ran on CPU.")
    np.testing.assert_allclose(session.run({"x": x})["y"], 4.5)  # stays on CPU
    assert len(warnings_about(caplog, "failed while running")) == 1


def test_tensorrt_only_when_asked(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [runtime.TENSORRT, CUDA, CPU])
    monkeypatch.delenv(runtime.TENSORRT_ENV, raising=False)
    assert runtime._requested_providers("auto", None)[0] == [CUDA, CPU]
    monkeypatch.setenv(runtime.TENSORRT_ENV, "1")
    assert runtime._requested_providers("auto", None)[0] == [runtime.TENSORRT, CUDA, CPU]
    assert runtime._requested_providers("cpu", None)[0] == [CPU]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CPU])
    chain, reasons = runtime._requested_providers("cuda", None)
    assert chain == [CPU] and "CUDAExecutionProvider is not available in this onnxruntime build" in reasons[-1]
    assert runtime._requested_providers("auto", None) == ([CPU], [])  # auto on a CPU build: nothing to excuse
    with pytest.raises(ValueError, match="device must be one of auto, cuda, cpu"):
        runtime._requested_providers("gpu", None)


def test_run_batched_equals_one_big_run(model):
    session = create_session(model, device="cpu")
    x = np.random.default_rng(1).random((10, 1, 4, 4)).astype(np.float32)
    calls = []
    batched = session.run_batched({"x": x}, batch_size=3, progress=lambda d, t, m: calls.append((d, t)))
    np.testing.assert_array_equal(batched["y"], session.run({"x": x})["y"])
    assert calls == [(3, 10), (6, 10), (9, 10), (10, 10)]


def test_run_batched_with_a_static_batch_pads_the_last_chunk(tmp_path):
    session = create_session(conv_model(tmp_path / "b2.onnx", batch=2, size=4), device="cpu")
    assert session.inputs["x"] == (2, 1, 4, 4)
    x = np.random.default_rng(2).random((5, 1, 4, 4)).astype(np.float32)
    y = session.run_batched({"x": x}, batch_size=64)["y"]
    assert y.shape == (5, 1, 4, 4)
    np.testing.assert_allclose(y, expected(x), rtol=1e-6)


def test_run_batched_stops_when_cancelled(model):
    session = create_session(model, device="cpu")
    token = CancelToken()
    x = np.zeros((6, 1, 2, 2), np.float32)
    with pytest.raises(Cancelled):
        session.run_batched({"x": x}, 2, progress=lambda d, t, m: token.cancel() if d == 2 else None, cancel=token)


def test_warm_up_uses_batch_and_resolution(model):
    session = create_session(model, device="cpu")
    session.resolution = 8
    assert session.warm_up(batch=2) >= 0.0


def test_bad_feeds_are_one_sentence(model):
    session = create_session(model, device="cpu")
    with pytest.raises(ValueError, match=r"^conv.onnx has no input named 'image' \(its inputs: x\)\.$"):
        session.run({"image": np.zeros((1, 1, 2, 2))})
    with pytest.raises(ValueError, match=r"^input 'x' of conv.onnx must have shape \(\?, 1, \?, \?\), got \(1, 2, 2\)\.$"):
        session.run({"x": np.zeros((1, 2, 2))})


def test_missing_and_corrupt_models(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        create_session(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ModelLoadError, match="^ONNX Runtime cannot load bad.onnx: "):
        create_session(bad)


def test_bundle_session_runs_the_bundle_network(tmp_path):
    bundle = make_translation_bundle(tmp_path / "hg", size=16, resolution=16)
    session = bundle_session(bundle, "generator", device="cpu")
    assert session.resolution == 16 and session.provider == CPU
    session.warm_up()
    np.testing.assert_allclose(session.run({"x": np.ones((1, 1, 16, 16))})["y"], 2.5)


def test_cancel_token_across_threads():
    token = CancelToken()
    started, finished = threading.Event(), []

    def work():
        started.set()
        try:
            while True:
                token.raise_if_cancelled()
                time.sleep(0.001)
        except Cancelled as exc:
            finished.append(str(exc))

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(5)
    assert not token.cancelled
    token.cancel()
    worker.join(5)
    assert not worker.is_alive() and finished == ["The job was cancelled."] and token.cancelled
    assert token.wait(0)  # already cancelled: returns at once


def test_report_tolerates_none():
    report(None, 1, 2, "nothing listens")
    seen = []
    report(lambda *a: seen.append(a), 1, 2, "half")
    assert seen == [(1, 2, "half")]
