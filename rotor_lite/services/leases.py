"""The claim and the outcome of a job, one path for both ways a job runs.

The dispatcher claims jobs of callback queues and delivers them; workers lease jobs of pull queues
over the API (`services.workers`). Both claim through `claim_jobs` and record what became of each job
through `settle`: the same states, attempt log, backoff, dead-lettering, observers (schedule runs,
`queue.error`) and events (`job.completed`, `job.failed`, hence failure alerts). Both run in the
writer thread, inside the caller's group commit.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from rotor_lite.backoff import backoff_ms
from rotor_lite.clock import iso_from_ms
from rotor_lite.files import open_private
from rotor_lite.models import Attempt, Claimed, JobState, Queue, Settlement
from rotor_lite.services.core import Core
from rotor_lite.store import jobs as job_store
from rotor_lite.store.contract import Conn

log = logging.getLogger("rotor_lite.dispatcher")

Finished = tuple[Queue, Settlement]
_EVENT_OF_STATE = {JobState.COMPLETED: "job.completed", JobState.FAILED: "job.failed"}


_NODE_ID_FILE = "node.id"
_BOOT = os.urandom(4).hex()  # this process among the node's successive ones


def node_id(data_dir: Path) -> str:
    """This node's identity, the same across restarts: written once in its data directory (whose lock keeps
    one server per directory, hence per identity)."""
    path = data_dir / _NODE_ID_FILE
    fd = open_private(path, os.O_RDWR)
    with os.fdopen(fd, "r+") as file:
        known = file.read().strip()
        if not known:
            known = os.urandom(8).hex()
            file.write(known)
    return known


@functools.cache
def lease_owner(data_dir: Path) -> str:
    """The lease owner of this process's claims: `<node id>.<boot>`. At start, a node takes back the jobs its
    own earlier processes leased (`job_store.requeue_orphans`), never those of the other nodes."""
    return f"{node_id(data_dir)}.{_BOOT}"


def claim_jobs(core: Core, conn: Conn, queue: Queue, limit: int, *, owner: str, lease_ms: int, now: int) -> list[Claimed]:
    """Lease up to `limit` of the queue's waiting jobs (in turn across its groups, when it has a group key);
    emits `queue.drained` when that took the last one. The caller promoted the due delayed jobs first."""
    dispatch = core.settings.dispatch
    got = job_store.acquire_jobs(
        conn, queue_rowid=queue.rowid, workspace_id=queue.workspace_id, limit=limit, owner=owner,
        lease_ms=lease_ms, now=now, key_recheck_ms=dispatch.ms("concurrency_key_recheck"),
        key_ttl_ms=dispatch.ms("concurrency_key_ttl"),
        turns=core.turns.for_claim(queue, now) if queue.group_by else None,
    )
    if got:
        _emit_if_drained(core, conn, queue)
    return got


def next_due(core: Core, conn: Conn, now: int) -> int | None:
    """When a claim may next find a job that none finds now: a delayed job's time, or a rate-limited group's."""
    due = [at for at in (job_store.next_delayed_at(conn), core.turns.next_refill(now)) if at is not None]
    return min(due, default=None)


def _emit_if_drained(core: Core, conn: Conn, queue: Queue) -> None:
    """`queue.drained` when a claim took the queue's last waiting job (checked only if anyone listens)."""
    if core.events.wants(queue.workspace_id, "queue.drained") and not job_store.has_waiting(conn, queue.rowid):
        core.events.emit(conn, queue.workspace_id, "queue.drained", {"queueName": queue.name})


def settlement(
    queue: Queue, job: Claimed, attempt: Attempt, now: int, *, result: bytes | None = None,
    retry: bool = True, retry_after_ms: int | None = None,
) -> Settlement:
    """What becomes of `job` after `attempt`: completed when it succeeded (outcome 2xx), else retried after the
    queue's backoff (or `retry_after_ms`) while attempts are left and `retry` holds, else failed (the DLQ)."""
    if attempt.outcome == "2xx":
        return Settlement(claimed=job, attempt=attempt, state=JobState.COMPLETED, at=now, result=result)
    reason = attempt.error or attempt.outcome
    if not retry or job.attempt >= job.max_attempts:
        return Settlement(claimed=job, attempt=attempt, state=JobState.FAILED, at=now, reason=reason)
    delay = backoff_ms(queue.backoff_type, queue.backoff_delay_ms, job.attempt)
    retry_at = now + (retry_after_ms if retry_after_ms is not None else delay)
    state = JobState.DELAYED if retry_at > now else JobState.WAITING
    return Settlement(claimed=job, attempt=attempt, state=state, at=now, reason=reason, retry_at=retry_at)


def settle(core: Core, conn: Conn, finished: Sequence[Finished]) -> list[Settlement]:
    """Apply the outcomes; observers and events run for exactly the jobs whose lease still held (returned)."""
    queues = {id(s): queue for queue, s in finished}  # settle_jobs hands back the same objects
    held = job_store.settle_jobs(conn, [s for _, s in finished])
    for s in held:
        _after_settled(core, conn, queues[id(s)], s)
    return held


def _after_settled(core: Core, conn: Conn, queue: Queue, s: Settlement) -> None:
    terminal = s.state in (JobState.COMPLETED, JobState.FAILED)
    if s.state != JobState.COMPLETED:
        _log_failed_attempt(queue, s)
    for observer in core.attempt_observers:
        observer(conn, queue, s.claimed, s.attempt, terminal)
    if terminal and core.events.wants(queue.workspace_id, _EVENT_OF_STATE[s.state]):
        core.events.emit(conn, queue.workspace_id, _EVENT_OF_STATE[s.state], _event_data(queue, s))


def _log_failed_attempt(queue: Queue, s: Settlement) -> None:
    """One line per failed attempt: the last one says the job failed (it is in the DLQ), the others when it is retried."""
    fields = {
        "job_id": s.claimed.id, "queue": queue.name, "workspace": queue.workspace_id, "attempt": s.attempt.attempt,
        "max_attempts": s.claimed.max_attempts, "outcome": s.attempt.outcome, "status": s.attempt.status,
        "error": s.attempt.error,  # secret values the endpoint echoed are scrubbed by the deliverer
    }
    if s.state == JobState.FAILED:
        log.warning("job failed, moved to the DLQ", extra=fields)
    else:
        log.info("job attempt failed, retry scheduled", extra={**fields, "retry_at": iso_from_ms(s.retry_at)})


def _event_data(queue: Queue, s: Settlement) -> dict[str, Any]:
    """The `job.completed` or `job.failed` event of a settled job (built only when someone listens)."""
    data: dict[str, Any] = {"jobId": s.claimed.id, "queueName": queue.name}
    if s.state == JobState.COMPLETED:
        data.update(result=msgspec.Raw(s.result or b"null"), attempts=s.claimed.attempt, completedAt=iso_from_ms(s.at))
    else:
        data.update(failReason=s.reason, attempts=s.claimed.attempt, failedAt=iso_from_ms(s.at))
    return data
