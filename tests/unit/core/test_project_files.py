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


def test_each_migration_has_a_number_of_its_own() -> None:
    """Two migrations with one number (branches merged) would apply only the first: the second is skipped as done."""
    numbers = [path.name.split("_", 1)[0] for path in (ROOT / "rotor_lite" / "store" / "sql").glob("*.sql")]
    assert sorted(numbers) == sorted(set(numbers)), sorted(numbers)
