"""A whole DBT volume through HealthyGAN as ``analyze --all-slices`` runs it (every slice
preprocessed, translated in batches, the volume's maps collected and the highest-scoring slice's
maps put on the original grid), now against before, in one process:

* before: the breast mask brought to full size and placed in model space from there, the frame
  padded to a full square, all three maps of every slice put back on the original grid at once and
  the main one copied into a full-size float16 volume (then its file's bytes);
* now: the breast mask kept coarse (placed in model space by block counts, the same values), the
  frame clipped into its blocks, the maps kept in model space (``STEM_LABEL_volume.npz``) and only
  the shown slice's put back.

Wall time (best of the repeats, interleaved) and the peak of the arrays allocated on the way
(tracemalloc, a separate pass), against the size of the volume as 16-bit pixels. Full size with
``make bench`` (70 slices, 2457 x 1890); results in ``tests/benchmarks/results/dbt.json``.
"""
from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from tests.benchmarks.sizes import report, size

pytestmark = pytest.mark.benchmark
DBT_SHAPE, DBT_SLICES = size(((2457, 1890), 70), ((256, 208), 6))
REPEATS = size(3, 1)


def _reference_preprocess(display, laterality, resolution):
    """The previous preprocessing: the full-size breast mask, both arrays through to_model_space."""
    from inference.preprocess import CoarseMask, ModelInput, _geometry, breast_mask, to_model_space

    display = np.clip(np.asarray(display, dtype=np.float32), 0.0, 1.0)
    g = _geometry(display.shape[0], display.shape[1], laterality == "R", resolution)
    breast = breast_mask(display)
    image = to_model_space(display, g)
    mask = to_model_space(breast.astype(np.float32), g) > 0.5
    return ModelInput(image=np.clip(image, 0.0, 1.0), mask=mask, geometry=g,
                      coarse_breast=CoarseMask(breast, 1, breast.shape))


def _analyze(model, frames, before: bool):
    """What ``analyze --all-slices`` does with a volume (app/analysis.py): chunks of the engine's
    batch, each slice's main map into the volume file, the best slice's maps kept."""
    from inference.methods import translation
    from inference.volume_maps import volume_bytes

    now = translation.preprocess
    if before:
        translation.preprocess = _reference_preprocess
    try:
        volume = np.zeros((len(frames),) + frames[0].shape, np.float16) if before else None
        kept, scores, shown = [], [], None
        for start in range(0, len(frames), model.batch_size):
            part = frames[start:start + model.batch_size]
            for i, r in enumerate(model.run_many(part, ["L"] * len(part))):
                if before:  # every map on the original grid, as the result carried them
                    r.maps = {name: r.maps[name] for name in r.maps}
                    volume[start + i] = r.maps["difference"]
                else:
                    kept.append(r.maps.subset(["difference"]))
                if shown is None or r.score > shown.score:
                    shown = r
                scores.append(r.score)
        maps = {name: shown.maps[name] for name in shown.maps}
        written = volume.tobytes() if before else volume_bytes(kept, "difference")
        return scores, maps, len(written)
    finally:
        translation.preprocess = now


def _before(model, frames):
    return _analyze(model, frames, before=True)


def _now(model, frames):
    return _analyze(model, frames, before=False)


def test_dbt_volume_speed_and_memory(tmp_path):
    from inference.methods.translation import TranslationEngine
    from tests.benchmarks.sizes import healthygan_bundle
    from training.phantom import simulate_dbt

    bundle = healthygan_bundle(tmp_path)
    model = TranslationEngine(bundle, device="cpu")
    vol = simulate_dbt(3, shape=DBT_SHAPE, n_slices=DBT_SLICES, pixel_spacing=size(0.1, 0.8), lesion_classes=("mass",))
    frames = [np.clip(vol.frame(k).astype(np.float32) / 4095.0, 0, 1) for k in range(DBT_SLICES)]
    volume_bytes = DBT_SLICES * DBT_SHAPE[0] * DBT_SHAPE[1] * 2

    _now(model, frames[:2])  # sessions, imports
    times = {"before": [], "now": []}
    for _ in range(REPEATS):  # interleaved: a loaded machine slows both alike
        for name, fn in (("before", _before), ("now", _now)):
            t = time.perf_counter()
            out = fn(model, frames)
            times[name].append(time.perf_counter() - t)
            del out
    peaks = {}
    for name, fn in (("before", _before), ("now", _now)):
        tracemalloc.start()
        out = fn(model, frames)
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del out
    (scores_before, maps_before, _), (scores_now, maps_now, written) = _before(model, frames), _now(model, frames)
    assert scores_before == scores_now  # the same preprocessing values
    np.testing.assert_array_equal(maps_before["difference"], maps_now["difference"])
    best = {name: min(t) for name, t in times.items()}
    report("dbt", {"shape": list(DBT_SHAPE), "slices": DBT_SLICES, "volume_MB_uint16": volume_bytes / 1e6,
                   "seconds_before": best["before"], "seconds_now": best["now"],
                   "speedup": best["before"] / best["now"], "volume_file_MB_now": written / 1e6,
                   "peak_allocated_MB_before": peaks["before"] / 1e6, "peak_allocated_MB_now": peaks["now"] / 1e6,
                   "peak_over_volume_before": peaks["before"] / volume_bytes,
                   "peak_over_volume_now": peaks["now"] / volume_bytes})
