"""Queue operations: create, read, update, pause/resume, drain, retry-all, delete."""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from rotor_lite.durations import parse_duration_ms
from rotor_lite.errors import Conflict, ValidationError
from rotor_lite.ids import new_callback_secret
from rotor_lite.models import COUNT_KEYS, BackoffType, JobState, Principal, Queue, QueueState, RateLimit
from rotor_lite.netguard import check_callback_url
from rotor_lite.schemas import QUEUE_NAME, DefaultJobOptions, Fairness, QueueCreate, QueueUpdate, RateLimitSpec
from rotor_lite.services import fairness
from rotor_lite.services import secrets as vault
from rotor_lite.services.core import Core
from rotor_lite.store import counts as count_store
from rotor_lite.store import jobs as job_store
from rotor_lite.store import queues as queue_store
from rotor_lite.store import schedules as schedule_store
from rotor_lite.store.contract import Conn, IntegrityError

_NAME = re.compile(QUEUE_NAME)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
_HEADER_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CR, LF, NUL and the rest but tab
# Headers a queue may not set on its callbacks: hop-by-hop ones, the ones that frame or route the
# request (the body is JSON of a known length), and Rotor's own (`x-rotor-*`, the signature among them).
_RESERVED_HEADERS = frozenset({
    "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "expect",
    "host", "content-length", "content-type", "content-encoding",
})
_RESERVED_HEADER_PREFIXES = ("proxy-", "x-rotor-")
MAX_CONCURRENCY = 1000
MAX_ATTEMPTS = 100
MAX_TIMEOUT_SECONDS = 900
MAX_RATE = 10_000  # jobs per window and group: a group's recent starts are kept in memory
RATE_WINDOW_MS = (10, 86_400_000)


async def create_queue(core: Core, principal: Principal, spec: QueueCreate) -> tuple[Queue, str | None]:
    """Create a queue; returns it and its callback secret when one was minted."""
    if not _NAME.match(spec.name):
        raise ValidationError(f"name must match {QUEUE_NAME}", field="name")
    now = core.clock.now_ms()
    attempts, backoff_type, backoff_delay = _retry_policy(spec.retry_attempts, spec.default_job_options, None)
    queue = Queue(
        rowid=0, workspace_id=principal.workspace_id, name=spec.name,
        concurrency=_check_concurrency(spec.concurrency), max_attempts=attempts,
        backoff_type=backoff_type, backoff_delay_ms=backoff_delay,
        callback_url=_check_url(core, spec.callback_url), callback_headers=_check_headers(spec.callback_headers or {}),
        callback_secret=None, approval_required=spec.approval_required,
        timeout_ms=_timeout_ms(core, spec.timeout_seconds), state=QueueState.ACTIVE, created_at=now, updated_at=now,
        fairness_key=_fairness_key(spec.fairness), rate_limit=_rate_limit(spec.rate_limit),
    )
    _check_grouping(queue)
    await vault.require_known(core, principal.workspace_id, _callback_texts(spec.callback_url, spec.callback_headers))
    secret = new_callback_secret() if spec.callback_url or spec.rotate_callback_secret else None
    queue.callback_secret = secret
    blob = _encrypt(core, secret)

    def insert(conn: Conn) -> int:
        try:
            return queue_store.insert_queue(conn, queue, blob)
        except IntegrityError as exc:
            raise Conflict(f"queue '{spec.name}' already exists", {"name": spec.name}) from exc

    queue.rowid = await core.db.write(insert)
    core.queues.put(queue)
    return queue, secret


async def update_queue(core: Core, principal: Principal, name: str, spec: QueueUpdate) -> tuple[Queue, str | None]:
    """Change any setting but the name; rotates the callback secret when asked."""
    current = core.queue_for(principal, name)
    updated = msgspec.structs.replace(current, updated_at=core.clock.now_ms())
    if spec.concurrency is not None:
        updated.concurrency = _check_concurrency(spec.concurrency)
    if spec.retry_attempts is not None or spec.default_job_options is not None:
        updated.max_attempts, updated.backoff_type, updated.backoff_delay_ms = _retry_policy(
            spec.retry_attempts, spec.default_job_options, current
        )
    if spec.callback_url is not msgspec.UNSET:
        updated.callback_url = _check_url(core, spec.callback_url)
    if spec.callback_headers is not None:
        updated.callback_headers = _check_headers(spec.callback_headers)
    if spec.approval_required is not None:
        updated.approval_required = spec.approval_required
    if spec.timeout_seconds is not None:
        updated.timeout_ms = _timeout_ms(core, spec.timeout_seconds)
    if spec.state is not None:
        updated.state = QueueState(spec.state)
    if spec.fairness is not msgspec.UNSET:
        updated.fairness_key = _fairness_key(spec.fairness)
    if spec.rate_limit is not msgspec.UNSET:
        updated.rate_limit = _rate_limit(spec.rate_limit)
    _check_grouping(updated)
    given_url = None if spec.callback_url is msgspec.UNSET else spec.callback_url
    await vault.require_known(core, current.workspace_id, _callback_texts(given_url, spec.callback_headers))
    secret = None
    if spec.rotate_callback_secret or (updated.callback_url and current.callback_secret is None):
        secret = updated.callback_secret = new_callback_secret()
    blob = _encrypt(core, updated.callback_secret)
    try:
        await core.db.write(lambda conn: _write_update(core, conn, current, updated, blob))
    except Exception:
        core.queues.put(current)
        raise
    core.on_jobs_ready()
    return updated, secret


def _write_update(core: Core, conn: Conn, current: Queue, updated: Queue, blob: bytes | None) -> None:
    """Store the new settings; a new group key regroups the queue's jobs, and the registry changes in the
    same write, so that every later write (an enqueue computing a job's group) sees the new settings."""
    queue_store.update_queue(conn, updated, blob)
    if (updated.group_by, updated.rate_limit) != (current.group_by, current.rate_limit):
        core.turns.forget(updated.rowid)
    if updated.group_by != current.group_by:
        key = updated.group_by
        job_store.regroup_jobs(
            conn, updated.rowid, json_path=None if key is None else fairness.json_path(key),
            by_concurrency_key=key == fairness.BY_CONCURRENCY_KEY,
        )
    core.queues.put(updated)


async def set_queue_state(core: Core, principal: Principal, name: str, state: QueueState) -> Queue:
    """Pause (accept jobs, dispatch none) or resume a queue."""
    return (await update_queue(core, principal, name, QueueUpdate(state=state.value)))[0]


async def delete_queue(core: Core, principal: Principal, name: str) -> None:
    """Delete a queue with all its jobs and schedules."""
    queue = core.queue_for(principal, name)

    def delete(conn: Conn) -> None:
        queue_store.delete_queue(conn, queue.rowid)
        schedule_store.delete_queue_schedules(conn, queue.rowid)
        core.turns.forget(queue.rowid)

    await core.db.write(delete)
    core.queues.remove(queue)
    core.metrics.forget_queue(queue.workspace_id, queue.name)
    core.on_schedules_changed()


async def drain_queue(core: Core, principal: Principal, name: str, *, confirm: bool) -> int:
    """Cancel every waiting and delayed job of the queue; returns how many."""
    if not confirm:
        raise ValidationError("drain removes every waiting and delayed job: send {\"confirm\": true}", field="confirm")
    queue = core.queue_for(principal, name)
    now = core.clock.now_ms()

    def drain(conn: Conn) -> int:
        drained = job_store.drain_queue(conn, queue.rowid, now)
        if drained:  # the waiting count dropped to zero
            core.events.emit(conn, queue.workspace_id, "queue.drained", {"queueName": queue.name})
        return drained

    return await core.db.write(drain)


async def retry_all(core: Core, principal: Principal, name: str) -> int:
    """Every failed job of the queue back to waiting; returns how many."""
    queue = core.queue_for(principal, name)
    now = core.clock.now_ms()
    count = await core.db.write(lambda conn: job_store.retry_failed(conn, queue.rowid, None, now))
    core.on_jobs_ready()
    return count


async def queue_counts(core: Core, queue: Queue) -> dict[str, int]:
    """Jobs of the queue per state, every state present."""
    return (await counts_of_queues(core, [queue]))[queue.rowid]


async def counts_of_queues(core: Core, queues: Sequence[Queue]) -> dict[int, dict[str, int]]:
    """Jobs of each queue (by rowid) per state, every state present: read from the counters, not the jobs."""
    kept = await count_store.counts_of(core.db, [queue.rowid for queue in queues])
    return {rowid: _public_counts(raw) for rowid, raw in kept.items()}


def _public_counts(raw: dict[str, int]) -> dict[str, int]:
    counts = dict.fromkeys(COUNT_KEYS, 0)
    for state, count in raw.items():
        if state == JobState.SCREENING:  # awaiting the brand-tone verdict: shown as waiting
            state = JobState.WAITING
        counts["blocked" if state == JobState.BLOCKED else state] += count
    return counts


def _retry_policy(
    retry_attempts: int | None, options: DefaultJobOptions | None, current: Queue | None
) -> tuple[int, BackoffType, int]:
    attempts = current.max_attempts if current else 3
    backoff_type = current.backoff_type if current else BackoffType.EXPONENTIAL
    delay = current.backoff_delay_ms if current else 2000
    if options is not None and options.attempts is not None:
        if retry_attempts is not None and retry_attempts != options.attempts:
            raise ValidationError("retry_attempts and defaultJobOptions.attempts disagree", field="retry_attempts")
        attempts = options.attempts
    if retry_attempts is not None:
        attempts = retry_attempts
    if options is not None and options.backoff is not None:
        backoff_type, delay = BackoffType(options.backoff.type), options.backoff.delay
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise ValidationError(f"retry_attempts must be between 1 and {MAX_ATTEMPTS}", field="retry_attempts")
    if not 0 <= delay <= 86_400_000:
        raise ValidationError("backoff.delay must be between 0 and 86400000 ms", field="defaultJobOptions.backoff.delay")
    return attempts, backoff_type, delay


def _fairness_key(spec: Fairness | None) -> str | None:
    return None if spec is None else fairness.check_group_key(spec.key, "fairness.key")


def _rate_limit(spec: RateLimitSpec | None) -> RateLimit | None:
    if spec is None:
        return None
    if not 1 <= spec.max <= MAX_RATE:
        raise ValidationError(f"rateLimit.max must be between 1 and {MAX_RATE}", field="rateLimit.max")
    try:
        per_ms = parse_duration_ms(spec.per)
    except ValueError as exc:
        raise ValidationError(str(exc), field="rateLimit.per") from exc
    if not RATE_WINDOW_MS[0] <= per_ms <= RATE_WINDOW_MS[1]:
        raise ValidationError("rateLimit.per must be between 10ms and 1d", field="rateLimit.per")
    return RateLimit(key=fairness.check_group_key(spec.key, "rateLimit.key"), max=spec.max, per_ms=per_ms)


def _check_grouping(queue: Queue) -> None:
    """Fairness and a rate limit group a queue's jobs by one key."""
    limit = queue.rate_limit
    if queue.fairness_key is not None and limit is not None and limit.key != queue.fairness_key:
        raise ValidationError("rateLimit.key must be the fairness key: both group the queue's jobs by it",
                              field="rateLimit.key")


def _check_concurrency(value: int) -> int:
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ValidationError(f"concurrency must be between 1 and {MAX_CONCURRENCY}", field="concurrency")
    return value


def _timeout_ms(core: Core, seconds: int | None) -> int:
    if seconds is None:
        return core.settings.callbacks.ms("default_timeout")
    if not 1 <= seconds <= MAX_TIMEOUT_SECONDS:
        raise ValidationError(f"timeout_seconds must be between 1 and {MAX_TIMEOUT_SECONDS}", field="timeout_seconds")
    return seconds * 1000


def _check_url(core: Core, url: str | None) -> str | None:
    if url is None or url == "":
        return None
    return check_callback_url(url, allow_private=core.settings.callbacks.allow_private_networks)


def _check_headers(headers: dict[str, str]) -> dict[str, str]:
    if len(headers) > 50:
        raise ValidationError("at most 50 callback headers", field="callback_headers")
    for key, value in headers.items():
        if not _HEADER_NAME.fullmatch(key) or _HEADER_VALUE_CONTROL.search(value) or len(value) > 8192:
            raise ValidationError(f"invalid callback header {key!r}", field="callback_headers", header=key)
        name = key.lower()
        if name in _RESERVED_HEADERS or name.startswith(_RESERVED_HEADER_PREFIXES):
            raise ValidationError(
                f"callback header {key!r} is set by Rotor or by the HTTP connection and may not be overridden",
                field="callback_headers", header=key,
            )
    return headers


def _callback_texts(url: str | None, headers: dict[str, str] | None) -> list[tuple[str, str]]:
    """The callback settings that may hold `${{ secrets.NAME }}`, with their field names."""
    return [("callback_url", url or ""), *(("callback_headers", value) for value in (headers or {}).values())]


def _encrypt(core: Core, secret: str | None) -> bytes | None:
    return None if secret is None else core.vault.encrypt(secret, b"callback_secret")
