"""The Qt-free state of one viewer window, observed by the Qt widgets (napari's layers/_qt split).

A :class:`Session` holds the opened study set, the study on screen and, per image, what the
user changed: frame, VOI window, inversion, MIP slab, the method overlay shown, the shapes drawn.
It also holds what the methods produced (a bounded cache of results per image, frame, bundle
and parameters), how each bundle's maps are coloured, and the ground-truth labels found next to
the study. Widgets subscribe to its events and never load files or run models themselves; the
session loads through :mod:`inference.studies.study` and takes results from the job runner.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Generic,
    Hashable,
    Iterable,
    NamedTuple,
    TypeVar,
)

import numpy as np
from psygnal import Signal

from app.heatmap import MapSummary, OverlayStyle
from app.measure import Shape, describe
from inference.files import safe_file_name
from inference.studies.image import SCREENING_ORDER, Image, VoiPreset
from inference.studies.study import Study, StudySet, open_path

if TYPE_CHECKING:  # pragma: no cover
    from inference.bundle import Bundle, BundleError
    from inference.labels import LabelRow
    from inference.result import Result

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
MAX_SLAB = 15  # slices in the thickest MIP slab


@dataclass
class ViewState:
    frame: int = 0
    preset: VoiPreset | None = None  # None: the image's first preset
    invert: bool = False
    slab: int = 1  # DBT: slices in the maximum-intensity slab centred on ``frame`` (odd)
    overlay: "Bundle | None" = None  # the bundle whose map is shown over this image


class ResultKey(NamedTuple):
    """What one method result depends on: the image, its frame, the bundle and the parameters
    that change the result (:meth:`inference.methods.MethodSpec.result_key`)."""

    image: int  # id() of the opened Image
    frame: int
    bundle: Hashable
    parameters: tuple


class DisplayKey(NamedTuple):
    """A frame as displayed: the user's window, inversion and slab, as float or 8-bit."""

    image: int
    frame: int
    preset: VoiPreset | None
    invert: bool
    slab: int
    kind: str  # "float" | "uint8"


class OverlayKey(NamedTuple):
    """A result's map as colour-table indices, for one colour range."""

    result: ResultKey
    map_name: str
    vmax: float


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """Values dropped least recently used first once ``max_bytes`` are held (``size`` measures a
    value); safe to share between the UI thread and workers.

    A worker announces what it is making (:meth:`begin`), so another thread reaching that key
    first waits for it (:meth:`wait_for`) instead of making the same value a second time on a
    CPU that is already busy making it.
    """

    def __init__(self, max_bytes: int, size: Callable[[V], int] = lambda value: int(value.nbytes)):
        self.max_bytes = max_bytes
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._pending: set[K] = set()
        self._bytes = 0
        self._changed = threading.Condition()

    def get(self, key: K) -> V | None:
        with self._changed:
            out = self._items.get(key)
            if out is not None:
                self._items.move_to_end(key)
            return out

    def begin(self, key: K) -> bool:
        """Claim ``key`` for making; False when it is there or being made already."""
        with self._changed:
            if key in self._items or key in self._pending:
                return False
            self._pending.add(key)
            return True

    def put(self, key: K, value: V) -> None:
        with self._changed:
            old = self._items.pop(key, None)
            self._bytes += self._size(value) - (self._size(old) if old is not None else 0)
            self._items[key] = value
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= self._size(dropped)
            self._pending.discard(key)
            self._changed.notify_all()

    def abandon(self, key: K) -> None:
        with self._changed:
            self._pending.discard(key)
            self._changed.notify_all()

    def wait_for(self, key: K, timeout: float) -> V | None:
        """The entry, waiting up to ``timeout`` s if a worker is making it; None otherwise."""
        with self._changed:
            self._changed.wait_for(lambda: key not in self._pending, timeout)
            return self.get(key)

    def keys(self) -> list[K]:
        with self._changed:
            return list(self._items)

    def __contains__(self, key: K) -> bool:
        with self._changed:
            return key in self._items or key in self._pending

    def clear(self) -> None:
        with self._changed:
            self._items.clear()
            self._pending.clear()
            self._bytes = 0
            self._changed.notify_all()

    @property
    def nbytes(self) -> int:
        return self._bytes


def _result_bytes(result: "Result") -> int:
    held = getattr(result.maps, "nbytes", None)  # model-space maps: what they hold, without making them
    return int(held) if held is not None else sum(int(m.nbytes) for m in result.maps.values())


class ResultCache(LruCache[ResultKey, "Result"]):
    """Method results per :class:`ResultKey`.

    Maps are kept as float16: they are display data (three significant digits are finer than a
    colour map shows) and it halves the memory, so the maps of a whole full-size DBT volume fit.
    """

    def __init__(self, max_bytes: int = 2 << 30):
        super().__init__(max_bytes, _result_bytes)

    @staticmethod
    def slim(result: "Result", keep: Iterable[str]) -> "Result":
        """The result with only the maps the viewer shows, as float16 (run on the worker thread; maps
        kept in model space stay there until drawn)."""
        if hasattr(result.maps, "subset"):
            return replace(result, maps=result.maps.subset(keep, np.float16))
        maps = {k: np.asarray(v, dtype=np.float16) for k, v in result.maps.items() if k in set(keep)}
        return replace(result, maps=maps)

    def frames(self, image: int, bundle: Hashable, parameters: tuple) -> list[int]:
        """Frames cached for one image, bundle and parameters."""
        return sorted(k.frame for k in self.keys() if (k.image, k.bundle, k.parameters) == (image, bundle, parameters))


def _to_uint8(display: np.ndarray) -> np.ndarray:
    return (display * np.float32(255) + np.float32(0.5)).astype(np.uint8)


def first_threshold(bundle: "Bundle", map_name: str, summary: MapSummary) -> float:
    """The threshold a bundle's first map of a kind starts at: the bundle's calibrated cut-off for its
    main map (the image score is a mean of that map, in the same units), else the map's 95th
    percentile; always below the top of the colour range, so the first toggle shows something."""
    from inference.methods import get

    calibration = bundle.calibration
    if calibration is not None and map_name == get(bundle.method).maps[0] and 0 < calibration.threshold < summary.vmax:
        return float(calibration.threshold)
    return summary.default_threshold


@dataclass
class Session:
    studies: StudySet | None = None
    study: Study | None = None
    states: dict[int, ViewState] = field(default_factory=dict)
    bundles: list["Bundle"] = field(default_factory=list)
    bundle_errors: list["BundleError"] = field(default_factory=list)
    labels: dict[Path, list["LabelRow"]] = field(default_factory=dict)  # resolved image path -> rows
    label_files: list[Path] = field(default_factory=list)
    results: ResultCache = field(default_factory=ResultCache)
    styles: dict[tuple, OverlayStyle] = field(default_factory=dict)  # (bundle, map name) -> style
    method_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    shapes: dict[int, list[Shape]] = field(default_factory=dict)  # image id -> the user's shapes
    style_defaults: dict[str, Any] = field(default_factory=dict)  # colour map / opacity for new styles
    # display-ready arrays (8-bit frames, overlay table indices), read ahead by a worker
    frames_shown: LruCache = field(default_factory=lambda: LruCache(768 << 20))
    # what is on screen: cell ("single" or a hanging cell such as ("R", "CC")) -> image
    cells: dict[Hashable, Image | None] = field(default_factory=dict)
    single: bool = False  # one view on screen (else the 2 x 2 hanging)
    current: Image | None = None  # the view the panels and keyboard act on

    # events (psygnal: presenters connect, disconnect and block them)
    opened = Signal(object)  # (StudySet)
    study_changed = Signal(object)  # (Study)
    layout_changed = Signal()  # which image is in which cell, or one view / the hanging
    current_changed = Signal(object)  # (Image | None)
    view_changed = Signal(object)  # (Image) frame, window, inversion or slab of one image changed
    overlay_changed = Signal(object)  # (Image) the overlay shown on an image was switched
    style_changed = Signal(object)  # (Bundle) colour map, threshold, opacity... of a bundle's maps
    result_added = Signal(object, int, object)  # (Image, frame, Bundle)
    labels_changed = Signal()
    shapes_changed = Signal(object)  # (Image)
    bundles_changed = Signal()
    parameters_changed = Signal(str, str)  # (method, parameter name) a method's run parameter changed

    def __post_init__(self):
        self._next_shape = 1
        self._walls: dict[int, str] = {}  # image id -> chest-wall side of the stored image

    # ------------------------------------------------------------------ studies
    def open(self, path: str | Path) -> StudySet:
        studies = open_path(path)
        self.studies = studies
        self.states.clear()
        self.frames_shown.clear()
        self.results.clear()
        self.shapes.clear()
        self.labels.clear()
        self.label_files.clear()
        self._walls.clear()
        self.cells.clear()
        self.current = None
        self._labels_beside(Path(path))
        self.opened.emit(studies)
        if studies.studies():
            self.show_study(studies.studies()[0])
        return studies

    def show_study(self, study: Study) -> None:
        """Put a study on screen: two screening views or more in the 2 x 2 hanging (the empty
        cells blank), one alone in the single view, which reads better."""
        self.study = study
        self.study_changed.emit(study)
        hanging = study.hanging()
        if self.hangs(study):
            self.cells["single"] = None
            self.place({cell: hanging.get(cell) for cell in SCREENING_ORDER}, single=False)
            self.set_current(next(hanging[cell] for cell in SCREENING_ORDER if cell in hanging))
        elif study.images():
            self.show_single(study.images()[0])

    @staticmethod
    def hangs(study: Study | None) -> bool:
        return study is not None and len(study.hanging()) > 1

    def show_single(self, image: Image) -> None:
        self.place({"single": image}, single=True)
        self.set_current(image)

    def toggle_single(self) -> None:
        """One view <-> the hanging: the current view alone, or back to the study's 2 x 2."""
        if self.single:
            if self.hangs(self.study):
                self.cells["single"] = None
                self.place({}, single=False)
                grid = self.grid_images()
                self.set_current(self.current if self.current in grid else grid[0])
        elif self.current is not None:
            self.show_single(self.current)

    # ------------------------------------------------------------------ what is on screen
    def place(self, cells: dict[Hashable, Image | None], single: bool) -> None:
        """Put images into screen cells (others keep theirs) and show one view or the hanging."""
        self.cells.update(cells)
        self.single = bool(single)
        self.layout_changed.emit()

    def cells_showing(self, image: Image) -> list[Hashable]:
        return [cell for cell, im in self.cells.items() if im is image]

    def grid_images(self) -> list[Image]:
        """The images of the 2 x 2 hanging (shown or behind the single view)."""
        return [im for cell, im in self.cells.items() if im is not None and cell != "single"]

    def set_current(self, image: Image | None) -> None:
        self.current = image
        self.current_changed.emit(image)

    def wall_side(self, image: Image) -> str:
        """"L" when the stored image has its chest wall on the left edge, "R" on the right: from
        Patient Orientation when the file gives it, else guessed from the pixels."""
        key = id(image)
        row_direction = (getattr(image, "patient_orientation", None) or ("", ""))[0]
        if key not in self._walls and ("A" in row_direction or "P" in row_direction):
            # Patient Orientation: a row that runs towards the nipple (A) starts at the chest wall
            self._walls[key] = "L" if "A" in row_direction else "R"
        if key not in self._walls:
            from inference.studies.plain_io import infer_laterality

            state = self.state(image)
            untouched = state.preset is None and not state.invert and state.slab == 1
            # the 8-bit frame about to be shown serves when the user has not changed its display yet
            pixels = self.screen_frame(image) if untouched else image.display(state.frame)
            self._walls[key] = infer_laterality(pixels) or "L"
        return self._walls[key]

    def laterality(self, image: Image) -> str:
        """The breast side a method is told: the file's, else the one the pixels show."""
        return image.laterality or self.wall_side(image)

    def patient_of(self, image: Image) -> tuple[str, int]:
        """(pseudonymous patient key, study number) of an opened image."""
        for patient in self.studies.patients if self.studies else []:
            for s_index, study in enumerate(patient.studies, 1):
                if any(im is image for im in study.images()):
                    return patient.key, s_index
        return "image", 1

    def export_stem(self, image: Image, frame: int | None = None) -> str:
        """File name stem for exports: pseudonymous patient key, study number, view, slice.

        Never built from file names or DICOM attributes, which often hold the patient's name.
        """
        key, s_index = self.patient_of(image)
        stem = f"{key}_study{s_index}_{image.name if (image.laterality or image.view) else 'image'}"
        if image.is_volume and frame is not None:
            stem += f"_slice{frame + 1:03d}"
        return safe_file_name(stem)

    # ------------------------------------------------------------------ frames
    def state(self, image: Image) -> ViewState:
        return self.states.setdefault(id(image), ViewState(frame=image.n_frames // 2 if image.is_volume else 0))

    def set_frame(self, image: Image, frame: int) -> None:
        state = self.state(image)
        frame = int(np.clip(frame, 0, image.n_frames - 1))
        if frame != state.frame:
            state.frame = frame
            self.view_changed.emit(image)

    def step_frame(self, image: Image, delta: int, wrap: bool = False) -> None:
        frame = self.state(image).frame + delta
        self.set_frame(image, frame % image.n_frames if wrap else frame)

    def set_slab(self, image: Image, slices: int) -> None:
        """MIP over ``slices`` slices (made odd, at most MAX_SLAB) centred on the current one."""
        slices = int(np.clip(slices, 1, min(MAX_SLAB, image.n_frames)))
        slices += 1 - slices % 2
        state = self.state(image)
        if slices != state.slab:
            state.slab = slices
            # keep the slab's slices decoded while scrolling: each step then decodes one new slice
            image.cache_frames = max(image.cache_frames, slices + 2)
            self.view_changed.emit(image)

    def slab_range(self, image: Image) -> tuple[int, int]:
        state = self.state(image)
        half = state.slab // 2
        return max(0, state.frame - half), min(image.n_frames - 1, state.frame + half)

    def _display_key(self, image: Image, frame: int, kind: str) -> DisplayKey:
        state = self.state(image)
        return DisplayKey(id(image), frame, state.preset, state.invert, state.slab, kind)

    def displayed(self, image: Image, frame: int | None = None) -> np.ndarray:
        """A frame as shown, float32 in [0, 1]: the user's window, the MIP slab, the inversion
        (the current frame unless ``frame`` is given)."""
        frame = self.state(image).frame if frame is None else frame
        key = self._display_key(image, frame, "float")
        out = self.frames_shown.get(key)
        if out is None:
            out = self._render(image, *key[1:5])
            self.frames_shown.put(key, out)
        return out

    def screen_frame(self, image: Image, frame: int | None = None) -> np.ndarray:
        """The same as 8-bit grey, what the screen shows: Qt draws it without a per-pixel
        conversion, and the read-ahead prepares it off the UI thread."""
        frame = self.state(image).frame if frame is None else frame
        key = self._display_key(image, frame, "uint8")
        out = self.frames_shown.wait_for(key, timeout=0.5)  # the read-ahead may be making it now
        if out is None:  # the float frame is not kept: a full-field mammogram's is 54 MB
            out = _to_uint8(self._render(image, *key[1:5]))
            self.frames_shown.put(key, out)
        return out

    def preview_frame(self, image: Image) -> np.ndarray | None:
        """While the current frame is not decoded: a reduced-resolution decode of it (JPEG 2000
        resolution levels, :meth:`Image.preview_display`) as 8-bit grey on the frame's own grid (each
        pixel repeated), shown until :meth:`screen_frame` has the full one; None otherwise (and for
        DBT volumes)."""
        state = self.state(image)
        key = self._display_key(image, state.frame, "uint8")
        # a mammogram's first look; a volume's slices follow the slider, decoded as they come
        if image.is_volume or key in self.frames_shown:
            return None
        got = image.preview_display(state.frame, state.preset)
        if got is None:
            return None
        values, factor = got
        values = _to_uint8(1.0 - values if state.invert else values)
        return np.repeat(np.repeat(values, factor, axis=0), factor, axis=1)[: image.rows, : image.cols]

    def overlay_indices(self, image: Image, frame: int, bundle: "Bundle") -> np.ndarray | None:
        """The frame's map as entries of its style's colour table (see :func:`app.heatmap.table_index`),
        cached like the frames: None while the map is not computed."""
        item = self._overlay_item(image, frame, bundle)
        if item is None:
            return None
        key, make = item
        out = self.frames_shown.wait_for(key, timeout=0.5)
        if out is None:
            out = make()
            self.frames_shown.put(key, out)
        return out

    def _overlay_item(self, image: Image, frame: int, bundle: "Bundle"):
        from app.heatmap import table_index

        result = self.result(image, frame, bundle)
        style = self.style(bundle)
        if result is None or style.map_name not in result.maps:
            return None
        maps, map_name, vmax = result.maps, style.map_name, style.vmax
        key = OverlayKey(self.result_key(image, frame, bundle), map_name, vmax)
        # the map is read when the indices are made (a model-space map goes to the original grid
        # then: on the read-ahead worker, not while the plan is drawn up on the UI thread)
        return key, lambda: table_index(maps[map_name], vmax)

    def read_ahead_plan(self, image: Image, frames: Iterable[int]) -> list[tuple]:
        """(key, make) pairs for what the next frames will show: the 8-bit frame with today's
        display state, and the overlay's table indices where its map is computed. Built on the UI
        thread, which owns the state; :meth:`read_ahead` runs the ``make`` on a worker."""
        state = self.state(image)
        plan = []
        for k in (k for k in frames if 0 <= k < image.n_frames):
            key = self._display_key(image, k, "uint8")
            plan.append((key, lambda key=key: _to_uint8(self._render(image, *key[1:5]))))
            overlay = self._overlay_item(image, k, state.overlay) if state.overlay is not None else None
            if overlay is not None:
                plan.append(overlay)
        return [(key, make) for key, make in plan if key not in self.frames_shown]

    def read_ahead(self, plan: list[tuple]) -> int:
        """Prepare what the user is about to scroll to (on a worker thread); a window or style
        change meanwhile only leaves these entries unused."""
        done = 0
        for key, make in plan:
            if self.frames_shown.begin(key):
                try:
                    self.frames_shown.put(key, make())
                except BaseException:
                    self.frames_shown.abandon(key)
                    raise
                done += 1
        return done

    @staticmethod
    def _render(image: Image, frame: int, preset: VoiPreset | None, invert: bool, slab: int) -> np.ndarray:
        half = slab // 2
        lo, hi = max(0, frame - half), min(image.n_frames - 1, frame + half)
        out = image.display(lo, preset)
        for k in range(lo + 1, hi + 1):
            out = np.maximum(out, image.display(k, preset))
        return 1.0 - out if invert else out

    # ------------------------------------------------------------------ window / level
    def set_preset(self, image: Image, preset: VoiPreset | None) -> None:
        self.state(image).preset = preset
        self.view_changed.emit(image)

    def current_window(self, image: Image) -> VoiPreset:
        """The window (centre / width / function) that the current preset stands for; a VOI LUT
        has none, so dragging starts from the breast's own window."""
        state = self.state(image)
        preset = state.preset or image.default_preset()
        if preset.kind == "range":
            return image.range_window(state.frame)
        if preset.kind == "window":
            return preset
        return self.breast_window(image)

    def drag_window(self, image: Image, dx: float, dy: float) -> VoiPreset:
        """Window / level by a mouse drag of (dx, dy) screen pixels: right widens the window
        (multiplicatively, so it never turns negative), down raises the centre (darker)."""
        base = self.current_window(image)
        width = base.width * math.exp(dx / 250.0)
        if base.function == "LINEAR":
            width = max(width, 1.0)  # PS3.3 C.11.2.1.2: LINEAR needs width >= 1
        preset = VoiPreset("Custom", "window", base.center + dy * base.width / 400.0, width, base.function)
        self.set_preset(image, preset)
        return preset

    def set_voi_function(self, image: Image, function: str) -> None:
        if function not in VOI_FUNCTIONS:
            raise ValueError(f"VOI LUT function {function!r} is not one of {', '.join(VOI_FUNCTIONS)}")
        base = self.current_window(image)
        width = max(base.width, 1.0) if function == "LINEAR" else base.width
        name = base.name if base.name.startswith("Custom") else f"{base.name}, {function}"
        self.set_preset(image, VoiPreset(name, "window", base.center, width, function))

    def breast_window(self, image: Image) -> VoiPreset:
        """A window over the 1st..99th percentile of the modality values inside the breast."""
        from inference.preprocess import breast_mask

        frame = self.state(image).frame
        values = image.modality_values(frame)
        mask = breast_mask(image.display(frame))
        inside = values[mask] if mask.any() else values.ravel()
        step = max(1, inside.size // 400_000)
        lo, hi = (float(v) for v in np.percentile(inside[::step], [1.0, 99.0]))
        width = max(hi - lo, 1.0 if np.issubdtype(image.stored(frame).dtype, np.integer) else 1e-6)
        return VoiPreset("Auto (breast histogram)", "window", (lo + hi) / 2, width, "LINEAR_EXACT")

    def auto_window(self, image: Image) -> VoiPreset:
        preset = self.breast_window(image)
        self.set_preset(image, preset)
        return preset

    def set_invert(self, image: Image, invert: bool) -> None:
        self.state(image).invert = bool(invert)
        self.view_changed.emit(image)

    def reset_display(self, image: Image) -> None:
        state = self.state(image)
        state.preset, state.invert, state.slab = None, False, 1
        self.view_changed.emit(image)

    # ------------------------------------------------------------------ ground truth
    def _labels_beside(self, root: Path) -> None:
        """Labels files in the opened folder (or the opened file's folder), silently skipping
        CSV files that are not labels files."""
        from inference.labels import LabelsError

        folder = root if root.is_dir() else root.parent
        for candidate in sorted(folder.glob("*.csv")):
            try:
                self.open_labels(candidate, notify=False)
            except LabelsError:
                continue

    def open_labels(self, path: str | Path, notify: bool = True) -> int:
        """Read a labels file; returns how many of its lesion rows match an opened image.

        Raises :class:`inference.labels.LabelsError` with one sentence when it cannot be used.
        """
        from inference.labels import read_labels

        path = Path(path)
        rows = read_labels(path)
        opened = {im.path.resolve() for im in (self.studies.images() if self.studies else [])}
        matched = 0
        for row in rows:
            key = row.resolve(path.parent).resolve()
            self.labels.setdefault(key, []).append(row)
            matched += int(key in opened and row.is_lesion and row.box() is not None)  # foreign objects are no lesions
        self.label_files.append(path)
        if notify:
            self.labels_changed.emit()
        return matched

    def labels_for(self, image: Image) -> list["LabelRow"]:
        return self.labels.get(image.path.resolve(), [])

    def boxes_on(self, image: Image, frame: int | None = None) -> list[tuple[tuple[float, float, float, float], str]]:
        """Ground-truth boxes to draw on ``frame``: for DBT only on slices slice_start..slice_end."""
        frame = self.state(image).frame if frame is None else frame
        out = []
        for row in self.labels_for(image):
            box = row.box()
            if box is None:
                continue
            text = row.label.replace("_", " ") + (f" ({row.detail})" if row.detail else "")
            if image.is_volume and row.slice_start is not None:
                if not row.slice_start <= frame <= row.slice_end:
                    continue
                text += f", slices {row.slice_start + 1}-{row.slice_end + 1}"
            out.append((box, text))
        return out

    # ------------------------------------------------------------------ shapes and measurements
    def add_shape(self, image: Image, kind: str, x0: float, y0: float, x1: float, y1: float) -> Shape:
        shape = Shape(kind, float(x0), float(y0), float(x1), float(y1), id=self._next_shape)
        self._next_shape += 1
        self.shapes.setdefault(id(image), []).append(shape)
        self.shapes_changed.emit(image)
        return shape

    def move_shape(self, image: Image, shape_id: int, x0: float, y0: float, x1: float, y1: float) -> None:
        for shape in self.shapes.get(id(image), []):
            if shape.id == shape_id:
                shape.x0, shape.y0, shape.x1, shape.y1 = float(x0), float(y0), float(x1), float(y1)
                self.shapes_changed.emit(image)
                return

    def shapes_of(self, image: Image) -> list[Shape]:
        return list(self.shapes.get(id(image), []))

    def clear_shapes(self, image: Image | None = None) -> None:
        images = [image] if image is not None else [im for im in (self.studies.images() if self.studies else [])
                                                     if id(im) in self.shapes]
        for im in images:
            self.shapes.pop(id(im), None)
            self.shapes_changed.emit(im)

    def measure(self, image: Image, shape: Shape) -> str:
        """What a shape measures on the current frame, in one line."""
        frame = self.state(image).frame
        values = image.modality_values(frame) if shape.kind != "line" else np.zeros((1, 1))
        text = describe(shape, values, image.pixel_spacing)
        return text + (f" (slice {frame + 1})" if image.is_volume and shape.kind != "line" else "")

    # ------------------------------------------------------------------ methods and overlays
    def load_bundles(self, extra_dirs: Iterable[str | Path] = ()) -> None:
        from inference.bundle import find_bundles

        self.bundles, self.bundle_errors = find_bundles(list(extra_dirs))
        self.bundles_changed.emit()

    def parameters(self, method: str) -> dict[str, Any]:
        from inference.methods import METHODS

        values = self.method_parameters.setdefault(method, METHODS[method].defaults())
        return dict(values)

    def set_parameter(self, method: str, name: str, value: Any) -> None:
        """Set a method's run parameter; emits ``parameters_changed`` (and ``style_changed`` for the
        map shown, which changes the style, not the results). Setting the value it has emits nothing."""
        self.parameters(method)
        if self.method_parameters[method].get(name) == value:
            return
        self.method_parameters[method][name] = value
        self.parameters_changed.emit(method, name)
        if name == "map":  # another map of the same results: its own style, no recomputation
            for bundle in [b for b in self.bundles if b.method == method]:
                self.style_changed.emit(bundle)

    def map_name(self, bundle: "Bundle") -> str:
        from inference.methods import METHODS

        spec = METHODS[bundle.method]
        return self.parameters(bundle.method).get("map", spec.maps[0] if spec.maps else "difference")

    def result_key(self, image: Image, frame: int, bundle: "Bundle") -> ResultKey:
        from inference.methods import METHODS

        return ResultKey(id(image), int(frame), bundle, METHODS[bundle.method].result_key(self.parameters(bundle.method)))

    def result(self, image: Image, frame: int, bundle: "Bundle") -> "Result | None":
        return self.results.get(self.result_key(image, frame, bundle))

    def add_result(self, image: Image, frame: int, bundle: "Bundle", result: "Result",
                   summaries: dict[str, MapSummary] | None = None, indices: tuple | None = None) -> None:
        """Store a (slimmed) result; the first map of each kind sets its colour range and threshold.

        ``indices``: (map name, vmax, table indices) the worker already made for drawing, so
        the UI thread has no per-pixel work when the map is shown.
        """
        key = self.result_key(image, frame, bundle)
        self.results.put(key, result)
        # store everything before telling anyone: a listener that draws on style_changed must find
        # the table indices the worker made, not index the map again on the UI thread
        if indices is not None:
            map_name, vmax, array = indices
            self.frames_shown.put(OverlayKey(key, map_name, vmax), array)
        changed = False
        preview = bool(result.parameters.get("preview"))
        for map_name, summary in (summaries or {}).items():
            style = self.style(bundle, map_name)
            if not style.calibrated:  # a coarse preview shows provisionally; the final map sets the range
                style.vmax, style.threshold = summary.vmax, first_threshold(bundle, map_name, summary)
                style.calibrated = not preview
                changed = True
        if changed:
            self.style_changed.emit(bundle)
        self.result_added.emit(image, frame, bundle)

    def cached_frames(self, image: Image, bundle: "Bundle") -> list[int]:
        key = self.result_key(image, 0, bundle)
        return self.results.frames(key.image, key.bundle, key.parameters)

    def set_overlay(self, image: Image, bundle: "Bundle | None") -> None:
        state = self.state(image)
        if state.overlay is not bundle:
            state.overlay = bundle
            self.overlay_changed.emit(image)

    def style(self, bundle: "Bundle", map_name: str | None = None) -> OverlayStyle:
        """How ``bundle``'s ``map_name`` maps (default: the map chosen now) are coloured."""
        map_name = map_name or self.map_name(bundle)
        style = self.styles.get((bundle, map_name))
        if style is None:
            style = self.styles[(bundle, map_name)] = OverlayStyle(map_name=map_name, **self.style_defaults)
        return style

    def update_style(self, bundle: "Bundle", **changes) -> OverlayStyle:
        """The user's change of a style; a threshold or range they set is theirs (no map moves it)."""
        style = self.style(bundle)
        for name, value in changes.items():
            if name not in OverlayStyle.__dataclass_fields__ or name in ("map_name", "calibrated"):
                raise AttributeError(f"OverlayStyle has no settable field {name!r}")
            setattr(style, name, value)
        if "threshold" in changes or "vmax" in changes:
            style.calibrated = True
        self.style_changed.emit(bundle)
        return style
