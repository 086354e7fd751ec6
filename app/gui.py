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


#: Qt platforms that need no display server (QT_QPA_PLATFORM)
HEADLESS_PLATFORMS = ("offscreen", "minimal", "minimalegl", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")

#: What Qt's xcb platform plugin (libqxcb.so and libQt6XcbQpa) links against beyond libX11 / libxcb
#: themselves, with the Debian / Ubuntu package of each (from `ldd` on the plugin of PySide6 6.x).
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0", "libxcb-util.so.1": "libxcb-util1",
    "libxcb-shape.so.0": "libxcb-shape0", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0", "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0", "libxcb-render.so.0": "libxcb-render0",
    "libxcb-xkb.so.1": "libxcb-xkb1", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0", "libX11-xcb.so.1": "libx11-xcb1", "libxcb.so.1": "libxcb1",
}


def missing_libraries(libraries=XCB_LIBRARIES) -> list[str]:
    """The shared libraries of ``libraries`` (soname -> package) the dynamic loader cannot find."""
    import ctypes

    missing = []
    for soname in libraries:
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(soname)
    return missing


def window_system_problem(environ=None, libraries=XCB_LIBRARIES) -> str | None:
    """Why Qt could not open a window here, in one sentence, or None; asked before Qt starts, as
    Qt itself aborts the process (SIGABRT) when it finds no display or its xcb plugin cannot load."""
    environ = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return None
    platform = environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip().lower()
    if platform in HEADLESS_PLATFORMS:
        return None
    if platform.startswith("wayland"):
        if environ.get("WAYLAND_DISPLAY"):
            return None
        return ("there is no display to open the window on (QT_QPA_PLATFORM asks for Wayland but WAYLAND_DISPLAY "
                "is not set); `mammolens demo` renders offscreen without one.")
    if not environ.get("DISPLAY"):
        if environ.get("WAYLAND_DISPLAY") and not platform:
            return None  # Qt takes the Wayland session
        return ("there is no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set): run it on "
                "a desktop, over `ssh -X` or under `xvfb-run -a`; `mammolens demo` renders offscreen without one.")
    missing = missing_libraries(libraries)
    if missing:
        packages = " ".join(libraries[m] for m in missing)
        return (f"the window needs system libraries that are missing here ({', '.join(missing)}); on Debian / Ubuntu: "
                f"sudo apt-get install {packages}.")
    return None


def check_window_system() -> None:
    problem = window_system_problem()
    if problem is not None:
        raise MammolensError(problem)


def _application(offscreen: bool):
    if offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6 import QtWidgets

    from app.qt_guard import install

    install()  # before the first signal: PySide6 6.12's emit drains True's reference count

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("mammolens")
    app.setOrganizationName("mammolens")
    return app


def build_window(models_dirs=(), settings=None):
    """The main window and its workbench (a fresh session and the presenters); ``models_dirs``:
    extra folders of model bundles, searched before $MAMMOLENS_MODELS, the user's and the bundled ones."""
    from app.heatmap import COLORMAPS
    from app.qt_guard import install
    from app.session import Session
    from app.workbench import Workbench
    from viewer.main_window import MainWindow

    install()

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
    check_window_system()
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
    workbench.window.scope.setCurrentIndex(1)  # the combo says what is shown: "all views"
    overlays.toggle_method(bundle, True, all_views=True)
    return bundle


DEMO_OUT = Path("mammolens-demo")  # where `mammolens demo` puts its screenshots without --out


def run_demo(screenshot: Path | None = None, offscreen: bool = False, out: Path | None = None) -> int:
    """The demo study in the window, or (no display, or ``offscreen``) rendered to three PNGs in
    ``out`` (default ./mammolens-demo/: demo.png, demo-overlay.png, demo-dbt.png); ``screenshot``
    names the first file instead (the others beside it)."""
    why = "--offscreen" if offscreen else "no display here"
    if not offscreen and has_display():
        problem = window_system_problem()
        if problem is not None:
            print(f"mammolens: {problem[0].upper()}{problem[1:-1]}; rendering the demo offscreen instead.",
                  file=sys.stderr)
            offscreen, why = True, "the window's system libraries are missing"
    offscreen = offscreen or not has_display()
    app = _application(offscreen)
    window, workbench = build_window()
    if not offscreen:
        _install_error_hook(window)
        window.show()
        workbench.studies.open(demo_study_path())
        show_first_overlay(workbench)
        return app.exec()
    screenshot = (screenshot or (out or DEMO_OUT) / "demo.png").resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    shots = render_demo(window, workbench, screenshot)
    print(workbench.session.studies.describe())
    if workbench.overlays.method_bundles:
        bundle = workbench.overlays.method_bundles[0]
        print(f"overlay: {bundle.name} {bundle.version}" + (f"; model card: {bundle.card_line}" if bundle.card_line else ""))
    for shot in shots:
        print(f"screenshot: {shot}")
    print(f"Rendered offscreen ({why}). On a desktop, "
          "`make demo` (or `mammolens demo`) opens the window itself; `mammolens view PATH` opens your own studies.")
    workbench.shutdown()
    window.close()
    return 0
