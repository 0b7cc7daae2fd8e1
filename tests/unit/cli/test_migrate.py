"""What `rotor-lite migrate` shows of a PostgreSQL URL."""

from __future__ import annotations

from click.testing import CliRunner

from rotor_lite.cli import main
from rotor_lite.cli.migrate import _without_password


def test_the_reported_url_leaves_the_password_out() -> None:
    assert _without_password("postgresql://rotor:s3cret@db.internal:5433/rotor") == "postgresql://rotor@db.internal:5433/rotor"
    assert _without_password("postgresql://rotor@db/rotor") == "postgresql://rotor@db/rotor"


def test_an_unreachable_database_is_a_one_line_error_without_its_password() -> None:
    result = CliRunner().invoke(main, ["migrate", "--url", "postgresql://rotor:s3cret@127.0.0.1:1/rotor"])

    assert result.exit_code == 1
    assert result.output.splitlines() == [result.output.strip()] and "cannot connect to postgresql://rotor@127.0.0.1:1/rotor" in result.output
    assert "s3cret" not in result.output
