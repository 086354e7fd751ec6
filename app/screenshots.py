"""Screenshots of the viewer's main states, rendered offscreen: ``python -m app.screenshots OUTDIR``.

1. ``hanging-overlay.png``: the demo study hung 2 x 2 with the HealthyGAN overlay on all views;
2. ``dbt-overlay.png``: the DBT volume in one view, on a slice of its lesion, with the overlay
   and the ground-truth box;
3. ``roi-measurement.png``: a rectangle, an ellipse and a distance measured on a mammogram;
0. ``first-run.png``: the window before anything is open (what to do);
4. ``inpaint-rectangle.png``: the inpainting overlay and a completed rectangle (when an inpainting
   bundle is installed);
5. ``synthesis-pane.png``: generated lesion patches in the synthesis pane (when a synthesis bundle
   is installed).

The HealthyGAN bundle is ``healthygan-phantom`` when it is installed (resources/models, the user's
models folder, $MAMMOLENS_MODELS, ``--models``), else the first translation bundle found.
The settings go to a temporary file, so taking screenshots leaves the user's settings alone.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

PREFERRED = "healthygan-phantom"


def _settle(app, controller, timeout_s: float = 120.0) -> None:
    """Let the jobs finish and their results reach the widgets."""
    deadline = time.monotonic() + timeout_s
    while controller.jobs.running() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(5):
        app.processEvents()


def take(out: Path, models_dirs=(), size=(1600, 1000)) -> list[Path]:
    from app.gui import _application, build_window, demo_study_path, has_display, save_widget_png

    os.environ.setdefault("MAMMOLENS_SETTINGS", str(Path(tempfile.mkdtemp()) / "settings.ini"))
    app = _application(offscreen=not has_display())  # the real window under X (xvfb-run), else offscreen
    window, controller = build_window(models_dirs=models_dirs)
    window.resize(*size)
    window.show()
    out.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        app.processEvents()
    first_run = save_widget_png(window, out / "first-run.png")
    studies = controller.studies.open(demo_study_path())
    if studies is None:
        raise SystemExit("the bundled demo study could not be opened")
    translation = [b for b in controller.overlays.method_bundles if b.method == "translation"]
    bundle = next((b for b in translation if b.name == PREFERRED), translation[0] if translation else None)
    if bundle is None:
        print("no translation (HealthyGAN) bundle found: the screenshots show no overlay", file=sys.stderr)
    else:
        print(f"overlay: {bundle.name} {bundle.version} ({bundle.path})")
    shots = [first_run]

    # 1. the hanging with the overlay on all four views
    if bundle is not None:
        controller.overlays.toggle_method(bundle, True, all_views=True)
    _settle(app, controller)
    shots.append(save_widget_png(window, out / "hanging-overlay.png"))

    # 2. the DBT volume, one view, on the middle slice of its lesion
    volume = next(iter(studies.studies()[0].volumes()), None)
    if volume is not None:
        controller.session.show_single(volume)
        rows = [r for r in controller.session.labels_for(volume) if r.slice_start is not None]
        frame = (rows[0].slice_start + rows[0].slice_end) // 2 if rows else volume.n_frames // 2
        controller.session.set_frame(volume, frame)
        if bundle is not None:
            controller.overlays.toggle_method(bundle, True)
        _settle(app, controller)
        shots.append(save_widget_png(window, out / "dbt-overlay.png"))
        controller.session.toggle_single()

    # 3. measurements on the mammogram with the mass, in one view
    hanging = studies.studies()[0].hanging()
    image = hanging.get(("L", "MLO")) or next(iter(hanging.values()))
    controller.session.show_single(image)
    if bundle is not None:
        controller.overlays.toggle_method(bundle, False)
    box = next((r.box() for r in controller.session.labels_for(image) if r.is_lesion and r.box()), (300, 300, 450, 450))
    x0, y0, x1, y1 = box
    session = controller.session
    session.add_shape(image, "rect", x0 + 6, y0 + 6, x1 - 6, y1 - 6)
    session.add_shape(image, "ellipse", 250, 380, 400, 500)
    session.add_shape(image, "line", x0 - 10, y1 + 110, x1 + 10, y1 + 110)  # below the rectangle's caption
    window.measurements_dock.raise_()
    _settle(app, controller)
    shots.append(save_widget_png(window, out / "roi-measurement.png"))

    # 4. inpainting: its map, then a rectangle completed from its surroundings
    inpainting = next((b for b in controller.overlays.method_bundles if b.method == "inpainting"), None)
    if inpainting is not None:
        session.clear_shapes(image)
        controller.overlays.toggle_method(inpainting, True)
        _settle(app, controller, 600.0)
        session.add_shape(image, "rect", x0, y0, x1, y1)
        controller.roi.inpaint_roi()
        _settle(app, controller)
        if controller.roi.completion is not None:
            controller.roi.completion.in_place.setChecked(True)
            for _ in range(5):
                app.processEvents()
            shots.append(save_widget_png(window, out / "inpaint-rectangle.png"))
            shots.append(save_widget_png(controller.roi.completion, out / "inpaint-dialog.png"))
            controller.roi.completion.close()

    # 5. synthesis: a grid of generated patches of the bundle's last class
    pane = window.synthesis
    if pane.generate.isEnabled():
        window.synthesis_dock.raise_()
        pane.lesion_class.setCurrentIndex(0)
        pane.count.setValue(24)
        pane.seed.setValue(1)
        pane.generate.click()
        _settle(app, controller)
        for row in (0, 4, 9):  # a selection: "Export 3 selected..."
            if row < pane.grid.count():
                pane.grid.item(row).setSelected(True)
        app.processEvents()
        shots.append(save_widget_png(window, out / "synthesis-pane.png"))
    controller.shutdown()
    window.close()
    return shots


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the PNG files")
    parser.add_argument("--models", type=Path, action="append", default=[], metavar="DIR",
                        help="a folder of model bundles (repeatable)")
    args = parser.parse_args(argv)
    for shot in take(args.out, args.models):
        print(f"screenshot: {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
