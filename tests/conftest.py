from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests import helpers
from tests.helpers import Receiver, ServerProcess

BACKENDS = ("sqlite", "postgres")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend", choices=BACKENDS, default=os.environ.get("ROTOR_TEST_BACKEND", "sqlite"),
        help="the store every server and database of the run uses (env ROTOR_TEST_BACKEND; default sqlite)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`sqlite_only` tests (they read the SQLite file, its WAL, a backup) skip under PostgreSQL, and the reverse."""
    backend = config.getoption("--backend")
    other = "postgres" if backend == "sqlite" else "sqlite"
    skip = pytest.mark.skip(reason=f"{other} only: this run is --backend {backend}")
    for item in items:
        if item.get_closest_marker(f"{other}_only"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def backend(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--backend"))


@pytest.fixture(scope="session")
def pg_cluster(backend: str) -> Iterator[Any]:
    """The run's one PostgreSQL cluster; every server started meanwhile gets a fresh database in it."""
    if backend != "postgres":
        pytest.skip("needs --backend postgres")
    from tests.pg_cluster import PgCluster  # asyncpg only for the PostgreSQL runs

    with PgCluster() as cluster:
        helpers.database_for = cluster.new_database
        try:
            yield cluster
        finally:
            helpers.database_for = None


@pytest.fixture(scope="module", autouse=True)
def _postgres_databases(request: pytest.FixtureRequest, backend: str) -> Iterator[None]:
    """Under PostgreSQL: the databases a module's servers made are dropped after them (the disk stays small)."""
    if backend != "postgres":
        yield
        return
    cluster = request.getfixturevalue("pg_cluster")
    before = len(cluster.created)
    yield
    if made := cluster.created[before:]:
        cluster.drop_database(*made)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rec:
        yield rec


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module marked `both_delivery_paths` runs each test against servers that deliver in-process and
    through two delivery helpers."""
    if "delivery_processes" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_delivery_paths"):
        metafunc.parametrize("delivery_processes", ["0", "2"], indirect=True, scope="module",
                             ids=["in-process", "2-helpers"])


@pytest.fixture(scope="module")
def delivery_processes(request: pytest.FixtureRequest) -> dict[str, str]:
    """The servers' `[delivery] processes` as environment (none: the default, `auto`)."""
    processes = getattr(request, "param", None)
    return {} if processes is None else {"ROTOR_DELIVERY_PROCESSES": processes}


@pytest.fixture
def make_server(tmp_path: Path, delivery_processes: dict[str, str]) -> Iterator[Callable[..., ServerProcess]]:
    """Start `rotor-lite serve` subprocesses (extra env as keyword arguments); all are killed at teardown."""
    started: list[ServerProcess] = []

    def make(data_dir: Path | None = None, **env: str) -> ServerProcess:
        server = ServerProcess(data_dir=data_dir or tmp_path / f"data{len(started)}", env={**delivery_processes, **env})
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def server(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    return make_server()


@pytest.fixture
def make_database(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """`make_database(name="rotor")`: an unopened store (`async with make_database() as db`) of the run's backend.

    The same name gives another handle on the same database; another name, another database.
    """
    if backend == "sqlite":
        from rotor_lite.store.db import Database

        def sqlite_database(name: str = "rotor") -> AbstractAsyncContextManager[Any]:
            return Database(tmp_path / f"{name}.db", "OFF")

        return sqlite_database

    from rotor_lite.store.pg import PgDatabase  # only the PostgreSQL runs need it

    cluster = request.getfixturevalue("pg_cluster")
    dsns: dict[str, str] = {}

    def postgres_database(name: str = "rotor") -> AbstractAsyncContextManager[Any]:
        if name not in dsns:
            dsns[name] = cluster.new_database()
        return PgDatabase(dsns[name])

    return postgres_database
