"""The layers (README, "How it is built"): import-linter contracts in pyproject, checked statically."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ["app", "viewer", "training", "inference"]
FAST_HELP = ["PySide6", "torch", "onnxruntime", "pydicom", "numpy", "skimage"]


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e .[dev])")
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def test_layer_contracts_are_kept():
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module,line,contract", [
    ("viewer/browser.py", "import pydicom, onnxruntime", "viewer only shows"),
    ("inference/bundle.py", "import torch", "inference is the headless core"),
    ("training/export.py", "from app.evaluation import format_report", "training never imports"),
])
def test_a_forbidden_import_inside_a_function_breaks_a_contract(tmp_path, module, line, contract):
    """What the run-time import blocker missed: an import a function only makes when it runs."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + textwrap.dedent(f"""

        def _added_later():
            {line}
        """))
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout


def test_help_imports_nothing_heavy():
    code = f"""
        import sys
        from app.cli import build_parser
        build_parser().format_help()
        heavy = [m for m in {FAST_HELP!r} if m in sys.modules]
        assert not heavy, heavy
        """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                            env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
