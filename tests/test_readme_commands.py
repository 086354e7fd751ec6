"""Every `mammolens` command of README's fenced shell blocks runs against the demo study (paths
substituted), so the README cannot drift from the product. Commands that train or evaluate for
minutes to hours are listed in SKIPPED with the reason; they are still parsed by the command line
(and `train`'s by its method's settings parser), so a renamed flag shows up here too."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

DEMO = REPO / "resources" / "demo"

#: (start of the command, why it is not run here); the first that matches decides
SKIPPED = (
    ("mammolens train-all", "trains every method on a GPU lease (minutes each)"),
    ("mammolens train ", "trains a model: the cpu preset takes up to an hour (tests/test_*.py train the tiny presets)"),
    ("mammolens export runs/", "exports the run the `train` line above makes (not made here)"),
    ("mammolens export build/", "exports the run the `train` line above makes (not made here)"),
    ("mammolens evaluate", "the evaluation card: a held-out phantom split, the supervised ceiling (tens of minutes)"),
    ("mammolens augmentation", "trains the classifier 2 x 5 times (minutes)"),
    ("mammolens phantom --out build/phantom-c12", "4 000 images, about 10 minutes (the same writer runs in "
                                                  "tests/test_phantom.py and tests/test_conspicuity.py at small sizes)"),
    ("mammolens phantom --out build/phantom-hg", "1 000 images, about 17 minutes (the same writer runs in "
                                                 "tests/test_phantom.py at small sizes)"),
    ("mammolens analyze cohort/ --out scores/ --workers", "starts a local Dask cluster (tests/test_cohorts.py runs "
                                                          "1 and 2 workers on a cohort folder)"),
    ("mammolens analyze /shared/cohort", "needs the user's Dask scheduler at tcp://head:8786"),
    ("mammolens pacs ", "needs the PACS the user configured as 'hospital' (tests/test_pacs.py runs every verb "
                        "against a real Orthanc)"),
    ("mammolens analyze ~/.cache/mammolens/pacs/", "a study pulled from that PACS into the user's cache"),
    ("mammolens export RUN", "exports the run the `train projection` line above makes (not made here)"),
    ("mammolens analyze study/ --method projection", "the paper's protocol, 9 seeds x 1000 steps: about ten "
                                                    "minutes an image on a CPU (tests/test_projection.py runs "
                                                    "analyze with 1 / 9 / 16 seeds at a few steps)"),
)


def readme_commands() -> list[str]:
    """The `mammolens ...` lines of README's ```sh blocks, continuation lines joined, comments cut."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for body in re.findall(r"```(?:sh|bash|shell|console)\n(.*?)```", text, re.S):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip().lstrip("$ ").strip()
            if line.startswith("mammolens"):
                commands.append(" ".join(shlex.split(line, comments=True)))
    return commands


def skip_reason(command: str) -> str | None:
    return next((why for start, why in SKIPPED if command.startswith(start)), None)


def substituted(command: str, out: Path) -> list[str]:
    """The demo study for the placeholders (STUDY, study/), the repository's own resources, the
    optional [...] parts left out; relative outputs land in ``out`` (the working folder)."""
    command = re.sub(r"\s*\[[^\]]*\]", "", command)
    words = []
    for word in shlex.split(command)[1:]:
        if word in ("STUDY", "study/", "study"):
            word = str(DEMO)
        elif word.startswith("resources/"):
            word = str(REPO / word)
        words.append(word)
    return words


def test_readme_lists_commands_and_every_skip_says_why():
    commands = readme_commands()
    assert len(commands) >= 15
    ran = [c for c in commands if skip_reason(c) is None]
    assert any(c.startswith("mammolens inpaint") for c in ran) and any(c.startswith("mammolens analyze") for c in ran)
    assert all(why.strip() for _, why in SKIPPED)


@pytest.mark.parametrize("command", [c for c in readme_commands() if skip_reason(c)])
def test_skipped_readme_commands_still_parse(command, tmp_path):
    from app.cli import build_parser

    words = substituted(command, tmp_path)
    args = build_parser().parse_args(words)  # argparse exits (status 2) on a flag it does not know
    if args.command == "train":
        from inference.methods import get
        from training.loop import config_parser

        pytest.importorskip("torch")
        package = get(args.method).training_package()
        settings = config_parser(f"mammolens train {args.method}", package.Config, package.PRESETS).parse_args(
            args.settings)
        assert settings.labels


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in readme_commands() if not skip_reason(c)])
def test_readme_command_runs_on_the_demo_study(command, tmp_path):
    words = substituted(command, tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen",
               MAMMOLENS_SETTINGS=str(tmp_path / "settings.ini"))
    done = subprocess.run([sys.executable, "-m", "app.cli", *words], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{command}\n{done.stderr[-1500:]}"
    assert "Traceback" not in done.stderr
    if "--out" in words:  # it wrote what it says, where it says
        out = tmp_path / words[words.index("--out") + 1]
        assert out.is_dir() and any(out.iterdir()), out
    if words[0] == "analyze" and "inpainting" in words:  # maps named by their unit, not "difference"
        unit = "MSE" if "mse" in words else "DMSE"
        assert list((tmp_path / words[words.index("--out") + 1]).glob(f"*_{unit}.npy"))
    if words[0] == "inpaint":
        import json

        scores = json.loads((tmp_path / words[words.index("--out") + 1] / "scores.json").read_text())
        assert scores["mse"] > 0, "a box on the breast: a real completion, not air"
        assert scores["decision"] is None and "drawn box" in scores["no_decision"], "no image cut-off for a box"


def test_inpaint_outside_the_breast_or_on_no_tissue_is_one_sentence(tmp_path, capsys):
    from app.cli import main

    # the README's old example: a box in the air beside the demo breast (an all-black completion,
    # MSE 0, "normal", no warning); the air below it too
    for box in ("790,40,830,90", "760,900,820,980"):
        assert main(["inpaint", str(DEMO / "MG_LMLO.dcm"), "--box", box, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("mammolens: ") and "lies outside the breast" in err and "\n" not in err, err
        assert not (tmp_path / "x" / "scores.json").exists(), "nothing written"


def test_a_box_on_no_tissue_is_refused_before_the_model_runs():
    import numpy as np

    from inference.methods.inpainting import _check_on_tissue

    display = np.full((100, 80), 0.5, np.float32)
    display[:, :40] += np.linspace(0, 0.2, 40, dtype=np.float32)  # texture on the left half only
    breast = np.ones(display.shape, bool)
    _check_on_tissue((5, 5, 30, 30), display, breast)  # tissue: accepted
    with pytest.raises(ValueError, match="holds no tissue"):
        _check_on_tissue((50, 10, 70, 30), display, breast)  # one flat value (a marker, burnt-out film)
    breast[:, 20:] = False
    with pytest.raises(ValueError, match=r"lies outside the breast \(20% of it is breast"):
        _check_on_tissue((15, 10, 40, 30), display, breast)
