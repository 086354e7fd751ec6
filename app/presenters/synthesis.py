"""The synthesis pane: lesion patches from a class-conditional generator (paper 004), picked and
exported for augmentation."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from app.jobs_qt import JobKey
from app.presenters.base import Context, Presenter


class SynthesisPresenter(Presenter):
    def __init__(self, context: Context):
        super().__init__(context)
        self.engines = context.engines
        self.patches: list = []
        self.session.bundles_changed.connect(self._update_pane)
        self.window.synthesis.generate_requested.connect(self.generate)
        self.window.synthesis.export_requested.connect(self.export)

    def bundle(self):
        from inference.methods import first_usable

        return first_usable(self.session.bundles, "generates_patches")

    def _update_pane(self) -> None:
        from inference.methods import unavailable_reason

        bundle = self.bundle()
        self.window.synthesis.set_available(bundle is not None,
                                            "" if bundle else unavailable_reason(self.session.bundles, "generates_patches"))

    def generate(self, label: str, count: int, seed: int, truncation: float):
        bundle = self.bundle()
        if bundle is None:
            return None
        device = self.session.parameters(bundle.method).get("device", "auto")

        def work(job):
            engine = self.engines.get(bundle, device)
            return engine.generate(label, count, seed, truncation, progress=job.report, cancel=job.token)

        def done(patches):
            from app.patches import Patch

            self.patches = [Patch(np.asarray(p, dtype=np.float32), label, seed, i, truncation, bundle.label)
                            for i, p in enumerate(patches)]
            self.window.synthesis.show_patches(np.asarray(patches), [f"{label} {seed}:{i}" for i in range(len(patches))])

        return self.jobs.submit(f"Generating {count} {label} patches", work, key=JobKey("synthesis"), on_result=done,
                                on_error=self.failed)

    def export(self, indices: list, folder: str):
        from app.patches import export_patches

        chosen = [self.patches[i] for i in indices if i < len(self.patches)]
        if not chosen:
            return None
        return self.jobs.submit(f"Export {len(chosen)} patches", lambda job: export_patches(folder, chosen),
                                key=JobKey("patches", folder), on_error=self.failed,
                                on_result=lambda paths: self.status(
                                    f"Exported {len(chosen)} patch(es) and labels.csv to {Path(folder).name}", 10000))
