"""Synthetic lesion patches: what the synthesis pane shows and how chosen ones are exported.

Each exported patch is a PNG named by class, seed and index; ``labels.csv`` beside them lists
class, seed, index, truncation and the model that made it (paper 004's augmentation use needs
all of them to reproduce a patch). Written atomically, no patient data involved.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.files import atomic_write_bytes, atomic_write_text


@dataclass(frozen=True)
class Patch:
    pixels: np.ndarray  # (h, w) float in [0, 1]
    label: str  # lesion class
    seed: int
    index: int  # position in the generated batch of that seed
    truncation: float
    model: str  # bundle name and version

    @property
    def file_name(self) -> str:
        return f"{self.label}_seed{self.seed}_{self.index:03d}.png"


def export_patches(folder: str | Path, patches: list[Patch]) -> list[Path]:
    from inference.images import png_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for patch in patches:
        pixels = (np.clip(patch.pixels, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
        atomic_write_bytes(folder / patch.file_name, png_bytes(pixels))
        written.append(folder / patch.file_name)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", "class", "seed", "index", "truncation", "model"])
    for patch in patches:
        writer.writerow([patch.file_name, patch.label, patch.seed, patch.index, f"{patch.truncation:g}", patch.model])
    atomic_write_text(folder / "labels.csv", text.getvalue())
    return written + [folder / "labels.csv"]
