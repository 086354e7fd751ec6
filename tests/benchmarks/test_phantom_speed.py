"""Phantom simulator speed: one 512 x 416 view at 0.4 mm (the size of the HealthyGAN sets), with the
skin signed distance from a distance transform (now) against the k-d tree query per pixel (before),
in one process, and how many stored values the change moves. Run with `make bench`; results go to
``tests/benchmarks/results/phantom.json``."""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.benchmarks.sizes import report, size

pytestmark = pytest.mark.benchmark
IMAGES = size(8, 1)  # views per measurement (CC and MLO alternate)


def _kd_tree_grid(bm, x, y, cap=80.0):
    """The previous way: the k-d tree query of :func:`signed_distance` over every grid point (with the
    tree's default leaves, as it was)."""
    from scipy.spatial import cKDTree

    from training.phantom.anatomy import _skin_points, signed_distance

    pts = _skin_points(bm)
    bm._tree = (cKDTree(pts), pts)
    xx = np.broadcast_to(x, (y.shape[0], x.shape[1]))
    yy = np.broadcast_to(y, (y.shape[0], x.shape[1]))
    return signed_distance(bm, xx, yy, cap)


def test_phantom_simulator_speed(monkeypatch):
    from training.phantom import anatomy, simulate_mammogram

    def run():
        t = time.perf_counter()
        images = [simulate_mammogram(seed, shape=(512, 416), pixel_spacing=0.4, view=("CC", "MLO")[seed % 2]).pixels
                  for seed in range(IMAGES)]
        return (time.perf_counter() - t) / IMAGES, images

    simulate_mammogram(99, shape=(512, 416), pixel_spacing=0.4)  # imports, FFT plans
    now_s, now = run()
    monkeypatch.setattr(anatomy, "signed_distance_grid", _kd_tree_grid)
    before_s, before = run()
    moved = [np.abs(a.astype(np.int64) - b.astype(np.int64)) for a, b in zip(now, before)]
    report("phantom", {"shape": [512, 416], "pixel_spacing_mm": 0.4, "images": IMAGES,
                       "seconds_per_image": now_s, "seconds_per_image_kd_tree": before_s,
                       "speedup": before_s / now_s,
                       "pixels_changed_fraction": float(np.mean([(m > 0).mean() for m in moved])),
                       "largest_change_stored_values": int(max(m.max() for m in moved))})
