"""The one-way dependency rules of DESIGN.md, enforced by importing with forbidden modules blocked."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

QT = ["PySide6", "pyqtgraph", "shiboken6"]
RULES = [
    # (modules to import, forbidden top-level packages)
    (["inference"], QT + ["torch", "pydicom", "app", "viewer", "training"]),
    (["app.cli", "app.study", "app.dicom_io", "app.plain_io", "app.image", "app.voi", "app.session",
      "app.datasets", "app.errors"], QT + ["torch", "viewer"]),
    (["training.phantom"], QT + ["torch", "onnxruntime", "viewer"]),
    (["viewer"], ["pydicom", "onnxruntime", "torch", "training"]),
]
FAST_HELP = ["PySide6", "torch", "onnxruntime", "pydicom", "numpy", "skimage"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})


def _blocked_import(modules: list[str], forbidden: list[str], walk: bool) -> subprocess.CompletedProcess:
    return _run(f"""
        import importlib, importlib.abc, pkgutil, sys
        FORBIDDEN = {forbidden!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in FORBIDDEN:
                    raise ImportError(f"forbidden import of {{name}}")
        sys.meta_path.insert(0, Block())
        for name in {modules!r}:
            module = importlib.import_module(name)
            if {walk!r} and hasattr(module, "__path__"):
                for info in pkgutil.walk_packages(module.__path__, name + "."):
                    importlib.import_module(info.name)
        """)


@pytest.mark.parametrize("modules,forbidden", RULES, ids=[r[0][0] for r in RULES])
def test_dependency_rules(modules, forbidden):
    result = _blocked_import(modules, forbidden, walk=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_help_imports_nothing_heavy():
    result = _run(f"""
        import sys
        from app.cli import build_parser
        build_parser().format_help()
        heavy = [m for m in {FAST_HELP!r} if m in sys.modules]
        assert not heavy, heavy
        """)
    assert result.returncode == 0, result.stderr[-2000:]
