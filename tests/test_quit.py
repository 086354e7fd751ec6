"""Quitting the window: many times, with jobs in flight, after a session's worth of signals, the
process ends with status 0 (PySide6 6.12's Signal.emit drained True's reference count until the
interpreter aborted with "bool_dealloc", mostly at quit: app/qt_guard.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

pytest.importorskip("PySide6")

QUIT_MANY_TIMES = textwrap.dedent("""
    import sys
    from PySide6 import QtWidgets
    from app.gui import build_window, demo_study_path, show_first_overlay

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    for round_ in range(ROUNDS):
        window, workbench = build_window()
        window.resize(1280, 720)
        window.show()
        workbench.studies.open(demo_study_path())
        show_first_overlay(workbench)  # the maps of four views: jobs in flight
        in_flight = len(workbench.jobs.running())
        toggle = window.method_actions[0]
        for _ in range(TOGGLES):  # a session's clicks: every toggle emits from Python
            toggle.trigger()
        window.actions["quit"].trigger()  # File > Quit (Ctrl+Q) with the jobs still running
        assert not window.isVisible()
        assert workbench.jobs.pool.activeThreadCount() == 0, "the workers stopped before the window went"
        app.processEvents()
        window.deleteLater()
        app.processEvents()
        print("round", round_, "jobs in flight at quit", in_flight, flush=True)
    print("done", flush=True)
""")


def test_quitting_many_times_with_jobs_in_flight_ends_cleanly(tmp_path):

    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen",
               MAMMOLENS_SETTINGS=str(tmp_path / "settings.ini"))
    script = QUIT_MANY_TIMES.replace("ROUNDS", "8").replace("TOGGLES", "400")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert "Fatal Python error" not in done.stderr, done.stderr[-800:]
    assert done.returncode == 0, (done.returncode, done.stderr[-800:])  # -6: SIGABRT
    rounds = [line for line in done.stdout.splitlines() if line.startswith("round")]
    assert len(rounds) == 8 and done.stdout.rstrip().endswith("done")
    assert any(int(line.rsplit(" ", 1)[1]) > 0 for line in rounds), "some quits came with jobs still running"


def test_signals_and_void_calls_leave_true_and_none_alive():
    """After the window is built, emits and void calls (far more than True and None have
    references without the guard) leave the interpreter alive."""
    script = textwrap.dedent("""
        import sys
        from PySide6 import QtCore, QtWidgets
        from app.gui import build_window
        app = QtWidgets.QApplication([])
        window, workbench = build_window()
        class Probe(QtCore.QObject):
            fired = QtCore.Signal(int)
        probe = Probe()
        probe.fired.connect(lambda value: None)
        for _ in range(200000):  # far more than the references True has without the guard
            probe.fired.emit(1)
            probe.setObjectName("probe")  # a void method: PySide6 6.12.0 returned None without a reference
        print("alive", flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "alive", (done.returncode, done.stderr[-500:])
