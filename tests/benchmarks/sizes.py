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
