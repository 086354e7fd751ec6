"""The Qt-free state of one viewer window, observed by the Qt widgets (napari's layers/_qt split).

A :class:`Session` holds the opened study set, the study on screen, and per image the display
state the user changed (frame, VOI preset, inversion). Widgets subscribe to its events and never
load files themselves; the session loads through :mod:`app.study`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from app.image import Image, VoiPreset
from app.study import Study, StudySet, open_path


class Event:
    """A minimal observer hook: ``connect(callback)``, ``emit(*args)``."""

    def __init__(self):
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> None:
        self._callbacks.append(callback)

    def emit(self, *args) -> None:
        for callback in list(self._callbacks):
            callback(*args)


@dataclass
class ViewState:
    frame: int = 0
    preset: VoiPreset | None = None
    invert: bool = False


@dataclass
class Session:
    studies: StudySet | None = None
    study: Study | None = None
    states: dict[int, ViewState] = field(default_factory=dict)

    def __post_init__(self):
        self.opened = Event()  # (StudySet)
        self.study_changed = Event()  # (Study)
        self.view_changed = Event()  # (Image) display state of one image changed

    def open(self, path: str | Path) -> StudySet:
        studies = open_path(path)
        self.studies = studies
        self.states.clear()
        self.opened.emit(studies)
        if studies.studies():
            self.show_study(studies.studies()[0])
        return studies

    def show_study(self, study: Study) -> None:
        self.study = study
        self.study_changed.emit(study)

    def state(self, image: Image) -> ViewState:
        return self.states.setdefault(id(image), ViewState(frame=image.n_frames // 2 if image.is_volume else 0))

    def set_frame(self, image: Image, frame: int) -> None:
        state = self.state(image)
        frame = int(np.clip(frame, 0, image.n_frames - 1))
        if frame != state.frame:
            state.frame = frame
            self.view_changed.emit(image)

    def set_preset(self, image: Image, preset: VoiPreset | None) -> None:
        self.state(image).preset = preset
        self.view_changed.emit(image)

    def displayed(self, image: Image) -> np.ndarray:
        """The frame on screen, in [0, 1], with the user's preset and inversion."""
        state = self.state(image)
        out = image.display(state.frame, state.preset)
        return 1.0 - out if state.invert else out
