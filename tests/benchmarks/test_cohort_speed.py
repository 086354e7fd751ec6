"""Cohort throughput of `analyze`: images per second for each map method in one process and on 1 and
2 local Dask worker processes (ONNX Runtime threads shared out: cores / workers each), and the peak
memory of each worker. The cohort is copies of one demo view (tests/cohort_folder.py). Run with
`make bench`; results go to ``tests/benchmarks/results/cohort.json``."""
from __future__ import annotations

import logging
import os
import time

import pytest

from tests.benchmarks.sizes import report, size
from tests.cohort_folder import make_cohort

pytestmark = pytest.mark.benchmark
COPIES = size(16, 3)
METHODS = {"healthygan": {}, "inpainting": size({"stride": 16}, {"stride": 64})}


def _peak_rss_mb() -> float:
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    return int(status["VmHWM"].split()[0]) / 1024


def test_cohort_images_per_second(tmp_path):
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    from app.analysis import analyze_path
    from inference.bundle import resolve_bundle
    from inference.methods import get

    folder = tmp_path / "cohort"
    make_cohort(folder, copies=COPIES, broken=1)
    cores = os.cpu_count() or 1
    results = {"images": COPIES, "cores": cores, "load_average_1min": round(os.getloadavg()[0], 2)}
    for method, parameters in METHODS.items():
        try:
            resolve_bundle(None, method=get(method).method)
        except ValueError:
            continue  # no bundle of this method here
        entry = {}
        t = time.perf_counter()
        analyze_path(folder, method, tmp_path / f"{method}-0", parameters=parameters, device="cpu")
        entry["one_process_images_per_s"] = COPIES / (time.perf_counter() - t)
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                              silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
                t = time.perf_counter()
                analyze_path(folder, method, tmp_path / f"{method}-{workers}", parameters=parameters, device="cpu",
                             scheduler=cluster.scheduler_address, threads=max(1, cores // workers))
                seconds = time.perf_counter() - t
                peaks = list(client.run(_peak_rss_mb).values())
            entry[f"{workers}_workers_images_per_s"] = COPIES / seconds
            entry[f"{workers}_workers_peak_rss_mb"] = [round(p) for p in peaks]
        entry["ratio_2_to_1_workers"] = entry["2_workers_images_per_s"] / entry["1_workers_images_per_s"]
        results[method] = entry
    report("cohort", results)
