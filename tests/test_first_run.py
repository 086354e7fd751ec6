"""What a new user meets before the window: the install the Makefile does, the package metadata,
and a window that cannot open (no display, missing system libraries) saying why instead of Qt's abort."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings

import pytest

from tests.conftest import REPO


def _make_dry_run(tmp_path, *arguments) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    done = subprocess.run(["make", "-n", "-B", "-C", str(REPO), f"VENV={venv}", f"{venv}/.mammolens-installed",
                           *arguments], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_installs_the_torch_build_the_user_chose(tmp_path):
    default = [line for line in _make_dry_run(tmp_path).splitlines() if "torch==" in line and "pip" in line]
    assert len(default) == 1 and "index-url" not in default[0], "the default is pip's own torch==2.13.0"
    assert default[0].split("pip install", 1)[1].split() == ['"torch==2.13.0"']
    cpu = [line for line in _make_dry_run(tmp_path, "TORCH=cpu").splitlines() if "torch==" in line and "pip" in line]
    assert len(cpu) == 1 and "--index-url https://download.pytorch.org/whl/cpu" in cpu[0]
    if shutil.which("make"):
        wrong = subprocess.run(["make", "-n", "-C", str(REPO), "TORCH=cuda", "demo"], capture_output=True, text=True)
        assert wrong.returncode != 0 and 'TORCH is default or cpu, not "cuda"' in wrong.stderr


def test_readme_says_what_the_torch_line_installs():
    text = (REPO / "README.md").read_text()
    assert "never the multi-GB CUDA packages" not in text
    assert "make TORCH=cpu" in text and "download.pytorch.org/whl/cpu" in text


def test_make_demo_names_its_output_folder(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-n", "-C", str(REPO), f"VENV={tmp_path}/v", "demo"], capture_output=True, text=True)
    assert "mammolens demo --out build/demo" in done.stdout


def test_package_metadata_has_no_deprecated_license_table():
    setuptools = pytest.importorskip("setuptools")
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    assert int(setuptools.__version__.split(".")[0]) >= 77
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dist = apply_configuration(Distribution(), REPO / "pyproject.toml")
    finally:
        os.chdir(cwd)
    assert not [w for w in caught if "license" in str(w.message).lower()], [str(w.message)[:80] for w in caught]
    assert dist.metadata.license_expression == "MIT"


def _no_display_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.mark.parametrize("argv", [["view"], []], ids=["view", "bare"])
def test_window_without_a_display_is_one_sentence_not_an_abort(argv, tmp_path):
    done = subprocess.run([sys.executable, "-m", "app.cli", *argv], cwd=tmp_path, env=_no_display_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr[-500:])  # Qt's own abort is -6 (SIGABRT)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mammolens: there is no display") and "DISPLAY" in lines[0]
    assert "mammolens demo" in lines[0], "says what works without a display"


def test_missing_xcb_libraries_are_named_with_their_packages():
    from app.gui import XCB_LIBRARIES, window_system_problem

    fake = {"libmammolens-absent-xcb.so.7": "libmammolens-absent7", "libc.so.6": "libc6"}
    problem = window_system_problem({"DISPLAY": ":0"}, fake)
    assert problem is not None and "libmammolens-absent-xcb.so.7" in problem and "libc.so.6" not in problem
    assert "apt-get install libmammolens-absent7." in problem and problem.count(".") >= 1
    # offscreen and the other headless platforms need neither a display nor the xcb libraries
    assert window_system_problem({"QT_QPA_PLATFORM": "offscreen"}, fake) is None
    assert window_system_problem({"WAYLAND_DISPLAY": "wayland-0"}, fake) is None
    # the three the issue met, and the README lists every package
    assert {"libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"} <= set(XCB_LIBRARIES.values())
    readme = (REPO / "README.md").read_text()
    assert all(package in readme for package in XCB_LIBRARIES.values())
