"""DICOM results and PACS in the viewer: File > Open from PACS (query, retrieve into the cache with
progress and cancel, open), File > Export DICOM results and the Overlay panel's "Send to PACS"
(the current result as Parametric Map, SEG and SR; STOW-RS or C-STORE). The work runs as jobs;
the dialog is viewer.pacs_dialog."""
from __future__ import annotations

import tempfile
from pathlib import Path

from app.jobs_qt import JobKey
from app.presenters.base import Context, Presenter


class PacsPresenter(Presenter):
    def __init__(self, context: Context, open_study):
        super().__init__(context)
        self.open_study = open_study  # StudyPresenter.open
        self.dialog = None
        self.last_pushed: list[Path] = []
        self.window.actions["open_pacs"].triggered.connect(self.show_dialog)
        self.window.overlay_panel.send_requested.connect(self.send_current)
        self.jobs.changed.connect(self._show_progress)
        self.window.export_dicom_requested.connect(self.export_dicom)
        self.last_dicom_export: list[Path] = []

    # ------------------------------------------------------------------ servers
    def _servers(self) -> dict:
        from inference.pacs import load_servers

        return load_servers()

    def _server_for_sending(self, servers: dict) -> str | None:
        remembered = str(self.settings.value("pacs/server", "") or "")
        return remembered if remembered in servers else next(iter(servers), None)

    # ------------------------------------------------------------------ open from PACS
    def show_dialog(self):
        from inference.pacs import PacsError, config_path
        from viewer.pacs_dialog import PacsDialog

        try:
            servers = self._servers()
        except PacsError as exc:
            self.failed(str(exc))
            return None
        if self.dialog is None:
            self.dialog = PacsDialog(sorted(servers), self.window)
            self.dialog.search_requested.connect(self.search)
            self.dialog.retrieve_requested.connect(self.retrieve)
            self.dialog.cancel_requested.connect(self.cancel)
            self.dialog.open_requested.connect(self.open_retrieved)
        remembered = str(self.settings.value("pacs/server", "") or "")
        if remembered in servers:
            self.dialog.server.setCurrentText(remembered)
        if not servers:
            self.dialog.set_message(f"No PACS server is configured: name one in {config_path()} "
                                    "(see the README, \"DICOM results and PACS\").")
        self.dialog.show()
        return self.dialog

    def search(self, fields: dict):
        from inference import pacs

        dialog = self.dialog
        name = fields["server"]
        for key in ("date_from", "date_to"):
            digits = fields[key].replace("-", "")
            if digits and not (len(digits) == 8 and digits.isdigit()):
                dialog.set_message(f"{fields[key]!r} is not a date: write YYYY-MM-DD.")
                return None
        self.settings.setValue("pacs/server", name)
        query = pacs.Query(patient_id=fields["patient_id"] or None,
                           date_from=fields["date_from"].replace("-", "") or None,
                           date_to=fields["date_to"].replace("-", "") or None,
                           modality=fields["modality"] or None, accession=fields["accession"] or None)

        def work(job):
            return pacs.client(pacs.server_named(name)).query(query)

        def done(hits):
            dialog.set_busy(False)
            dialog.set_results([(h.date, h.modalities, "" if h.instances is None else str(h.instances),
                                 h.description, h.study_uid) for h in hits])

        def failed(message, details=""):
            dialog.set_busy(False, message)

        dialog.set_busy(True, f"Searching {name}...")
        return self.jobs.submit(f"PACS query on {name}", work, key=JobKey("pacs", name, "query"), on_result=done,
                                on_error=failed, on_cancel=lambda: dialog.set_busy(False, "Search cancelled."))

    def retrieve(self, name: str, study_uids: list):
        from inference import pacs

        dialog = self.dialog
        cache = pacs.cache_root()

        def work(job):
            client = pacs.client(pacs.server_named(name))
            folders = []
            for i, uid in enumerate(study_uids):
                def progress(done, total, message, i=i):
                    job.report(done, total, f"study {i + 1} of {len(study_uids)}: {message}")
                folders.append(str(client.pull(uid, cache, progress=progress, cancel=job.token)))
            return folders

        def done(folders):
            dialog.set_retrieved(folders, f"Retrieved {len(folders)} study(ies) into the cache: Open shows them.")

        def failed(message, details=""):
            dialog.set_busy(False, message + " What was retrieved stays in the cache; Retrieve again fetches the rest.")

        def cancelled():
            dialog.set_busy(False, "Retrieve cancelled: what was retrieved stays in the cache; Retrieve again "
                                   "fetches the rest.")

        dialog.set_busy(True, f"Retrieving {len(study_uids)} study(ies) from {name}...")
        return self.jobs.submit(f"PACS retrieve from {name}", work, key=JobKey("pacs", name, "retrieve"),
                                on_result=done, on_error=failed, on_cancel=cancelled)

    def _show_progress(self) -> None:
        if self.dialog is None:
            return
        for job in self.jobs.running():
            if isinstance(job.key, JobKey) and job.key.kind == "pacs" and job.key.detail == "retrieve":
                done, total, message = job.progress_state
                if total:
                    self.dialog.set_progress(done, total, message)

    def cancel(self) -> None:
        for job in self.jobs.running():
            if isinstance(job.key, JobKey) and job.key.kind == "pacs":
                job.cancel()

    def open_retrieved(self, folders: list) -> None:
        if not folders:
            return
        # one study: its folder; several: their common cache folder holds them all
        target = folders[0] if len(folders) == 1 else str(Path(folders[0]).parent)
        if self.open_study(target) is not None and self.dialog is not None:
            self.dialog.accept()

    # ------------------------------------------------------------------ results as DICOM objects
    def _current_result(self, verb: str):
        image = self.session.current
        state = self.session.state(image) if image is not None else None
        bundle = state.overlay if state is not None else None
        result = self.session.result(image, state.frame, bundle) if bundle is not None else None
        if result is None:
            self.status(f"Nothing to {verb}: show a method's map on this view first")
            return None
        return image, state.frame, bundle, result

    def export_dicom(self, folder):
        """File > Export DICOM results: the current view's result as Parametric Map, SEG and SR."""
        from inference.dicom_results import write_image_result

        current = self._current_result("export")
        if current is None:
            return None
        image, frame, bundle, result = current
        folder = Path(folder)
        self.settings.setValue("export/folder", str(folder))
        stem = self.session.export_stem(image, frame)

        def work(job):
            return write_image_result(image, frame, result, bundle, folder, stem).paths()

        def done(paths):
            self.last_dicom_export = paths
            self.status("Exported " + ", ".join(p.name for p in paths), 10000)

        return self.jobs.submit(f"Export DICOM {stem}", work, key=JobKey("export", stem, "dicom"), on_result=done,
                                on_error=self.failed)

    def send_current(self):
        """The current view's result (its shown frame) as Parametric Map, SEG and SR, to the server
        last used (the first configured one otherwise)."""
        from inference import pacs
        from inference.dicom_results import write_image_result

        current = self._current_result("send")
        if current is None:
            return None
        image, frame, bundle, result = current
        try:
            servers = self._servers()
        except pacs.PacsError as exc:
            self.failed(str(exc))
            return None
        name = self._server_for_sending(servers)
        if name is None:
            self.failed(f"No PACS server is configured: name one in {pacs.config_path()}.")
            return None
        stem = self.session.export_stem(image, frame)

        def work(job):
            with tempfile.TemporaryDirectory(prefix="mammolens-send-") as folder:
                files = write_image_result(image, frame, result, bundle, folder, stem).paths()
                pacs.client(servers[name]).push(files, progress=job.report)
                return [Path(p).name for p in files]

        def done(names):
            self.last_pushed = names
            self.status(f"Sent {', '.join(names)} to {name}", 10000)

        return self.jobs.submit(f"Send to {name}", work, key=JobKey("pacs", name, "send"), on_result=done,
                                on_error=self.failed)
