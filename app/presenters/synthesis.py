"""The synthesis pane: lesion patches from a class-conditional generator (paper 004), in the
classes the bundle was trained on, picked and exported for augmentation (PNG + DICOM + CSV)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from app.jobs_qt import JobKey
from app.presenters.base import Context, Presenter

EXPORT_FORMATS = ("png8", "png16", "dicom")


class SynthesisPresenter(Presenter):
    def __init__(self, context: Context):
        super().__init__(context)
        self.engines = context.engines
        self.patches: list = []  # inference.patches.Patch of the grid, in order
        self.last_export = None  # inference.patches.ExportSummary
        self.session.bundles_changed.connect(self._update_pane)
        self.window.synthesis.generate_requested.connect(self.generate)
        self.window.synthesis.export_requested.connect(self.export)
        # the dialog starts where the last patches went, else the views' export folder, else home
        self.window.synthesis.export_folder = str(self.settings.value("synthesis/folder", "")
                                                  or self.settings.value("export/folder", "") or Path.home())

    def bundle(self):
        from inference.methods import first_usable

        return first_usable(self.session.bundles, "generates_patches")

    def _update_pane(self) -> None:
        from inference.patches import bundle_classes
        from inference.methods import unavailable_reason

        bundle = self.bundle()
        pane = self.window.synthesis
        pane.set_classes(bundle_classes(bundle) if bundle is not None else [])
        pane.set_available(bundle is not None, "" if bundle else unavailable_reason(self.session.bundles,
                                                                                    "generates_patches"))
        if bundle is None:
            pane.set_bundle_line("")
        else:
            card = bundle.card_line
            pane.set_bundle_line(f"{bundle.name} {bundle.version}: " + (f"model card: {card}" if card else
                                 f"no evaluation card (`mammolens evaluate --method synthesis --model {bundle.name} "
                                 "--labels CSV` writes one)"))

    def generate(self, label: str, count: int, seed: int, truncation: float):
        bundle = self.bundle()
        if bundle is None:
            return None
        device = self.session.parameters(bundle.method).get("device", "auto")

        def work(job):
            from inference.patches import generate_patches

            engine = self.engines.get(bundle, device)
            return generate_patches(engine, label, count, seed, truncation, progress=job.report, cancel=job.token)

        def done(patches):
            self.patches = patches
            self.window.synthesis.show_patches(np.asarray([p.pixels for p in patches]),
                                               [f"{p.label} {p.seed}:{p.index}" for p in patches])

        return self.jobs.submit(f"Generating {count} {label} patches", work, key=JobKey("synthesis"), on_result=done,
                                on_error=self.failed)

    def export(self, indices: list, folder: str):
        from inference.patches import export_patches

        chosen = [self.patches[i] for i in indices if i < len(self.patches)]
        if not chosen:
            return None

        self.settings.setValue("synthesis/folder", str(folder))
        self.window.synthesis.export_folder = str(folder)

        def done(summary):
            self.last_export = summary
            self.status(f"Exported {len(chosen)} patch(es) as {len(summary.files)} file(s) "
                        f"(PNG 8 / 16 bit, DICOM) with {summary.csv.name} to {Path(folder).resolve()}", 15000)

        return self.jobs.submit(f"Export {len(chosen)} patches", lambda job: export_patches(chosen, folder, EXPORT_FORMATS),
                                key=JobKey("patches", folder), on_result=done, on_error=self.failed)
