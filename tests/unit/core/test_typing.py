"""The package type-checks under mypy --strict (STYLE.md: types everywhere, checked in CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import rotor_lite

pytest.importorskip("mypy")


@pytest.mark.slow
def test_package_passes_mypy_strict() -> None:
    package = Path(rotor_lite.__file__).parent
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(package)],
        capture_output=True, text=True, timeout=600, cwd=package.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
