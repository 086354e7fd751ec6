"""GUI start: the QApplication, the main window with its controller, the offscreen demo.

PySide6 is imported only inside these functions, so the command line and the tests that only
need :func:`demo_study_path` start without Qt. The presenters are composed in :mod:`app.workbench`.
"""
from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from inference.errors import MammolensError


def demo_study_path() -> Path:
    from importlib.resources import files

    return Path(str(files("resources") / "demo"))


def has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _application(offscreen: bool):
    if offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("mammolens")
    app.setOrganizationName("mammolens")
    return app


def build_window(models_dirs=(), settings=None):
    """The main window and its workbench (a fresh session and the presenters); ``models_dirs``:
    extra folders of model bundles, searched before $MAMMOLENS_MODELS, the user's and the bundled ones."""
    from app.heatmap import COLORMAPS
    from app.session import Session
    from app.workbench import Workbench
    from viewer.main_window import MainWindow

    window = MainWindow(colormaps=COLORMAPS)
    workbench = Workbench(Session(), window, models_dirs=models_dirs, settings=settings)
    return window, workbench


def _install_error_hook(window) -> None:
    """Unexpected errors in a slot become a message with details in the window, not a crash."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            return previous(kind, value, tb)
        details = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(details)
        try:
            window.show_error(f"Something went wrong: {kind.__name__}: {value}", details)
        except Exception:  # noqa: BLE001 (the window itself may be gone)
            previous(kind, value, tb)

    sys.excepthook = hook


def run_viewer(path: Path | None = None, models_dirs=()) -> int:
    app = _application(offscreen=False)
    window, workbench = build_window(models_dirs)
    _install_error_hook(window)
    window.show()
    if path is not None:
        workbench.studies.open(path)
    return app.exec()


def save_widget_png(widget, path: Path) -> Path:
    """Grab a widget as PNG, written atomically."""
    from PySide6 import QtCore

    from inference.files import atomic_write_bytes

    pixmap = widget.grab()
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    pixmap.save(buffer, "PNG")
    atomic_write_bytes(path, bytes(buffer.data()))
    return path


def wait_until(ready, timeout: float = 120.0) -> bool:
    """Process Qt events until ``ready()`` holds (offscreen renders wait for the real state)."""
    import time

    from PySide6 import QtWidgets

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        QtWidgets.QApplication.processEvents()
        if ready():
            QtWidgets.QApplication.processEvents()
            return True
        time.sleep(0.02)
    return False


def render_demo(window, workbench, screenshot: Path) -> list[Path]:
    """Open the demo study, hang it, and save the hanging (once its thumbnails are in), the
    hanging with the first bundle's maps, and the DBT volume as PNGs."""
    from PySide6 import QtWidgets

    studies = workbench.studies.open(demo_study_path())
    if studies is None:
        raise MammolensError("the bundled demo study could not be opened")
    window.resize(1400, 900)
    window.show()
    wait_until(lambda: all(window.browser.has_thumbnail(im) for im in studies.images()), 60.0)
    shots = [save_widget_png(window, screenshot)]
    bundle = show_first_overlay(workbench)
    session = workbench.session
    if bundle is not None and wait_until(lambda: all(session.result(im, session.state(im).frame, bundle) is not None
                                                     for im in session.grid_images())):
        shots.append(save_widget_png(window, screenshot.with_name(screenshot.stem + "-overlay.png")))
    volumes = [im for st in studies.studies() for im in st.volumes()]
    if volumes:
        session.show_single(volumes[0])
        QtWidgets.QApplication.processEvents()
        shots.append(save_widget_png(window, screenshot.with_name(screenshot.stem + "-dbt.png")))
        session.toggle_single()
        QtWidgets.QApplication.processEvents()
    return shots


def show_first_overlay(workbench):
    """Toggle the first map bundle (the shipped HealthyGAN) on every view of the hanging; returns it."""
    overlays = workbench.overlays
    if not overlays.method_bundles or workbench.session.current is None:
        return None
    bundle = overlays.method_bundles[0]
    overlays.toggle_method(bundle, True, all_views=True)
    return bundle


def run_demo(screenshot: Path | None = None, offscreen: bool = False) -> int:
    offscreen = offscreen or not has_display()
    app = _application(offscreen)
    window, workbench = build_window()
    if not offscreen:
        _install_error_hook(window)
        window.show()
        workbench.studies.open(demo_study_path())
        show_first_overlay(workbench)
        return app.exec()
    screenshot = (screenshot or Path("mammolens-demo.png")).resolve()
    shots = render_demo(window, workbench, screenshot)
    print(workbench.session.studies.describe())
    if workbench.overlays.method_bundles:
        bundle = workbench.overlays.method_bundles[0]
        print(f"overlay: {bundle.name} {bundle.version}" + (f"; model card: {bundle.card_line}" if bundle.card_line else ""))
    for shot in shots:
        print(f"screenshot: {shot}")
    print("No display here, so the viewer rendered offscreen. On a desktop, `make demo` (or "
          "`mammolens demo`) opens the window itself; `mammolens view PATH` opens your own studies.")
    workbench.shutdown()
    window.close()
    return 0
