"""A pydicom decoder plugin through ``imagecodecs`` (libjpeg-turbo 3, OpenJPEG).

* JPEG Baseline / Extended (processes 1, 2 and 4): ``jpeg8_decode`` decodes 12-bit lossy JPEG,
  which pylibjpeg-libjpeg refuses ("misplaced marker") and pydicom's GDCM and Pillow plugins do
  not support. Added after pydicom's own plugins: it is the fallback.
* JPEG 2000 (lossless and lossy): ``jpeg2k_decode`` is pixel for pixel the same as the
  pylibjpeg-openjpeg plugin and faster on full-field mammograms; it is tried first, and the
  other plugins stay behind it.

:func:`register` is idempotent and does nothing when imagecodecs is not installed.

:func:`reduced_jpeg2000` decodes a JPEG 2000 frame at a lower resolution level (through Pillow's
OpenJPEG, ``reduce``): a few hundred pixels a side cost a fraction of the full decode, so the
viewer shows them first and decodes the full frame in the background. Nothing else uses it: the
methods always get the full resolution.
"""
from __future__ import annotations

import os

import numpy as np
from pydicom import uid
from pydicom.pixels.common import PhotometricInterpretation as PI

LABEL = "imagecodecs"

_JPEG = (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit)
_J2K = (uid.JPEG2000Lossless, uid.JPEG2000)

DECODER_DEPENDENCIES = {syntax: ("imagecodecs>=2024.1",) for syntax in _JPEG + _J2K}


def is_available(transfer_syntax: str) -> bool:
    try:
        import imagecodecs
    except ImportError:
        return False
    if transfer_syntax in _JPEG:
        return bool(imagecodecs.JPEG8.available)
    if transfer_syntax in _J2K:
        return bool(imagecodecs.JPEG2K.available)
    return False


def _decode_frame(src: bytes, runner) -> bytes:
    """One frame's bytes as pydicom's runner expects them (colour interleaved, native byte order)."""
    import imagecodecs

    syntax = runner.transfer_syntax
    samples = runner.samples_per_pixel
    if syntax in _JPEG:
        arr = imagecodecs.jpeg8_decode(src)
        if samples == 3 and runner.photometric_interpretation != PI.RGB:
            # libjpeg-turbo converts YCbCr to RGB unless told otherwise
            runner.set_option("photometric_interpretation", PI.RGB)
    else:
        arr = imagecodecs.jpeg2k_decode(src, numthreads=os.cpu_count() or 1)
        if runner.photometric_interpretation in (PI.YBR_ICT, PI.YBR_RCT):
            runner.set_option("photometric_interpretation", PI.RGB)
    if arr.ndim == 3 and samples == 1:
        arr = arr[..., 0]
    if (arr.ndim == 3) != (samples > 1) or arr.shape[:2] != (runner.rows, runner.columns):
        raise ValueError("the decoded frame does not have the size the header declares")
    if samples > 1:
        runner.set_option("planar_configuration", 0)
    # the pixel container follows the codestream's precision, as with pylibjpeg
    runner.set_option("bits_allocated", 8 * arr.dtype.itemsize)
    if arr.dtype.itemsize > 1 and arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr).tobytes()


def register() -> bool:
    """Add the plugin to pydicom's JPEG and JPEG 2000 decoders (J2K: first). True when it is in use."""
    from pydicom.pixels.decoders import base

    if not is_available(uid.JPEG2000Lossless) and not is_available(uid.JPEGExtended12Bit):
        return False
    decoders = {uid.JPEGBaseline8Bit: base.JPEGBaseline8BitDecoder, uid.JPEGExtended12Bit: base.JPEGExtended12BitDecoder,
                uid.JPEG2000Lossless: base.JPEG2000LosslessDecoder, uid.JPEG2000: base.JPEG2000Decoder}
    for syntax, decoder in decoders.items():
        if LABEL in decoder._available or LABEL in decoder._unavailable:
            continue
        decoder.add_plugin(LABEL, (__name__, "_decode_frame"))
        if syntax in _J2K and LABEL in decoder._available:
            # pydicom tries plugins in insertion order: the faster one first, the others as fallbacks
            decoder._available = {LABEL: decoder._available[LABEL],
                                  **{k: v for k, v in decoder._available.items() if k != LABEL}}
    return True


def _codestream_precision(src: bytes) -> tuple[int, bool] | None:
    """(bits, signed) of the first component, from the codestream's SIZ segment (J2K or JP2)."""
    at = src.find(b"\xff\x4f\xff\x51")  # SOC then SIZ
    if at < 0 or len(src) < at + 43:
        return None
    ssiz = src[at + 42]  # SOC 2, SIZ marker 2, Lsiz 2, Rsiz 2, eight 32-bit sizes, Csiz 2
    return (ssiz & 0x7F) + 1, bool(ssiz & 0x80)


def reduced_jpeg2000(src: bytes, max_side: int = 1024) -> tuple[np.ndarray, int] | None:
    """``(stored values, factor)``: the frame at the first resolution level whose longer side is at
    most ``max_side``, each pixel standing for ``factor x factor`` of the full frame; None when the
    stream is not one this can reduce (colour, signed, more than 16 bits, too few levels, no Pillow
    OpenJPEG)."""
    import io

    precision = _codestream_precision(bytes(src[:4096]))
    if precision is None or precision[1] or precision[0] > 16:
        return None
    try:
        from PIL import Image as PILImage

        im = PILImage.open(io.BytesIO(src))
        if im.mode not in ("L", "I;16", "I;16L", "I;16B", "I"):
            return None
        reduce = 0
        while max(im.size) >> reduce > max_side:
            reduce += 1
        if reduce == 0:
            return None
        im.reduce = reduce
        im.load()
        arr = np.asarray(im)
    except Exception:  # noqa: BLE001 - a preview that cannot be made: the full decode follows anyway
        return None
    if arr.ndim != 2:
        return None
    bits = precision[0]
    if arr.dtype.itemsize == 2 and bits < 16:  # Pillow scales up to 16 bits
        arr = arr >> (16 - bits)
    dtype = np.uint8 if bits <= 8 else np.uint16
    return np.ascontiguousarray(arr, dtype=dtype), 1 << reduce
