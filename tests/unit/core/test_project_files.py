"""Files a distribution needs besides the code."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[3]


def test_the_license_file_holds_the_license_pyproject_names() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    text = (ROOT / "LICENSE").read_text()

    assert declared == "MIT"
    assert text.startswith("MIT License") and "rotor-lite contributors" in text
    assert "WITHOUT WARRANTY OF ANY KIND" in text
