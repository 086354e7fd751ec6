"""A real Orthanc for the PACS tests: started on the loopback with a generated configuration (free
ports, a temporary storage folder, DICOMweb and DIMSE on, one test user), stopped at the end."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ORTHANC_MISSING = ("Orthanc is not installed (Debian packages orthanc and orthanc-dicomweb: "
                   "apt-get install orthanc orthanc-dicomweb)")
USER, PASSWORD = "mammolens-test", "test-password-1"
CALLING_AE = "MAMMOLENS"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    folder: Path
    http_port: int
    dicom_port: int
    move_port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def servers(self, password_env: str) -> dict:
        """A pacs.json of three servers on this Orthanc: DICOMweb, DIMSE with C-GET, DIMSE with C-MOVE."""
        dimse = {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": self.dicom_port, "calling_ae": CALLING_AE,
                 "timeout": 10}
        return {"servers": {
            "web": {"dicomweb": f"{self.url}/dicom-web", "username": USER, "password_env": password_env,
                    "timeout": 10},
            "dimse": dict(dimse),
            "dimse-move": dict(dimse, retrieve="move", move_port=self.move_port)}}

    def upload(self, path: Path) -> None:
        import requests

        r = requests.post(f"{self.url}/instances", data=path.read_bytes(), auth=(USER, PASSWORD), timeout=30)
        r.raise_for_status()

    def delete_instance(self, sop_uid: str) -> None:
        import requests

        r = requests.post(f"{self.url}/tools/lookup", data=sop_uid, auth=(USER, PASSWORD), timeout=10)
        r.raise_for_status()
        for item in r.json():
            requests.delete(f"{self.url}{item['Path']}", auth=(USER, PASSWORD), timeout=10).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_orthanc(folder: Path) -> Orthanc:
    binary = shutil.which("Orthanc")
    if binary is None or not DICOMWEB_PLUGIN.exists():
        pytest.skip(ORTHANC_MISSING)
    http_port, dicom_port, move_port = free_port(), free_port(), free_port()
    config = {
        "Name": "mammolens-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomModalities": {"mammolens": {"AET": CALLING_AE, "Host": "127.0.0.1", "Port": move_port,
                                          "AllowEcho": True, "AllowFind": True, "AllowGet": True,
                                          "AllowMove": True, "AllowStore": True}},
        "DicomCheckCalledAet": False,
        "UnknownSopClassAccepted": True,
        "StableAge": 1,
        "SaveJobs": False,
        "ConcurrentJobs": 1,
        "HttpThreadsCount": 4,
    }
    (folder / "orthanc.json").write_text(json.dumps(config), encoding="utf-8")
    log = open(folder / "orthanc.log", "wb")
    process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT,
                               cwd=folder)
    server = Orthanc(folder, http_port, dicom_port, move_port, process)
    import requests

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited at start:\n{(folder / 'orthanc.log').read_text(errors='replace')}")
        try:
            if requests.get(f"{server.url}/system", auth=(USER, PASSWORD), timeout=2).ok:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("Orthanc did not answer within 30 s")
