"""The `mammolens` command line as a user runs it."""
from __future__ import annotations

import subprocess
import sys

from app.cli import main
from inference.labels import read_labels
from tests.conftest import REPO, pydicom_file


def test_info_lists_views_and_failures_without_names(tmp_path, phantom_study, capsys):
    import shutil

    folder, _ = phantom_study
    dst = tmp_path / "s"
    shutil.copytree(folder, dst)
    (dst / "bad.dcm").write_text("not dicom")
    assert main(["info", str(dst)]) == 0
    out = capsys.readouterr().out
    assert "R-CC" in out and "L-MLO" in out and "slices" in out
    # a file found in the folder is named by position and key (file names can be patients' names)
    assert "bad.dcm" not in out and ": is not a DICOM file" in out and "(key " in out
    assert "PHANTOM" not in out, "patient names and IDs are never printed"
    assert main(["info", str(dst), "--identifiers"]) == 0
    assert "bad.dcm: is not a DICOM file" in capsys.readouterr().out


def test_info_on_bad_file_is_one_sentence_and_status_2(tmp_path, capsys):
    bad = tmp_path / "x.dcm"
    bad.write_text("hello")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mammolens: x.dcm: is not a DICOM file") and "\n" not in err


def test_info_on_compressed_real_file(capsys):
    assert main(["info", str(pydicom_file("MR_small_jp2klossless.dcm"))]) == 0
    assert "JPEG 2000" in capsys.readouterr().out


def test_phantom_command_writes_dicom_and_labels(tmp_path, capsys):
    out = tmp_path / "ph"
    assert main(["phantom", "--out", str(out), "--n", "2", "--views", "CC", "--shape", "256x208",
                 "--spacing", "0.4", "--lesion-fraction", "1", "--classes", "mass", "--seed", "5",
                 "--splits", "0.5,0,0.5"]) == 0
    rows = read_labels(out / "labels.csv")
    assert len({r.path for r in rows}) == 4 and sum(r.label == "mass" for r in rows) == 2
    assert {r.split for r in rows} <= {"train", "test"}
    assert all(r.resolve(out).is_file() for r in rows)
    assert main(["dataset", "import", "phantom", str(out), "--out", str(tmp_path / "again.csv")]) == 0
    again = read_labels(tmp_path / "again.csv")
    assert [(r.label, r.box()) for r in again] == [(r.label, r.box()) for r in rows]


def test_help_runs_as_a_console_script():
    result = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "phantom" in result.stdout and "info" in result.stdout


def test_every_verb_explains_its_arguments_with_defaults_and_examples():
    import argparse

    from app.cli import build_parser

    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for verb, sub in verbs.items():
        undocumented = [a.dest for a in sub._actions if not a.help and a.dest != "help"
                        and not isinstance(a, argparse._SubParsersAction)]
        assert not undocumented, (verb, undocumented)
        if verb != "dataset" or sub.epilog:
            assert "example" in (sub.format_help()), verb
    help_text = verbs["evaluate"].format_help()
    assert "default test" in help_text and "split column" in help_text


def test_train_settings_say_what_they_mean(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["train", "healthygan", "--help"])
    text = capsys.readouterr().out
    assert "model input size in pixels" in text and "iterations between checkpoints" in text
    assert "HealthyGANConfig(" not in text and "example:" in text


def test_a_missing_labels_file_or_a_folder_that_is_no_run_is_one_sentence(tmp_path, capsys):
    assert main(["train", "healthygan", "--labels", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.csv" in err and "Traceback" not in err
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "bundle")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a training run" in err


def test_analyze_prints_no_onnx_runtime_error_before_the_fallback_sentence(tmp_path):
    from app.gui import demo_study_path

    result = subprocess.run([sys.executable, "-m", "app", "analyze", str(demo_study_path() / "MG_RCC.dcm"),
                             "--out", str(tmp_path / "maps")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[E:onnxruntime" not in result.stderr and "FAIL" not in result.stderr
