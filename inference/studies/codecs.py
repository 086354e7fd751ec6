"""A pydicom decoder plugin through ``imagecodecs`` (libjpeg-turbo 3, OpenJPEG).

* JPEG Baseline / Extended (processes 1, 2 and 4): ``jpeg8_decode`` decodes 12-bit lossy JPEG,
  which pylibjpeg-libjpeg refuses ("misplaced marker") and pydicom's GDCM and Pillow plugins do
  not support. Added after pydicom's own plugins: it is the fallback.
* JPEG 2000 (lossless and lossy): ``jpeg2k_decode`` is pixel for pixel the same as the
  pylibjpeg-openjpeg plugin and faster on full-field mammograms; it is tried first, and the
  other plugins stay behind it.

:func:`register` is idempotent and does nothing when imagecodecs is not installed.
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
