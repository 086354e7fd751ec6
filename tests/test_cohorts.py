"""Cohorts through `analyze`: every image its own traceable row and files, damaged files as rows
with their sentence, resume after a kill, and the same rows and map bytes on two Dask workers."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cohort_folder import BROKEN_KINDS, make_cohort

REPO = Path(__file__).resolve().parents[1]
HEALTHYGAN = REPO / "resources" / "models" / "healthygan-phantom"
COPIES = 20
needs_bundle = pytest.mark.skipif(not (HEALTHYGAN / "model.json").is_file(),
                                  reason="the shipped HealthyGAN bundle is absent")
#: What each damaged kind's sentence says (the header check lets none of them through).
SENTENCES = {"garbage-j2k": "is not a JPEG 2000 codestream", "relabelled-jpegls": "is not a JPEG-LS stream",
             "relabelled-rle": "is not an RLE stream", "no-fragments": "with no fragments",
             "truncated": "is truncated"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort") / "in"
    return folder, make_cohort(folder, copies=COPIES, broken=1)


@pytest.fixture(scope="module")
def one_process(cohort, tmp_path_factory):
    """The cohort analysed once in this process through the command line: (out, rc, stdout)."""
    from app.cli import main

    out = tmp_path_factory.mktemp("one") / "out"
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        rc = main(["analyze", str(cohort[0]), "--method", "healthygan", "--model", str(HEALTHYGAN),
                   "--out", str(out), "--identifiers"])
    return out, rc, text.getvalue()


def read_rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "provider")} for r in rows]


def maps(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".npy", ".png")}


def test_info_lists_every_damaged_kind_as_unreadable(cohort):
    from inference.studies.study import open_path

    folder, made = cohort
    studies = open_path(folder)
    assert len(studies.images()) == COPIES
    found = studies.unreadable(identifiers=True)
    for kind, phrase in SENTENCES.items():
        (sentence,) = [s for s in found if s.startswith(f"broken_{kind}_1.dcm: ")]
        assert phrase in sentence
    assert all("broken" not in s for s in studies.unreadable())  # by position and key unless asked


@needs_bundle
def test_every_image_is_its_own_row_with_its_own_files(cohort, one_process):
    out, rc, printed = one_process
    assert rc == 1  # some images failed: the exit status says so
    rows = read_rows(out)
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(ok) == COPIES and len(failed) == len(BROKEN_KINDS)
    assert len({r["sop_uid"] for r in ok}) == COPIES and all(r["frame"] == "1" for r in ok)
    assert len({r["map"] for r in ok}) == COPIES and len({r["overlay"] for r in ok}) == COPIES
    assert {r["path"] for r in ok} == {f"copy_{i:04d}.dcm" for i in range(1, COPIES + 1)}
    for r in ok:
        difference = np.load(out / r["map"])
        assert difference.shape == (1024, 832) and np.isfinite(difference).all()
        assert r["map"].startswith(r["key"].rsplit("-", 1)[0]) and "Patient" not in r["map"]
    # two series: the copies of the second one carry its UID
    assert len({r["series_uid"] for r in ok}) == 2
    # failures: a row each, in the CSV, the JSON and printed once, joinable on the UIDs the header gives
    summary = json.loads((out / "results.json").read_text())
    assert len(summary["failed"]) == len(BROKEN_KINDS)
    for kind, phrase in SENTENCES.items():
        (row,) = [r for r in failed if r["path"] == f"broken_{kind}_1.dcm"]
        assert phrase in row["message"] and row["message"].startswith(f"broken_{kind}_1.dcm: ")
        assert printed.count(row["message"]) == 1
        assert row["message"] in summary["failed"]
    assert sum(1 for r in failed if r["sop_uid"]) >= 4
    assert "images analysed" in printed and f"{COPIES:>8}" in printed


@needs_bundle
def test_a_run_killed_at_any_moment_resumes_to_the_same_results(cohort, one_process, tmp_path):
    folder, _ = cohort
    out = tmp_path / "out"
    command = [sys.executable, "-m", "app", "analyze", str(folder), "--method", "healthygan", "--model",
               str(HEALTHYGAN), "--out", str(out), "--identifiers"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / "rows.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= len(BROKEN_KINDS) + 4:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    # what it left is whole: every map it wrote loads, no temporaries outside hidden names
    done = [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")]
    assert 0 < len(done) < COPIES + len(BROKEN_KINDS)
    for p in out.glob("*.npy"):
        assert np.load(p).shape == (1024, 832)
    with open(journal, "a") as handle:
        handle.write('{"key": "torn')  # as if killed while appending a line

    from app.analysis import analyze_path

    summary = analyze_path(folder, "healthygan", out, model=str(HEALTHYGAN), identifiers=True)
    assert summary["skipped"] >= len([d for d in done if d["rows"][0]["status"] == "ok"])
    assert summary["analysed"] == COPIES - summary["skipped"]
    reference = one_process[0]
    assert comparable(read_rows(out)) == comparable(read_rows(reference))
    assert maps(out) == maps(reference)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@needs_bundle
def test_other_parameters_or_an_unrelated_folder_are_refused_in_one_sentence(one_process, cohort, tmp_path):
    from app.analysis import analyze_path
    from inference.errors import MammolensError

    out = one_process[0]
    before = (out / "results.csv").read_bytes()
    with pytest.raises(MammolensError, match="holds a run of another bundle or other parameters .*all_slices"):
        analyze_path(cohort[0], "healthygan", out, model=str(HEALTHYGAN), identifiers=True, all_slices=True)
    assert (out / "results.csv").read_bytes() == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(MammolensError, match="choose a new or empty folder"):
        analyze_path(cohort[0], "healthygan", mine, model=str(HEALTHYGAN))


@needs_bundle
def test_two_local_dask_workers_give_the_same_rows_and_map_bytes(cohort, one_process, tmp_path):
    pytest.importorskip("distributed")
    from app.analysis import analyze_path

    out = tmp_path / "out"
    analyze_path(cohort[0], "healthygan", out, model=str(HEALTHYGAN), identifiers=True, workers=2)
    assert comparable(read_rows(out)) == comparable(read_rows(one_process[0]))
    assert maps(out) == maps(one_process[0])


@needs_bundle
def test_a_dask_worker_killed_mid_run_is_replaced_and_the_run_completes(cohort, one_process, tmp_path):
    pytest.importorskip("distributed")
    import logging

    from distributed import Client, LocalCluster

    from app.analysis import analyze_path

    killed = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)

        def kill_one(done, total, message):
            if not killed and done >= 2:  # images are in flight on both workers
                pid = next(iter(pids.values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        out = tmp_path / "out"
        summary = analyze_path(cohort[0], "healthygan", out, model=str(HEALTHYGAN), identifiers=True,
                               scheduler=cluster.scheduler_address, progress=kill_one)
        assert killed and killed[0] not in client.run(os.getpid).values()
    assert sum(r["status"] == "ok" for r in summary["results"]) == COPIES
    assert comparable(read_rows(out)) == comparable(read_rows(one_process[0]))
    assert maps(out) == maps(one_process[0])


@needs_bundle
def test_each_slice_of_a_legacy_dbt_volume_is_a_row_with_its_own_file(tmp_path):
    from app.analysis import analyze_path
    from training.phantom import generate_dataset

    generate_dataset(tmp_path / "in", n=1, views=("CC",), lateralities=("L",), lesion_fraction=0.0, shape=(256, 208),
                     pixel_spacing=0.8, dbt=1, dbt_slices=5, dbt_shape=(256, 208), legacy_dbt=True, seed=5)
    summary = analyze_path(tmp_path / "in", "healthygan", tmp_path / "out", model=str(HEALTHYGAN), all_slices=True,
                           identifiers=True)
    rows = [r for r in summary["results"] if "DBT" in r["path"]]
    assert [r["frame"] for r in rows] == [1, 2, 3, 4, 5]
    assert len({r["sop_uid"] for r in rows}) == 5 and len({r["path"] for r in rows}) == 5
    assert sum(bool(r["map"]) for r in rows) == 1  # the highest-scoring slice's map, beside the volume's
    assert len(list((tmp_path / "out").glob("*_difference_volume.npz"))) == 1
