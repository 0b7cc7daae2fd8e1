"""A throwaway PostgreSQL cluster for the tests: Debian's binaries, a temporary directory, trust on 127.0.0.1.

Tuned for speed, not durability (fsync, synchronous_commit and full_page_writes off): whatever the cluster
holds dies with the test run. `initdb` refuses to run as root, so as root the cluster belongs to the
`postgres` system user (Debian's package makes it), or to `nobody` without it.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Self, TypeVar

import asyncpg

T = TypeVar("T")

SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "listen_addresses": "'127.0.0.1'",
}
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def binaries() -> Path | None:
    """The bin directory of the newest PostgreSQL Debian installed (None: not installed)."""
    found = [path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    numbered = [path for path in found if path.parent.name.isdigit()]
    return max(numbered, key=lambda path: int(path.parent.name), default=None)


def in_thread(work: Callable[[], T]) -> T:
    """`work()` on a thread of its own, waited for: code that drives an event loop of its own runs even from
    inside a running one (an async test)."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from synchronous code, even from inside a running event loop."""
    return in_thread(lambda: asyncio.run(coroutine))


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _owner() -> str | None:
    """The user the cluster runs as when we are root (None: we are not, and run it ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
        return "postgres"
    except KeyError:
        return "nobody"


_TEMPLATE = "rotor_template"


class PgCluster:
    """One PostgreSQL server in a temporary directory: `start()` (or `with`), databases, `stop()`."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or binaries()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.bin_dir = found
        self.port = _free_port()
        self.owner = _owner()
        self.root = Path(tempfile.mkdtemp(prefix="rotor-pg-"))
        self.data = self.root / "data"
        self.created: list[str] = []  # every database create_database made, in order
        self._started = False
        self._template_ready = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Self:
        if self.owner is not None:
            shutil.chown(self.root, self.owner)
        self._as_owner("initdb", "--pgdata", str(self.data), "--username", "postgres", "--auth", "trust",
                       "--encoding", "UTF8", "--locale", "C", "--no-sync")
        conf = [f"{name} = {value}" for name, value in SETTINGS.items()]
        conf += [f"port = {self.port}", f"unix_socket_directories = '{self.root}'"]
        with open(self.data / "postgresql.conf", "a") as config:
            config.write("\n".join(conf) + "\n")
        self._as_owner("pg_ctl", "--pgdata", str(self.data), "--log", str(self.root / "server.log"), "-w", "start")
        self._started = True
        return self

    def stop(self) -> None:
        """Stop at once (nothing in it is worth a checkpoint) and delete the directory."""
        if self._started:
            self._as_owner("pg_ctl", "--pgdata", str(self.data), "-m", "immediate", "-w", "stop")
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new empty database (a copy of `template` when given, which nobody may be connected to); its DSN."""
        copy = f" TEMPLATE {_checked(template)}" if template else ""
        self.execute(f"CREATE DATABASE {_checked(name)}{copy}")
        self.created.append(name)
        return self.dsn_for(name)

    def new_database(self) -> str:
        """A fresh database with a name of its own, the schema already applied (a copy of a template
        migrated once: each server's start then finds nothing to migrate); its DSN."""
        if not self._template_ready:
            self._make_template()
        return self.create_database(f"rotor_{len(self.created) + 1}", template=_TEMPLATE)

    def _make_template(self) -> None:
        from rotor_lite.store.pg import migrate_pg

        self.execute(f"CREATE DATABASE {_TEMPLATE}")

        async def migrate() -> None:
            connection = await asyncpg.connect(self.dsn_for(_TEMPLATE))
            try:
                await migrate_pg(connection)
            finally:
                await connection.close()

        run_sync(migrate())
        self._template_ready = True

    def drop_database(self, *names: str) -> None:
        """Drop them even while servers are still connected (their connections are ended)."""
        self.execute(*(f"DROP DATABASE IF EXISTS {_checked(name)} WITH (FORCE)" for name in names))

    def execute(self, *statements: str) -> None:
        """Run statements one by one (CREATE/DROP DATABASE cannot run in a transaction) on the `postgres` database."""
        async def run() -> None:
            connection = await asyncpg.connect(self.dsn_for("postgres"))
            try:
                for statement in statements:
                    await connection.execute(statement)
            finally:
                await connection.close()

        run_sync(run())

    def _as_owner(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stdout}{done.stderr}{self.log()}")


def _checked(name: str) -> str:
    """A database name safe to write into a statement unquoted (they cannot be bound as parameters)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a plain database name: {name!r}")
    return name
