"""The SQLite database: one writer thread with group commit, and aiosqlite readers.

SQLite allows one writer at a time. Every write is a function of a `sqlite3.Connection`
handed to `Database.write`; the writer thread runs whatever has queued up in one
`BEGIN IMMEDIATE … COMMIT` (each function inside its own savepoint, so one failing
operation rolls back alone) and then resolves every waiting caller. With
`synchronous=FULL` that is one fsync per group instead of one per request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from rotor_lite.errors import RotorError, Unavailable
from rotor_lite.store.contract import Conn
from rotor_lite.files import make_data_dir, open_private, tighten

T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], Any]
log = logging.getLogger("rotor_lite.store")

_MAX_GROUP = 512
_GROUP_ATTEMPTS = 5  # a deadlock or serialization failure against another node is retried whole
_STOP = object()


def connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """A configured synchronous connection (WAL, busy timeout, foreign keys)."""
    _own_database_files(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA cache_size=-32768")  # 32 MiB: the hot partial indexes fit; RSS stays low
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def _own_database_files(path: Path) -> None:
    """Create the database owner-only before SQLite does (with 0644): the -wal and -shm files SQLite
    creates take the database file's mode. Those an older version left readable are tightened."""
    make_data_dir(path.parent)
    os.close(open_private(path, os.O_RDWR))
    for suffix in ("-wal", "-shm"):
        tighten(path.with_name(path.name + suffix))


def backup_to(source: Path, target: Path) -> int:
    """Copy the database `source` into the new file `target` (owner-only) with SQLite's online backup.

    The copy is one consistent snapshot: in WAL mode the backup reads as any reader does, so a
    server writing meanwhile is neither blocked nor seen half-way. It is written beside `target`
    and renamed into place once complete, as one self-contained file (no WAL). Returns its size.
    """
    partial = target.with_name(target.name + ".partial")
    os.close(open_private(partial, os.O_WRONLY | os.O_EXCL))
    try:
        with closing(sqlite3.connect(source, timeout=30)) as src, closing(sqlite3.connect(partial)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            verdict = dst.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise RotorError(f"the backup of {source} failed its integrity check: {verdict}")
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target.stat().st_size


def conditions(*clauses: tuple[str, Any]) -> tuple[str, list[Any]]:
    """`a = ? AND b < ? …` and its parameters, keeping only the clauses whose value is not None."""
    kept = [(clause, value) for clause, value in clauses if value is not None]
    return " AND ".join(clause for clause, _ in kept), [value for _, value in kept]


@contextmanager
def savepoint(conn: Conn, name: str) -> Iterator[None]:
    """Inside a write: what the block does rolls back alone if it raises (and the error goes on)."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        raise
    finally:
        conn.execute(f"RELEASE {name}")


def schema_version(conn: sqlite3.Connection) -> int:
    """The number of the last migration applied (0: an empty database)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply the numbered `sql/000N_*.sql` migrations not yet applied; their numbers. The version is read again
    inside each write transaction: another process migrating the same file at once has applied some meanwhile."""
    applied = []
    for number, script in _migrations():
        if number <= schema_version(conn):
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if number <= schema_version(conn):
                conn.execute("ROLLBACK")
                continue
            for statement in script.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(number)
    return applied


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("rotor_lite.store") / "sql"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


class _Pending:
    __slots__ = ("op", "future", "loop")

    def __init__(self, op: WriteOp, future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.op, self.future, self.loop = op, future, loop


class Database:
    """The writer thread and the read connection of one SQLite file."""

    dialect = "sqlite"

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_conn: Any = None  # sqlite3.Connection, or the PostgreSQL store's PgConnection

    async def __aenter__(self) -> Database:
        self._write_conn = connect(self.path, self.synchronous)
        migrate(self._write_conn)
        self._thread = threading.Thread(target=self._run_writer, name="rotor-writer", daemon=True)
        self._thread.start()
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.execute("PRAGMA busy_timeout=30000")
        await self._reader.execute("PRAGMA query_only=ON")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            await self._reader.close()
        await self._stop_writer()

    async def _stop_writer(self) -> None:
        """Let the writer finish what is queued, then close its connection."""
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._write_conn is not None:
            await asyncio.to_thread(self._write_conn.close)
            self._write_conn = None

    async def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run `op` in the writer's next group commit and return its result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(op, future, loop))
        return await future

    def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """No other node shares a SQLite file: nothing to hear (see `PgDatabase.listen`)."""

    @property
    def reader(self) -> aiosqlite.Connection:
        assert self._reader is not None, "database is not open"
        return self._reader

    async def fetchall(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        async with self.reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        async with self.reader.execute(sql, params) as cursor:
            return await cursor.fetchone()

    def _run_writer(self) -> None:
        conn = self._write_conn
        assert conn is not None
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            while len(group) < _MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                group.append(item)
            self._commit_group(conn, group)

    def _commit_group(self, conn: Any, group: list[_Pending]) -> None:
        for attempt in range(_GROUP_ATTEMPTS):
            try:
                outcomes = _run_group(conn, group)
                break
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if getattr(exc, "retryable", False) and attempt + 1 < _GROUP_ATTEMPTS:
                    log.info("write group conflicted with another node, retrying", extra={"error": str(exc)})
                    continue
                log.error("write failed, group rolled back", extra={"error": str(exc)})
                outcomes = [(False, Unavailable(f"storage is unavailable: {exc}"))] * len(group)
        for pending, (ok, value) in zip(group, outcomes):
            pending.loop.call_soon_threadsafe(_settle, pending.future, ok, value)


def _run_group(conn: Any, group: list[_Pending]) -> list[tuple[bool, Any]]:
    """One transaction for the group; a failing operation rolls back alone (`_run_in_savepoint`)."""
    conn.execute("BEGIN IMMEDIATE")
    if len(group) == 1:
        outcomes = [_run_alone(conn, group[0].op)]
    else:
        outcomes = [_run_in_savepoint(conn, pending.op) for pending in group]
    if conn.in_transaction:
        conn.execute("COMMIT")
    return outcomes


def _run_alone(conn: sqlite3.Connection, op: WriteOp) -> tuple[bool, Any]:
    """A group of one needs no savepoint: a failure rolls back the whole transaction.

    Under load every statement makes the writer win the GIL back from the event loop, so the
    two statements saved here are worth more than their SQLite cost.
    """
    try:
        return True, op(conn)
    except (RotorError, sqlite3.IntegrityError, ValueError) as exc:
        conn.execute("ROLLBACK")
        return False, exc
    except sqlite3.Error:
        raise
    except Exception as exc:  # a bug in the operation must not stop the writer
        log.exception("write operation crashed")
        conn.execute("ROLLBACK")
        return False, exc


def _run_in_savepoint(conn: sqlite3.Connection, op: WriteOp) -> tuple[bool, Any]:
    conn.execute("SAVEPOINT op")
    try:
        result = op(conn)
    except (RotorError, sqlite3.IntegrityError, ValueError) as exc:
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        return False, exc
    except sqlite3.Error:
        raise
    except Exception as exc:  # a bug in one operation must not fail the whole group
        log.exception("write operation crashed")
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        return False, exc
    conn.execute("RELEASE op")
    return True, result


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
