"""Training data from a labels file: images read through the study loader, windowed with their
default VOI preset and put through the shared preprocessing contract (:mod:`inference.preprocess`),
exactly as inference will see them. Prepared arrays are cached beside the run (``.npz``), keyed
by the labels file's content, the resolution and the split, so a resumed run starts at once.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.files import atomic_write_bytes
from inference.labels import image_label, read_labels, rows_by_image
from inference.preprocess import preprocess

CACHE_VERSION = 1


@dataclass
class PreparedImages:
    images: np.ndarray  # float32 (N, R, R) in [0, 1], breasts facing left
    masks: np.ndarray  # bool (N, R, R) breast masks in model space
    labels: list[str]  # "normal" or the image's (first) lesion class
    patients: list[str]
    paths: list[str]  # as written in the labels file
    splits: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, keep) -> "PreparedImages":
        idx = np.flatnonzero(np.asarray(keep, dtype=bool))
        return PreparedImages(self.images[idx], self.masks[idx], [self.labels[i] for i in idx],
                              [self.patients[i] for i in idx], [self.paths[i] for i in idx],
                              [self.splits[i] for i in idx])

    @property
    def is_normal(self) -> np.ndarray:
        return np.array([lab == "normal" for lab in self.labels])


def _cache_key(labels_path: Path, resolution: int, splits) -> str:
    h = hashlib.sha256(labels_path.read_bytes())
    h.update(json.dumps([CACHE_VERSION, resolution, sorted(splits) if splits else None]).encode())
    return h.hexdigest()[:16]


def load_images(labels_path: str | Path, resolution: int, *, splits=None, cache_dir: Path | None = None,
                progress=None) -> PreparedImages:
    """Every 2D image of the labels file (optionally only some splits), prepared for a model.

    DBT volumes are skipped here: the 2D translation models are trained on 2D views.
    """
    from app.study import open_path

    labels_path = Path(labels_path)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"data-{resolution}-{_cache_key(labels_path, resolution, splits)}.npz"
        if cache.is_file():
            with np.load(cache, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                return PreparedImages(z["images"], z["masks"], meta["labels"], meta["patients"], meta["paths"],
                                      meta["splits"])
    grouped = rows_by_image(read_labels(labels_path))
    items = [(p, rows) for p, rows in grouped.items() if not splits or rows[0].split in splits]
    images, masks, labels, patients, paths, split_names = [], [], [], [], [], []
    for i, (path, rows) in enumerate(items):
        if progress:
            progress(i, len(items), Path(path).name)
        image = open_path(rows[0].resolve(labels_path.parent)).images()[0]
        if image.is_volume:
            continue
        laterality = rows[0].laterality or image.laterality
        prepared = preprocess(image.display(0), laterality, resolution)
        images.append(prepared.image)
        masks.append(prepared.mask)
        labels.append(image_label(rows))
        patients.append(rows[0].patient or path)
        paths.append(path)
        split_names.append(rows[0].split)
    if not images:
        raise ValueError(f"{labels_path.name} lists no 2D image in split(s) {splits or 'any'}")
    data = PreparedImages(np.stack(images).astype(np.float32), np.stack(masks), labels, patients, paths, split_names)
    if cache is not None:
        buffer = io.BytesIO()
        meta = dict(labels=labels, patients=patients, paths=paths, splits=split_names)
        np.savez_compressed(buffer, images=data.images, masks=data.masks, meta=json.dumps(meta))
        atomic_write_bytes(cache, buffer.getvalue())
    return data


def healthy_and_mixed_sets(train: PreparedImages, b_fraction: float = 0.5, seed: int = 0):
    """HealthyGAN's two training sets from one training split, disjoint by patient.

    Set B (known healthy) takes the normal images of a ``b_fraction`` share of the patients
    whose images are all normal; set A (mixed, unlabelled) takes every image of the other
    patients, normal or not, as the paper's Covid experiment keeps the two sets apart.
    """
    patients = sorted(set(train.patients))
    abnormal = {p for p, lab in zip(train.patients, train.labels) if lab != "normal"}
    normal_only = [p for p in patients if p not in abnormal]
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(normal_only, size=int(round(len(normal_only) * b_fraction)), replace=False)) \
        if normal_only else set()
    in_b = np.array([p in chosen for p in train.patients])
    return train.select(~in_b), train.select(in_b)
