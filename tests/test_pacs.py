"""PACS against a real Orthanc on the loopback (tests/orthanc.py): query and retrieve over DICOMweb,
C-GET and C-MOVE, resume of a partial retrieve, one sentence per failure, `mammolens pacs`, and a
study going Orthanc -> analysis -> SEG / SR -> Orthanc and back. Skipped where Orthanc is absent."""
from __future__ import annotations

import json
import os
import socket

import numpy as np
import pydicom
import pytest

from tests.conftest import sr_content_items
from tests.orthanc import PASSWORD, USER, free_port, start_orthanc

PASSWORD_ENV = "MAMMOLENS_TEST_PACS_PASSWORD"
PROTOCOLS = ("web", "dimse", "dimse-move")


def _demo_files():
    from app.gui import demo_study_path

    return sorted(demo_study_path().glob("*.dcm"))


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    folder = tmp_path_factory.mktemp("orthanc")
    server = start_orthanc(folder)
    try:
        for f in _demo_files():
            server.upload(f)
        config = folder / "pacs.json"
        config.write_text(json.dumps(server.servers(PASSWORD_ENV)), encoding="utf-8")
        server.config = config
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def _client(orthanc, name):
    from inference import pacs

    return pacs.client(pacs.server_named(name, orthanc.config))


def _demo_uid() -> str:
    return str(pydicom.dcmread(_demo_files()[0], stop_before_pixels=True).StudyInstanceUID)


@pytest.mark.parametrize("name", PROTOCOLS)
def test_query_and_retrieve(orthanc, name, tmp_path):
    from inference.pacs import Query
    from inference.studies.study import open_path

    client = _client(orthanc, name)
    assert client.echo() > 0
    hits = client.query(Query(patient_id="PHANTOM-1", date_from="20250101", date_to="20261231", modality="MG"))
    assert [h.study_uid for h in hits] == [_demo_uid()] and hits[0].date == "20260101"
    count = hits[0].instances  # the demo's 5 (and what other tests of this module sent into the study)
    assert client.query(Query(patient_id="PHANTOM-1", date_from="20270101")) == []
    steps = []
    folder = client.pull(_demo_uid(), tmp_path, progress=lambda d, t, m: steps.append((d, t)))
    local = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in _demo_files()}
    assert set(local) <= {p.stem for p in folder.glob("*.dcm")} and len(list(folder.glob("*.dcm"))) == count
    assert steps[0] == (0, count) and steps[-1] == (count, count)
    rcc = next(uid for uid, f in local.items() if f.name == "MG_RCC.dcm")
    np.testing.assert_array_equal(pydicom.dcmread(folder / f"{rcc}.dcm").pixel_array,
                                  pydicom.dcmread(local[rcc]).pixel_array)
    assert len(open_path(folder).images()) == 5
    # a retry fetches only what is missing
    for p in sorted(folder.glob("*.dcm"))[:2]:
        p.unlink()
    steps.clear()
    client.pull(_demo_uid(), tmp_path, progress=lambda d, t, m: steps.append((d, t)))
    assert steps[0] == (count - 2, count) and len(list(folder.glob("*.dcm"))) == count
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporaries left


@pytest.mark.parametrize("name", ("web", "dimse"))
def test_failures_are_one_sentence(orthanc, name, tmp_path, monkeypatch):
    from inference.pacs import PacsError, Query, Server, client

    good = _client(orthanc, name).server
    down = free_port()  # nothing listens there
    stalled = socket.socket()  # listens, never answers: the connection is made, no reply comes
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(1)
    try:
        def variant(port, **kw):
            fields = {**good.__dict__, **kw, "timeout": 1.5}
            if good.dicomweb:
                fields["dicomweb"] = f"http://127.0.0.1:{port}/dicom-web"
            else:
                fields["port"] = port
            return client(Server(**fields))

        with pytest.raises(PacsError, match="does not answer"):
            variant(down).echo()
        with pytest.raises(PacsError, match=r"did not answer within 1.5 s|timed out after 1.5 s"):
            variant(stalled.getsockname()[1]).echo()
    finally:
        stalled.close()
    if name == "web":
        monkeypatch.setenv(PASSWORD_ENV, "wrong")
        with pytest.raises(PacsError) as caught:
            _client(orthanc, name).echo()
        assert str(caught.value) == ("web: the server refused the credentials (HTTP 401); check the user name "
                                     "and password.")
        assert "wrong" not in str(caught.value)
        monkeypatch.delenv(PASSWORD_ENV)
        with pytest.raises(PacsError, match=f"environment variable {PASSWORD_ENV} that holds the password is not set"):
            _client(orthanc, name).echo()


def test_a_study_that_vanishes_mid_retrieve_leaves_whole_files_and_a_retry_completes(orthanc, tmp_path):
    from inference.pacs import PacsError

    client = _client(orthanc, "web")
    victim = pydicom.dcmread(_demo_files()[-1], stop_before_pixels=True)  # MG_RMLO.dcm, retrieved late

    def progress(done, total, message):
        if done == 1 and message == "retrieving":
            orthanc.delete_instance(str(victim.SOPInstanceUID))

    with pytest.raises(PacsError, match="not found on the server|instances were retrieved") as caught:
        client.pull(_demo_uid(), tmp_path, progress=progress)
    assert str(caught.value).count(".") >= 1 and "\n" not in str(caught.value)
    folder = next(tmp_path.iterdir())
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    for f in folder.glob("*.dcm"):
        pydicom.dcmread(f).pixel_array  # every file in the cache is whole
    orthanc.upload(_demo_files()[-1])
    client.pull(_demo_uid(), tmp_path)
    demo = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in _demo_files()}
    assert demo <= {p.stem for p in folder.glob("*.dcm")}


def test_cli_and_round_trip_of_results(orthanc, tmp_path, capsys):
    """Orthanc -> `pacs pull` -> `analyze --dicom` -> `pacs push` (C-STORE and STOW) -> Orthanc -> back."""
    import highdicom as hd

    from app.cli import main
    from inference.pacs import Query

    config = ["--config", str(orthanc.config)]
    assert main(["pacs", *config, "echo", "dimse"]) == 0
    assert main(["pacs", *config, "query", "web", "--patient-id", "PHANTOM-1", "--modality", "MG"]) == 0
    out = capsys.readouterr().out
    assert _demo_uid() in out and "PHANTOM-1" not in out  # identifiers only with --identifiers
    assert main(["pacs", *config, "pull", "dimse", _demo_uid(), "--cache", str(tmp_path / "cache")]) == 0
    folder = next((tmp_path / "cache").iterdir())
    rcc = next(f for f in folder.glob("*.dcm") if pydicom.dcmread(f, stop_before_pixels=True).get("ViewPosition")
               == "CC" and pydicom.dcmread(f, stop_before_pixels=True).get("ImageLaterality") == "R"
               and int(pydicom.dcmread(f, stop_before_pixels=True).get("NumberOfFrames", 1) or 1) == 1)
    source = tmp_path / "source"
    source.mkdir()
    (source / rcc.name).symlink_to(rcc)
    assert main(["analyze", str(source), "--out", str(tmp_path / "maps"), "--dicom"]) == 0
    objects = sorted((tmp_path / "maps" / "dicom").glob("*.dcm"))
    seg_file = next(p for p in objects if p.name.endswith("_seg.dcm"))
    sr_file = next(p for p in objects if p.name.endswith("_sr.dcm"))
    (before,) = _client(orthanc, "web").query(Query(study_uid=_demo_uid()))
    assert main(["pacs", *config, "push", "dimse", str(seg_file)]) == 0  # C-STORE
    assert main(["pacs", *config, "push", "web", str(sr_file)]) == 0  # STOW-RS
    capsys.readouterr()
    # back from Orthanc: the study now holds the SEG and the SR, and they are what was sent
    client = _client(orthanc, "web")
    back = client.pull(_demo_uid(), tmp_path / "back")
    seg_uid, sr_uid = (str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in (seg_file, sr_file))
    seg = hd.seg.segread(back / f"{seg_uid}.dcm")
    np.testing.assert_array_equal(seg.pixel_array, pydicom.dcmread(seg_file).pixel_array)
    assert seg.SegmentSequence[0].SegmentAlgorithmName == "healthygan-phantom"
    sr = hd.sr.srread(back / f"{sr_uid}.dcm")
    summary = json.loads((tmp_path / "maps" / "results.json").read_text())
    scores = [float(i.MeasuredValueSequence[0].NumericValue) for i in sr_content_items(sr) if i.ValueType == "NUM"
              and i.ConceptNameCodeSequence[0].CodeMeaning == "Anomaly score"]
    assert scores == [pytest.approx(summary["results"][0]["score"], rel=1e-12)]
    for name in ("web", "dimse"):  # and the other protocol finds them too
        hits = _client(orthanc, name).query(Query(study_uid=_demo_uid()))
        assert hits[0].instances == before.instances + 2
    assert os.environ[PASSWORD_ENV] == PASSWORD




def test_configuration_errors_are_one_sentence(tmp_path):
    from inference.pacs import PacsError, Server, load_servers

    bad = tmp_path / "pacs.json"
    bad.write_text(json.dumps({"servers": {"x": {"dicomweb": "http://h", "password": "p"}}}))
    with pytest.raises(PacsError, match="holds a password; use password_env or credentials_file"):
        load_servers(bad)
    bad.write_text(json.dumps({"servers": {"x": {"host": "h"}}}))
    with pytest.raises(PacsError, match="needs either dicomweb"):
        load_servers(bad)
    secret = tmp_path / "credentials.json"
    secret.write_text(json.dumps({"username": USER, "password": "p"}))
    secret.chmod(0o644)
    server = Server(name="x", dicomweb="http://h", credentials_file=str(secret))
    with pytest.raises(PacsError, match="readable by other users"):
        server.credentials()
    secret.chmod(0o600)
    assert server.credentials() == (USER, "p")
    assert "credentials" not in repr(server) and "p'" not in repr(server)


def test_viewer_opens_from_pacs_and_sends_results_back(orthanc, qtbot, tmp_path, monkeypatch):
    """File > Open from PACS: query, retrieve (with cancel, then again), open; then the Overlay
    panel's Send to PACS puts the current map, SEG and SR into the study on the server."""
    pytest.importorskip("PySide6")
    from app.gui import build_window
    from inference.pacs import study_folder

    monkeypatch.setenv("MAMMOLENS_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("MAMMOLENS_PACS_CONFIG", str(orthanc.config))
    monkeypatch.setenv("MAMMOLENS_PACS_CACHE", str(tmp_path / "cache"))
    window, controller = build_window()
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    dialog = controller.pacs.show_dialog()
    assert dialog.server.count() == 3
    dialog.server.setCurrentText("dimse")
    dialog.patient_id.setText("PHANTOM-1")
    dialog.date_from.setText("1/1/2026")
    dialog.search_button.click()
    assert dialog.message.text() == "'1/1/2026' is not a date: write YYYY-MM-DD." and not controller.jobs.running()
    dialog.date_from.setText("2026-01-01")
    dialog.search_button.click()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1 and dialog.retrieve_button.isEnabled(), timeout=10000)
    assert dialog.table.item(0, 4).text() == _demo_uid()
    count = int(dialog.table.item(0, 2).text())  # the demo's 5, and what other tests sent into the study
    assert count >= 5
    # cancel at once: nothing half-written, then a retrieve again completes
    dialog.retrieve_button.click()
    assert dialog.cancel_button.isEnabled()
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not controller.jobs.running(), timeout=15000)
    folder = study_folder(tmp_path / "cache", _demo_uid())
    assert dialog.message.text().startswith("Retrieve cancelled")
    assert len(list(folder.glob("*.dcm"))) < 5 and not list(folder.glob(".*"))
    dialog.retrieve_button.click()
    qtbot.waitUntil(lambda: dialog.open_button.isEnabled(), timeout=15000)
    assert dialog.progress.maximum() in (1, count) and len(list(folder.glob("*.dcm"))) == count
    dialog.open_button.click()
    assert len(controller.session.studies.images()) == 5 and not dialog.isVisible()  # SEGs / SRs are no images
    # send the R-CC map back
    bundle = controller.overlays.bundle_named("healthygan-phantom")
    assert bundle is not None
    rcc = next(im for im in controller.session.studies.images() if im.name == "R-CC" and not im.is_volume)
    controller.session.set_current(rcc)
    controller.overlays.toggle_method(bundle, True, all_views=False)
    qtbot.waitUntil(lambda: controller.session.result(rcc, 0, bundle) is not None, timeout=30000)
    window.overlay_panel.send.click()
    qtbot.waitUntil(lambda: bool(controller.pacs.last_pushed), timeout=15000)
    assert sorted(n.rsplit("_", 1)[1] for n in controller.pacs.last_pushed) == ["pm.dcm", "seg.dcm", "sr.dcm"]
    classes = [i["00080016"]["Value"][0] for i in _client(orthanc, "web")._api().search_for_instances(
        study_instance_uid=_demo_uid())]
    assert "1.2.840.10008.5.1.4.1.1.30" in classes  # the Parametric Map is in the study now


def test_pacs_analyze_a_cohort_pushes_back_and_resumes(orthanc, tmp_path, capsys):
    from app.cli import main

    base = ["pacs", "--config", str(orthanc.config), "analyze", "dimse", "--patient-id", "PHANTOM-1",
            "--out", str(tmp_path / "cohort"), "--cache", str(tmp_path / "cache")]
    assert main(base) == 0  # retrieve + analyze + DICOM objects, nothing sent
    (study,) = (tmp_path / "cohort").iterdir()
    objects = sorted((study / "dicom").glob("*.dcm"))
    assert len(objects) == 15 and not (study / "pushed.json").exists()
    stamp = (study / "results.json").stat().st_mtime_ns
    assert main(base + ["--push"]) == 0  # resumes: only the push is left to do
    assert (study / "results.json").stat().st_mtime_ns == stamp
    on_server = {i["00080018"]["Value"][0] for i in _client(orthanc, "web")._api().search_for_instances(
        study_instance_uid=_demo_uid())}
    assert {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in objects} <= on_server
    capsys.readouterr()
    assert main(base + ["--push"]) == 0
    assert "done in an earlier run, skipped" in capsys.readouterr().out


def test_sending_a_file_that_is_not_dicom_is_one_sentence(tmp_path):
    from inference.pacs import PacsError, Server, client

    note = tmp_path / "note.txt"
    note.write_text("not an image")
    for server in (Server(name="w", dicomweb="http://127.0.0.1:9/dicom-web"),
                   Server(name="d", ae_title="X", host="127.0.0.1", port=9)):
        with pytest.raises(PacsError, match="^note.txt is not a DICOM file that can be sent.$"):
            client(server).push([note])
