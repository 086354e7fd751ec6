"""DBT navigation: the slice bar, slice keys and wheel, cine play / pause, the MIP slab, and
reading the next slices ahead in the direction of travel."""
from __future__ import annotations

from PySide6 import QtCore

from app.jobs_qt import JobKey
from app.presenters.base import Context, Presenter, readout
from inference.studies.image import Image

READ_AHEAD = 3  # DBT slices prepared ahead of the one shown


class NavigationPresenter(Presenter):
    def __init__(self, context: Context):
        super().__init__(context)
        self.cine = QtCore.QTimer(self.window)
        self.cine.timeout.connect(self._cine_step)
        self._last_frame: dict[int, int] = {}  # image id -> last frame shown (scroll direction)
        self._ahead: dict[int, list[tuple]] = {}  # image id -> what the read-ahead prepares (key, make)
        s, w = self.session, self.window
        s.current_changed.connect(lambda image: self._update_slice_bar())
        s.view_changed.connect(self._on_view_changed)
        s.opened.connect(lambda studies: self.cine.stop())
        w.frame_requested.connect(self._on_frame_requested)
        w.slice_bar.play_toggled.connect(self._on_play)
        w.slice_bar.fps_changed.connect(self._on_fps)
        w.slice_bar.slab_changed.connect(self._on_slab)
        w.slice_bar.fps.setValue(int(self.settings.value("cine/fps", 10)))
        for name, delta in (("next_slice", 1), ("previous_slice", -1), ("next_slices", 10), ("previous_slices", -10),
                            ("first_slice", -10**6), ("last_slice", 10**6)):
            w.actions[name].triggered.connect(lambda checked=False, d=delta: self.step_slice(d))
        for canvas in w.canvases():
            canvas.view.slice_wheel.connect(lambda steps, c=canvas: self._on_wheel(c, steps))

    def volume(self) -> Image | None:
        image = self.session.current
        return image if image is not None and image.is_volume else None

    def _update_slice_bar(self) -> None:
        image = self.volume()
        if image is None:
            self.window.set_slices(0, 0, "")
            self.cine.stop()
            return
        state = self.session.state(image)
        self.window.set_slices(image.n_frames, state.frame, readout(self.session, image), state.slab)

    def _on_view_changed(self, image: Image) -> None:
        if image is self.session.current:
            self._update_slice_bar()
        if image.is_volume:
            self._read_ahead(image)

    def _on_frame_requested(self, frame: int) -> None:
        image = self.volume()
        if image is not None:
            self.session.set_frame(image, frame)

    def step_slice(self, delta: int) -> None:
        image = self.volume()
        if image is not None:
            self.session.step_frame(image, delta)

    def _on_wheel(self, canvas, steps: int) -> None:
        image = self.image_on(canvas)
        if image is not None and image.is_volume:
            if image is not self.session.current:
                self.session.set_current(image)
            self.session.step_frame(image, steps)

    def _on_play(self, playing: bool) -> None:
        if playing and self.volume() is not None:
            self.cine.start(int(1000 / max(1, self.window.slice_bar.fps.value())))
        else:
            self.cine.stop()
            if playing:
                self.window.slice_bar.play_button.setChecked(False)

    def _on_fps(self, fps: int) -> None:
        self.settings.setValue("cine/fps", fps)
        if self.cine.isActive():
            self.cine.start(int(1000 / max(1, fps)))

    def _cine_step(self) -> None:
        image = self.volume()
        if image is None:
            self.window.slice_bar.play_button.setChecked(False)
            return
        self.session.step_frame(image, 1, wrap=True)

    def _on_slab(self, slices: int) -> None:
        image = self.volume()
        if image is not None:
            self.session.set_slab(image, slices)

    def _read_ahead(self, image: Image) -> None:
        """Decode and window the next slices in the direction of travel on a worker, so the
        next slice change only draws. One worker per image follows the newest plan."""
        frame = self.session.state(image).frame
        last = self._last_frame.get(id(image))
        self._last_frame[id(image)] = frame
        if last is None or not 0 < abs(frame - last) <= 2:
            return  # a jump, not stepping through the slices: nothing to guess
        step = 1 if frame > last else -1
        self._ahead[id(image)] = self.session.read_ahead_plan(image, [frame + step * k for k in range(1, READ_AHEAD + 1)])
        key = JobKey("read ahead", id(image))
        if self._ahead[id(image)] and not self.jobs.running(key):
            self.jobs.submit("Reading ahead", lambda job: self._read_ahead_work(image, job), key=key, quiet=True)

    def _read_ahead_work(self, image: Image, job) -> None:
        """Worker: prepare the first slice of the current plan not ready yet, until none is left."""
        while not job.is_cancelled:
            plan = self._ahead.get(id(image), [])  # replaced (not mutated) by the UI thread
            todo = next((item for item in plan if item[0] not in self.session.frames_shown), None)
            if todo is None:
                return
            self.session.read_ahead([todo])
