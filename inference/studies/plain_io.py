"""Plain research images (PNG, PGM, TIFF) as single 2D images.

Research datasets such as mini-MIAS come as plain greyscale files without any header. They open
as one frame with a full-range display; laterality comes from a labels file when one names the
image, otherwise it is inferred from which side of the image the breast lies on (the chest wall
is the image edge the breast touches over the longest run).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from inference.errors import LoadError, NotDicomError
from inference.studies.image import FrameSource, Image, VoiPreset

PLAIN_SUFFIXES = {".png", ".pgm", ".pnm", ".tif", ".tiff", ".jpg", ".jpeg"}


def read_plain(path: Path) -> np.ndarray:
    from skimage import io as skio

    try:
        arr = np.asarray(skio.imread(str(path)))
    except Exception as exc:  # imageio / tifffile raise assorted types on bad files
        raise NotDicomError(path, f"cannot be read as an image ({type(exc).__name__}).") from exc
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        arr = np.rint(arr).astype(np.uint16 if arr.max() > 255 else np.uint8)
    if arr.ndim != 2:
        raise LoadError(path, f"has shape {arr.shape}; only single greyscale images are supported.")
    return arr


def infer_laterality(pixels: np.ndarray) -> str:
    """``L`` when the breast touches the left edge (chest wall left), ``R`` for the right edge.

    The breast is the large bright region: pixels above the Otsu threshold of a downsampled
    copy. The chest-wall side is the edge column with more breast along it, looked at a few
    pixels in from the border (scanned films often have a black or white frame).
    """
    from skimage.filters import threshold_otsu

    step = max(1, max(pixels.shape) // 256)
    small = np.asarray(pixels[::step, ::step], dtype=np.float32)
    if small.max() <= small.min():
        return ""
    mask = small > threshold_otsu(small)
    w = mask.shape[1]
    band = max(2, w // 16)
    inset = max(1, w // 64)
    left = mask[:, inset : inset + band].mean()
    right = mask[:, w - inset - band : w - inset].mean()
    if abs(left - right) < 0.02:
        # no clear chest wall: the side holding more of the breast's mass
        cols = mask.mean(axis=0)
        left, right = cols[: w // 2].sum(), cols[w // 2 :].sum()
    return "L" if left > right else "R"


def open_plain(path: str | os.PathLike, laterality: str = "", view: str = "") -> Image:
    path = Path(path)
    pixels = read_plain(path)
    source_label = "labels file" if laterality else ""
    if not laterality:
        laterality, source_label = infer_laterality(pixels), "inferred from the breast's side"
    bits = int(np.iinfo(pixels.dtype).bits) if np.issubdtype(pixels.dtype, np.integer) else 32
    return Image(
        path=path,
        rows=pixels.shape[0],
        cols=pixels.shape[1],
        n_frames=1,
        source=FrameSource(read=lambda index: pixels, attributes=lambda index: None),
        laterality=laterality,
        laterality_source=source_label,
        view=view,
        photometric="MONOCHROME2",
        modality="",
        sop_class="plain image",
        transfer_syntax=path.suffix.lstrip(".").upper() or "image",
        bits_stored=bits,
        presets=[VoiPreset("Full range", "range")],
        header={"Format": path.suffix.lstrip(".").upper(), "Rows": str(pixels.shape[0]),
                "Columns": str(pixels.shape[1])},
        identity={"PatientID": "", "StudyInstanceUID": "", "SeriesInstanceUID": ""},
        cache_frames=1,
    )
