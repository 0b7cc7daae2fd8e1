from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rotor_lite.store.db import connect, migrate


@pytest.fixture
def conn(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A connection to a fresh database made by the migrations, of the run's backend (a SQLite file, or a
    new PostgreSQL database in the run's cluster)."""
    if backend == "postgres":
        from rotor_lite.store.pg import PgConnection  # only the PostgreSQL runs need asyncpg

        connection = PgConnection.open(request.getfixturevalue("pg_cluster").new_database())
        connection.migrate()
        yield connection
        connection.close()
        return
    sqlite = connect(tmp_path / "rotor.db")
    migrate(sqlite)
    yield sqlite
    sqlite.close()
