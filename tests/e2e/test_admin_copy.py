"""`rotor-lite admin copy`: a single node's SQLite installation moves into PostgreSQL, and a node serves it there."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from rotor_lite.store.copy import TablePlan, copy_table
from tests.e2e.workflow_kit import WorkflowEnv
from tests.helpers import Receiver, Reply, ServerProcess, wait_until
from tests.pg_cluster import PgCluster, fetch, run_sync

pytestmark = pytest.mark.postgres_only

MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
TOKEN = "sk_live_copied_secret_value_42"


def admin_copy(source: Path, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotor_lite", "admin", "copy", "--from", f"sqlite:///{source}", "--to", target, "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )


@create_function(id="scorer", trigger={"event": "contact.score"})
async def scorer(ctx: Context, step: Step) -> Any:
    return await step.run("score", lambda: {"score": 42, "contact": ctx.event.data["id"]})


def run_workflow(server: ServerProcess) -> str:
    """A workflow run with a step, finished: the function, run, step and signing key rows to move."""
    env = WorkflowEnv(server)
    try:
        env.serve([scorer])
        [run_id] = env.send("contact.score", {"id": "c_1"})["runIds"]
        env.wait_status(run_id, "completed")
        return str(run_id)
    finally:
        env.close()


def fill(http: httpx.Client, receiver: Receiver) -> dict[str, Any]:
    """Queues, jobs in several states with tags, a schedule and its run, a secret, a webhook: what was written."""
    receiver.script("/fails", Reply(status=500))
    assert http.post("/v1/secrets", json={"name": "TOKEN", "value": TOKEN}).status_code == 201
    for name, path in (("work", "/work"), ("flaky", "/fails")):
        created = http.post("/v1/queues", json={
            "name": name, "callback_url": receiver.url(path), "callback_headers": {"X-Token": "${{ secrets.TOKEN }}"},
            "retry_attempts": 1,
        })
        assert created.status_code == 201, created.text
    assert http.post("/v1/queues", json={"name": "held", "callback_url": receiver.url("/held")}).status_code == 201
    assert http.post("/v1/queues/held/pause").status_code == 200
    hook = http.post("/v1/webhooks", json={"url": receiver.url("/hook"), "eventTypes": ["job.completed"]})
    assert hook.status_code == 201, hook.text

    def enqueue(queue: str, **body: Any) -> str:
        made = http.post(f"/v1/queues/{queue}/jobs", json=body)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    jobs = {
        "work": [enqueue("work", payload={"n": n}, tags=["campaign:spring", f"contact:c{n}"]) for n in range(3)],
        "flaky": [enqueue("flaky", payload={"doomed": True}, tags=["campaign:spring"])],
        "held": [enqueue("held", payload={"later": 1}), enqueue("held", payload={"later": 2}, delay="1h")],
    }
    schedule = http.post("/v1/schedules", json={
        "queue_name": "work", "name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Paris", "job_data": {"s": 1},
    })
    assert schedule.status_code == 201, schedule.text
    assert http.post("/v1/schedules/nightly/fire-now").status_code in (200, 201, 202)
    wait_until(lambda: all(http.get(f"/v1/queues/work/jobs/{j}").json()["state"] == "completed" for j in jobs["work"]))
    wait_until(lambda: http.get(f"/v1/queues/flaky/jobs/{jobs['flaky'][0]}").json()["state"] == "failed")
    wait_until(lambda: len(receiver.for_path("/hook")) >= 4)  # three jobs and the schedule's
    wait_until(lambda: [r for r in http.get("/v1/schedules/nightly/runs").json()["runs"]
                        if r["callback_status"] not in (None, "pending")])
    return jobs


def snapshot(http: httpx.Client, jobs: dict[str, list[str]], run_id: str) -> dict[str, Any]:
    """What the API says about everything `fill` wrote (cursors and timings are the database's own, so compared too)."""
    return {
        "jobs": {j: http.get(f"/v1/queues/{q}/jobs/{j}").json() for q, ids in jobs.items() for j in ids},
        "queues": http.get("/v1/queues").json(),
        "stats": http.get("/v1/queues/work/stats").json(),
        "tagged": http.get("/v1/queues/work/jobs", params={"tag": "campaign:spring"}).json(),
        "schedule": http.get("/v1/schedules/nightly").json(),
        "runs": http.get("/v1/schedules/nightly/runs").json(),
        "secrets": http.get("/v1/secrets").json(),
        "webhooks": http.get("/v1/webhooks").json(),
        "audit": http.get("/v1/audit", params={"limit": 100}).json(),
        "run": http.get(f"/v1/runs/{run_id}").json(),
        "functions": http.get("/v1/functions").json(),
    }


def assert_same_rows(source: Path, target: str) -> None:
    """Every SQLite table holds in PostgreSQL exactly the rows it holds in SQLite, value for value."""
    conn = sqlite3.connect(source)
    try:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
            columns = ", ".join(f'"{row[1]}"' for row in conn.execute(f'PRAGMA table_info("{table}")'))
            mine = sorted(map(repr, conn.execute(f'SELECT {columns} FROM "{table}"')))
            theirs = sorted(repr(tuple(row)) for row in run_sync(fetch(target, f'SELECT {columns} FROM "{table}"')))
            assert theirs == mine, table
    finally:
        conn.close()


def assert_rowids_continue(target: str) -> None:
    """Each table's rowid sequence hands out the rowid after the largest copied one."""
    tables = run_sync(fetch(target, "SELECT table_name FROM information_schema.columns WHERE column_name = 'rowid'"
                                    " AND is_identity = 'YES' AND table_schema = current_schema()"))
    for (table,) in tables:
        (sequence,), = run_sync(fetch(target, f"SELECT pg_get_serial_sequence('{table}', 'rowid')"))
        (top,), = run_sync(fetch(target, f'SELECT coalesce(max(rowid), 0) FROM "{table}"'))
        (last, called), = run_sync(fetch(target, f"SELECT last_value, is_called FROM {sequence}"))
        assert last + int(called) == top + 1, table


def test_a_sqlite_installation_moves_to_postgresql_and_a_node_serves_it(
    tmp_path: Path, pg_cluster: PgCluster, receiver: Receiver,
) -> None:
    keyed = {"ROTOR_SECURITY_MASTER_KEY": MASTER_KEY}
    single = ServerProcess(data_dir=tmp_path / "single", sqlite=True, env=keyed).start()
    try:
        with single.client() as http:
            jobs = fill(http, receiver)
            run_id = run_workflow(single)
            before = snapshot(http, jobs, run_id)
        target = pg_cluster.new_database()
        refused = admin_copy(single.data_dir / "rotor.db", target)
        assert refused.returncode != 0 and "stop it first" in refused.stderr
    finally:
        single.terminate()

    done = admin_copy(single.data_dir / "rotor.db", target)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    copied = {table["name"]: table["rows"] for table in report["tables"]}
    assert report["verified"] and report["rows"] == sum(copied.values()) and "master" in report["masterKey"]
    assert copied["job"] == 7 and copied["schedule"] == 1 and copied["secret"] == 1 and copied["webhook"] == 1
    assert copied["audit_event"] >= 8 and copied["job_attempt"] >= 5 and copied["delivery"] >= 4 and copied["meta"] >= 1
    assert copied["job_tag"] == 3 * 2 + 1 and copied["queue_count"] > 0 and copied["api_key"] >= 1
    assert copied["run"] == 1 and copied["run_step"] >= 1 and copied["function"] == 1 and copied["signing_key"] == 1

    assert_same_rows(single.data_dir / "rotor.db", target)
    assert_rowids_continue(target)

    again = admin_copy(single.data_dir / "rotor.db", target)
    assert again.returncode != 0 and "not empty" in again.stderr and len(again.stderr.strip().splitlines()) == 1

    stranger = ServerProcess(data_dir=tmp_path / "stranger", storage_url=target)  # a master key of its own
    with pytest.raises(RuntimeError, match="master key does not match"):
        stranger.start()
    node = ServerProcess(data_dir=tmp_path / "node", storage_url=target, env=keyed).start()
    try:
        with node.client() as http:
            assert snapshot(http, jobs, run_id) == before
            made = http.post("/v1/schedules", json={"queue_name": "work", "name": "second", "cron": "0 4 * * *", "timezone": "UTC"})
            assert made.status_code == 201, made.text
            newest_audit = http.get("/v1/audit", params={"limit": 1}).json()["data"][0]
            assert newest_audit["event_type"] == "schedule.created"
            fresh = http.post("/v1/queues/work/jobs", json={"payload": {"n": "after"}})
            assert fresh.status_code == 201, fresh.text
            wait_until(lambda: http.get(f"/v1/queues/work/jobs/{fresh.json()['id']}").json()["state"] == "completed")
        delivered = [r for r in receiver.for_path("/work") if r.json() == {"n": "after"}]
        assert delivered and delivered[0].headers["x-token"] == TOKEN  # the secret decrypts on the new node
        wait_until(lambda: any(fresh.json()["id"].encode() in r.body for r in receiver.for_path("/hook")))
    finally:
        node.terminate()
    rowids = run_sync(fetch(target, "SELECT max(rowid) FROM job"))[0][0]
    assert rowids == 8  # the new job's rowid follows the copied ones


def test_counts_that_differ_fail_the_copy_and_leave_the_target_empty(tmp_path: Path, pg_cluster: PgCluster) -> None:
    import asyncio

    import asyncpg

    from rotor_lite.errors import ConfigError
    from rotor_lite.store.db import migrate
    from rotor_lite.store.pg import migrate_pg

    source = sqlite3.connect(tmp_path / "rotor.db", isolation_level=None)
    migrate(source)
    source.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [("a", b"1"), ("b", b"2")])
    dsn = pg_cluster.new_database()

    async def copy_one_row_short() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate_pg(conn)
            short = TablePlan("meta", "SELECT key, value FROM meta LIMIT 1", ("key", "value"), False)
            with pytest.raises(ConfigError, match="2 rows in SQLite but 1 in PostgreSQL"):
                async with conn.transaction():
                    await copy_table(source, conn, short, batch_rows=10, on_progress=lambda _: None)
            return int(await conn.fetchval("SELECT count(*) FROM meta"))
        finally:
            await conn.close()

    assert asyncio.run(copy_one_row_short()) == 0
