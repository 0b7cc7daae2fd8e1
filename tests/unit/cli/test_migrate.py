"""What `rotor-lite migrate` shows of a PostgreSQL URL."""

from __future__ import annotations

from rotor_lite.cli.migrate import _without_password


def test_the_reported_url_leaves_the_password_out() -> None:
    assert _without_password("postgresql://rotor:s3cret@db.internal:5433/rotor") == "postgresql://rotor@db.internal:5433/rotor"
    assert _without_password("postgresql://rotor@db/rotor") == "postgresql://rotor@db/rotor"
