"""Benchmark sizes: the real ones with ``MAMMOLENS_BENCH=full`` (``make bench``), otherwise a smoke
size (small images, a few iterations, no thresholds) so that the normal suite runs every benchmark
and none can rot. Only full runs write ``tests/benchmarks/results/*.json``."""
from __future__ import annotations

import json
import os
from pathlib import Path

FULL = os.environ.get("MAMMOLENS_BENCH", "").strip().lower() == "full"
RESULTS = Path(__file__).parent / "results"


def size(full, smoke):
    """``full`` under ``make bench``, ``smoke`` in the normal suite."""
    return full if FULL else smoke


def report(name: str, results: dict) -> None:
    """Print the results; a full run also writes them to ``results/<name>.json``."""
    text = json.dumps(results, indent=2, default=float)
    if FULL:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.json").write_text(text)
    print("\n" + ("" if FULL else "(smoke size) ") + text)


def healthygan_bundle(tmp_path):
    """The shipped HealthyGAN bundle, or when it is not bundled a stand-in of its architecture
    (timing only: weights do not change the cost)."""
    from inference.bundle import resolve_bundle

    try:
        return resolve_bundle("healthygan-phantom", method="translation")
    except ValueError:
        from tests.conftest import train_tiny_healthygan
        from training.export import export_run

        train_tiny_healthygan(tmp_path / "standin", resolution=128, width=16, residual_blocks=6, iterations=2,
                              command="benchmark stand-in")
        return export_run(tmp_path / "standin" / "run", tmp_path / "standin-bundle", name="standin",
                          log=lambda *a: None)
