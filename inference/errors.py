"""Typed errors for everything a user can hand mammolens that it cannot use.

Each error's message is one sentence a researcher can act on; it names the file by its base name
only (paths can carry patient names) and never prints header values.
"""
from __future__ import annotations

from pathlib import Path


class MammolensError(Exception):
    """Base of every error mammolens reports to the user in one sentence."""


class LoadError(MammolensError):
    """An input file or folder that cannot be opened as an image.

    ``str()`` is ``"<label>: <reason>"``; the label is the base name the user gave, or, for a file
    found inside a folder (whose name may carry a patient's name), ``"file 3 of 12 (key 1a2b3c4d)"``
    after :meth:`pseudonymise`. :meth:`identified` gives the base name when the user asks for it.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        self.label = self.path.name
        super().__init__(reason)

    def __str__(self) -> str:
        return f"{self.label}: {self.reason}"

    def pseudonymise(self, position: int, total: int) -> "LoadError":
        """Refer to the file by its position in the folder and a key from its content, not its name."""
        self.label = f"file {position} of {total} (key {file_key(self.path)})"
        return self

    def identified(self) -> str:
        """The sentence with the file's base name (only when the user asked for identifiers)."""
        return f"{self.path.name}: {self.reason}"


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


def file_key(path: str | Path) -> str:
    """A pseudonymous key for a file: 8 hex digits of the sha256 of its size and first 64 KiB (not of
    its name, which can be guessed back), or of nothing when it cannot be read."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            digest.update(str(Path(path).stat().st_size).encode())
            digest.update(handle.read(1 << 16))
    except OSError:
        digest.update(b"unreadable")
    return digest.hexdigest()[:8]
