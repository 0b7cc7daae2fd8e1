"""`rotor-lite migrate`: the schema applied once to an empty database, nothing the second time, and safely
when several migrations (or servers) start at once on one database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tests import helpers
from tests.helpers import ServerProcess, cluster_nodes, db_execute, storage_env, storage_url_of


def migrate_command(data_dir: Path, *options: str) -> list[str]:
    """The command migrating `data_dir`'s database: its SQLite file, or under PostgreSQL its database by --url."""
    command = [sys.executable, "-m", "rotor_lite", "migrate", "--data-dir", str(data_dir), *options]
    url = storage_url_of(data_dir)
    return command + (["--url", url] if url else [])


def migrate(data_dir: Path) -> dict[str, Any]:
    done = subprocess.run(migrate_command(data_dir, "--json"), capture_output=True, text=True, timeout=60, check=False,
                          env=_without_rotor_env())
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def migration_numbers() -> list[int]:
    """The numbers of the run's backend's migrations, from the files (sql/ or pg_sql/)."""
    folder = resources.files("rotor_lite.store") / ("sql" if helpers.database_for is None else "pg_sql")
    return sorted(int(entry.name.split("_", 1)[0]) for entry in folder.iterdir() if entry.name.endswith(".sql"))


def _without_rotor_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ROTOR_")}


@pytest.fixture
def data_dir(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Path:
    """A data directory with an empty database of the run's backend (no SQLite file yet, or an empty
    PostgreSQL database: not the migrated copy `ServerProcess` gets)."""
    path = tmp_path / "data"
    if backend == "postgres":
        cluster = request.getfixturevalue("pg_cluster")
        storage_env(path, cluster.create_database(f"rotor_empty_{len(cluster.created) + 1}"))
    return path


def test_an_empty_database_gets_the_schema_and_a_second_run_applies_nothing(data_dir: Path) -> None:
    first = migrate(data_dir)

    assert first["applied"] == migration_numbers() and first["version"] == first["applied"][-1]
    assert db_execute(data_dir, "SELECT count(*) FROM queue")[0][0] == 0  # the tables exist
    assert migrate(data_dir) == {**first, "applied": []}


def test_the_human_report_names_what_was_applied(data_dir: Path) -> None:
    done = subprocess.run(migrate_command(data_dir), capture_output=True, text=True, timeout=60, check=False, env=_without_rotor_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Applied ") and "schema version" in done.stdout


def test_three_migrations_at_once_on_one_empty_database_all_succeed_and_apply_the_schema_once(data_dir: Path) -> None:
    processes = [subprocess.Popen(migrate_command(data_dir, "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=_without_rotor_env()) for _ in range(3)]
    outputs = [process.communicate(timeout=60) for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0], [err for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    applied = sorted(number for report in reports for number in report["applied"])
    assert applied == migration_numbers()  # each migration by exactly one of them
    assert {report["version"] for report in reports} == {reports[0]["version"]}


@pytest.mark.postgres_only
def test_after_a_migration_applied_once_the_schema_table_has_one_row_per_version(data_dir: Path) -> None:
    threads = [threading.Thread(target=migrate, args=(data_dir,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    rows = db_execute(data_dir, "SELECT version, count(*) FROM rotor_schema GROUP BY version ORDER BY version")
    assert rows and all(count == 1 for _, count in rows)


@pytest.mark.postgres_only
def test_three_servers_started_at_once_on_one_empty_database_all_start(tmp_path: Path, data_dir: Path) -> None:
    servers = cluster_nodes(tmp_path, str(storage_url_of(data_dir)))
    failures: list[BaseException] = []

    def start(server: ServerProcess) -> None:
        try:
            server.start(timeout=60)
        except BaseException as exc:  # noqa: BLE001 - reported below with the server's log
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(server,)) for server in servers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert not failures, failures
        for server in servers:
            with server.client() as http:
                assert http.get("/v1/queues").status_code == 200
    finally:
        for server in servers:
            server.kill()
