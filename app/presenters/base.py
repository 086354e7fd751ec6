"""What every presenter shares, and the screen cells <-> canvases mapping."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

from PySide6 import QtCore

from app.session import Session
from inference.studies.image import Image

SINGLE = "single"  # the cell of the one-view canvas; the hanging's cells are ("R", "CC"), ...


@dataclass
class Context:
    session: Session
    window: object  # viewer.main_window.MainWindow
    jobs: object  # app.jobs_qt.JobRunner
    engines: object  # inference.methods.EngineCache
    settings: QtCore.QSettings


class Presenter:
    def __init__(self, context: Context):
        self.context = context
        self.session = context.session
        self.window = context.window
        self.jobs = context.jobs
        self.settings = context.settings

    # ------------------------------------------------------------------ cells and canvases
    def canvas(self, cell: Hashable):
        return self.window.single if cell == SINGLE else self.window.cells[cell]

    def cell_of(self, canvas) -> Hashable:
        if canvas is self.window.single:
            return SINGLE
        return next(key for key, c in self.window.cells.items() if c is canvas)

    def image_on(self, canvas) -> Image | None:
        return self.session.cells.get(self.cell_of(canvas))

    def placed(self) -> list[tuple[object, Image]]:
        """(canvas, image) of every cell holding an image."""
        return [(self.canvas(cell), im) for cell, im in self.session.cells.items() if im is not None]

    def canvases_showing(self, image: Image) -> list:
        return [self.canvas(cell) for cell in self.session.cells_showing(image)]

    def failed(self, message: str, details: str = "") -> None:
        """A job's error: one sentence in the window, the traceback behind "details"."""
        self.window.show_error(message, details)

    def status(self, text: str, ms: int = 5000) -> None:
        self.window.statusBar().showMessage(text, ms)


def readout(session: Session, image: Image) -> str:
    """The line under a view: size and spacing, or for DBT the slice, its height and the slab."""
    size = f"{image.cols} x {image.rows}"
    if image.pixel_spacing:
        size += f", {image.pixel_spacing[1]:.3g} mm/px"
    if not image.is_volume:
        return size
    state = session.state(image)
    text = f"slice {state.frame + 1}/{image.n_frames}"
    if image.slice_positions:
        text += f", z = {image.slice_positions[state.frame]:.1f} mm"
    if state.slab > 1:
        lo, hi = session.slab_range(image)
        text += f", MIP slab {lo + 1}-{hi + 1}"
    return text
