"""`rotor-lite admin copy`'s arguments: where `--from` points, and a `--to` shown without its password."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from rotor_lite.cli.copy import shown_url, source_path


def test_from_takes_the_sqlite_url_forms_a_plain_path_or_a_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    database = tmp_path / "data" / "rotor.db"
    database.touch()
    monkeypatch.chdir(tmp_path)

    assert source_path("sqlite:///data/rotor.db") == Path("data/rotor.db")  # three slashes: relative
    assert source_path(f"sqlite:///{database}") == database  # four: absolute
    assert source_path(str(database)) == database and source_path("data") == Path("data/rotor.db")
    with pytest.raises(click.ClickException, match=f"no SQLite database at {tmp_path}/elsewhere/rotor.db"):
        source_path("sqlite:///elsewhere/rotor.db")


def test_the_target_is_shown_without_its_password() -> None:
    assert shown_url("postgresql://rotor:s3cret@db.internal:5433/rotor") == "postgresql://rotor:***@db.internal:5433/rotor"
    assert shown_url("postgresql://rotor@db.internal/rotor") == "postgresql://rotor@db.internal/rotor"
