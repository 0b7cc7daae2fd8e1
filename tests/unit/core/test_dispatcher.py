"""The dispatcher over a real SQLite file with a fake deliverer: slots, grouped outcomes, events, recovery."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest

from rotor_lite.clock import SystemClock
from rotor_lite.config import load_settings
from rotor_lite.crypto import Vault
from rotor_lite.engine.delivery import Deliverer, Outcome
from rotor_lite.engine.dispatcher import Dispatcher
from rotor_lite.models import Claimed, Principal, Queue, Role
from rotor_lite.schemas import QueueCreate
from rotor_lite.services import queues, workspaces
from rotor_lite.services.core import Core
from rotor_lite.store import jobs as job_store
from rotor_lite.store.db import Database


class FakeDeliverer(Deliverer):
    """Answers every delivery after a short pause; remembers how many ran at once."""

    def __init__(self, ok: bool = True) -> None:
        super().__init__(SystemClock(), allow_private=False, max_connections=1)
        self.ok, self.running, self.most = ok, 0, 0
        self.seen: list[str] = []

    async def deliver(self, queue: Queue, job: Claimed) -> Outcome:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.002)
        self.running -= 1
        self.seen.append(job.id)
        status = 200 if self.ok else 500
        return Outcome(ok=self.ok, outcome="2xx" if self.ok else "5xx", status=status, error=None, duration_ms=2,
                       result=b'{"ok":true}' if self.ok else None)


class RecordingEvents:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict[str, Any]]] = []

    def emit(self, conn: sqlite3.Connection, workspace_id: str, event_type: str, data: dict[str, Any]) -> None:
        self.emitted.append((event_type, data))

    def wants(self, workspace_id: str, event_type: str) -> bool:
        return True


@asynccontextmanager
async def open_core(tmp_path: Path, concurrency: int) -> AsyncIterator[tuple[Core, Queue]]:
    settings = load_settings(env={}, overrides={("storage", "data_dir"): str(tmp_path)})
    async with Database(settings.db_path, "OFF") as db:
        core = Core(settings, SystemClock(), db, Vault(os.urandom(32)))
        await db.write(lambda conn: workspaces.bootstrap(conn, "rt_ws_unit_test_key", core.clock.now_ms()))
        row = await db.fetchone("SELECT id FROM workspace")
        principal = Principal(key_id="key_test", workspace_id=row[0], role=Role.ADMIN)
        await queues.create_queue(core, principal, QueueCreate(name="q", concurrency=concurrency))
        queue = core.queues.get(principal.workspace_id, "q")
        queue.callback_url = "https://hooks.example.com/q"
        yield core, queue


async def add_jobs(core: Core, queue: Queue, count: int) -> None:
    def insert(conn: sqlite3.Connection) -> None:
        for n in range(count):
            conn.execute(
                "INSERT INTO job (id, queue_id, workspace_id, state, payload, max_attempts, run_at, created_at)"
                " VALUES (?, ?, ?, 'waiting', CAST('{}' AS BLOB), 1, 0, 0)",
                (f"job_{n:04d}", queue.rowid, queue.workspace_id),
            )

    await core.db.write(insert)


async def states(core: Core) -> dict[str, int]:
    return {state: count for state, count in await core.db.fetchall("SELECT state, count(*) FROM job GROUP BY state")}


async def run_until_settled(core: Core, dispatcher: Dispatcher, total: int) -> None:
    async with dispatcher:
        dispatcher.wake()
        for _ in range(500):
            done = await states(core)
            if done.get("completed", 0) + done.get("failed", 0) == total:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"jobs never settled: {await states(core)}")


async def test_concurrency_holds_and_every_outcome_is_recorded_with_its_event(tmp_path: Path) -> None:
    async with open_core(tmp_path, concurrency=3) as (core, queue):
        events = RecordingEvents()
        core.events = events
        observed: list[tuple[str, bool]] = []
        core.attempt_observers.append(lambda conn, q, job, attempt, terminal: observed.append((job.id, terminal)))
        await add_jobs(core, queue, 40)
        deliverer = FakeDeliverer()
        dispatcher = Dispatcher(core, cast(Deliverer, deliverer))
        await run_until_settled(core, dispatcher, 40)
        assert deliverer.most <= 3 and sorted(deliverer.seen) == [f"job_{n:04d}" for n in range(40)]
        completed = [data["jobId"] for kind, data in events.emitted if kind == "job.completed"]
        assert sorted(completed) == sorted(deliverer.seen)
        assert sorted(observed) == [(job_id, True) for job_id in sorted(deliverer.seen)]
        attempts = await core.db.fetchone("SELECT count(*) FROM job_attempt")
        assert attempts[0] == 40


async def test_a_failed_group_records_its_outcomes_one_by_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = job_store.settle_jobs
    calls: list[int] = []

    def flaky(conn: sqlite3.Connection, settlements: Any) -> Any:
        calls.append(len(settlements))
        if len(calls) == 2:  # the first group with outcomes in it
            raise ValueError("boom")
        return real(conn, settlements)

    monkeypatch.setattr(job_store, "settle_jobs", flaky)
    async with open_core(tmp_path, concurrency=4) as (core, queue):
        await add_jobs(core, queue, 12)
        deliverer = FakeDeliverer(ok=False)
        dispatcher = Dispatcher(core, cast(Deliverer, deliverer))
        await run_until_settled(core, dispatcher, 12)
        assert (await states(core)) == {"failed": 12}
        assert len(deliverer.seen) == 12  # nothing delivered twice: the lost group was recorded alone
        assert not dispatcher._holding()


class FailsFirstDeliverer(FakeDeliverer):
    """Fails each job's first delivery, then succeeds: every job goes through one delayed retry."""

    async def deliver(self, queue: Queue, job: Claimed) -> Outcome:
        self.seen.append(job.id)
        await asyncio.sleep(0.002)
        if job.attempt == 1:
            return Outcome(ok=False, outcome="5xx", status=500, error="HTTP 500", duration_ms=2)
        return Outcome(ok=True, outcome="2xx", status=200, error=None, duration_ms=2, result=b"{}")


async def test_after_a_retried_job_completes_the_idle_loop_has_nothing_due(tmp_path: Path) -> None:
    """A retry's due time, once past, must not outlive the claim that took the job (it spun the loop)."""
    async with open_core(tmp_path, concurrency=4) as (core, queue):
        queue.backoff_delay_ms = 20
        await add_jobs(core, queue, 8)
        await core.db.write(lambda conn: conn.execute("UPDATE job SET max_attempts = 3"))
        dispatcher = Dispatcher(core, cast(Deliverer, FailsFirstDeliverer()))
        writes = 0
        real_write = core.db.write

        async def counting_write(fn: Any) -> Any:
            nonlocal writes
            writes += 1
            return await real_write(fn)

        core.db.write = counting_write  # type: ignore[method-assign]
        async with dispatcher:
            dispatcher.wake()
            for _ in range(500):
                if (await states(core)).get("completed") == 8:
                    break
                await asyncio.sleep(0.01)
            assert (await states(core)) == {"completed": 8}
            await asyncio.sleep(0.05)  # let the ops that recorded the last outcomes finish
            writes_before = writes
            await asyncio.sleep(0.3)  # idle: only the 1 s poll interval may write
            assert dispatcher._next_due is None
            assert writes - writes_before <= 1


class EverySecret:
    """A vault that knows every name."""

    async def resolve(self, workspace_id: str, names: set[str], context: dict[str, str]) -> dict[str, str]:
        return {name: "value-of-" + name for name in names}


async def test_a_delivery_that_raises_is_a_failed_attempt_logged_in_a_few_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A payload stored before nesting was bounded at the edge: resolving its template overflows the stack.
    deep = b'{"k":' * 600 + b'"${{ secrets.TOKEN }}"' + b"}" * 600
    async with open_core(tmp_path, concurrency=2) as (core, queue):
        queue.backoff_delay_ms = 0

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO job (id, queue_id, workspace_id, state, payload, max_attempts, run_at, created_at)"
                " VALUES ('job_deep', ?, ?, 'waiting', ?, 2, 0, 0)",
                (queue.rowid, queue.workspace_id, deep),
            )

        await core.db.write(insert)
        async with Deliverer(core.clock, allow_private=False, max_connections=2, secrets=EverySecret()) as deliverer:
            await run_until_settled(core, Dispatcher(core, deliverer), 1)
        job = await core.db.fetchone("SELECT state, attempts, fail_reason FROM job WHERE id = 'job_deep'")
        outcomes = await core.db.fetchall("SELECT outcome, error FROM job_attempt ORDER BY attempt")
    assert (job[0], job[1]) == ("failed", 2)
    assert job[2].startswith("internal error: RecursionError: maximum recursion depth exceeded") and len(job[2]) <= 300
    assert [tuple(row) for row in outcomes] == [("error", job[2])] * 2
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(crashes) == 2 and all("job_deep" in r.getMessage() for r in crashes)
    assert all(len(logging.Formatter().format(r).splitlines()) <= 30 for r in crashes)
