"""Cancellation and progress for long inference work, without Qt.

The engines (sliding-window inpainting, multi-seed projection, a whole DBT volume) run for
seconds to minutes on a worker thread. They cannot import Qt, so the app's job runner hands them
a :class:`CancelToken` and a plain ``progress(done, total, message)`` callable; the engines check
the token between batches and report after each one. The token is a ``threading.Event`` so the
UI thread can cancel while a worker polls, with no lock held across the work.
"""
from __future__ import annotations

import sys
import threading
from typing import Callable, Optional

Progress = Callable[[int, int, str], None]
"""``progress(done, total, message)``: ``done`` of ``total`` units finished, a short status text."""


class Cancelled(Exception):
    """Raised inside a job when its token was cancelled; the job runner treats it as a clean stop."""

    def __init__(self, message: str = "The job was cancelled.") -> None:
        super().__init__(message)


class CancelToken:
    """A one-way switch shared by the thread that cancels and the thread that works."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` seconds pass; True when cancelled (for sleeps in loops)."""
        return self._event.wait(timeout)

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self.cancelled})"


def report(progress: Optional[Progress], done: int, total: int, message: str = "") -> None:
    """Call ``progress`` if there is one, so engines need no ``if progress:`` at every step."""
    if progress is not None:
        progress(int(done), int(total), message)


def check(cancel: Optional[CancelToken]) -> None:
    """``cancel.raise_if_cancelled()`` that tolerates None, the companion of :func:`report`."""
    if cancel is not None:
        cancel.raise_if_cancelled()


def console_progress(done: int, total: int, message: str = "") -> None:
    """A :data:`Progress` for the command line: one updating line on stderr, ``[done/total]
    message``, ended with a newline when ``done`` reaches ``total``."""
    print(f"\r[{done}/{total}] {message:<40}", end="" if done < total else "\n", file=sys.stderr, flush=True)
