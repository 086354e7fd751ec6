"""Studies from a PACS and results back to it: DICOMweb (QIDO-RS / WADO-RS / STOW-RS, dicomweb-client)
and DIMSE (C-ECHO / C-FIND / C-GET / C-MOVE / C-STORE, pynetdicom). Qt-free.

Servers are configured by name in ``pacs.json`` (``MAMMOLENS_PACS_CONFIG``, else the user's
config folder)::

    {"servers": {
       "hospital-web": {"dicomweb": "https://pacs.example.org/dicom-web", "username": "me",
                        "password_env": "PACS_PASSWORD"},
       "hospital":     {"ae_title": "PACS", "host": "pacs.example.org", "port": 104,
                        "calling_ae": "MAMMOLENS", "retrieve": "get"}}}

Credentials come from the environment (``password_env``) or a file readable by the user only
(``credentials_file``: ``{"username": ..., "password": ...}``); they are never logged, shown or
written into outputs. A retrieve goes into a local cache, one study a folder, one file per
instance, each written atomically: nothing half-written is ever there, and a retry fetches only
the instances still missing. Every failure is one :class:`PacsError` sentence.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from inference.errors import MammolensError
from inference.files import atomic_open

log = logging.getLogger("mammolens.pacs")
# their INFO / DEBUG records carry query URLs and identifiers (patient IDs in QIDO and C-FIND):
# kept out of any log the application sets up
for _name in ("dicomweb_client", "pynetdicom"):
    logging.getLogger(_name).setLevel(logging.WARNING)

Progress = Callable[[int, int, str], None]
CONFIG_ENV = "MAMMOLENS_PACS_CONFIG"
CACHE_ENV = "MAMMOLENS_PACS_CACHE"

# Storage classes a C-GET accepts (the SCU takes the SCP role for them): the images mammolens
# opens and the objects it writes. Plus the transfer syntaxes it decodes, so nothing is transcoded.
_STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # ... For Processing
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray For Presentation
    "1.2.840.10008.5.1.4.1.1.13.1.3",  # Breast Tomosynthesis
    "1.2.840.10008.5.1.4.1.1.13.1.4",  # Breast Projection X-Ray For Presentation
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
)
_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.5",
)

#: The compressed syntaxes a C-GET offers a context of its own each (lossless ones, and JPEG 2000).
_GET_COMPRESSED = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.80",
                   "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.5")


class PacsError(MammolensError):
    """A PACS operation that failed: one sentence naming the server and what went wrong."""


@dataclass(frozen=True)
class Server:
    """A PACS by name: a DICOMweb URL, or an AE title / host / port (DIMSE)."""

    name: str
    dicomweb: str | None = None
    ae_title: str | None = None
    host: str | None = None
    port: int | None = None
    calling_ae: str = "MAMMOLENS"
    retrieve: str = "get"  # DIMSE: "get" (C-GET) or "move" (C-MOVE to our own storage SCP)
    move_port: int | None = None  # C-MOVE: the port our storage SCP listens on (the PACS knows it)
    username: str | None = None
    password_env: str | None = field(default=None, repr=False)
    credentials_file: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    @property
    def protocol(self) -> str:
        return "DICOMweb" if self.dicomweb else "DIMSE"

    @property
    def where(self) -> str:
        return self.dicomweb if self.dicomweb else f"{self.ae_title}@{self.host}:{self.port}"

    def credentials(self) -> tuple[str, str] | None:
        """(user, password) from the environment or the user-only credentials file, or None."""
        if self.credentials_file:
            path = Path(self.credentials_file).expanduser()
            try:
                mode = path.stat().st_mode
            except OSError:
                raise PacsError(f"{self.name}: the credentials file {path.name} cannot be read.") from None
            if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise PacsError(f"{self.name}: the credentials file {path.name} is readable by other users; "
                                f"make it yours only (chmod 600 {path.name}).")
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                return str(data.get("username", self.username or "")), str(data["password"])
            except (OSError, ValueError, KeyError, AttributeError):
                raise PacsError(f"{self.name}: the credentials file {path.name} does not hold "
                                '{"username": ..., "password": ...}.') from None
        if self.password_env:
            password = os.environ.get(self.password_env)
            if password is None:
                raise PacsError(f"{self.name}: the environment variable {self.password_env} that holds the "
                                "password is not set.")
            return str(self.username or ""), password
        return None


@dataclass(frozen=True)
class StudyHit:
    """One study a query found (patient ID / name only for display where the user asked for them)."""

    study_uid: str
    date: str = ""
    description: str = ""
    modalities: str = ""
    accession: str = ""
    patient_id: str = field(default="", repr=False)
    patient_name: str = field(default="", repr=False)
    instances: int | None = None


@dataclass(frozen=True)
class Query:
    patient_id: str | None = None
    date_from: str | None = None  # YYYYMMDD
    date_to: str | None = None
    modality: str | None = None
    accession: str | None = None
    study_uid: str | None = None

    def date_range(self) -> str | None:
        if not (self.date_from or self.date_to):
            return None
        return f"{self.date_from or ''}-{self.date_to or ''}"


# ---------------------------------------------------------------------------------------------
# configuration


def config_path() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    import platformdirs

    return Path(platformdirs.user_config_dir("mammolens", appauthor=False)) / "pacs.json"


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("mammolens", appauthor=False)) / "pacs"


_FIELDS = {"dicomweb", "ae_title", "host", "port", "calling_ae", "retrieve", "move_port", "username",
           "password_env", "credentials_file", "timeout"}


def load_servers(path: str | Path | None = None) -> dict[str, Server]:
    """The servers of ``pacs.json`` by name; a missing file is no server, a broken one one sentence."""
    path = Path(path) if path is not None else config_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["servers"]
        if not isinstance(entries, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise PacsError(f"{path.name} is not a PACS configuration ({{\"servers\": {{name: {{...}}}}}}).") from None
    servers = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise PacsError(f"{path.name}: server {name!r} is not an object of settings.")
        if "password" in entry:
            raise PacsError(f"{path.name}: server {name!r} holds a password; use password_env or credentials_file.")
        unknown = sorted(set(entry) - _FIELDS)
        if unknown:
            raise PacsError(f"{path.name}: server {name!r} has unknown setting(s) {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(_FIELDS))}).")
        if not entry.get("dicomweb") and not (entry.get("ae_title") and entry.get("host") and entry.get("port")):
            raise PacsError(f"{path.name}: server {name!r} needs either dicomweb (a URL) or ae_title, host and port.")
        if entry.get("retrieve", "get") not in ("get", "move"):
            raise PacsError(f"{path.name}: server {name!r}: retrieve must be 'get' or 'move'.")
        servers[name] = Server(name=name, **entry)
    return servers


def server_named(name: str, path: str | Path | None = None) -> Server:
    servers = load_servers(path)
    if name not in servers:
        known = ", ".join(sorted(servers)) or "none"
        raise PacsError(f"no PACS server named {name!r} in {(Path(path) if path else config_path()).name} "
                        f"(configured: {known}).")
    return servers[name]


# ---------------------------------------------------------------------------------------------
# the cache


def _missing(client, study_uid: str, cache: str | Path) -> tuple[Path, list, list]:
    """The study's cache folder, the (series, SOP Instance UID) of its instances on the server, and
    of those not in the cache yet (a retry fetches only those); PacsError when the server has none."""
    folder = study_folder(cache, study_uid)
    wanted = client.instances(study_uid)
    if not wanted:
        raise PacsError(f"{client.server.name}: the study is not on the server (no instance found).")
    have = _cached(folder)
    return folder, wanted, [(se, sop) for se, sop in wanted if sop not in have]


def study_folder(cache: str | Path, study_uid: str) -> Path:
    """Where a study's instances go: a folder named by a hash of its Study Instance UID."""
    return Path(cache) / f"study-{hashlib.sha256(study_uid.encode()).hexdigest()[:16]}"


def _cached(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.dcm")} if folder.is_dir() else set()


def _store(folder: Path, ds) -> Path:
    """One retrieved instance, atomically, named by its SOP Instance UID."""
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    with atomic_open(path, "wb") as f:
        ds.save_as(f, enforce_file_format=True)
    return path


def _check_complete(server: Server, folder: Path, expected: set[str]) -> Path:
    missing = expected - _cached(folder)
    if missing:
        raise PacsError(f"{server.name}: {len(expected) - len(missing)} of {len(expected)} instances were retrieved "
                        f"({len(missing)} missing: the study changed on the server or the transfer broke off); "
                        "retry to fetch the rest.")
    return folder


# ---------------------------------------------------------------------------------------------
# clients


def client(server: Server) -> "DicomWebClient | DimseClient":
    return DicomWebClient(server) if server.dicomweb else DimseClient(server)


class DicomWebClient:
    """QIDO-RS, WADO-RS and STOW-RS through dicomweb-client, over one requests session."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._client = None

    def _api(self):
        if self._client is None:
            import requests
            from dicomweb_client.api import DICOMwebClient

            session = requests.Session()
            credentials = self.server.credentials()
            if credentials is not None:
                session.auth = credentials
            self._client = DICOMwebClient(self.server.dicomweb, session=session, timeout=self.server.timeout)
            # its retries back off for 30 s on any exception (a refused connection too): one try, one sentence
            self._client.set_http_retry_params(retry=False)
        return self._client

    def _call(self, what: str, fn, *args, **kwargs):
        import requests

        s = self.server
        try:
            return fn(*args, **kwargs)
        except requests.exceptions.Timeout:
            raise PacsError(f"{s.name}: {s.where} did not answer within {s.timeout:g} s ({what}).") from None
        except requests.exceptions.ConnectionError:
            raise PacsError(f"{s.name}: {s.where} does not answer (is the server running, and the URL right?).") \
                from None
        except requests.exceptions.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 0
            if code in (401, 403):
                raise PacsError(f"{s.name}: the server refused the credentials (HTTP {code}); check the user name "
                                "and password.") from None
            if code == 404:
                raise PacsError(f"{s.name}: not found on the server ({what}): it may have been deleted.") from None
            raise PacsError(f"{s.name}: the server answered HTTP {code} to {what}.") from None

    def echo(self) -> float:
        start = time.perf_counter()
        self._call("a query", self._api().search_for_studies, limit=1)
        return time.perf_counter() - start

    def query(self, q: Query) -> list[StudyHit]:
        filters = {k: v for k, v in (("PatientID", q.patient_id), ("StudyDate", q.date_range()),
                                     ("ModalitiesInStudy", q.modality), ("AccessionNumber", q.accession),
                                     ("StudyInstanceUID", q.study_uid)) if v}
        found = self._call("a study query", self._api().search_for_studies, search_filters=filters,
                           fields=["StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"])
        return [_hit_from_json(item) for item in found or []]

    def instances(self, study_uid: str) -> list[tuple[str, str]]:
        found = self._call("an instance query", self._api().search_for_instances, study_instance_uid=study_uid)
        return [(_json_value(i, "0020000E"), _json_value(i, "00080018")) for i in found or []]

    def pull(self, study_uid: str, cache: str | Path, progress: Progress | None = None, cancel=None) -> Path:
        folder, wanted, todo = _missing(self, study_uid, cache)
        for i, (series_uid, sop_uid) in enumerate(todo):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if progress:
                progress(len(wanted) - len(todo) + i, len(wanted), "retrieving")
            ds = self._call("a retrieve", self._api().retrieve_instance, study_uid, series_uid, sop_uid,
                            media_types=(("application/dicom", "*"),))
            _store(folder, ds)
        if progress:
            progress(len(wanted), len(wanted), "retrieved")
        return _check_complete(self.server, folder, {sop for _, sop in wanted})

    def push(self, paths: Sequence[str | Path], progress: Progress | None = None) -> int:
        datasets = _read_all(paths)
        for i, ds in enumerate(datasets):
            if progress:
                progress(i, len(datasets), "storing")
            self._call("a store", self._api().store_instances, [ds])
        if progress:
            progress(len(datasets), len(datasets), "stored")
        return len(datasets)


def _json_value(item: dict, tag: str, default: str = "") -> str:
    value = (item.get(tag) or {}).get("Value") or [default]
    v = value[0]
    if isinstance(v, dict):  # a person name
        return str(v.get("Alphabetic", ""))
    return str(v) if len(value) == 1 else "\\".join(str(x) for x in value)


def _hit_from_json(item: dict) -> StudyHit:
    n = _json_value(item, "00201208")
    return StudyHit(study_uid=_json_value(item, "0020000D"), date=_json_value(item, "00080020"),
                    description=_json_value(item, "00081030"), modalities=_json_value(item, "00080061"),
                    accession=_json_value(item, "00080050"), patient_id=_json_value(item, "00100020"),
                    patient_name=_json_value(item, "00100010"), instances=int(n) if n.isdigit() else None)


class DimseClient:
    """C-ECHO, C-FIND, C-GET / C-MOVE and C-STORE through pynetdicom, one association per operation."""

    def __init__(self, server: Server) -> None:
        self.server = server

    # ------------------------------------------------------------------ associations
    def _ae(self):
        from pynetdicom import AE

        ae = AE(ae_title=self.server.calling_ae)
        t = self.server.timeout
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = t
        ae.connection_timeout = t
        return ae

    def _reachable(self) -> None:
        s = self.server
        try:
            socket.create_connection((s.host, int(s.port)), timeout=s.timeout).close()
        except socket.timeout:
            raise PacsError(f"{s.name}: {s.where} did not answer within {s.timeout:g} s.") from None
        except OSError:
            raise PacsError(f"{s.name}: {s.where} does not answer (is the server running, and the host and port "
                            "right?).") from None

    def _associate(self, ae, **kwargs):
        s = self.server
        self._reachable()
        assoc = ae.associate(s.host, int(s.port), ae_title=s.ae_title, **kwargs)
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            raise PacsError(f"{s.name}: the server refused the association (is the calling AE title "
                            f"{s.calling_ae} known to it, and its AE title {s.ae_title}?).")
        raise PacsError(f"{s.name}: no association with {s.where} (aborted or timed out after {s.timeout:g} s).")

    def _status(self, status, what: str) -> int:
        s = self.server
        if status is None or "Status" not in status:
            raise PacsError(f"{s.name}: {what} got no answer within {s.timeout:g} s (the association was dropped).")
        return int(status.Status)

    # ------------------------------------------------------------------ operations
    def echo(self) -> float:
        from pynetdicom.sop_class import Verification

        ae = self._ae()
        ae.add_requested_context(Verification)
        start = time.perf_counter()
        assoc = self._associate(ae)
        try:
            code = self._status(assoc.send_c_echo(), "C-ECHO")
        finally:
            assoc.release()
        if code != 0:
            raise PacsError(f"{self.server.name}: C-ECHO answered status 0x{code:04X}.")
        return time.perf_counter() - start

    def _find(self, identifier) -> list:
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as Find

        ae = self._ae()
        ae.add_requested_context(Find)
        assoc = self._associate(ae)
        out = []
        try:
            for status, ds in assoc.send_c_find(identifier, Find):
                code = self._status(status, "C-FIND")
                if code in (0xFF00, 0xFF01) and ds is not None:
                    out.append(ds)
                elif code != 0:
                    raise PacsError(f"{self.server.name}: C-FIND answered status 0x{code:04X}.")
        finally:
            assoc.release()
        return out

    def query(self, q: Query) -> list[StudyHit]:
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = q.study_uid or ""
        ds.PatientID = q.patient_id or ""
        ds.PatientName = ""
        ds.StudyDate = q.date_range() or ""
        ds.ModalitiesInStudy = q.modality or ""
        ds.AccessionNumber = q.accession or ""
        ds.StudyDescription = ""
        ds.NumberOfStudyRelatedInstances = ""
        hits = []
        for r in self._find(ds):
            n = r.get("NumberOfStudyRelatedInstances")
            modalities = r.get("ModalitiesInStudy", "")
            hits.append(StudyHit(
                study_uid=str(r.get("StudyInstanceUID", "")), date=str(r.get("StudyDate", "") or ""),
                description=str(r.get("StudyDescription", "") or ""),
                modalities="\\".join(modalities) if not isinstance(modalities, str) else modalities,
                accession=str(r.get("AccessionNumber", "") or ""), patient_id=str(r.get("PatientID", "") or ""),
                patient_name=str(r.get("PatientName", "") or ""),
                instances=int(n) if n not in (None, "") else None))
        return hits

    def instances(self, study_uid: str) -> list[tuple[str, str]]:
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = ""
        ds.SOPInstanceUID = ""
        return [(str(r.SeriesInstanceUID), str(r.SOPInstanceUID)) for r in self._find(ds)]

    def _storage_handler(self, folder: Path, received: list):
        from pynetdicom import evt

        def handle(event):
            try:
                ds = event.dataset
                ds.file_meta = event.file_meta
                _store(folder, ds)
                received.append(str(ds.SOPInstanceUID))
                return 0x0000
            except Exception:  # noqa: BLE001 - the PACS is told "failed"; the retry fetches it again
                log.warning("an instance could not be stored in the cache", exc_info=log.isEnabledFor(logging.DEBUG))
                return 0xA700

        return (evt.EVT_C_STORE, handle)

    def _identifier(self, study_uid: str, series_uid: str, sop_uid: str):
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = sop_uid
        return ds

    def pull(self, study_uid: str, cache: str | Path, progress: Progress | None = None, cancel=None) -> Path:
        folder, wanted, todo = _missing(self, study_uid, cache)
        if todo:
            folder.mkdir(parents=True, exist_ok=True)
            (self._get if self.server.retrieve == "get" else self._move)(study_uid, todo, folder, len(wanted),
                                                                          progress, cancel)
        if progress:
            progress(len(wanted), len(wanted), "retrieved")
        return _check_complete(self.server, folder, {sop for _, sop in wanted})

    def _retrieve_loop(self, assoc, send, study_uid, todo, total, progress, cancel, what: str) -> None:
        done0 = total - len(todo)
        for i, (series_uid, sop_uid) in enumerate(todo):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if progress:
                progress(done0 + i, total, "retrieving")
            for status, _ in send(self._identifier(study_uid, series_uid, sop_uid)):
                code = self._status(status, what)
                if code not in (0x0000, 0xFF00, 0xFE00, 0xB000):
                    raise PacsError(f"{self.server.name}: {what} answered status 0x{code:04X} (the instance may "
                                    "have been deleted, or the server does not allow retrieving it).")

    def _get(self, study_uid, todo, folder, total, progress, cancel) -> None:
        from pynetdicom import build_role
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as Get

        ae = self._ae()
        ae.add_requested_context(Get)
        # one context per compressed syntax (an SCP accepts one syntax per context, and cannot always
        # transcode what it stores compressed): 12 classes x 6 contexts stay under the 128 allowed
        for uid in _STORAGE_CLASSES:
            ae.add_requested_context(uid, list(_TRANSFER_SYNTAXES[:2]))
            for syntax in _GET_COMPRESSED:
                ae.add_requested_context(uid, [syntax])
        roles = [build_role(uid, scp_role=True) for uid in _STORAGE_CLASSES]
        received: list[str] = []
        assoc = self._associate(ae, ext_neg=roles, evt_handlers=[self._storage_handler(folder, received)])
        try:
            self._retrieve_loop(assoc, lambda ds: assoc.send_c_get(ds, Get), study_uid, todo, total, progress,
                                cancel, "C-GET")
        finally:
            assoc.release()

    def _move(self, study_uid, todo, folder, total, progress, cancel) -> None:
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as Move

        s = self.server
        if not s.move_port:
            raise PacsError(f"{s.name}: C-MOVE needs move_port, the port mammolens listens on for the images "
                            f"(and the PACS must know AE title {s.calling_ae} at that port).")
        store_ae = self._ae()
        for uid in _STORAGE_CLASSES:
            store_ae.add_supported_context(uid, list(_TRANSFER_SYNTAXES))
        received: list[str] = []
        try:
            scp = store_ae.start_server(("127.0.0.1" if s.host in ("127.0.0.1", "localhost") else "",
                                         int(s.move_port)), block=False,
                                        evt_handlers=[self._storage_handler(folder, received)])
        except OSError:
            raise PacsError(f"{s.name}: cannot listen on port {s.move_port} for C-MOVE (is it in use?).") from None
        try:
            ae = self._ae()
            ae.add_requested_context(Move)
            assoc = self._associate(ae)
            try:
                self._retrieve_loop(assoc, lambda ds: assoc.send_c_move(ds, s.calling_ae, Move), study_uid, todo,
                                    total, progress, cancel, "C-MOVE")
            finally:
                assoc.release()
        finally:
            scp.shutdown()

    def push(self, paths: Sequence[str | Path], progress: Progress | None = None) -> int:
        datasets = _read_all(paths)
        ae = self._ae()
        for uid in sorted({str(ds.SOPClassUID) for ds in datasets}):
            ae.add_requested_context(uid, sorted({str(ds.file_meta.TransferSyntaxUID) for ds in datasets
                                                  if str(ds.SOPClassUID) == uid}))
        assoc = self._associate(ae)
        try:
            for i, ds in enumerate(datasets):
                if progress:
                    progress(i, len(datasets), "storing")
                try:
                    status = assoc.send_c_store(ds)
                except ValueError:  # no accepted presentation context for its SOP class / transfer syntax
                    raise PacsError(f"{self.server.name}: the server does not accept {ds.SOPClassUID.name} objects "
                                    f"in {ds.file_meta.TransferSyntaxUID.name}.") from None
                code = self._status(status, "C-STORE")
                if code not in (0x0000, 0xB000, 0xB007, 0xB006):
                    raise PacsError(f"{self.server.name}: C-STORE of instance {i + 1} answered status 0x{code:04X}.")
        finally:
            assoc.release()
        if progress:
            progress(len(datasets), len(datasets), "stored")
        return len(datasets)


def _read_all(paths: Sequence[str | Path]) -> list:
    import pydicom

    out = []
    for p in map(Path, paths):
        try:
            out.append(pydicom.dcmread(p))
        except Exception:  # noqa: BLE001 - whatever pydicom raises, it is not a file to send
            raise PacsError(f"{p.name} is not a DICOM file that can be sent.") from None
    return out


def dicom_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to push: files as given, folders walked for ``*.dcm``."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*.dcm") if f.is_file() and not f.name.startswith("."))
        elif p.is_file():
            out.append(p)
        else:
            raise PacsError(f"{p.name} does not exist.")
    if not out:
        raise PacsError("there is no DICOM file to send.")
    return out
