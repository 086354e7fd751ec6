"""File > Open from PACS: query fields, the studies found, retrieve with progress and cancel, open.

Widgets only: the presenter (app.presenters.pacs) does the querying and retrieving and calls the
``set_*`` methods with what to show.
"""
from __future__ import annotations

from PySide6 import QtCore, QtWidgets

COLUMNS = ("Date", "Modalities", "Instances", "Description", "Study Instance UID")


class PacsDialog(QtWidgets.QDialog):
    search_requested = QtCore.Signal(dict)  # server, patient_id, date_from, date_to, modality, accession
    retrieve_requested = QtCore.Signal(str, list)  # server, study UIDs
    cancel_requested = QtCore.Signal()
    open_requested = QtCore.Signal(list)  # folders

    def __init__(self, servers: list[str], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Open from PACS")
        self.resize(820, 480)
        self.folders: list[str] = []
        layout = QtWidgets.QVBoxLayout(self)
        form = QtWidgets.QFormLayout()
        self.server = QtWidgets.QComboBox()
        self.server.addItems(servers)
        self.patient_id = QtWidgets.QLineEdit()
        self.date_from = QtWidgets.QLineEdit()
        self.date_from.setPlaceholderText("YYYY-MM-DD")
        self.date_to = QtWidgets.QLineEdit()
        self.date_to.setPlaceholderText("YYYY-MM-DD")
        dates = QtWidgets.QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QtWidgets.QLabel("to"))
        dates.addWidget(self.date_to)
        self.modality = QtWidgets.QLineEdit("MG")
        self.accession = QtWidgets.QLineEdit()
        form.addRow("Server", self.server)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Study date", dates)
        form.addRow("Modality", self.modality)
        form.addRow("Accession number", self.accession)
        layout.addLayout(form)
        self.search_button = QtWidgets.QPushButton("&Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self._search)
        layout.addWidget(self.search_button, alignment=QtCore.Qt.AlignmentFlag.AlignLeft)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        layout.addWidget(self.table)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)
        buttons = QtWidgets.QHBoxLayout()
        self.retrieve_button = QtWidgets.QPushButton("&Retrieve")
        self.retrieve_button.clicked.connect(self._retrieve)
        self.cancel_button = QtWidgets.QPushButton("&Cancel retrieve")
        self.cancel_button.clicked.connect(self.cancel_requested.emit)
        self.open_button = QtWidgets.QPushButton("&Open")
        self.open_button.clicked.connect(lambda: self.open_requested.emit(list(self.folders)))
        self.close_button = QtWidgets.QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        for b in (self.retrieve_button, self.cancel_button, self.open_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        self._busy = False
        self._update_buttons()

    # ------------------------------------------------------------------ user actions
    def query(self) -> dict:
        return {"server": self.server.currentText(), "patient_id": self.patient_id.text().strip(),
                "date_from": self.date_from.text().strip(), "date_to": self.date_to.text().strip(),
                "modality": self.modality.text().strip(), "accession": self.accession.text().strip()}

    def _search(self) -> None:
        self.search_requested.emit(self.query())

    def selected_uids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.table.item(r, len(COLUMNS) - 1).text() for r in rows]

    def _retrieve(self) -> None:
        uids = self.selected_uids()
        if uids:
            self.retrieve_requested.emit(self.server.currentText(), uids)

    def _update_buttons(self) -> None:
        self.search_button.setEnabled(not self._busy and self.server.count() > 0)
        self.retrieve_button.setEnabled(not self._busy and bool(self.selected_uids()))
        self.cancel_button.setEnabled(self._busy)
        self.open_button.setEnabled(not self._busy and bool(self.folders))

    # ------------------------------------------------------------------ shown by the presenter
    def set_results(self, rows: list[tuple[str, str, str, str, str]]) -> None:
        self.table.setRowCount(0)
        for row in rows:
            r = self.table.rowCount()
            self.table.insertRow(r)
            for c, text in enumerate(row):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        if rows:
            self.table.selectRow(0)
        self.set_message(f"{len(rows)} study(ies) found" if rows else "No study matches.")
        self._update_buttons()

    def set_busy(self, busy: bool, text: str = "") -> None:
        self._busy = busy
        self.progress.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)
            self.folders = []
        if text:
            self.set_message(text)
        self._update_buttons()

    def set_progress(self, done: int, total: int, text: str = "") -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"%v / %m {text}".rstrip())

    def set_retrieved(self, folders: list[str], text: str) -> None:
        self.folders = list(folders)
        self.set_busy(False, text)

    def set_message(self, text: str) -> None:
        self.message.setText(text)
