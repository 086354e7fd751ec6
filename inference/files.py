"""Atomic file writes: a reader never sees half a file and a crash never loses the old one.

Every export, labels file and bundle in mammolens is written through these helpers: the content
goes to a temporary file in the same folder, is flushed to disk, and then replaces the target
with ``os.replace`` (atomic on POSIX and Windows).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator

#: Suffix of every temporary file these helpers create (hidden: the name starts with a dot).
TMP_SUFFIX = ".tmp"
_STAGING, _OLD = "staging-", "old-"


def _temporary_sibling(target: Path, mode: str):
    """A new hidden file next to ``target``, created with the permissions a plain open() gives (the
    kernel applies the umask: the process umask is never read or changed, so no thread races)."""
    binary = "b" in mode
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}{TMP_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) * binary, 0o666)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(f"cannot create a temporary file next to {target.name}")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path``."""
    if not any(m in mode for m in "wx"):
        raise ValueError("atomic_open is for writing only")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary_sibling(target, mode)
    try:
        with os.fdopen(fd, mode.replace("x", "w"), **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def safe_file_name(text: str) -> str:
    """``text`` with every run of characters outside ``A-Za-z0-9._-`` made one ``-``: portable file names."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


# ---------------------------------------------------------------------------------------------
# a folder written as a set


def clean_stale(target: str | os.PathLike) -> None:
    """Remove what an interrupted write of ``target`` (a file or a set folder) left beside it: hidden
    temporary files and staging folders. A previous set moved aside and never replaced (the process
    died between the two renames of :func:`replace_folder`) is moved back first, so it is not lost."""
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        return
    prefix = f".{target.name}."
    for entry in parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        rest = entry.name[len(prefix):]
        if rest.startswith(_OLD) and entry.is_dir():
            if not target.exists():
                os.replace(entry, target)  # the good old set comes back
            else:
                shutil.rmtree(entry, ignore_errors=True)
        elif rest.startswith(_STAGING) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        elif rest.endswith(TMP_SUFFIX) and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    if target.is_dir():
        for entry in target.iterdir():  # temporaries of atomic_open inside the folder itself
            if entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX) and entry.is_file():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


def replace_folder(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished folder ``staging`` to ``target``; an old ``target`` is moved aside first and
    removed after, so at every moment there is either the old set or the new one (after a crash
    between the two renames, :func:`clean_stale` moves the old one back)."""
    staging, target = Path(staging), Path(target)
    mode = 0o777 & ~_umask_from_new_folder(target.parent)
    os.chmod(staging, mode)  # mkdtemp makes a private folder; a set folder is as a plain mkdir makes it
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{_OLD}{secrets.token_hex(4)}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask_from_new_folder(parent: Path) -> int:
    """The umask, read from the mode of a folder made for it (os.umask would change it for a moment)."""
    probe = Path(tempfile.mkdtemp(prefix=".umask-probe-", dir=parent))
    try:
        probe.rmdir()
        os.mkdir(probe, 0o777)
        return 0o777 & ~probe.stat().st_mode
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def new_staging(target: str | os.PathLike) -> Path:
    """A fresh hidden staging folder beside ``target`` (stale ones of earlier writes cleaned first)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.{_STAGING}", dir=target.parent))


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Write a set of files into the yielded hidden sibling of ``target``; when the block ends without
    an error it replaces ``target`` as a whole (see :func:`replace_folder`), otherwise it is removed.
    Stale temporaries of an earlier interrupted write are cleaned first."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = new_staging(target)
    try:
        yield staging
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
