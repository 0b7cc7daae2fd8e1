"""Job operations: enqueue (single and batch), read, list, cancel, retry, the DLQ."""

from __future__ import annotations

import asyncio
import re
import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

import msgspec

from rotor_lite.errors import (
    IdempotencyConflict, InvalidState, JobNotFound, PayloadTooLarge, QuotaExceeded, RotorError, Unavailable,
    ValidationError,
)
from rotor_lite.durations import parse_duration_ms
from rotor_lite.ids import new_id, new_ids
from rotor_lite.models import (
    CANCELLABLE_STATES, RETRYABLE_STATES, STATE_ALIASES, Attempt, Job, JobState, Principal, Queue, public_state,
)
from rotor_lite.schemas import BatchCreate, JobCreate
from rotor_lite.services import fairness
from rotor_lite.services import secrets as vault
from rotor_lite.services.core import Core, billing_period
from rotor_lite.services.paging import decode_cursor, encode_cursor
from rotor_lite.store import jobs as job_store
from rotor_lite.store.contract import Conn, is_postgres, lock_across_nodes

MAX_TAGS, MAX_TAG_LENGTH, MAX_KEY_LENGTH, MAX_BATCH = 10, 64, 256, 1000
MAX_DELAY_MS = 366 * 86_400_000
_PRIORITY_RANGE = (-(2**31), 2**31 - 1)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1: ids travel in headers (x-rotor-job-id) and logs
_PAYLOAD = attrgetter("payload")


class Enqueued(msgspec.Struct, kw_only=True):
    job: Job
    duplicate: bool


async def enqueue(core: Core, principal: Principal, queue_name: str, spec: JobCreate, header_key: str | None) -> Enqueued:
    """Add one job; a known `jobId` returns the existing job (or 409 when `strict`)."""
    queue = core.queue_for(principal, queue_name)
    now = core.clock.now_ms()
    explicit = _explicit_id(spec, header_key)
    job = build_job(core, queue, spec, explicit or new_id("job", now), now, "")
    if vault.MARKER_BYTES in job.payload:
        await vault.require_known(core, queue.workspace_id, [("payload", spec.payload)])
    result = await _insert(core, queue, [job], {explicit} if explicit else set(), strict=spec.strict)
    return result[0]


async def enqueue_batch(core: Core, principal: Principal, queue_name: str, spec: BatchCreate) -> list[Enqueued]:
    """Add up to 1000 jobs, all or none; known ids are silent no-ops."""
    queue = core.queue_for(principal, queue_name)
    if not 1 <= len(spec.jobs) <= MAX_BATCH:
        raise ValidationError(f"a batch holds 1 to {MAX_BATCH} jobs", field="jobs")
    keys = _batch_keys(spec)
    now = core.clock.now_ms()
    explicit: set[str] = set()
    generated = iter(new_ids("job", now, len(spec.jobs)))
    jobs = []
    for i, job_spec in enumerate(spec.jobs):
        job_id = keys[i] or _explicit_id(job_spec, None)
        if job_id is not None:
            if job_id in explicit:
                raise ValidationError(f"job id '{job_id}' appears twice in the batch", field=f"jobs[{i}].jobId")
            explicit.add(job_id)
        jobs.append(build_job(core, queue, job_spec, job_id or next(generated), now, f"jobs[{i}]."))
    if vault.MARKER_BYTES in b"".join(map(_PAYLOAD, jobs)):  # one search for the batch: no JSON text ends in "$"
        templated = [(f"jobs[{i}].payload", s.payload) for i, (s, j) in enumerate(zip(spec.jobs, jobs))
                     if vault.MARKER_BYTES in j.payload]
        await vault.require_known(core, queue.workspace_id, templated)
    return await _insert(core, queue, jobs, explicit, strict=False)


def _batch_keys(spec: BatchCreate) -> list[str | None]:
    if spec.idempotency_keys is None:
        return [None] * len(spec.jobs)
    keys = spec.idempotency_keys
    if len(keys) != len(spec.jobs):
        raise ValidationError("idempotencyKeys must have one key per job", field="idempotencyKeys")
    if len(set(keys)) != len(keys):
        raise ValidationError("idempotencyKeys must be unique", field="idempotencyKeys")
    for i, (key, job) in enumerate(zip(keys, spec.jobs)):
        _check_key(key, "idempotencyKeys")
        own = job.job_id or job.idempotency_key
        if own is not None and own != key:
            raise ValidationError(f"idempotencyKeys[{i}] conflicts with the job's own jobId", field="idempotencyKeys")
    return list(keys)


def _explicit_id(spec: JobCreate, header_key: str | None) -> str | None:
    if spec.job_id is None and spec.idempotency_key is None and header_key is None:
        return None  # the common case, once per job of a batch
    if spec.job_id is not None and spec.idempotency_key is not None and spec.job_id != spec.idempotency_key:
        raise ValidationError("jobId and idempotencyKey differ", field="jobId")
    for chosen in (spec.job_id, spec.idempotency_key, header_key):
        if chosen is not None:
            return _check_key(chosen, "jobId")
    return None


def _check_key(key: str, field: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError(f"{field} must be 1 to {MAX_KEY_LENGTH} characters", field=field)
    if "/" in key:  # a job id is a URL path segment: /v1/queues/:name/jobs/:id
        raise ValidationError(f"{field} must not contain '/'", field=field)
    return _check_printable(key, field)


def _check_printable(text: str, field: str) -> str:
    if _CONTROL.search(text):
        raise ValidationError(f"{field} must not contain control characters", field=field)
    return text


def build_job(core: Core, queue: Queue, spec: JobCreate, job_id: str, now: int, where: str = "") -> Job:
    """A validated new job of `queue` from its request (`where` prefixes field names in errors)."""
    payload = msgspec.json.encode(spec.payload)
    limit = core.settings.limits.max_payload_bytes
    if len(payload) > limit:
        raise PayloadTooLarge(f"{where}payload is {len(payload)} bytes; the limit is {limit}", {"limit": limit})
    run_at = _run_at(spec, now, where)
    if queue.approval_required:
        state = JobState.PENDING_APPROVAL
    else:
        state = JobState.DELAYED if run_at > now else JobState.WAITING
    return Job(
        rowid=0, id=job_id, queue_id=queue.rowid, queue_name=queue.name, workspace_id=queue.workspace_id,
        state=state, payload=payload, tags=_check_tags(spec.tags, where),
        concurrency_key=_check_concurrency_key(spec.concurrency_key, where),
        priority=_check_priority(spec.priority, where), attempts=0, max_attempts=queue.max_attempts,
        run_at=run_at, created_at=now,
    )


def _run_at(spec: JobCreate, now: int, where: str) -> int:
    if spec.delay is not None and spec.run_at is not None:
        raise ValidationError("give delay or run_at, not both", field=f"{where}delay")
    if spec.delay is not None:
        try:
            delay = parse_duration_ms(spec.delay)
        except ValueError as exc:
            raise ValidationError(str(exc), field=f"{where}delay") from exc
        if delay > MAX_DELAY_MS:
            raise ValidationError("delay must be at most 366 days", field=f"{where}delay")
        return now + delay
    if spec.run_at is not None:
        return parse_timestamp(spec.run_at, f"{where}run_at")
    return now


def parse_timestamp(text: str, field: str) -> int:
    """An ISO 8601 timestamp (UTC when it names no zone) as epoch milliseconds; `field` names it in errors."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(f"{field} must be an ISO 8601 timestamp", field=field) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _check_tags(tags: list[str] | None, where: str) -> list[str]:
    if not tags:
        return []
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"at most {MAX_TAGS} tags per job", field=f"{where}tags")
    for tag in tags:
        if not tag or len(tag) > MAX_TAG_LENGTH:
            raise ValidationError(f"each tag must be 1 to {MAX_TAG_LENGTH} characters", field=f"{where}tags")
        _check_printable(tag, f"{where}tags")
    return list(dict.fromkeys(tags))


def _check_concurrency_key(key: str | None, where: str) -> str | None:
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError(f"concurrencyKey must be 1 to {MAX_KEY_LENGTH} characters", field=f"{where}concurrencyKey")
    return _check_printable(key, f"{where}concurrencyKey")


def _check_priority(priority: int, where: str) -> int:
    if not _PRIORITY_RANGE[0] <= priority <= _PRIORITY_RANGE[1]:
        raise ValidationError("priority is out of range", field=f"{where}priority")
    return priority


def write_new_jobs(
    core: Core, conn: Conn, queue: Queue, jobs: list[Job], explicit: set[str], *, strict: bool
) -> dict[str, Sequence[Any]]:
    """Insert `jobs` in the caller's writer transaction; returns the rows of ids that already existed.

    Known explicit ids are skipped (or, with `strict`, an IdempotencyConflict); the quota is
    checked and usage counted for the rest. The scheduler calls this to write a tick and its job at once.
    """
    [outcome] = _write_requests(core, conn, queue, [_Request(jobs, explicit, strict)])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


class _Request(msgspec.Struct):
    """One enqueue call's screened jobs, waiting for its queue's next write."""

    jobs: list[Job]
    explicit: set[str]
    strict: bool


_Outcome = dict[str, Sequence[Any]] | Exception  # the rows of known ids, or why the request failed


def _write_requests(core: Core, conn: Conn, queue: Queue, requests: list[_Request]) -> list[_Outcome]:
    """Every request as if written one after another, with one statement per kind for them all.

    Each statement gives up the GIL and waits to win it back from the busy event loop, so
    statements per enqueue, not rows, are what a group commit costs.
    """
    if is_postgres(conn):
        _count_quota_across_nodes(core, conn, queue.workspace_id)
    wanted = set().union(*(r.explicit for r in requests))
    if wanted:
        # Another node may be writing the same ids now: it commits first, then this write sees its rows.
        lock_across_nodes(conn, f"job-ids:{queue.rowid}")
    stored = job_store.find_existing(conn, queue.rowid, wanted) if wanted else {}
    taken: set[str] = set()  # explicit ids inserted by an earlier request of this group
    outcomes: list[set[str] | RotorError] = []
    fresh_all: list[tuple[list[Job], str]] = []
    for request in requests:
        known = {i for i in request.explicit if i in stored or i in taken}
        outcome = _admit(core, conn, queue, request, known, fresh_all)
        if not isinstance(outcome, RotorError):
            taken |= request.explicit - known
        outcomes.append(outcome)
    if fresh_all:
        _insert_fresh(core, conn, queue, fresh_all)
    repeated = {i for o in outcomes if isinstance(o, set) for i in o} - stored.keys()
    if repeated:  # the same id twice in one group: the later request sees the earlier one's row
        stored = {**stored, **job_store.find_existing(conn, queue.rowid, repeated)}
    return [o if isinstance(o, RotorError) else {i: stored[i] for i in o} for o in outcomes]


def _count_quota_across_nodes(core: Core, conn: Conn, workspace_id: str) -> None:
    """Several nodes share the workspace's monthly quota: its usage is read again under the workspace's row
    lock, so the reservations of this write start from every node's committed total, not this node's cache."""
    if core.plans.limits_in(conn, workspace_id).jobs_per_month:
        job_store.lock_usage(conn, workspace_id)
        core.quota.forget()


def _admit(
    core: Core, conn: Conn, queue: Queue, request: _Request, known: set[str],
    fresh_all: list[tuple[list[Job], str]],
) -> set[str] | RotorError:
    """The ids of `request` that already exist, after reserving quota for its new jobs; or its error."""
    if known and request.strict:
        return IdempotencyConflict(next(iter(known)))
    fresh = [j for j in request.jobs if j.id not in known] if known else request.jobs
    if fresh:
        period = billing_period(fresh[0].created_at)
        try:
            core.quota.reserve(conn, queue.workspace_id, period, len(fresh))
        except QuotaExceeded as exc:
            return exc
        fresh_all.append((fresh, period))
    return known


def _insert_fresh(
    core: Core, conn: Conn, queue: Queue, fresh_all: list[tuple[list[Job], str]]
) -> None:
    jobs = [job for fresh, _ in fresh_all for job in fresh]
    group_by = (core.queues.by_rowid(queue.rowid) or queue).group_by  # as of this write: an update may have regrouped
    if group_by is not None:
        for job in jobs:
            job.group_key = fairness.group_key_of(group_by, job.payload, job.concurrency_key)
    job_store.insert_jobs(conn, queue.rowid, jobs)
    per_period: dict[str, int] = {}
    for fresh, period in fresh_all:
        per_period[period] = per_period.get(period, 0) + len(fresh)
    for period, count in per_period.items():
        job_store.add_usage(conn, queue.workspace_id, period, queue.name, count)
    for fresh, _ in fresh_all:
        core.admission.on_insert(conn, queue, fresh)


async def _insert(core: Core, queue: Queue, jobs: list[Job], explicit: set[str], *, strict: bool) -> list[Enqueued]:
    jobs = await core.admission.screen(queue, jobs)
    group, index = _join_group(core, queue, _Request(jobs, explicit, strict))
    outcome = (await group.done)[index]
    if isinstance(outcome, Exception):
        raise outcome
    return [
        Enqueued(job=job_store.job_from_row(outcome[j.id], queue.name), duplicate=True)
        if j.id in outcome
        else Enqueued(job=j, duplicate=False)
        for j in jobs
    ]


class _Group:
    """The enqueues of one queue that reach the writer together, written by one operation.

    Requests join until the writer starts the operation; later ones open the next group.
    """

    def __init__(self, core: Core, queue: Queue) -> None:
        self.requests: list[_Request] = []
        self._lock = threading.Lock()  # the event loop appends while the writer takes the list
        self._closed = False
        self.done: asyncio.Future[list[_Outcome]] = asyncio.ensure_future(self._run(core, queue))

    def join(self, request: _Request) -> int | None:
        """The request's index in the group, or None once the writer has taken the group."""
        with self._lock:
            if self._closed:
                return None
            self.requests.append(request)
            return len(self.requests) - 1

    def _take(self) -> list[_Request]:
        with self._lock:
            self._closed = True
            return self.requests

    async def _run(self, core: Core, queue: Queue) -> list[_Outcome]:
        try:
            outcomes = await core.db.write(lambda conn: _write_requests(core, conn, queue, self._take()))
        except Exception as exc:
            core.quota.forget()  # the reservations may not have been committed
            if len(self.requests) == 1 or isinstance(exc, Unavailable):
                raise
            # The joint write failed and was rolled back: each request alone, so it fails only itself.
            outcomes = list(await asyncio.gather(*(_write_alone(core, queue, r) for r in self.requests)))
        created = sum(len(r.jobs) - len(o) for r, o in zip(self.requests, outcomes) if not isinstance(o, Exception))
        if created:
            core.metrics.enqueued.labels(queue.workspace_id, queue.name).inc(created)
            core.on_jobs_ready()
        return outcomes


async def _write_alone(core: Core, queue: Queue, request: _Request) -> _Outcome:
    def write(conn: Conn) -> dict[str, Sequence[Any]]:
        return write_new_jobs(core, conn, queue, request.jobs, request.explicit, strict=request.strict)

    try:
        return await core.db.write(write)
    except Exception as exc:
        core.quota.forget()
        return exc


_open_groups: weakref.WeakKeyDictionary[Core, dict[int, _Group]] = weakref.WeakKeyDictionary()


def _join_group(core: Core, queue: Queue, request: _Request) -> tuple[_Group, int]:
    groups = _open_groups.setdefault(core, {})
    group = groups.get(queue.rowid)
    index = group.join(request) if group is not None else None
    if group is None or index is None:
        group = groups[queue.rowid] = _Group(core, queue)
        index = group.join(request)
        assert index is not None  # nothing else runs between creating the group and joining it
    return group, index


# Reading -------------------------------------------------------------------------


async def get_job(core: Core, principal: Principal, queue_name: str, job_id: str) -> tuple[Job, list[Attempt]]:
    """The job with its attempt log."""
    queue = core.queue_for(principal, queue_name)
    row = await job_store.get_job(core.db, queue.rowid, job_id)
    if row is None:
        raise JobNotFound(job_id)
    job = job_store.job_from_row(row, queue.name)
    return job, await job_store.attempts_of(core.db, job.rowid)


async def list_jobs(
    core: Core, principal: Principal, queue_name: str, *, state: str | None, tag: str | None, limit: int,
    cursor: str | None,
) -> tuple[list[Job], str | None]:
    """Jobs of a queue, newest first."""
    queue = core.queue_for(principal, queue_name)
    states = [_parse_state(state)] if state else None
    if states == [JobState.WAITING]:
        states.append(JobState.SCREENING)  # shown as waiting
    return await _page(core, [queue], states=states, tag=tag, limit=limit, cursor=cursor)


async def list_dlq(
    core: Core, principal: Principal, *, queue_name: str | None, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    """Failed jobs of one queue or of the whole workspace."""
    if queue_name:
        queues = [core.queue_for(principal, queue_name)]
    else:
        queues = [
            q for q in core.queues.of_workspace(principal.workspace_id)
            if principal.queue_name in (None, q.name)
        ]
    if not queues:
        return [], None
    return await _page(core, queues, states=[JobState.FAILED], tag=None, limit=limit, cursor=cursor)


async def _page(
    core: Core, queues: list[Queue], *, states: list[str] | None, tag: str | None, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    names = {q.rowid: q.name for q in queues}
    rows = await job_store.list_jobs(
        core.db, list(names), states=states, tag=tag, before_rowid=decode_cursor(cursor), limit=limit + 1
    )
    jobs = [job_store.job_from_row(row, names[row[2]]) for row in rows[:limit]]
    next_cursor = encode_cursor(jobs[-1].rowid) if len(rows) > limit else None
    return jobs, next_cursor


def _parse_state(state: str) -> str:
    if state in STATE_ALIASES:
        return STATE_ALIASES[state]
    try:
        return JobState(state)
    except ValueError as exc:
        raise ValidationError(f"unknown state '{state}'", field="state") from exc


# Changing state ---------------------------------------------------------------------


async def cancel_job(core: Core, principal: Principal, queue_name: str, job_id: str) -> Job:
    """waiting, delayed or pending_approval → cancelled (closing its approval); any other state is a 409."""
    return await _transition(
        core, principal, queue_name, job_id, JobState.CANCELLED, CANCELLABLE_STATES, "cancel",
        after=lambda conn, job: core.admission.on_cancel(conn, job, principal.key_id),
    )


async def retry_job(core: Core, principal: Principal, queue_name: str, job_id: str) -> Job:
    """failed, cancelled or blocked → waiting with the attempt count reset; a blocked job is screened again."""
    job = await core.admission.retry(core.queue_for(principal, queue_name), job_id, principal.key_id)
    if job is None:
        job = await _transition(core, principal, queue_name, job_id, JobState.WAITING, RETRYABLE_STATES, "retry")
    core.on_jobs_ready()
    return job


async def _transition(
    core: Core, principal: Principal, queue_name: str, job_id: str, target: JobState,
    allowed: frozenset[JobState], action: str, after: Callable[[Conn, Job], None] | None = None,
) -> Job:
    queue = core.queue_for(principal, queue_name)
    now = core.clock.now_ms()

    def write(conn: Conn) -> Job:
        row = job_store.job_row(conn, queue.rowid, job_id, for_update=True)
        if row is None:
            raise JobNotFound(job_id)
        job = job_store.job_from_row(row, queue.name)
        if job.state not in allowed:
            raise InvalidState("job", public_state(job.state), action)
        job_store.set_state(conn, job, target, now)
        if after is not None:
            after(conn, job)
        return job_store.job_from_row(job_store.job_row(conn, queue.rowid, job_id) or row, queue.name)

    return await core.db.write(write)


async def replay_dlq(core: Core, principal: Principal, queue_name: str, job_ids: list[str] | None) -> int:
    """Failed jobs (all, or those listed) of a queue back to waiting; replaying twice is harmless."""
    queue = core.queue_for(principal, queue_name)
    now = core.clock.now_ms()
    count = await core.db.write(lambda conn: job_store.retry_failed(conn, queue.rowid, job_ids, now))
    core.on_jobs_ready()
    return count
