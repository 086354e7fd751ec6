"""The Qt job runner: long work on a thread pool, progress and results back on the UI thread.

Work is a plain function ``work(job) -> value`` that runs on a worker thread. It reports with
``job.report(done, total, message)``, hands intermediate values over with ``job.deliver(value)``
(a whole DBT volume fills in batch by batch) and stops between steps when ``job.token`` (an
:class:`inference.jobs.CancelToken`) is cancelled, by raising :class:`inference.jobs.Cancelled`.
Engines never see Qt: they get ``job.report`` as their ``progress`` callable and ``job.token`` as
their ``cancel``.

The worker emits signals of one bridge object that lives on the UI thread, connected with
explicit queued connections, so every callback (``on_result``, ``on_partial``, ``on_error``,
``on_cancel``) runs on the UI thread and may touch widgets. Progress is throttled to 20 updates a
second so a fast loop cannot flood the UI thread's event queue.
"""
from __future__ import annotations

import time
import traceback
from typing import Any, Callable, Hashable, NamedTuple

from PySide6 import QtCore

from inference.errors import MammolensError
from inference.jobs import Cancelled, CancelToken

_PROGRESS_INTERVAL_S = 0.05


class JobKey(NamedTuple):
    """What a job computes, to find it again (a map job's key is its :class:`app.session.ResultKey`)."""

    kind: str  # "thumbnails", "read ahead", "volume", "inpaint", "export", ...
    subject: Hashable = None  # the image (its id), folder or file stem it is about
    detail: Hashable = None  # the bundle, shape id, ...


class Job:
    """One submitted piece of work; ``key`` says what it computes (to find it again)."""

    def __init__(self, runner: "JobRunner", title: str, work: Callable[["Job"], Any], key: Any = None,
                 quiet: bool = False):
        self.title = title
        self.key = key
        self.quiet = quiet  # housekeeping (thumbnails, read-ahead): not shown in the status bar
        self.work = work
        self.token = CancelToken()
        self.done = False
        self.outcome = ""  # "succeeded", "failed", "cancelled" once done
        self.progress_state: tuple[int, int, str] = (0, 0, title)
        self.on_result: Callable[[Any], None] | None = None
        self.on_partial: Callable[[Any], None] | None = None
        self.on_error: Callable[[str, str], None] | None = None
        self.on_cancel: Callable[[], None] | None = None
        self._bridge = runner._bridge
        self._last_report = 0.0

    # --- called on the worker thread
    def report(self, done: int, total: int, message: str = "") -> None:
        now = time.monotonic()
        if done >= total or now - self._last_report >= _PROGRESS_INTERVAL_S:
            self._last_report = now
            self._bridge.progressed.emit(self, int(done), int(total), message or self.title)

    def deliver(self, value: Any) -> None:
        self._bridge.delivered.emit(self, value)

    # --- called on the UI thread
    def cancel(self) -> None:
        self.token.cancel()

    @property
    def is_cancelled(self) -> bool:
        return self.token.cancelled

    def __repr__(self) -> str:
        return f"Job({self.title!r}, done={self.done}, outcome={self.outcome!r})"


class _Bridge(QtCore.QObject):
    progressed = QtCore.Signal(object, int, int, str)  # job, done, total, message
    delivered = QtCore.Signal(object, object)  # job, value
    ended = QtCore.Signal(object, str, object, str)  # job, outcome, value or message, details


class _Runnable(QtCore.QRunnable):
    def __init__(self, job: Job):
        super().__init__()
        self.job = job
        self.setAutoDelete(True)

    def run(self) -> None:
        job, ended = self.job, self.job._bridge.ended
        try:
            job.token.raise_if_cancelled()  # cancelled while it waited in the queue
            value = job.work(job)
        except Cancelled:
            ended.emit(job, "cancelled", None, "")
        except (MammolensError, ValueError, OSError, RuntimeError) as exc:
            # what mammolens and its engines raise carries one readable sentence
            ended.emit(job, "failed", f"{job.title}: {exc}", traceback.format_exc())
        except Exception as exc:  # noqa: BLE001 (a worker must never take the window down)
            ended.emit(job, "failed", f"{job.title} failed unexpectedly ({type(exc).__name__}: {exc}).",
                       traceback.format_exc())
        else:
            ended.emit(job, "succeeded", value, "")


class JobRunner(QtCore.QObject):
    """Submits jobs to a thread pool, keeps them until they end, calls back on the UI thread."""

    changed = QtCore.Signal()  # a job started, progressed or ended (for the status bar)

    def __init__(self, threads: int = 2, parent=None):
        super().__init__(parent)
        self.pool = QtCore.QThreadPool(self)
        self.pool.setMaxThreadCount(max(1, threads))
        self.jobs: list[Job] = []
        self._bridge = _Bridge(self)
        queued = QtCore.Qt.ConnectionType.QueuedConnection
        self._bridge.progressed.connect(self._on_progress, queued)
        self._bridge.delivered.connect(self._on_delivered, queued)
        self._bridge.ended.connect(self._on_ended, queued)

    def submit(self, title: str, work: Callable[[Job], Any], *, key: Any = None,
               on_result: Callable[[Any], None] | None = None, on_partial: Callable[[Any], None] | None = None,
               on_error: Callable[[str, str], None] | None = None, on_cancel: Callable[[], None] | None = None,
               quiet: bool = False, priority: int = 0) -> Job:
        job = Job(self, title, work, key, quiet)
        job.on_result, job.on_partial, job.on_error, job.on_cancel = on_result, on_partial, on_error, on_cancel
        self.jobs.append(job)
        self.pool.start(_Runnable(job), priority)
        self.changed.emit()
        return job

    @QtCore.Slot(object, int, int, str)
    def _on_progress(self, job: Job, done: int, total: int, message: str) -> None:
        job.progress_state = (done, total, message)
        self.changed.emit()

    @QtCore.Slot(object, object)
    def _on_delivered(self, job: Job, value: Any) -> None:
        if job.on_partial is not None and not job.is_cancelled:
            job.on_partial(value)

    @QtCore.Slot(object, str, object, str)
    def _on_ended(self, job: Job, outcome: str, value: Any, details: str) -> None:
        job.done, job.outcome = True, outcome
        if job in self.jobs:
            self.jobs.remove(job)
        try:
            if outcome == "succeeded" and job.on_result is not None:
                job.on_result(value)
            elif outcome == "failed" and job.on_error is not None:
                job.on_error(value, details)
            elif outcome == "cancelled" and job.on_cancel is not None:
                job.on_cancel()
        finally:
            self.changed.emit()

    def running(self, key: Any = None) -> list[Job]:
        return [j for j in self.jobs if not j.done and (key is None or j.key == key)]

    def cancel_all(self) -> None:
        for job in self.running():
            job.cancel()

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until the pool is idle (shutdown, tests); the end callbacks still need the event
        loop (``QApplication.processEvents``) to run."""
        return self.pool.waitForDone(timeout_ms)
