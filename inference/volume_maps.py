"""A DBT volume's maps as analyze writes them: in model space, with what puts each slice back.

Mapping every slice of a 70-slice 2457 x 1890 volume back to full size costs seconds and a
full-size float volume (as much memory as the volume itself); most of it is never looked at. So
``STEM_LABEL_volume.npz`` keeps, per slice, the model-space map, the coarse breast mask it is
multiplied by on the original grid and the geometry of the preprocessing; :meth:`VolumeMaps.slice`
gives a slice on the original grid, the same float32 values the run's own result gives
(:class:`~inference.preprocess.ModelSpaceMaps`).
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from inference.preprocess import CoarseMask, Geometry, ModelSpaceMaps, to_original

SUFFIX = "_volume.npz"


def volume_bytes(maps: Sequence[ModelSpaceMaps], name: str) -> bytes:
    """The .npz of one map of every slice (each a :class:`ModelSpaceMaps` of the same frame size)."""
    first = maps[0]
    masked = name in first.masked and first.breast is not None
    arrays = {"model": np.stack([np.asarray(m.model[name], dtype=np.float32) for m in maps]),
              "geometry": np.array(json.dumps([m.geometry.to_dict() for m in maps]))}
    if masked:
        arrays["breast"] = np.stack([m.breast.values for m in maps])
        arrays["breast_step"] = np.array(first.breast.step)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


class VolumeMaps:
    """A written volume of maps: ``len()`` slices, :meth:`slice` one on the original grid."""

    def __init__(self, path: str | Path):
        with np.load(Path(path), allow_pickle=False) as z:
            self.model = z["model"]
            self.geometries = [Geometry(**g) for g in json.loads(str(z["geometry"]))]
            self.breast = z["breast"] if "breast" in z.files else None
            self.step = int(z["breast_step"]) if "breast_step" in z.files else 1

    def __len__(self) -> int:
        return len(self.model)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, cols) on the original grid."""
        g = self.geometries[0]
        return len(self), g.rows, g.cols

    def slice(self, k: int) -> np.ndarray:
        g = self.geometries[k]
        out = to_original(self.model[k], g)
        if self.breast is not None:
            out *= CoarseMask(self.breast[k], self.step, (g.rows, g.cols)).full()
        return out
