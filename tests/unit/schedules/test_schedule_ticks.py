"""The scheduler against a real SQLite file with a fake clock: ticks, DST, restarts, pause, fire-now, run status."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from rotor_lite.engine.scheduler import MAX_SKIPPED_RECORDED
from rotor_lite.errors import QuotaExceeded
from rotor_lite.models import Attempt, Claimed, Schedule, ScheduleRun
from rotor_lite.schemas import ScheduleCreate, ScheduleUpdate
from rotor_lite.services import queues
from rotor_lite.services import schedules as service
from rotor_lite.services.schedules import TickPlan
from rotor_lite.store import jobs as job_store
from tests.unit.schedules.conftest import Env, FakeClock, Opener


def iso(value: int | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def create(env: Env, cron: str, zone: str = "UTC", **fields: Any) -> Schedule:
    spec = ScheduleCreate(queue="reports", cron=cron, timezone=zone, **fields)
    return await service.create_schedule(env.core, env.principal, spec)


async def reload(env: Env, schedule: Schedule) -> Schedule:
    return await service.get_schedule(env.core, env.principal, schedule.id)


async def runs(env: Env, schedule: Schedule) -> list[ScheduleRun]:
    found, _ = await service.list_runs(env.core, env.principal, schedule.id, limit=500, cursor=None)
    return list(reversed(found))  # oldest first


async def jobs_of(env: Env) -> list[Any]:
    queue = env.core.queues.get(env.principal.workspace_id, "reports")
    return await job_store.list_jobs(env.core.db, [queue.rowid], states=None, tag=None, before_rowid=None, limit=1000)


async def step_through(env: Env, start: str, minutes: int, every_s: int = 60) -> None:
    """Move the clock in steps, running the scheduler at each, as the real loop would."""
    env.clock.set(start)
    for _ in range(minutes * 60 // every_s):
        env.clock.advance(every_s * 1000)
        while (next_due := await env.scheduler.run_due()) is not None and next_due <= env.clock.now_ms():
            pass


# Ticks ------------------------------------------------------------------------------


async def test_a_tick_enqueues_one_job_and_records_its_run(open_env: Opener) -> None:
    clock = FakeClock("2026-05-15T12:00:00+00:00")  # a Friday
    async with open_env(clock) as env:
        schedule = await create(env, "0 9 * * 1-5", "America/New_York", payload={"source": "clearbit"})
        assert iso(schedule.next_fire_at) == "2026-05-15T13:00:00Z"
        clock.set("2026-05-15T12:59:59.999+00:00")
        assert await env.scheduler.run_due() == schedule.next_fire_at
        assert await runs(env, schedule) == []

        clock.set("2026-05-15T13:00:00.004+00:00")
        await env.scheduler.run_due()
        await env.scheduler.run_due()  # nothing is due twice
        [run] = await runs(env, schedule)
        assert (iso(run.scheduled_for), run.fired_at, run.manual) == ("2026-05-15T13:00:00Z", clock.now, False)
        assert run.callback_status is None  # the queue has no callback URL
        [job] = await jobs_of(env)
        job = job_store.job_from_row(job, "reports")
        assert (job.id, job.schedule_id, job.payload) == (run.job_id, schedule.id, b'{"source":"clearbit"}')
        after = await reload(env, schedule)
        assert iso(after.next_fire_at) == "2026-05-18T13:00:00Z"  # Monday: the weekend is skipped
        assert after.last_fired_at == clock.now


async def test_late_ticks_within_the_grace_all_fire_in_order(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T00:00:00.200+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "* * * * * *")
        clock.advance(5_000)  # the loop was busy for five seconds
        while (next_due := await env.scheduler.run_due()) is not None and next_due <= clock.now:
            pass
        got = [iso(r.scheduled_for) for r in await runs(env, schedule)]
        assert got == [f"2026-06-01T00:00:0{s}Z" for s in range(1, 6)]
        assert len(await jobs_of(env)) == 5


@pytest.mark.parametrize(
    ("zone", "cron", "start", "fired"),
    [
        ("America/New_York", "30 1 * * *", "2026-11-01T03:00:00+00:00", ["2026-11-01T05:30:00Z"]),
        ("America/New_York", "30 2 * * *", "2026-03-08T05:00:00+00:00", ["2026-03-08T07:00:00Z"]),
        ("Europe/London", "30 1 * * *", "2026-10-24T23:00:00+00:00", ["2026-10-25T00:30:00Z"]),
        ("Europe/London", "30 1 * * *", "2026-03-28T23:00:00+00:00", ["2026-03-29T01:00:00Z"]),
        ("Australia/Lord_Howe", "45 1 * * *", "2026-04-04T12:00:00+00:00", ["2026-04-04T14:45:00Z"]),
        ("Australia/Lord_Howe", "15 2 * * *", "2026-10-03T13:00:00+00:00", ["2026-10-03T15:30:00Z"]),
        ("Asia/Kolkata", "30 2 * * *", "2026-11-01T18:00:00+00:00", ["2026-11-01T21:00:00Z"]),
    ],
)
async def test_the_running_scheduler_fires_once_across_each_transition(
    open_env: Opener, zone: str, cron: str, start: str, fired: list[str]
) -> None:
    clock = FakeClock(start)
    async with open_env(clock) as env:
        schedule = await create(env, cron, zone)
        await step_through(env, start, minutes=5 * 60)  # five hours around the change, minute by minute
        got = await runs(env, schedule)
        assert [iso(r.scheduled_for) for r in got] == fired
        assert [r.job_id is not None for r in got] == [True]


async def test_every_minute_through_fall_back_fires_each_wall_minute_once(open_env: Opener) -> None:
    clock = FakeClock("2026-11-01T04:30:00+00:00")  # 00:30 EDT
    async with open_env(clock) as env:
        schedule = await create(env, "*/10 * * * *", "America/New_York")
        await step_through(env, "2026-11-01T04:30:00+00:00", minutes=3 * 60)
        got = [iso(r.scheduled_for) for r in await runs(env, schedule)]
        # 01:00–01:50 fire in EDT; the repeated 01:xx (EST) does not fire again; 02:00 EST follows.
        assert got[:6] == [f"2026-11-01T04:{m}0:00Z" for m in range(4, 6)] + [
            f"2026-11-01T05:{m}0:00Z" for m in range(4)
        ]
        assert "2026-11-01T06:00:00Z" not in got and got[got.index("2026-11-01T05:50:00Z") + 1] == "2026-11-01T07:00:00Z"
        assert len(got) == len(set(got))


# Restarts -------------------------------------------------------------------------


async def test_schedules_survive_a_restart(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:00:00+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 * * * *", name="hourly")
    async with open_env(clock) as env:
        again = await service.get_schedule(env.core, env.principal, "hourly")
        assert (again.id, again.next_fire_at) == (schedule.id, schedule.next_fire_at)
        clock.set("2026-06-01T11:00:00.010+00:00")
        await env.scheduler.run_due()
        assert [iso(r.scheduled_for) for r in await runs(env, again)] == ["2026-06-01T11:00:00Z"]


async def test_a_tick_missed_while_down_fires_once_on_start_within_the_grace(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:59:00+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 * * * *")
    clock.set("2026-06-01T11:30:00+00:00")  # down across 11:00
    async with open_env(clock) as env:
        await env.scheduler.catch_up()
        [run] = await runs(env, schedule)
        assert (iso(run.scheduled_for), run.fired_at, run.error) == ("2026-06-01T11:00:00Z", clock.now, None)
        assert len(await jobs_of(env)) == 1
        assert iso((await reload(env, schedule)).next_fire_at) == "2026-06-01T12:00:00Z"


async def test_a_tick_missed_outside_the_grace_is_skipped_and_visible(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T08:59:00+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 9 * * *")
    clock.set("2026-06-01T10:30:00+00:00")  # 09:00 was 90 minutes ago; the grace is 1 h
    async with open_env(clock) as env:
        await env.scheduler.catch_up()
        [run] = await runs(env, schedule)
        assert (iso(run.scheduled_for), run.fired_at, run.job_id) == ("2026-06-01T09:00:00Z", None, None)
        assert run.error is not None and "misfire grace (1h)" in run.error
        assert await jobs_of(env) == []
        assert iso((await reload(env, schedule)).next_fire_at) == "2026-06-02T09:00:00Z"


async def test_several_missed_ticks_fire_once_and_the_rest_are_recorded_as_skipped(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:59:00+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 * * * *")
    clock.set("2026-06-01T13:30:00+00:00")
    async with open_env(clock) as env:
        await env.scheduler.catch_up()
        got = await runs(env, schedule)
        assert [(iso(r.scheduled_for), r.job_id is not None) for r in got] == [
            ("2026-06-01T11:00:00Z", False), ("2026-06-01T12:00:00Z", False), ("2026-06-01T13:00:00Z", True),
        ]
        assert all("only the latest missed tick" in (r.error or "") for r in got[:2])
        assert len(await jobs_of(env)) == 1


async def test_the_grace_is_configurable(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:59:00+00:00")
    async with open_env(clock, grace="10m") as env:
        schedule = await create(env, "0 * * * *")
    clock.set("2026-06-01T11:30:00+00:00")
    async with open_env(clock, grace="10m") as env:
        await env.scheduler.catch_up()
        [run] = await runs(env, schedule)
        assert run.job_id is None and "misfire grace (10m)" in (run.error or "")


async def test_a_long_outage_of_a_per_second_schedule_catches_up_quickly_and_boundedly(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T00:00:00.500+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "* * * * * *")
    clock.set("2026-06-02T00:00:00.500+00:00")  # a day: 86,400 missed ticks
    async with open_env(clock) as env:
        started = time.perf_counter()
        await env.scheduler.catch_up()
        assert time.perf_counter() - started < 2
        got = await runs(env, schedule)
        assert len(got) == MAX_SKIPPED_RECORDED + 1
        assert "later missed ticks are not listed" in (got[-2].error or "")
        assert (iso(got[-1].scheduled_for), got[-1].job_id is not None) == ("2026-06-02T00:00:00Z", True)
        assert iso((await reload(env, schedule)).next_fire_at) == "2026-06-02T00:00:01Z"


async def test_a_schedule_far_behind_while_running_catches_up_like_a_restart(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:59:00+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 * * * *")
        clock.set("2026-06-01T13:30:00+00:00")  # the machine slept
        await env.scheduler.run_due()
        assert [r.job_id is not None for r in await runs(env, schedule)] == [False, False, True]


# Pause, resume, update, fire-now, delete -----------------------------------------------------


async def test_pause_stops_ticks_and_resume_continues_from_the_next_tick_after_now(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:30:00+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 * * * *")
        paused = await service.set_enabled(env.core, env.principal, schedule.id, False)
        assert (paused.enabled, paused.next_fire_at) == (False, None)
        clock.set("2026-06-01T13:20:00+00:00")
        assert await env.scheduler.run_due() is None
        resumed = await service.set_enabled(env.core, env.principal, schedule.name, True)
        assert iso(resumed.next_fire_at) == "2026-06-01T14:00:00Z"
        await env.scheduler.run_due()
        assert await runs(env, schedule) == []  # ticks missed while paused never fire


async def test_update_recomputes_the_next_fire_only_when_the_timing_changes(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:30:00+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 * * * *")
        same = await service.update_schedule(env.core, env.principal, schedule.id, ScheduleUpdate(payload={"v": 2}))
        assert (same.next_fire_at, same.payload) == (schedule.next_fire_at, b'{"v":2}')
        moved = await service.update_schedule(
            env.core, env.principal, schedule.id, ScheduleUpdate(cron="0 9 * * *", timezone="Asia/Kolkata")
        )
        assert iso(moved.next_fire_at) == "2026-06-02T03:30:00Z"


async def test_fire_now_enqueues_the_same_job_and_leaves_the_next_fire_alone(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:30:00+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 * * * *", payload={"n": 1})
        run = await service.fire_now(env.core, env.principal, schedule.id)
        assert (run.manual, run.scheduled_for, run.fired_at) == (True, clock.now, clock.now)
        after = await reload(env, schedule)
        assert (after.next_fire_at, after.last_fired_at) == (schedule.next_fire_at, clock.now)
        clock.set("2026-06-01T11:00:00+00:00")
        await env.scheduler.run_due()
        got = await runs(env, schedule)
        assert [r.manual for r in got] == [True, False]
        payloads = {bytes(row[5]) for row in await jobs_of(env)}
        assert payloads == {b'{"n":1}'}


async def test_deleting_the_queue_deletes_its_schedules_and_keeps_their_runs(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:30:00+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 * * * *")
        await service.fire_now(env.core, env.principal, schedule.id)
        await queues.delete_queue(env.core, env.principal, "reports")
        with pytest.raises(service.ScheduleNotFound):
            await reload(env, schedule)
        assert await env.scheduler.run_due() is None
        assert len(await env.core.db.fetchall("SELECT id FROM schedule_run")) == 1


# One tick, one job --------------------------------------------------------------------


async def test_a_plan_applied_twice_enqueues_one_job(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:59:59+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 * * * *")
        clock.set("2026-06-01T11:00:00+00:00")
        plan = TickPlan(schedule=schedule, fire_at=schedule.next_fire_at, skipped=[], next_fire_at=schedule.next_fire_at)
        first, second = await service.apply_tick(env.core, plan), await service.apply_tick(env.core, plan)
        assert first is not None and second is None
        assert len(await jobs_of(env)) == 1


async def test_the_database_refuses_a_second_run_for_one_tick(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:59:59+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 * * * *")
        clock.set("2026-06-01T11:00:00+00:00")
        await env.scheduler.run_due()
        # Pretend the schedule row lost its progress (a crash between two writes cannot do this,
        # but the run's unique key must hold even if it did).
        stale = TickPlan(schedule=await reload(env, schedule), fire_at=schedule.next_fire_at, skipped=[], next_fire_at=None)
        stale.schedule.next_fire_at = schedule.next_fire_at
        await env.core.db.write(lambda conn: conn.execute(
            "UPDATE schedule SET next_fire_at = ? WHERE rowid = ?", (schedule.next_fire_at, schedule.rowid)))
        assert await service.apply_tick(env.core, stale) is None
        assert len(await jobs_of(env)) == 1 and len(await runs(env, schedule)) == 1


async def test_a_tick_refused_by_the_quota_is_recorded_and_the_schedule_moves_on(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:59:59+00:00")
    async with open_env(clock, quota=1) as env:
        schedule = await create(env, "0 * * * *")
        await service.fire_now(env.core, env.principal, schedule.id)  # uses the whole quota
        with pytest.raises(QuotaExceeded):
            await service.fire_now(env.core, env.principal, schedule.id)
        clock.set("2026-06-01T11:00:00+00:00")
        await env.scheduler.run_due()
        got = await runs(env, schedule)
        assert [r.job_id is not None for r in got] == [True, False]
        assert "QUOTA_EXCEEDED" in (got[-1].error or "") and got[-1].fired_at is None
        after = await reload(env, schedule)
        assert iso(after.next_fire_at) == "2026-06-01T12:00:00Z"
        assert after.last_fired_at == got[0].fired_at  # the refused tick did not fire


# Run status from deliveries --------------------------------------------------------------


async def test_callback_status_follows_the_jobs_deliveries(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:59:59+00:00")
    async with open_env(clock) as env:
        queue = env.core.queues.get(env.principal.workspace_id, "reports")
        queue.callback_url = "https://hooks.example.com/reports"
        schedule = await create(env, "0 * * * *")
        async with env.scheduler:
            assert service.record_delivery in env.core.attempt_observers
        run = await service.fire_now(env.core, env.principal, schedule.id)
        assert run.callback_status == "pending"
        row = await job_store.get_job(env.core.db, queue.rowid, run.job_id or "")
        claimed = Claimed(rowid=row[0], id=row[1], queue_id=queue.rowid, payload=b"{}", attempt=1, max_attempts=3,
                          lease_token="t", concurrency_key=None, schedule_id=schedule.id)

        async def deliver(outcome: str, status: int | None, error: str | None) -> ScheduleRun:
            attempt = Attempt(attempt=1, at=clock.now, duration_ms=5, status=status, outcome=outcome, error=error)
            await env.core.db.write(lambda conn: [o(conn, queue, claimed, attempt, False) for o in env.core.attempt_observers])
            return (await runs(env, schedule))[-1]

        failed = await deliver("5xx", 503, "callback returned 503")
        assert (failed.callback_status, failed.error) == ("5xx", "callback returned 503")
        refused = await deliver("network", None, "connection refused")
        assert (refused.callback_status, refused.error) == ("5xx", "connection refused")
        slow = await deliver("timeout", None, "no response within 30 s")
        assert slow.callback_status == "timeout"
        client = await deliver("4xx", 404, None)
        assert (client.callback_status, client.error) == ("4xx", "callback returned 404")
        done = await deliver("2xx", 200, None)
        assert (done.callback_status, done.error) == ("2xx", None)


async def test_the_run_table_itself_holds_one_run_per_tick(open_env: Opener) -> None:
    import sqlite3

    from rotor_lite.store import schedules as store

    clock = FakeClock("2026-06-01T10:00:00+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 * * * *")
        tick = schedule.next_fire_at or 0

        def run(run_id: str, manual: bool) -> ScheduleRun:
            return ScheduleRun(id=run_id, schedule_id=schedule.id, scheduled_for=tick, fired_at=tick, job_id=None,
                               manual=manual, callback_status=None, error=None)

        await env.core.db.write(lambda conn: store.insert_run(conn, run("sr_a", False), schedule.workspace_id, None))
        with pytest.raises(sqlite3.IntegrityError):
            await env.core.db.write(lambda conn: store.insert_run(conn, run("sr_b", False), schedule.workspace_id, None))
        # manual fires are not cron ticks: two in the same millisecond are both kept
        await env.core.db.write(lambda conn: store.insert_run(conn, run("sr_c", True), schedule.workspace_id, None))
        await env.core.db.write(lambda conn: store.insert_run(conn, run("sr_d", True), schedule.workspace_id, None))
        assert len(await runs(env, schedule)) == 3


async def test_plans_prepared_before_the_tick_fire_at_it_unless_the_schedule_changed(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:59:59.100+00:00")
    async with open_env(clock) as env:
        kept = await create(env, "0 * * * *", name="kept", payload={"v": 1})
        await create(env, "0 * * * *", name="edited", payload={"v": 1})
        plans = await env.scheduler.prepare(kept.next_fire_at or 0)
        assert {p.schedule.name for p in plans} == {"kept", "edited"} and all(p.job is not None for p in plans)
        await service.update_schedule(env.core, env.principal, "edited", ScheduleUpdate(payload={"v": 2}))
        clock.set("2026-06-01T11:00:00.002+00:00")
        fired = await service.apply_ticks(env.core, plans)
        assert [run is not None for run in fired] == [True, False]
        [job] = [job_store.job_from_row(row, "reports") for row in await jobs_of(env)]
        assert (job.schedule_id, job.created_at, job.run_at) == (kept.id, kept.next_fire_at, kept.next_fire_at)
        await env.scheduler.run_due()  # the edited one is read again and fires with its new payload
        assert sorted(bytes(row[5]) for row in await jobs_of(env)) == [b'{"v":1}', b'{"v":2}']


async def test_runs_older_than_the_retention_window_are_pruned(open_env: Opener) -> None:
    clock = FakeClock("2026-06-01T10:30:00+00:00")
    async with open_env(clock) as env:
        schedule = await create(env, "0 9 * * *")
        await service.fire_now(env.core, env.principal, schedule.id)
        clock.set("2026-06-05T08:30:00+00:00")  # 06-02..06-04 missed (recorded as skipped)
        await env.scheduler.run_due()
        before = [iso(r.scheduled_for) for r in await runs(env, schedule)]
        assert before == ["2026-06-01T10:30:00Z", "2026-06-02T09:00:00Z", "2026-06-03T09:00:00Z", "2026-06-04T09:00:00Z"]
        clock.set("2026-06-10T08:00:00+00:00")  # the self-hosted plan keeps 7 days
        await env.scheduler.run_due()
        after = [iso(r.scheduled_for) for r in await runs(env, schedule)]
        assert after[:2] == ["2026-06-03T09:00:00Z", "2026-06-04T09:00:00Z"]
