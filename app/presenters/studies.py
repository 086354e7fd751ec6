"""Opening studies and labels files, the study browser, its thumbnails, the recent list."""
from __future__ import annotations

import math
import traceback
from pathlib import Path

import numpy as np

from app.jobs_qt import JobKey
from app.presenters.base import Context, Presenter
from inference.errors import MammolensError
from inference.studies.image import Image
from inference.studies.study import Study, StudySet

RECENT_MAX = 10


def as_list(value) -> list[str]:
    """QSettings hands a one-element list back as a plain string."""
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def image_title(image: Image, identifiers: bool = False) -> str:
    """How the browser, the tooltips and Image info name an image: its view, and the file name
    where the file is the only way to tell films apart (plain images such as mini-MIAS) or when
    the user asked for identifiers (DICOM file names often carry the patient's name)."""
    text = image.name + (f" (DBT, {image.n_frames} slices)" if image.is_volume else "")
    if (image.sop_class == "plain image" or identifiers) and image.path.stem not in text:
        text += f"  {image.path.name}"
    return text


class StudyPresenter(Presenter):
    def __init__(self, context: Context, demo_path):
        super().__init__(context)
        self.show_identifiers = False
        self._thumbnails: dict[int, tuple] = {}  # id(image) -> (image, pixels): kept for a repopulated browser
        w = self.window
        w.open_requested.connect(self.open)
        w.open_demo_requested.connect(lambda: self.open(demo_path()))
        w.open_labels_requested.connect(self.open_labels)
        w.browser.image_activated.connect(self._on_activated)
        w.info.identifiers_toggled.connect(self._on_identifiers)
        w.set_recent(as_list(self.settings.value("recent")))
        self.session.opened.connect(self._on_opened)

    def open(self, path) -> StudySet | None:
        """Open a file, folder or DICOMDIR; errors become a message in the window."""
        try:
            studies = self.session.open(path)
        except MammolensError as exc:
            self.failed(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 (a bad input must never take the window down)
            self.failed(f"{Path(path).name}: cannot be opened ({type(exc).__name__}).", traceback.format_exc())
            return None
        self._remember(path)
        self._make_thumbnails(studies)
        if any(layer.is_segmentation for im in studies.images() for layer in im.layers):
            self.window.actions["overlay_planes"].setChecked(True)  # a SEG beside its source shows on it
        return studies

    def _remember(self, path) -> None:
        text = str(Path(path).resolve())
        recent = [text] + [p for p in as_list(self.settings.value("recent")) if p != text][: RECENT_MAX - 1]
        self.settings.setValue("recent", recent)
        self.window.set_recent(recent)

    def open_labels(self, path) -> int | None:
        from inference.labels import LabelsError

        try:
            matched = self.session.open_labels(path)
        except LabelsError as exc:
            self.failed(str(exc))
            return None
        self.status(f"{Path(path).name}: {matched} lesion box(es) on the opened images", 8000)
        return matched

    def tree(self, studies: StudySet) -> list:
        """The browser's rows: patient / study / series / image; a series of one image is that
        image's row (the series description beside it), so no view appears twice."""
        tree = []
        for patient in studies.patients:
            study_rows = []
            for s_index, study in enumerate(patient.studies, 1):
                rows = []
                for series in study.series:
                    images = [(image_title(im, self.show_identifiers), im, f"{im.cols}x{im.rows}", [])
                              for im in series.images]
                    title = f"Series {series.number} {series.description}".strip()
                    if len(images) == 1:
                        text, im, size, _ = images[0]
                        rows.append((f"{text}\n{title}", im, size, []))  # lines of their own: a narrow dock cuts none
                    else:
                        rows.append((title, None, "", images))
                study_rows.append((f"Study {s_index} {study.date}".strip(), study, "", rows))
            tree.append((patient.key, None, "", study_rows))
        return tree

    def _on_opened(self, studies: StudySet) -> None:
        self.window.browser.populate(self.tree(studies), [str(f) for f in studies.failures])
        self.window.empty_hint.setVisible(False)
        labelled = sum(1 for im in studies.images() if any(r.box() for r in self.session.labels_for(im)))
        self.status(f"{len(studies.images())} image(s) in {len(studies.studies())} study(ies)"
                    + (f"; {len(studies.failures)} file(s) could not be read" if studies.failures else "")
                    + (f"; ground-truth boxes on {labelled} image(s)" if labelled else ""), 0)

    def _on_identifiers(self, shown: bool) -> None:
        self.show_identifiers = bool(shown)
        if self.session.studies is not None:  # new row texts; the thumbnails already made are reused
            self.window.browser.populate(self.tree(self.session.studies),
                                         [str(f) for f in self.session.studies.failures])
            for image, pixels in self._thumbnails.values():
                self.window.browser.set_thumbnail(image, pixels)

    def _make_thumbnails(self, studies: StudySet):
        images = studies.images()
        self._thumbnails.clear()

        def work(job):
            for i, image in enumerate(images):
                job.token.raise_if_cancelled()
                frame = image.n_frames // 2
                step = max(1, int(math.ceil(max(image.rows, image.cols) / 56)))
                try:
                    small = image.display(frame)[::step, ::step]
                except Exception:  # noqa: BLE001 (an undecodable image keeps no thumbnail; the rest get theirs)
                    continue
                job.deliver((image, (small * 255 + 0.5).astype(np.uint8)))
                job.report(i + 1, len(images), "thumbnails")
            return len(images)

        return self.jobs.submit("Thumbnails", work, key=JobKey("thumbnails"), quiet=True,
                                on_partial=self._on_thumbnail,
                                on_error=self.failed)

    def _on_thumbnail(self, value) -> None:
        image, pixels = value
        self._thumbnails[id(image)] = value
        self.window.browser.set_thumbnail(image, pixels)

    def _on_activated(self, payload) -> None:
        if isinstance(payload, Study):
            self.session.show_study(payload)
        elif isinstance(payload, Image):
            self.session.show_single(payload)
