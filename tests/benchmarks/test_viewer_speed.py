"""Viewer speed through the real widgets, offscreen (run with
``.venv/bin/pytest -q -s -p no:xdist tests/benchmarks/test_viewer_speed.py``).

* slice change on a full-size DBT volume (2457 x 1890, 70 slices, uncompressed): the slider is
  moved one slice and the view repainted synchronously, measured around both. Back to back
  (each step decodes its slice: the read-ahead has no time), then at 15 and at 30 slices a
  second (wheel rates; the read-ahead worker prepares the next slices between steps), then at 15
  a second with the overlay of every slice cached;
* the longest UI-thread stall while a heatmap job runs: a 10 ms QTimer records the gaps between
  its ticks while HealthyGAN runs over the whole volume in the background (results arriving,
  being cached and drawn included).

The HealthyGAN bundle is ``healthygan-phantom`` when it is installed; otherwise a stand-in with
the bundled model's architecture (128 px, width 16) is trained for two iterations: the weights do
not change the cost. Results are printed and written to ``tests/benchmarks/results/viewer.json``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks.sizes import report, size

pytestmark = pytest.mark.benchmark
pytest.importorskip("PySide6")

DBT_SHAPE = size((2457, 1890), (256, 208))
DBT_SLICES = size(70, 12)
STEPS = size(20, 3)  # slice changes per measurement
VOLUME_RUN_S = size(45.0, 10.0)  # the job is cancelled after this long: the stall statistics need no more


@pytest.fixture(scope="module")
def dbt_file(tmp_path_factory):
    from training.phantom import simulate_dbt, write_dbt_dicom

    out = tmp_path_factory.mktemp("viewer-bench")
    volume = simulate_dbt(2, view="CC", laterality="L", shape=DBT_SHAPE, n_slices=DBT_SLICES, pixel_spacing=0.1,
                          lesion_classes=("mass",))
    return write_dbt_dicom(out / "dbt.dcm", volume)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from inference.bundle import bundled_models_dir

    if (bundled_models_dir() / "healthygan-phantom" / "model.json").is_file():
        return bundled_models_dir()
    pytest.importorskip("torch")
    from tests.conftest import train_tiny_healthygan
    from training.export import export_run

    root = tmp_path_factory.mktemp("viewer-bench-model")
    train_tiny_healthygan(root, resolution=128, width=16, iterations=2, command="benchmark stand-in")
    export_run(root / "run", root / "models" / "healthygan-standin", name="healthygan-standin",
               log=lambda *a: None)
    return root / "models"


def _stats(seconds: list[float]) -> dict:
    ms = np.sort(np.asarray(seconds) * 1000)
    return {"median_ms": round(float(np.median(ms)), 2), "p90_ms": round(float(ms[int(len(ms) * 0.9)]), 2),
            "max_ms": round(float(ms[-1]), 2), "n": int(len(ms))}


def test_viewer_speed(qtbot, dbt_file, models_dir, tmp_path, monkeypatch):
    from PySide6 import QtCore, QtWidgets

    from app.gui import build_window

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    app = QtWidgets.QApplication.instance()
    window, ctl = build_window(models_dirs=[models_dir])
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    t0 = time.perf_counter()
    assert ctl.studies.open(dbt_file) is not None
    volume = ctl.session.current
    ctl.session.show_single(volume)
    window.single.viewport().repaint()
    first_slice_s = time.perf_counter() - t0
    assert volume.is_volume and volume.n_frames == DBT_SLICES and ctl.session.single
    ctl.jobs.wait()
    app.processEvents()
    bundle = next(b for b in ctl.overlays.method_bundles if b.method == "translation")

    def scroll(frames, interval_s: float = 0.0) -> list[float]:
        """Step through ``frames`` one slice change at a time; ``interval_s`` between steps
        (a wheel or cine rate) lets the read-ahead worker prepare the next slices."""
        times = []
        for k in frames:
            t = time.perf_counter()
            window.slice_slider.setValue(k)
            window.single.viewport().repaint()
            times.append(time.perf_counter() - t)
            app.processEvents()
            while time.perf_counter() - t < interval_s:
                app.processEvents()
                time.sleep(0.001)
        return times

    start = size(5, 1)
    back_to_back = scroll(range(start, start + STEPS))  # no time to read ahead: decode on the way
    at_15 = scroll(range(start + STEPS, start + 2 * STEPS), interval_s=1 / 15)
    at_30 = scroll(range(start + 2 * STEPS, start + 3 * STEPS), interval_s=1 / 30)
    decoded = volume.decoded_frames

    # the overlay: HealthyGAN over the whole volume while a 10 ms timer measures the UI thread
    ctl.overlays.toggle_method(bundle, True)
    qtbot.waitUntil(lambda: not ctl.jobs.running(), timeout=120000)  # engine load + the shown slice
    ticks: list[float] = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    t_job = time.perf_counter()
    job = ctl.overlays.run_volume()
    qtbot.waitUntil(lambda: job.done or time.perf_counter() - t_job > VOLUME_RUN_S,
                    timeout=int(VOLUME_RUN_S * 1000) + 60000)
    if not job.done:
        job.cancel()
        qtbot.waitUntil(lambda: job.done, timeout=60000)
    job_s = time.perf_counter() - t_job
    timer.stop()
    gaps = np.diff(ticks)
    computed = len(ctl.session.cached_frames(volume, bundle))
    overlaid = [k for k in range(start, start + 3 * STEPS) if ctl.session.result(volume, k, bundle) is not None]
    with_overlay = scroll(overlaid[:STEPS], interval_s=1 / 15) if len(overlaid) >= 5 else []

    results = {
        "volume": {"shape": list(DBT_SHAPE), "slices": DBT_SLICES, "transfer_syntax": volume.transfer_syntax},
        "open_to_first_slice_s": round(first_slice_s, 3),
        "slice_change_back_to_back": _stats(back_to_back),
        "slice_change_at_15_slices_per_s": _stats(at_15),
        "slice_change_at_30_slices_per_s": _stats(at_30),
        "frames_decoded": {"slice_changes": 3 * STEPS, "decoded": decoded},
        "slice_change_with_cached_overlay_at_15_per_s": _stats(with_overlay) if with_overlay else None,
        "cpu_load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "volume_job": {"bundle": f"{bundle.name} {bundle.version}", "resolution": bundle.input.resolution,
                       "slices_computed": computed, "seconds": round(job_s, 2), "outcome": job.outcome,
                       "seconds_per_slice": round(job_s / max(1, computed - 1), 3)},
        "ui_stall_during_job": {"timer_ms": 10, "ticks": int(len(ticks)),
                                "longest_gap_ms": round(float(gaps.max() * 1000), 1) if len(gaps) else None,
                                "p99_gap_ms": round(float(np.percentile(gaps, 99) * 1000), 1) if len(gaps) else None,
                                "gaps_over_100ms": int((gaps > 0.1).sum())},
    }
    report("viewer", results)
    ctl.shutdown()
    assert decoded <= 3 * STEPS + 8, "slices decode near the one shown, never the whole volume"
