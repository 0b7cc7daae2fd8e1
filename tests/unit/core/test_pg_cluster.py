"""The tests' throwaway PostgreSQL cluster: databases made on demand, one per server, gone when dropped."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests import helpers
from tests.pg_cluster import PgCluster

pytestmark = pytest.mark.postgres_only


async def test_a_new_database_answers_and_a_dropped_one_is_gone(pg_cluster: PgCluster) -> None:
    dsn = pg_cluster.create_database("smoke")
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT 1") == 1
        assert await connection.fetchval("SHOW fsync") == "off"  # a cluster for tests, not for data
    finally:
        await connection.close()
    pg_cluster.drop_database("smoke")
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(dsn)


async def test_a_database_copies_its_template(pg_cluster: PgCluster) -> None:
    template = await asyncpg.connect(pg_cluster.create_database("template_smoke"))
    try:
        await template.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
    finally:
        await template.close()
    copy = await asyncpg.connect(pg_cluster.create_database("copy_smoke", template="template_smoke"))
    try:
        assert await copy.fetchval("SELECT n FROM kept") == 7
    finally:
        await copy.close()


def test_each_data_directory_gets_its_own_database_and_keeps_it(pg_cluster: PgCluster, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    env = helpers.storage_env(first, None)
    assert env["ROTOR_STORAGE_URL"].startswith(f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/rotor_")
    assert helpers.storage_env(first, None) == env  # a restart on the same directory finds its data
    assert helpers.storage_env(second, None) != env
    shared = pg_cluster.dsn_for("postgres")
    assert helpers.storage_env(tmp_path / "c", shared) == {"ROTOR_STORAGE_URL": shared}


def test_a_name_that_is_not_plain_is_refused(pg_cluster: PgCluster) -> None:
    with pytest.raises(ValueError, match="not a plain database name"):
        pg_cluster.create_database("x; DROP DATABASE postgres")


async def test_the_counter_check_reads_the_database_of_the_data_directory(pg_cluster: PgCluster, tmp_path: Path) -> None:
    url = helpers.storage_env(tmp_path, None)["ROTOR_STORAGE_URL"]
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "DROP TABLE job CASCADE; DROP TABLE queue_count CASCADE;"  # the template's schema: two bare tables do here
            " CREATE TABLE job (queue_id bigint, state text); CREATE TABLE queue_count (queue_id bigint, state text, n bigint);"
            " INSERT INTO job VALUES (1, 'waiting'), (1, 'waiting'), (2, 'active');"
            " INSERT INTO queue_count VALUES (1, 'waiting', 2), (2, 'active', 1), (2, 'waiting', 0)"
        )
        helpers.assert_counts_match(tmp_path)
        await connection.execute("UPDATE queue_count SET n = 3 WHERE queue_id = 1")
        with pytest.raises(AssertionError, match=r"\(1, 'waiting', 3, 2\)"):
            helpers.assert_counts_match(tmp_path)
    finally:
        await connection.close()
