"""Typed errors for everything a user can hand mammolens that it cannot use.

Each error's message is one sentence a researcher can act on; it names the file by its base name
only (paths can carry patient names) and never prints header values.
"""
from __future__ import annotations

from pathlib import Path


class MammolensError(Exception):
    """Base of every error mammolens reports to the user in one sentence."""


class LoadError(MammolensError):
    """An input file or folder that cannot be opened as an image."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


class NotDicomError(LoadError):
    pass


class NoPixelDataError(LoadError):
    pass


class TruncatedFileError(LoadError):
    pass


class UnsupportedTransferSyntaxError(LoadError):
    pass


class MissingCodecError(LoadError):
    """A compressed transfer syntax whose decoder plugin is not installed; names the package."""

    def __init__(self, path: str | Path, reason: str, package: str):
        self.package = package
        super().__init__(path, reason)


class UnsupportedImageError(LoadError):
    """A DICOM object that carries pixels mammolens does not show (colour, waveform, ...)."""


class EmptyFolderError(LoadError):
    pass
