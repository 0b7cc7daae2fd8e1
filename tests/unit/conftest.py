from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotor_lite.store.db import connect, migrate


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a real SQLite file made by the migrations."""
    connection = connect(tmp_path / "rotor.db")
    migrate(connection)
    yield connection
    connection.close()
