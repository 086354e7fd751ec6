"""Image info (with identifiers only on request) and the readout under the cursor."""
from __future__ import annotations

import math

from app.presenters.base import Context, Presenter
from app.presenters.studies import image_title
from inference.studies.image import Image


class InfoPresenter(Presenter):
    def __init__(self, context: Context):
        super().__init__(context)
        self.show_identifiers = False
        self._modality = None  # (image id, frame), that frame's modality values: per-pixel reads
        s, w = self.session, self.window
        s.current_changed.connect(self._update_info)
        s.opened.connect(lambda studies: setattr(self, "_modality", None))
        w.info.identifiers_toggled.connect(self._on_identifiers)
        for canvas in w.canvases():
            canvas.cursor_moved.connect(lambda x, y, c=canvas: self._on_cursor(c, x, y))
            canvas.cursor_left.connect(lambda: self.window.cursor_label.setText(""))

    def fields(self, image: Image) -> list[tuple[str, str]]:
        fields = [("View", image_title(image, self.show_identifiers)), ("Frames", str(image.n_frames)),
                  ("Size", f"{image.cols} x {image.rows}")]
        if image.pixel_spacing:
            fields.append(("Pixel spacing (mm)", f"{image.pixel_spacing[0]:.4g} x {image.pixel_spacing[1]:.4g} "
                                                 f"({image.spacing_source})"))
        fields += [("Photometric", image.photometric), ("Bits stored", str(image.bits_stored)),
                   ("Transfer syntax", image.transfer_syntax)]
        fields += [(k, str(v)) for k, v in image.header.items()]
        if self.show_identifiers:
            fields += [("File", str(image.path))]
            fields += [(f"[identifier] {k}", str(v)) for k, v in image.identity.items()]
        return fields

    def _update_info(self, image: Image | None = None) -> None:
        image = self.session.current
        if image is not None:
            self.window.info.set_fields(self.fields(image))

    def _on_identifiers(self, shown: bool) -> None:
        self.show_identifiers = bool(shown)
        self._update_info()

    def _on_cursor(self, canvas, x: float, y: float) -> None:
        image = self.image_on(canvas)
        if image is None:
            return
        col, row = int(math.floor(x)), int(math.floor(y))
        if not (0 <= row < image.rows and 0 <= col < image.cols):
            self.window.cursor_label.setText("")
            return
        frame = self.session.state(image).frame
        key = (id(image), frame)
        if self._modality is None or self._modality[0] != key:
            self._modality = (key, image.modality_values(frame))
        stored = image.stored(frame)[row, col]
        text = f"x {col}  y {row} px"
        if image.pixel_spacing:
            text += f"  ({x * image.pixel_spacing[1]:.1f}, {y * image.pixel_spacing[0]:.1f} mm)"
        shown = self.session.screen_frame(image)[row, col]  # the 8-bit grey drawn, cached
        text += f"   stored {stored}  value {self._modality[1][row, col]:g}  shown {shown / 255:.3f}"
        bundle = self.session.state(image).overlay
        result = self.session.result(image, frame, bundle) if bundle is not None else None
        if result is not None:
            from app.heatmap import map_label
            from inference.methods import METHODS

            name = self.session.map_name(bundle)
            label, _ = map_label(METHODS[bundle.method], self.session.parameters(bundle.method), name)
            value = float(result.maps[name][row, col])
            # NaN: no window reached this pixel (outside the breast); not a number to read
            text += f"   {label} {value:.4f}" if math.isfinite(value) else f"   {label}: no map here (outside the breast)"
        self.window.cursor_label.setText(text)
