"""Outputs written as sets: a bundle overwrite or export leaves the old set or the new one, never a
mix and never temporaries; a killed analyze leaves whole files and resumes (tests/test_cohorts.py);
atomic_open leaves the process umask alone."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from inference.files import atomic_write_text, clean_stale, staged_folder

REPO = Path(__file__).resolve().parents[1]
HEALTHYGAN = REPO / "resources" / "models" / "healthygan-phantom"


class Killed(BaseException):
    """What a kill looks like to the code under test: not an Exception, nothing may swallow it."""


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_open_never_touches_the_umask(tmp_path, monkeypatch):
    old = os.umask(0o027)
    try:
        def refuse(*_):
            raise AssertionError("os.umask called (it changes the mask of every thread for a moment)")

        monkeypatch.setattr(os, "umask", refuse)
        atomic_write_text(tmp_path / "a.txt", "x")
        with staged_folder(tmp_path / "set") as stage:
            (stage / "f").write_text("1")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "set").stat().st_mode & 0o777 == 0o750
    assert hidden(tmp_path) == []


def test_a_set_interrupted_midway_keeps_the_old_one(tmp_path):
    target = tmp_path / "out"
    with staged_folder(target) as stage:
        (stage / "a").write_text("old a")
        (stage / "b").write_text("old b")
    with pytest.raises(Killed):
        with staged_folder(target) as stage:
            (stage / "a").write_text("new a")
            raise Killed
    assert sorted(p.name for p in target.iterdir()) == ["a", "b"]
    assert (target / "a").read_text() == "old a"
    assert hidden(tmp_path) == []


def test_stale_temporaries_are_cleaned_and_a_set_moved_aside_comes_back(tmp_path):
    target = tmp_path / "bundle"
    (tmp_path / ".bundle.staging-abc").mkdir()
    (tmp_path / ".bundle.1234.tmp").write_text("half")
    old = tmp_path / ".bundle.old-beef"
    old.mkdir()
    (old / "model.json").write_text("{}")  # killed between the two renames: the good set is aside
    clean_stale(target)
    assert (target / "model.json").is_file()
    assert hidden(tmp_path) == []


def _bad_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(REPO / "resources" / "demo" / "MG_RCC.dcm", folder / "MG_RCC.dcm")
    (folder / "DOE_JANE_MRN12345.dcm").write_bytes((REPO / "resources" / "demo" / "MG_LCC.dcm").read_bytes()[:3000])
    return folder


@pytest.mark.skipif(not (HEALTHYGAN / "model.json").is_file(), reason="the shipped HealthyGAN bundle is absent")
def test_analyze_folder_with_a_bad_file_and_a_killed_rerun(tmp_path, monkeypatch):
    import app.analysis as analysis

    folder, out = _bad_folder(tmp_path), tmp_path / "out"
    summary = analysis.analyze_path(folder, "healthygan", out, model=str(HEALTHYGAN), device="cpu")
    # the good file is analysed, the bad one is a failed row named by position and key, never by its name
    assert summary["images"] == 1 and len(summary["unreadable"]) == 1
    assert summary["unreadable"][0].startswith("file 1 of 2 (key ")
    assert [r["status"] for r in summary["results"]] == ["ok", "failed"]
    assert "DOE_JANE" not in (out / "results.json").read_text() + (out / "results.csv").read_text()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".npy", ".png")}

    # a run killed while it writes results: the images' files and journal lines stay whole
    other = tmp_path / "other"
    real_write = analysis.atomic_write_text

    def killed_at_results(path, text):
        if Path(path).name == "results.json":
            raise Killed
        return real_write(path, text)

    monkeypatch.setattr(analysis, "atomic_write_text", killed_at_results)
    with pytest.raises(Killed):
        analysis.analyze_path(folder, "healthygan", other, model=str(HEALTHYGAN), device="cpu")
    assert not (other / "results.json").exists() and hidden(tmp_path) == []
    assert hidden(other) == [".lock"]
    monkeypatch.setattr(analysis, "atomic_write_text", real_write)
    summary = analysis.analyze_path(folder, "healthygan", other, model=str(HEALTHYGAN), device="cpu")
    assert summary["skipped"] == 1 and summary["analysed"] == 0  # resumed: nothing left but the results
    assert {p.name: p.read_bytes() for p in other.iterdir() if p.suffix in (".npy", ".png")} == before

    summary = analysis.analyze_path(folder, "healthygan", tmp_path / "named", model=str(HEALTHYGAN), device="cpu",
                                    identifiers=True)
    assert summary["unreadable"][0].startswith("DOE_JANE_MRN12345.dcm: ")  # the user asked for names


def test_analyze_refuses_a_folder_of_other_files(tmp_path):
    from app.analysis import analyze_path
    from inference.errors import MammolensError

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(MammolensError, match="choose a new or empty folder"):
        analyze_path(tmp_path, "healthygan", out)
    assert (out / "notes.txt").read_text() == "mine"


def test_a_bundle_overwrite_killed_before_model_json_keeps_the_good_bundle(tmp_path, monkeypatch):
    from inference import bundle as bundle_mod
    from inference.bundle import load_bundle
    from tests.test_bundle import make_translation_bundle

    folder = tmp_path / "models" / "hg"
    good = make_translation_bundle(folder)
    before = (folder / "model.json").read_text()

    def killed(*_a, **_k):
        raise Killed

    monkeypatch.setattr(bundle_mod, "atomic_write_text", killed)  # ONNX already replaced, model.json not yet
    with pytest.raises(Killed):
        make_translation_bundle(folder, size=32, resolution=32)
    assert (folder / "model.json").read_text() == before
    assert load_bundle(folder).networks["generator"].sha256 == good.networks["generator"].sha256
    assert hidden(folder.parent) == [] and hidden(folder) == []


def test_a_killed_export_leaves_the_old_bundle_and_no_temporaries(tiny_healthygan, tmp_path, monkeypatch):
    import training.export as export

    root, _, bundle_dir = tiny_healthygan
    out = tmp_path / "models" / "tiny"
    shutil.copytree(bundle_dir, out)
    before = (out / "model.json").read_text()

    def killed(*_a, **_k):
        raise Killed

    monkeypatch.setattr(export, "calibrate", killed)  # networks written, calibration not yet
    with pytest.raises(Killed):
        export.export_run(root / "run", out, name="tiny", log=lambda *a: None)
    assert (out / "model.json").read_text() == before
    assert hidden(out.parent) == []
    assert json.loads(before)["calibration"] is not None  # what users see was written calibrated


def test_export_writes_model_json_once_and_calibrated(tiny_healthygan, tmp_path, monkeypatch):
    import inference.bundle as bundle_mod
    import training.export as export

    root, _, _ = tiny_healthygan
    written = []
    real_write = bundle_mod.atomic_write_text

    def counting(path, text):
        written.append(json.loads(text))
        return real_write(path, text)

    monkeypatch.setattr(bundle_mod, "atomic_write_text", counting)
    export.export_run(root / "run", tmp_path / "models" / "tiny", name="tiny", log=lambda *a: None)
    assert len(written) == 1 and written[0]["calibration"] is not None
    assert hidden(tmp_path / "models") == []
