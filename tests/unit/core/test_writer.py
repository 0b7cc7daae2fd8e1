"""The writer's group commit on a real SQLite file: a failing operation rolls back alone."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from rotor_lite.errors import ValidationError
from rotor_lite.store.db import Database


def _insert(name: str) -> Callable[[sqlite3.Connection], int]:
    def op(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO scratch (name) VALUES (?)", (name,))
        return len(name)
    return op


def _insert_then_fail(name: str) -> Callable[[sqlite3.Connection], None]:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO scratch (name) VALUES (?)", (name,))
        raise ValidationError("refused")
    return op


async def _names(db: Database) -> list[str]:
    return [row[0] for row in await db.fetchall("SELECT name FROM scratch ORDER BY name")]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database(tmp_path / "rotor.db") as database:
        await database.write(lambda conn: conn.execute("CREATE TABLE scratch (name TEXT PRIMARY KEY)"))
        yield database


async def test_a_failing_operation_alone_rolls_back_and_the_writer_goes_on(db: Database) -> None:
    with pytest.raises(ValidationError):
        await db.write(_insert_then_fail("lost"))
    assert await db.write(_insert("kept")) == 4
    assert await _names(db) == ["kept"]


async def test_a_failing_operation_in_a_group_rolls_back_only_itself(db: Database) -> None:
    results = await asyncio.gather(
        db.write(_insert("a")), db.write(_insert_then_fail("b")), db.write(_insert("c")),
        db.write(_insert("a")),  # duplicate key: IntegrityError, alone
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], ValidationError)
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert await _names(db) == ["a", "c"]


async def test_a_crashing_operation_alone_does_not_stop_the_writer(db: Database) -> None:
    def crash(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO scratch (name) VALUES ('half')")
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await db.write(crash)
    await db.write(_insert("after"))
    assert await _names(db) == ["after"]
