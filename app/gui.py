"""GUI start and the controller that keeps the viewer widgets in step with the session.

This is the only place where ``app`` meets Qt: it creates the QApplication, loads through the
Qt-free :class:`app.session.Session` and hands arrays to :mod:`viewer` widgets.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from app.errors import MammolensError
from app.image import Image
from app.session import Session
from app.study import Study, StudySet


def demo_study_path() -> Path:
    from importlib.resources import files

    return Path(str(files("resources") / "demo"))


def has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Controller:
    def __init__(self, session: Session, window):
        self.session = session
        self.window = window
        self.single_image: Image | None = None
        self._mirror: dict[int, bool] = {}
        session.opened.connect(self._on_opened)
        session.study_changed.connect(self._on_study_changed)
        session.view_changed.connect(self._refresh_image)
        window.open_requested.connect(self.open)
        window.open_demo_requested.connect(lambda: self.open(demo_study_path()))
        window.browser.image_activated.connect(self._on_activated)
        window.frame_requested.connect(self._on_frame_requested)
        for canvas in list(window.cells.values()) + [window.single]:
            canvas.double_clicked.connect(lambda c=canvas: self._toggle_single(c))

    # ------------------------------------------------------------------ loading
    def open(self, path) -> StudySet | None:
        try:
            return self.session.open(path)
        except MammolensError as exc:
            self.window.show_error(str(exc))
            return None

    def _on_opened(self, studies: StudySet) -> None:
        tree = []
        for patient in studies.patients:
            study_rows = []
            for s_index, study in enumerate(patient.studies, 1):
                series_rows = []
                for series in study.series:
                    image_rows = [(im.name + (f" (DBT, {im.n_frames} slices)" if im.is_volume else ""), im,
                                   f"{im.cols}x{im.rows}", []) for im in series.images]
                    series_rows.append((f"Series {series.number} {series.description}".strip(), None, "", image_rows))
                study_rows.append((f"Study {s_index} {study.date}".strip(), study, "", series_rows))
            tree.append((patient.key, None, "", study_rows))
        self.window.browser.populate(tree, [str(f) for f in studies.failures])
        self.window.empty_hint.setVisible(False)
        self.window.statusBar().showMessage(
            f"{len(studies.images())} image(s) in {len(studies.studies())} study(ies)"
            + (f"; {len(studies.failures)} file(s) could not be read" if studies.failures else ""))

    def _on_activated(self, payload) -> None:
        if isinstance(payload, Study):
            self.session.show_study(payload)
        elif isinstance(payload, Image):
            self.show_single(payload)

    def _on_study_changed(self, study: Study) -> None:
        hanging = study.hanging()
        if hanging:
            for key, canvas in self.window.cells.items():
                image = hanging.get(key)
                canvas.image = image  # type: ignore[attr-defined]
                self._show_on(canvas, image)
                # chest walls meet in the middle: right breasts against their cell's right edge
                canvas.align("right" if key[0] == "R" else "left")
            self.single_image = None
            self.window.show_grid()
            self.window.set_slices(0, 0, "")
        elif study.images():
            self.show_single(study.images()[0])

    # ------------------------------------------------------------------ display
    def mirror_for(self, image: Image) -> bool:
        """Mirror so that the chest wall sits at the hanging's centre line.

        Right breasts hang on the left of the screen with their chest wall on the right edge of
        their cell, left breasts the reverse; an image stored the other way round is mirrored.
        """
        key = id(image)
        if key not in self._mirror:
            from app.plain_io import infer_laterality

            wall = infer_laterality(self.session.displayed(image))  # "L": chest wall on the left
            self._mirror[key] = bool(image.laterality and wall and wall != image.laterality)
        return self._mirror[key]

    def _readout(self, image: Image) -> str:
        if not image.is_volume:
            return image.header.get("Rows", "") and f"{image.cols} x {image.rows}"
        frame = self.session.state(image).frame
        text = f"slice {frame + 1}/{image.n_frames}"
        if image.slice_positions:
            text += f", z = {image.slice_positions[frame]:.1f} mm"
        return text

    def _show_on(self, canvas, image: Image | None) -> None:
        if image is None:
            canvas.show_frame(None, "", "no image")
            return
        label = image.name + (" DBT" if image.is_volume else "")
        canvas.show_frame(self.session.displayed(image), label, self._readout(image), self.mirror_for(image))

    def _refresh_image(self, image: Image) -> None:
        for canvas in list(self.window.cells.values()):
            if getattr(canvas, "image", None) is image:
                self._show_on(canvas, image)
        if self.single_image is image:
            self._show_on(self.window.single, image)
            state = self.session.state(image)
            self.window.set_slices(image.n_frames, state.frame, self._readout(image))

    def show_single(self, image: Image) -> None:
        self.single_image = image
        self.window.single.image = image  # type: ignore[attr-defined]
        self._show_on(self.window.single, image)
        state = self.session.state(image)
        self.window.set_slices(image.n_frames, state.frame, self._readout(image))
        self.window.show_single()

    def _toggle_single(self, canvas) -> None:
        if canvas is self.window.single:
            if self.session.study is not None and self.session.study.hanging():
                self.single_image = None
                self.window.show_grid()
                self.window.set_slices(0, 0, "")
        elif getattr(canvas, "image", None) is not None:
            self.show_single(canvas.image)

    def _on_frame_requested(self, frame: int) -> None:
        if self.single_image is not None:
            self.session.set_frame(self.single_image, frame)


def _application(offscreen: bool):
    if offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("mammolens")
    app.setOrganizationName("mammolens")
    return app


def build_window():
    from viewer.main_window import MainWindow

    window = MainWindow()
    controller = Controller(Session(), window)
    return window, controller


def run_viewer(path: Path | None = None) -> int:
    app = _application(offscreen=False)
    window, controller = build_window()
    window.show()
    if path is not None:
        controller.open(path)
    return app.exec()


def save_widget_png(widget, path: Path) -> Path:
    """Grab a widget as PNG, written atomically."""
    from PySide6 import QtCore

    from inference.files import atomic_write_bytes

    pixmap = widget.grab()
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.WriteOnly)
    pixmap.save(buffer, "PNG")
    atomic_write_bytes(path, bytes(buffer.data()))
    return path


def render_demo(window, controller, screenshot: Path) -> list[Path]:
    """Open the demo study, hang it, and save the hanging and the DBT volume as PNGs."""
    from PySide6 import QtWidgets

    studies = controller.open(demo_study_path())
    if studies is None:
        raise MammolensError("the bundled demo study could not be opened")
    window.resize(1400, 900)
    window.show()
    QtWidgets.QApplication.processEvents()
    shots = [save_widget_png(window, screenshot)]
    volumes = [im for st in studies.studies() for im in st.volumes()]
    if volumes:
        controller.show_single(volumes[0])
        QtWidgets.QApplication.processEvents()
        shots.append(save_widget_png(window, screenshot.with_name(screenshot.stem + "-dbt.png")))
        controller._toggle_single(window.single)
        QtWidgets.QApplication.processEvents()
    return shots


def run_demo(screenshot: Path | None = None, offscreen: bool = False) -> int:
    offscreen = offscreen or not has_display()
    app = _application(offscreen)
    window, controller = build_window()
    if not offscreen:
        window.show()
        controller.open(demo_study_path())
        return app.exec()
    screenshot = (screenshot or Path("mammolens-demo.png")).resolve()
    shots = render_demo(window, controller, screenshot)
    print(controller.session.studies.describe())
    for shot in shots:
        print(f"screenshot: {shot}")
    print("No display here, so the viewer rendered offscreen. On a desktop, `make demo` (or "
          "`mammolens demo`) opens the window itself; `mammolens view PATH` opens your own studies.")
    window.close()
    return 0
