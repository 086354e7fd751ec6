"""The job runner without a window: results, partial deliveries, progress, errors and
cancellation all come back on the UI thread."""
from __future__ import annotations

import threading

from app.jobs_qt import JobKey, JobRunner
from inference.errors import MammolensError


def test_results_partials_and_progress_arrive_on_the_ui_thread(qtbot):
    runner = JobRunner(threads=2)
    ui = threading.get_ident()
    partials, results, threads = [], [], []

    def work(job):
        for i in range(3):
            job.deliver(i)
            job.report(i + 1, 3, "step")
        return "done"

    def on_partial(value):
        threads.append(threading.get_ident())
        partials.append(value)

    job = runner.submit("three steps", work, key=JobKey("test", 1), on_partial=on_partial,
                        on_result=lambda v: (threads.append(threading.get_ident()), results.append(v)))
    assert runner.running(JobKey("test", 1)) == [job]
    qtbot.waitUntil(lambda: job.done, timeout=5000)
    assert partials == [0, 1, 2] and results == ["done"] and set(threads) == {ui}
    assert job.outcome == "succeeded" and job.progress_state == (3, 3, "step") and not runner.running()


def test_a_mammolens_error_is_its_sentence_and_a_cancel_stops_between_steps(qtbot):
    runner = JobRunner(threads=1)
    errors, cancelled = [], []

    def bad(job):
        raise MammolensError("the model bundle is broken.")

    failing = runner.submit("bad", bad, on_error=lambda message, details: errors.append(message))
    qtbot.waitUntil(lambda: failing.done, timeout=5000)
    assert errors == ["bad: the model bundle is broken."] and failing.outcome == "failed"

    started = threading.Event()

    def slow(job):
        started.set()
        while True:
            job.token.raise_if_cancelled()
            job.token.wait(0.01)

    job = runner.submit("slow", slow, on_cancel=lambda: cancelled.append(True))
    assert started.wait(5)
    job.cancel()
    qtbot.waitUntil(lambda: job.done, timeout=5000)
    assert job.outcome == "cancelled" and cancelled == [True]
