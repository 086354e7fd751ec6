"""dciodvfy (Debian package dicom3tools) as a test oracle: the errors it reports for one file."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DCIODVFY_MISSING = "dciodvfy is not installed (Debian package dicom3tools: apt-get install dicom3tools)"


def dciodvfy_errors(path: str | Path) -> list[str]:
    """The ``Error`` lines dciodvfy prints for ``path`` (skips the test when dciodvfy is absent)."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip(DCIODVFY_MISSING)
    done = subprocess.run([tool, "-new", str(path)], capture_output=True, text=True, timeout=120)
    lines = (done.stdout + done.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


def assert_dciodvfy_clean(path: str | Path) -> None:
    """No dciodvfy error in ``path``; where dciodvfy is absent the rest of the test still runs (the
    conformance tests, which need it, skip with the package's name)."""
    if shutil.which("dciodvfy") is not None:
        assert dciodvfy_errors(path) == [], Path(path).name
