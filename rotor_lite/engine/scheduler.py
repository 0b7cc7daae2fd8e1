"""The scheduler: fires due cron ticks, each as a run and a job written in one transaction.

SQLite is the only state: every enabled schedule carries its `next_fire_at` (indexed), so a
restart loses nothing. The loop sleeps until the earliest `next_fire_at` (or until woken by a
schedule change, or one second as a safety net), then handles every due schedule:

- a tick due within the misfire grace fires (late ticks are fired one by one, so a busy moment
  loses none);
- a schedule further behind than the grace (the server was down, or the machine slept) catches
  up once: its latest missed tick fires if it is within the grace, every other missed tick is
  recorded as a skipped run, and it continues from the next tick after now. On start every
  overdue schedule catches up this way, so a missed tick fires once, not once per missed tick.

Cron matching and wall-clock/DST rules live in `rotor_lite.cron` (APScheduler's CronTrigger
underneath); this module owns the timing loop and the catch-up policy. The clock is the
core's, so tests drive `catch_up()` and `run_due()` with a fake one.

Several nodes on one PostgreSQL: only the cron leader (`store.leader.AdvisoryLeader`) runs the loop's
passes; the others try to take over every `schedules.leader_retry`. A node that leads from its start
catches up as above; one that takes over from a dead leader fires the ticks missed meanwhile as late
ticks (within the grace). `claim_tick`'s compare-and-set still fences every tick, so a deposed
leader's last pass cannot fire a tick twice.
"""

from __future__ import annotations

import asyncio
import logging

from rotor_lite.clock import iso_from_ms
from rotor_lite.cron import CronSchedule, compile_schedule
from rotor_lite.files import node_id
from rotor_lite.models import Schedule
from rotor_lite.services import schedules as service
from rotor_lite.services.core import Core
from rotor_lite.services.keyring import DAY_MS
from rotor_lite.services.plans import DEFAULT_PLAN, plan_limits
from rotor_lite.services.schedules import TickPlan
from rotor_lite.store import schedules as store
from rotor_lite.store.contract import is_postgres
from rotor_lite.store.leader import CRON_LEADER, AdvisoryLeader

log = logging.getLogger("rotor_lite.scheduler")

_BATCH = 1000
_MAX_SLEEP_MS = 1000
# The next tick's plans are made this long before it, while the loop would only sleep; with less
# than the margin left there is nothing to win.
_PREPARE_LEAD_MS = 250
_PREPARE_MARGIN_MS = 5
# Missed ticks recorded one by one when catching up; a per-second schedule down for a day would be 86,400.
MAX_SKIPPED_RECORDED = 100
_LEASES_PER_RETRY = 5  # the visible lease outlives this many missed renewals


class Scheduler:
    """Fires cron ticks; an async context manager that catches up on entry and loops until exit."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._grace_ms = core.settings.schedules.ms("misfire_grace")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lead_task: asyncio.Task[None] | None = None
        self._last_prune = 0
        self._retry_ms = core.settings.schedules.ms("leader_retry")
        self._leader: AdvisoryLeader | None = None
        if is_postgres(core.db):
            self._leader = AdvisoryLeader(core.settings.storage.url, CRON_LEADER, node_id(core.settings.data_path))

    async def __aenter__(self) -> Scheduler:
        if service.record_delivery not in self._core.attempt_observers:
            self._core.attempt_observers.append(service.record_delivery)
        if await self._try_lead():
            await self.catch_up()
        if self._leader is not None:
            self._lead_task = asyncio.create_task(self._keep_leading(), name="rotor-cron-leader")
        self._task = asyncio.create_task(self._run(), name="rotor-scheduler")
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = [task for task in (self._task, self._lead_task) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._leader is not None:
            await self._leader.close()

    @property
    def leading(self) -> bool:
        """Whether this node fires ticks (always on SQLite: one node per database)."""
        return self._leader is None or self._leader.leading

    async def _try_lead(self) -> bool:
        """Lead if no other node does, or renew the lease if this node does; False if it does not lead."""
        leader = self._leader
        if leader is None:
            return True
        now, lease = self._core.clock.now_ms(), self._retry_ms * _LEASES_PER_RETRY
        was_leading = leader.leading
        try:
            if was_leading:
                await leader.renew(now, lease)
            elif await leader.try_lead(now, lease):
                log.info("became cron leader", extra={"node": leader.node})
        except Exception:
            if was_leading:
                log.warning("lost cron leadership: the database session ended", exc_info=True)
            await leader.close()  # a new session next time: the lock is held by a session, never re-found
        return leader.leading

    async def _keep_leading(self) -> None:
        while True:
            was_leading = self.leading
            if await self._try_lead() and not was_leading:
                self._wake.set()  # took over: fire what the dead leader left due
            await asyncio.sleep(self._retry_ms / 1000)

    def wake(self) -> None:
        """A schedule changed: look again at what is due."""
        self._wake.set()

    async def catch_up(self) -> int:
        """On start: every overdue schedule fires its latest missed tick (within the grace) once."""
        now = self._core.clock.now_ms()
        handled = 0
        while due := await store.due_schedules(self._core.db, now, _BATCH):
            await self._apply([self._catch_up_plan(schedule, now) for schedule in due])
            handled += len(due)
            if len(due) < _BATCH:
                break
        if handled:
            log.info("schedules caught up after start", extra={"count": handled})
        return handled

    async def run_due(self) -> int | None:
        """One pass over the due schedules; returns when the next one is due (None: none is)."""
        now = self._core.clock.now_ms()
        due = await store.due_schedules(self._core.db, now, _BATCH)
        if due:
            await self._apply([self._plan(schedule, now) for schedule in due])
        await self._prune_runs(now)
        return await store.next_due_at(self._core.db)

    def _plan(self, schedule: Schedule, now: int) -> TickPlan:
        tick = schedule.next_fire_at
        assert tick is not None
        if now - tick > self._grace_ms:
            return self._catch_up_plan(schedule, now)
        cron = compile_schedule(schedule.cron, schedule.timezone)
        return TickPlan(schedule=schedule, fire_at=tick, skipped=[], next_fire_at=cron.next_after(tick))

    def _catch_up_plan(self, schedule: Schedule, now: int) -> TickPlan:
        first = schedule.next_fire_at
        assert first is not None
        cron = compile_schedule(schedule.cron, schedule.timezone)
        latest = latest_tick(cron, first, now)
        fire_at = latest if now - latest <= self._grace_ms else None
        skipped = self._skipped(cron, first, latest if fire_at is not None else now, fire_at)
        return TickPlan(schedule=schedule, fire_at=fire_at, skipped=skipped, next_fire_at=cron.next_after(now))

    def _skipped(self, cron: CronSchedule, first: int, until: int, fire_at: int | None) -> list[tuple[int, str]]:
        """The missed ticks from `first` that do not fire: before `fire_at`, or all up to `until`."""
        grace = self._core.settings.schedules.misfire_grace
        if fire_at is not None:
            reason = f"skipped: missed while the scheduler was not running; only the latest missed tick ({iso_from_ms(fire_at)}) fires"
        else:
            reason = f"skipped: missed while the scheduler was not running, longer ago than the misfire grace ({grace})"
        ticks: list[tuple[int, str]] = []
        tick: int | None = first
        while tick is not None and (tick < fire_at if fire_at is not None else tick <= until):
            if len(ticks) == MAX_SKIPPED_RECORDED:
                last, text = ticks[-1]
                ticks[-1] = (last, text + "; later missed ticks are not listed")
                break
            ticks.append((tick, reason))
            tick = cron.next_after(tick)
        return ticks

    async def _apply(self, plans: list[TickPlan]) -> None:
        # One writer operation for the whole batch (a savepoint per tick), so it costs one commit.
        await service.apply_ticks(self._core, plans)

    async def prepare(self, due_at: int) -> list[TickPlan]:
        """Plans, jobs built, for the schedules due at `due_at`, made before it so the tick only writes."""
        due = await store.due_schedules(self._core.db, due_at, _BATCH)
        return await service.prepare_ticks(self._core, [self._plan(schedule, due_at) for schedule in due])

    async def _run(self) -> None:
        prepared: list[TickPlan] = []
        prepared_for: int | None = None
        while True:
            self._wake.clear()
            if not self.leading:
                prepared, prepared_for = [], None
                await self._sleep_until(None)
                continue
            try:
                if prepared_for is not None and prepared_for <= self._core.clock.now_ms():
                    await self._apply(prepared)  # stale plans are refused by the writer
                    prepared, prepared_for = [], None
                next_due = await self.run_due()
                if prepared_for != next_due:
                    prepared, prepared_for = await self._prepare_ahead(next_due)
            except Exception:
                log.exception("scheduler pass failed; retrying")
                next_due, prepared, prepared_for = None, [], None
            # Wake a little before an unprepared tick to prepare it, then at the tick itself.
            early = next_due is not None and prepared_for is None
            await self._sleep_until(next_due - _PREPARE_LEAD_MS if early and next_due is not None else next_due)
            if self._wake.is_set():
                prepared, prepared_for = [], None  # a schedule changed: plan afresh

    async def _prepare_ahead(self, next_due: int | None) -> tuple[list[TickPlan], int | None]:
        if next_due is None:
            return [], None
        lead = next_due - self._core.clock.now_ms()
        if not _PREPARE_MARGIN_MS <= lead <= _PREPARE_LEAD_MS:
            return [], None
        return await self.prepare(next_due), next_due

    async def _sleep_until(self, next_due: int | None) -> None:
        wait_ms = _MAX_SLEEP_MS
        if next_due is not None:
            wait_ms = min(wait_ms, next_due - self._core.clock.now_ms())
        if wait_ms > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), wait_ms / 1000)
            except TimeoutError:
                pass
        else:
            await asyncio.sleep(0)

    async def _prune_runs(self, now: int) -> None:
        retention = self._core.settings.retention
        if now - self._last_prune < retention.ms("sweep_interval"):
            return
        self._last_prune = now
        before = now - plan_limits(self._core.settings, DEFAULT_PLAN).retention_days * DAY_MS
        while await self._core.db.write(lambda conn: store.prune_runs(conn, before)):
            await asyncio.sleep(0)


def latest_tick(cron: CronSchedule, first: int, now: int) -> int:
    """The last fire instant at or before `now`, given that `first` is one (first <= now).

    It looks back over a window that doubles until a tick is in it, so a per-second cron
    down for a day costs a few steps, not 86,400.
    """
    span = 1000
    while True:
        start = max(first, now - span)
        tick = cron.next_after(start - 1)
        if tick is not None and tick <= now:
            break
        span *= 2
    while (following := cron.next_after(tick)) is not None and following <= now:
        tick = following
    return tick
