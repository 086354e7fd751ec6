"""The viewer's composition root: a Qt-free session, the job runner, the engine cache, and one
presenter per concern binding them to the main window's widgets.

Settings (recent files, overlay scope, cine speed, window layout, export folder, colour map)
persist with QSettings in an ini file; ``$MAMMOLENS_SETTINGS`` names another file (tests point it
at a temp folder).
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6 import QtCore

from app.presenters.base import Context
from app.presenters.display import DisplayPresenter
from app.presenters.info import InfoPresenter
from app.presenters.navigation import NavigationPresenter
from app.presenters.overlays import OverlayPresenter
from app.presenters.pacs import PacsPresenter
from app.presenters.roi import RoiPresenter
from app.presenters.studies import StudyPresenter
from app.presenters.synthesis import SynthesisPresenter
from app.session import Session

SETTINGS_ENV = "MAMMOLENS_SETTINGS"


def app_settings() -> QtCore.QSettings:
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QtCore.QSettings(path, QtCore.QSettings.Format.IniFormat)
    return QtCore.QSettings(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope,
                            "mammolens", "mammolens")


class Workbench(QtCore.QObject):
    def __init__(self, session: Session, window, models_dirs=(), settings: QtCore.QSettings | None = None):
        super().__init__(window)
        from app.gui import demo_study_path
        from app.jobs_qt import JobRunner
        from inference.methods import EngineCache

        self.session = session
        self.window = window
        self.settings = settings or app_settings()
        self.models_dirs = [Path(d) for d in models_dirs]
        self.jobs = JobRunner(threads=2, parent=self)
        context = Context(session, window, self.jobs, EngineCache(), self.settings)
        self.studies = StudyPresenter(context, demo_study_path)
        self.display = DisplayPresenter(context)
        self.navigation = NavigationPresenter(context)
        self.info = InfoPresenter(context)
        self.overlays = OverlayPresenter(context)
        self.roi = RoiPresenter(context)
        self.synthesis = SynthesisPresenter(context)
        self.pacs = PacsPresenter(context, self.studies.open)
        self.jobs.changed.connect(self._on_jobs_changed)
        window.actions["cancel_job"].triggered.connect(self.cancel_job)
        window.scope.currentIndexChanged.connect(lambda i: self.settings.setValue("overlay/scope", i))
        window.scope.setCurrentIndex(int(self.settings.value("overlay/scope", 0)))
        if self.settings.value("window/geometry") is not None:
            window.restoreGeometry(self.settings.value("window/geometry"))
            window.docks_arranged = bool(window.restoreState(self.settings.value("window/state")))
        window.about_requested.connect(lambda: window.show_about(self.about_rows()))
        window.installEventFilter(self)
        self.reload_bundles()

    def about_rows(self) -> list[tuple[str, str]]:
        """Version, the bundles found (and those refused), the ONNX Runtime providers installed and,
        apart from them, where models actually run here, and where settings and models live."""
        from importlib.metadata import PackageNotFoundError, version

        from inference.bundle import model_search_dirs
        from inference.runtime import available_providers

        try:
            release = version("mammolens")
        except PackageNotFoundError:
            release = "unknown (not installed)"
        bundles = ", ".join(f"{b.name} {b.version} ({b.method})" for b in self.session.bundles) or "none"
        if self.session.bundle_errors:
            bundles += f"; {len(self.session.bundle_errors)} refused (see the Methods menu)"
        return [("Version", release), ("Model bundles", bundles),
                ("ONNX Runtime providers installed", ", ".join(available_providers())),
                ("Models run here on", self.runs_here()),
                ("Settings file", self.settings.fileName()),
                ("Model folders", "\n".join(f"{path} ({why})" for path, why in model_search_dirs(self.models_dirs)))]

    def runs_here(self) -> str:
        """Where a model actually runs on this machine: ONNX Runtime asked for its best provider on
        the smallest network of the bundles found (an installed CUDA provider without a GPU or its
        libraries falls back to the CPU, and that reason is shown), not the installed list."""
        from inference.runtime import DEVICE_LABELS, create_session

        networks = [n.path for b in self.session.bundles for n in b.networks.values() if Path(n.path).is_file()]
        if not networks:
            return "not known until a model bundle is found"
        try:
            session = create_session(min(networks, key=lambda p: Path(p).stat().st_size), device="auto", threads=1)
        except Exception as exc:  # noqa: BLE001 (About must open whatever the runtime says)
            return f"not known: ONNX Runtime could not open a model ({exc})"
        text = f"{DEVICE_LABELS.get(session.provider, session.provider)} ({session.provider})"
        return text + (f"; {session.fallback_reason}" if session.fallback_reason else "")

    def reload_bundles(self) -> None:
        self.session.load_bundles(self.models_dirs)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt naming)
        if obj is self.window and event.type() == QtCore.QEvent.Type.Close:
            self.shutdown()
        return False

    def shutdown(self) -> None:
        self.navigation.cine.stop()
        self.jobs.cancel_all()
        self.jobs.wait(5000)
        self.settings.setValue("window/geometry", self.window.saveGeometry())
        self.settings.setValue("window/state", self.window.saveState())
        self.settings.sync()

    # ------------------------------------------------------------------ jobs in the status bar
    def cancel_job(self) -> None:
        """Cancel the job the status bar shows (the newest that is not housekeeping)."""
        running = [j for j in self.jobs.running() if not j.quiet]
        if running:
            running[-1].cancel()
            self.window.statusBar().showMessage(f"Cancelled: {running[-1].title}", 5000)

    def _on_jobs_changed(self) -> None:
        running = [j for j in self.jobs.running() if not j.quiet]
        if not running:
            self.window.set_job(None)
            return
        job = running[-1]
        done, total, _ = job.progress_state
        more = f" (+{len(running) - 1} more)" if len(running) > 1 else ""
        self.window.set_job(f"{job.title}{more}", done, total)
