"""Training and evaluation data from a labels file, three shapes of it:

* whole images (:func:`load_images`): read through the study loader, windowed with their default
  VOI preset and put through the shared preprocessing contract (:mod:`inference.preprocess`),
  exactly as inference will see them, with each image's lesion and foreign-object boxes carried
  into model space. Prepared arrays are cached beside the run (``.npz``), keyed by the labels
  file's content, the resolution and the split, so a resumed run starts at once;
* sliding windows (:func:`window_origins`): the field-of-view windows of paper 002 that lie on
  breast tissue;
* lesion ROIs (:func:`lesion_rois` on prepared images; :func:`roi_patches` at the films' own
  resolution, one patch per lesion row with its own class): patches cut around annotated lesions
  (paper 004).
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
from inference.preprocess import box_to_model_space, preprocess
from inference.windows import window_origins  # noqa: F401  (the sliding windows, shared with the engine)

FOREIGN_OBJECT = "foreign_object"

CACHE_VERSION = 3


@dataclass
class PreparedImages:
    images: np.ndarray  # float32 (N, R, R) in [0, 1], breasts facing left
    masks: np.ndarray  # bool (N, R, R) breast masks in model space
    labels: list[str]  # "normal" or the image's (first) lesion class
    patients: list[str]
    paths: list[str]  # as written in the labels file
    splits: list[str]
    boxes: list[list[tuple[float, float, float, float]]]  # lesion boxes per image, model space
    objects: list[list[tuple[float, float, float, float]]]  # foreign-object boxes per image, model space
    views: list[str]  # "CC", "MLO", ... (the labels file's view, else the image's)

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, keep) -> "PreparedImages":
        idx = np.flatnonzero(np.asarray(keep, dtype=bool))
        return PreparedImages(self.images[idx], self.masks[idx], [self.labels[i] for i in idx],
                              [self.patients[i] for i in idx], [self.paths[i] for i in idx],
                              [self.splits[i] for i in idx], [self.boxes[i] for i in idx],
                              [self.objects[i] for i in idx], [self.views[i] for i in idx])

    @property
    def is_normal(self) -> np.ndarray:
        return np.array([lab == "normal" for lab in self.labels])


def _cache_key(labels_path: Path, resolution: int, splits) -> str:
    h = hashlib.sha256(labels_path.read_bytes())
    h.update(json.dumps([CACHE_VERSION, resolution, sorted(splits) if splits else None]).encode())
    return h.hexdigest()[:16]


def _frames(labels_path: Path, items, progress=None):
    """``(path, rows, image)`` of every 2D image among ``items`` (path, rows): DBT volumes are skipped."""
    from inference.studies.study import open_path

    for i, (path, rows) in enumerate(items):
        if progress:
            progress(i, len(items), Path(path).name)
        image = open_path(rows[0].resolve(labels_path.parent)).images()[0]
        if not image.is_volume:
            yield path, rows, image


def load_images(labels_path: str | Path, resolution: int, *, splits=None, cache_dir: Path | None = None,
                progress=None) -> PreparedImages:
    """Every 2D image of the labels file (optionally only some splits), prepared for a model.

    DBT volumes are skipped here: the 2D translation models are trained on 2D views.
    """

    labels_path = Path(labels_path)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"data-{resolution}-{_cache_key(labels_path, resolution, splits)}.npz"
        if cache.is_file():
            with np.load(cache, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                return PreparedImages(z["images"], z["masks"], meta["labels"], meta["patients"], meta["paths"],
                                      meta["splits"], [[tuple(b) for b in bs] for bs in meta["boxes"]],
                                      [[tuple(b) for b in bs] for bs in meta["objects"]], meta["views"])
    grouped = rows_by_image(read_labels(labels_path))
    items = [(p, rows) for p, rows in grouped.items() if not splits or rows[0].split in splits]
    images, masks, labels, patients, paths, split_names, boxes, objects, views = [], [], [], [], [], [], [], [], []
    for path, rows, image in _frames(labels_path, items, progress):
        laterality = rows[0].laterality or image.laterality
        prepared = preprocess(image.display(0), laterality, resolution)
        images.append(prepared.image)
        masks.append(prepared.mask)
        labels.append(image_label(rows))
        patients.append(rows[0].patient or path)
        paths.append(path)
        split_names.append(rows[0].split)
        views.append(rows[0].view or image.view)
        in_model = [(r.label, box_to_model_space(r.box(), prepared.geometry)) for r in rows if r.box() is not None]
        boxes.append([b for label, b in in_model if label not in ("normal", FOREIGN_OBJECT)])
        objects.append([b for label, b in in_model if label == FOREIGN_OBJECT])
    if not images:
        raise ValueError(f"{labels_path.name} lists no 2D image in split(s) {splits or 'any'}")
    data = PreparedImages(np.stack(images).astype(np.float32), np.stack(masks), labels, patients, paths, split_names,
                          boxes, objects, views)
    if cache is not None:
        buffer = io.BytesIO()
        meta = dict(labels=labels, patients=patients, paths=paths, splits=split_names, boxes=boxes, objects=objects,
                    views=views)
        np.savez_compressed(buffer, images=data.images, masks=data.masks, meta=json.dumps(meta))
        atomic_write_bytes(cache, buffer.getvalue())
    return data


def normal_train_images(labels_path: str | Path, resolution: int, cache_dir: Path | None = None) -> PreparedImages:
    """The normal images of the train split (what the methods trained on normals only learn from);
    ValueError when there is none."""
    train = load_images(labels_path, resolution, splits=("train",), cache_dir=cache_dir)
    normal = train.select(train.is_normal)
    if len(normal) == 0:
        raise ValueError("the training split has no normal image to learn normal tissue from")
    return normal


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


def lesion_rois(data: PreparedImages, size: int = 64, margin: float = 1.5) -> tuple[np.ndarray, list[str]]:
    """Square patches around every lesion box of prepared images, resized to ``size`` (paper 004:
    crop, resize to 64, scale later to [-1, 1]); the crop side is ``margin`` x the box's longer side."""
    from skimage.transform import resize

    patches, classes = [], []
    for image, label, boxes in zip(data.images, data.labels, data.boxes):
        for x0, y0, x1, y1 in boxes:
            side = max(4.0, margin * max(x1 - x0, y1 - y0))
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            r0, c0 = int(round(cy - side / 2)), int(round(cx - side / 2))
            n = int(round(side))
            padded = np.pad(image, n, mode="edge")
            crop = padded[r0 + n : r0 + 2 * n, c0 + n : c0 + 2 * n]
            patches.append(resize(crop, (size, size), order=1, anti_aliasing=True, preserve_range=True))
            classes.append(label)
    return np.asarray(patches, dtype=np.float32).reshape(-1, size, size), classes


@dataclass
class RoiSet:
    """Lesion ROI patches cut at the films' own resolution (paper 004), one per lesion row."""

    patches: np.ndarray  # float32 (N, size, size) in [0, 1], breasts facing left
    labels: list[str]  # the lesion class of each patch (its own row's, not the image's)
    patients: list[str]
    splits: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, keep) -> "RoiSet":
        idx = np.flatnonzero(np.asarray(keep, dtype=bool))
        return RoiSet(self.patches[idx], [self.labels[i] for i in idx], [self.patients[i] for i in idx],
                      [self.splits[i] for i in idx])

    @property
    def classes(self) -> list[str]:
        """The lesion classes present, in the vocabulary's order (unknown ones after, sorted)."""
        from inference.labels import LESION_CLASSES

        present = set(self.labels)
        return [c for c in LESION_CLASSES if c in present] + sorted(present - set(LESION_CLASSES))


def crop_square(image: np.ndarray, box, size: int, margin: float = 1.5, min_side: float = 32.0) -> np.ndarray:
    """The square ``margin`` x the box's longer side (at least ``min_side`` pixels) around a box's
    centre, edge-padded where it leaves the image, resized to ``size`` (area-averaged when shrinking)."""
    from skimage.transform import resize

    x0, y0, x1, y1 = box
    side = max(float(min_side), margin * max(x1 - x0, y1 - y0))
    n = int(round(side))
    r0, c0 = int(round((y0 + y1) / 2 - n / 2)), int(round((x0 + x1) / 2 - n / 2))
    padded = np.pad(image, n, mode="edge")
    crop = padded[r0 + n : r0 + 2 * n, c0 + n : c0 + 2 * n]
    return resize(crop, (size, size), order=1, anti_aliasing=n > size, preserve_range=True).astype(np.float32)


def roi_patches(labels_path: str | Path, size: int = 64, *, splits=None, margin: float = 1.5,
                min_side: float = 32.0, cache_dir: Path | None = None, progress=None) -> RoiSet:
    """Every lesion with geometry in a labels file (optionally some splits) as a ``size`` patch.

    Paper 004 crops each ROI from the film and resizes it to 64 x 64 (then scales to [-1, 1],
    which the method does). The crop is taken from the displayed frame (VOI window applied, [0, 1])
    at the film's own pixel size, so small lesions are not first shrunk with the whole image;
    right breasts are mirrored to face left as the preprocessing contract does. Boxes come from
    the box columns or, for mini-MIAS, from the centre and radius (origin already top-left in the
    labels file). Lesions without geometry (MIAS "widely distributed" calcifications) are skipped.
    """

    labels_path = Path(labels_path)
    cache = None
    if cache_dir is not None:
        key = _cache_key(labels_path, size, splits)
        cache = Path(cache_dir) / f"rois-{size}-{margin:g}-{min_side:g}-{key}.npz"
        if cache.is_file():
            with np.load(cache, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                return RoiSet(z["patches"], meta["labels"], meta["patients"], meta["splits"])
    grouped = rows_by_image(read_labels(labels_path))
    items = [(p, [r for r in rows if r.is_lesion and r.box() is not None]) for p, rows in grouped.items()
             if not splits or rows[0].split in splits]
    items = [(p, rows) for p, rows in items if rows]
    patches, labels, patients, split_names = [], [], [], []
    for path, rows, image in _frames(labels_path, items, progress):
        display = np.asarray(image.display(0), dtype=np.float32)
        flip = (rows[0].laterality or image.laterality) == "R"
        if flip:
            display = display[:, ::-1]
        for row in rows:
            x0, y0, x1, y1 = row.box()
            if flip:
                x0, x1 = display.shape[1] - x1, display.shape[1] - x0
            patches.append(np.clip(crop_square(display, (x0, y0, x1, y1), size, margin, min_side), 0.0, 1.0))
            labels.append(row.label)
            patients.append(row.patient or path)
            split_names.append(row.split)
    if not patches:
        raise ValueError(f"{labels_path.name} lists no lesion with a box or centre and radius in split(s) "
                         f"{', '.join(splits) if splits else 'any'}")
    data = RoiSet(np.stack(patches).astype(np.float32), labels, patients, split_names)
    if cache is not None:
        buffer = io.BytesIO()
        meta = dict(labels=labels, patients=patients, splits=split_names)
        np.savez_compressed(buffer, patches=data.patches, meta=json.dumps(meta))
        atomic_write_bytes(cache, buffer.getvalue())
    return data
