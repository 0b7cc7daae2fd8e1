"""Retention with the clock moved forward: each workspace's history past its own retention days is pruned
in small slices and the job counters follow; audit events are kept 365 days.

A real Core, store and sweeper on a SQLite file with a fake clock. The clock starts in 2023, far enough
behind the wall clock for the audit table (which only lets events a year old go) to agree with it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import rotor_lite
from rotor_lite.engine import sweeper as sweeper_module
from rotor_lite.engine.sweeper import Sweeper
from rotor_lite.ids import new_id
from rotor_lite.models import (
    Attempt, Job, JobState, Principal, Role, Run, RunStatus, Settlement, Step, StepStatus, StepType,
)
from rotor_lite.schemas import BatchCreate, JobCreate, QueueCreate
from rotor_lite.services import audit, jobs, queues, workspaces
from rotor_lite.services.core import Core
from rotor_lite.store import audit as audit_store
from rotor_lite.store import counts
from rotor_lite.store import guardrails as guardrail_store
from rotor_lite.store import jobs as job_store
from rotor_lite.store import outbox as outbox_store
from rotor_lite.store import runs as run_store
from rotor_lite.store.outbox import DeliveryRow
from tests.notify_helpers import NotifyEnv, notify_env

START = 1_700_000_000_000  # 2023-11-14
DAY, MINUTE = 86_400_000, 60_000  # the sweeper prunes at most once per `retention.sweep_interval` (1 minute)


@pytest.fixture
def days_of(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, float]]:
    """Retention days per workspace id, as plans will set them (7, the default, for the others)."""
    days: dict[str, float] = {}
    monkeypatch.setattr(sweeper_module, "retention_days", lambda core, workspace_id: days.get(workspace_id, 7))
    yield days


async def enqueue(
    core: Core, principal: Principal, queue: str, count: int, *, tags: list[str] | None = None, delay: str | None = None
) -> list[str]:
    batch = BatchCreate(jobs=[JobCreate(payload={"i": i}, tags=tags, delay=delay) for i in range(count)])
    return [e.job.id for e in await jobs.enqueue_batch(core, principal, queue, batch)]


async def deliver(core: Core, principal: Principal, queue_name: str, state: JobState) -> None:
    """Claim every waiting job of the queue and settle it as completed or failed (with its attempt log)."""
    queue = core.queues.get(principal.workspace_id, queue_name)
    now = core.clock.now_ms()

    def claim_and_settle(conn: sqlite3.Connection) -> None:
        claimed = job_store.acquire_jobs(
            conn, queue_rowid=queue.rowid, workspace_id=queue.workspace_id, limit=10_000, owner="test", lease_ms=60_000,
            now=now, key_recheck_ms=1_000, key_ttl_ms=60_000,
        )
        attempt = Attempt(attempt=1, at=now, duration_ms=3, status=200, outcome="2xx", error=None)
        job_store.settle_jobs(conn, [Settlement(claimed=c, attempt=attempt, state=state, at=now) for c in claimed])

    await core.db.write(claim_and_settle)


async def block(core: Core, principal: Principal, queue_name: str) -> str:
    """A job as the guardrails leave one they blocked at enqueue."""
    queue = core.queues.get(principal.workspace_id, queue_name)
    now = core.clock.now_ms()
    job = Job(rowid=0, id=new_id("job", now), queue_id=queue.rowid, queue_name=queue.name, workspace_id=queue.workspace_id,
              state=JobState.BLOCKED, payload=b"{}", tags=[], concurrency_key=None, priority=0, attempts=0,
              max_attempts=3, run_at=now, created_at=now)

    def write(conn: sqlite3.Connection) -> None:
        job_store.insert_jobs(conn, queue.rowid, [job])
        guardrail_store.mark_blocked(conn, queue.rowid, job.id, "dnc", "on the do-not-contact list", now)

    await core.db.write(write)
    return job.id


async def add_run(core: Core, workspace_id: str, *, ended: bool) -> str:
    """A workflow run with one step, ended now or still running."""
    now = core.clock.now_ms()
    run = Run(rowid=0, id=new_id("run", now), workspace_id=workspace_id, function_id="fn", status=RunStatus.RUNNING,
              event_id="evt", event_name="e", event_data=b"{}", event_ts=now, attempt=1, output=None, error=None,
              parent_run_id=None, parent_step_rowid=None, idempotency_key=None, replay_of=None, schedule_id=None,
              hook_errors=None, created_at=now, started_at=now, ended_at=None)

    def write(conn: sqlite3.Connection) -> None:
        rowid = run_store.insert_run(conn, run, None)
        run_store.insert_step(conn, Step(
            rowid=0, run_rowid=rowid, key="s:0", name="s", type=StepType.RUN, status=StepStatus.COMPLETED, attempts=1,
            output=b"1", error=None, child_run_id=None, signal=None, event_name=None, started_at=now, ended_at=now,
            due_at=None))
        if ended:
            run_store.finish_run(conn, rowid, RunStatus.COMPLETED, now, output=b"1")

    await core.db.write(write)
    return run.id


async def add_delivery(core: Core, workspace_id: str, status: str) -> str:
    now = core.clock.now_ms()
    row = DeliveryRow(id=new_id("msg", now), workspace_id=workspace_id, channel="webhook", webhook_id="wh_x",
                      event_type="job.completed", body=b"{}", status=status, next_attempt_at=now + DAY, created_at=now)
    await core.db.write(lambda conn: outbox_store.insert_deliveries(conn, [row]))
    return row.id


async def job_ids(core: Core, principal: Principal, queue_name: str) -> set[str]:
    found, _ = await jobs.list_jobs(core, principal, queue_name, state=None, tag=None, limit=1000, cursor=None)
    return {job.id for job in found}


async def scalar(core: Core, sql: str, *params: object) -> int:
    row = await core.db.fetchone(sql, params)
    return int(row[0])


async def drift(core: Core) -> list[counts.Drift]:
    return await core.db.write(counts.drift)


async def second_workspace(env: NotifyEnv) -> Principal:
    created = await env.core.db.write(lambda conn: workspaces.create_workspace(conn, "other", env.clock.now_ms()))
    return Principal(key_id=created.key.id, workspace_id=created.workspace.id, role=Role.ADMIN)


async def test_history_past_the_retention_is_pruned_and_stays_readable_until_then(tmp_path: Path) -> None:
    async with notify_env(tmp_path) as env:
        core, me = env.core, env.principal
        env.clock.now = START
        await queues.create_queue(core, me, QueueCreate(name="q"))
        completed = await enqueue(core, me, "q", 3, tags=["a", "b"])
        await deliver(core, me, "q", JobState.COMPLETED)
        failed = await enqueue(core, me, "q", 2)
        await deliver(core, me, "q", JobState.FAILED)
        cancelled = (await jobs.cancel_job(core, me, "q", (await enqueue(core, me, "q", 1))[0])).id
        blocked = await block(core, me, "q")
        waiting = await enqueue(core, me, "q", 2)
        delayed = await enqueue(core, me, "q", 1, delay="30d")
        ended_run, open_run = await add_run(core, me.workspace_id, ended=True), await add_run(core, me.workspace_id, ended=False)
        sent, pending = await add_delivery(core, me.workspace_id, "succeeded"), await add_delivery(core, me.workspace_id, "pending")
        finished = {*completed, *failed, cancelled, blocked}
        sweeper = Sweeper(core, lambda: None)

        env.clock.advance(7 * DAY)  # the retention is 7 days: finished exactly 7 days ago is kept
        await sweeper.sweep()
        assert await job_ids(core, me, "q") == {*finished, *waiting, *delayed}
        for job_id in finished:
            await jobs.get_job(core, me, "q", job_id)  # each finished job is still readable by id

        env.clock.advance(MINUTE)
        await sweeper.sweep()
        assert await job_ids(core, me, "q") == {*waiting, *delayed}
        assert await scalar(core, "SELECT count(*) FROM job_tag") == 0
        assert await scalar(core, "SELECT count(*) FROM job_attempt") == 0
        assert [r.id for r in await run_store.list_runs(
            core.db, me.workspace_id, function_id=None, status=None, since=None, until=None, before_rowid=None, limit=10,
        )] == [open_run]
        assert await scalar(core, "SELECT count(*) FROM run_step") == 1 and ended_run
        assert [d.id for d in await outbox_store.list_for_webhook(
            core.db, "wh_x", status=None, before_rowid=None, limit=10)] == [pending] and sent

        assert await drift(core) == []
        counted = await queues.queue_counts(core, core.queues.get(me.workspace_id, "q"))
        assert counted == {"waiting": 2, "delayed": 1, "active": 0, "completed": 0, "failed": 0,
                           "pending_approval": 0, "blocked": 0, "cancelled": 0}
        scrape = core.metrics.render({}).decode()
        for kind, rows in (("jobs", 7), ("job_attempts", 5), ("job_tags", 6), ("runs", 1), ("run_steps", 1),
                           ("webhook_deliveries", 1)):
            assert f'rotor_pruned_rows_total{{kind="{kind}"}} {rows}.0' in scrape


async def test_each_workspace_keeps_its_history_for_its_own_retention_days(
    tmp_path: Path, days_of: dict[str, float]
) -> None:
    async with notify_env(tmp_path) as env:
        core, short = env.core, env.principal
        env.clock.now = START
        long = await second_workspace(env)
        days_of[long.workspace_id] = 30
        for principal in (short, long):
            await queues.create_queue(core, principal, QueueCreate(name="q"))
            await enqueue(core, principal, "q", 4)
            await deliver(core, principal, "q", JobState.COMPLETED)
            await add_run(core, principal.workspace_id, ended=True)
        sweeper = Sweeper(core, lambda: None)

        env.clock.advance(8 * DAY)
        await sweeper.sweep()
        assert (len(await job_ids(core, short, "q")), len(await job_ids(core, long, "q"))) == (0, 4)
        assert await scalar(core, "SELECT count(*) FROM run WHERE workspace_id = ?", long.workspace_id) == 1
        assert await scalar(core, "SELECT count(*) FROM run") == 1

        env.clock.advance(22 * DAY + 1)
        await sweeper.sweep()
        assert await job_ids(core, long, "q") == set()
        assert await scalar(core, "SELECT count(*) FROM run") == 0
        assert await drift(core) == []
        for principal in (short, long):
            assert (await queues.queue_counts(core, core.queues.get(principal.workspace_id, "q")))["completed"] == 0


async def test_pruning_takes_small_slices_and_each_keeps_the_counters_right(tmp_path: Path) -> None:
    async with notify_env(tmp_path) as env:
        core, me = env.core, env.principal
        env.clock.now = START
        await queues.create_queue(core, me, QueueCreate(name="q"))
        for _ in range(2):
            await enqueue(core, me, "q", 600)
        await deliver(core, me, "q", JobState.COMPLETED)
        before = env.clock.now + 1

        slices = []
        while pruned := await core.db.write(lambda conn: job_store.prune_finished(conn, me.workspace_id, before)):
            slices.append(pruned["jobs"])
            assert await drift(core) == []
        assert slices == [500, 500, 200]


async def test_audit_events_are_kept_365_days(tmp_path: Path) -> None:
    async with notify_env(tmp_path) as env:
        core, me = env.core, env.principal
        env.clock.now = START
        for at in (START, START + 200 * DAY):
            event = audit.audit_event(me.workspace_id, "queue.created", actor="key_a", now=at, ip="10.0.0.1")
            await audit.record_now(core, event)
        sweeper = Sweeper(core, lambda: None)

        env.clock.advance(365 * DAY)
        await sweeper.sweep()
        assert await scalar(core, "SELECT count(*) FROM audit_event") == 2

        env.clock.advance(MINUTE)
        await sweeper.sweep()
        assert [r.occurred_at for r in await audit_store.page(
            core.db, me.workspace_id, audit_store.AuditFilter(), before_rowid=None, limit=10)] == [START + 200 * DAY]
        assert 'rotor_pruned_rows_total{kind="audit_events"} 1.0' in core.metrics.render({}).decode()


def test_the_audit_table_refuses_to_lose_an_event_younger_than_a_year(conn: sqlite3.Connection) -> None:
    now = int(time.time() * 1000)  # the triggers read the wall clock (this machine's, on either backend)
    rows = [audit.audit_event("ws", "queue.created", actor="key_a", now=at, ip="10.0.0.1")
            for at in (now - 366 * DAY, now - 364 * DAY)]
    audit_store.insert(conn, rows)
    assert conn.execute("DELETE FROM audit_event WHERE occurred_at < ?", (now - 365 * DAY,)).rowcount == 1
    with pytest.raises(sqlite3.IntegrityError, match="kept 365 days"):
        conn.execute("DELETE FROM audit_event")


def test_one_function_decides_a_workspace_s_retention_days_and_the_sweeper_calls_it() -> None:
    """Plans set the days per workspace: a second definition would leave the sweeper reading the wrong one."""
    package = Path(rotor_lite.__file__).parent
    defined = [path for path in package.rglob("*.py") if "def retention_days(" in path.read_text()]
    assert defined == [Path(sweeper_module.retention_days.__code__.co_filename)]
