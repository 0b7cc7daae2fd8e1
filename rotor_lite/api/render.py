"""Domain values → the response shapes of the API contract."""

from __future__ import annotations

from typing import Any

import msgspec

from rotor_lite.clock import iso, iso_from_ms
from rotor_lite.models import Attempt, Job, Queue, public_state
from rotor_lite.schemas import AttemptOut, Counts, JobOut, QueueOut


def queue_out(queue: Queue, counts: dict[str, int], secret: str | None = None) -> QueueOut:
    return QueueOut(
        name=queue.name, concurrency=queue.concurrency, retry_attempts=queue.max_attempts,
        defaultJobOptions={
            "attempts": queue.max_attempts,
            "backoff": {"type": queue.backoff_type.value, "delay": queue.backoff_delay_ms},
        },
        callback_url=queue.callback_url, callback_headers=queue.callback_headers,
        approval_required=queue.approval_required, timeout_seconds=queue.timeout_ms // 1000,
        state=queue.state.value, created_at=iso(queue.created_at), updated_at=iso(queue.updated_at),
        counts=Counts(**counts), callback_secret=secret,
    )


def job_out(job: Job, *, duplicate: bool | None = None, attempts: list[Attempt] | None = None) -> JobOut:
    return JobOut(
        id=job.id, queue=job.queue_name, state=public_state(job.state), payload=msgspec.Raw(job.payload), tags=job.tags,
        concurrencyKey=job.concurrency_key, priority=job.priority, attempts=job.attempts,
        maxAttempts=job.max_attempts, runAt=iso(job.run_at), createdAt=iso(job.created_at),
        startedAt=iso_from_ms(job.started_at), finishedAt=iso_from_ms(job.finished_at), failReason=job.fail_reason,
        result=None if job.result is None else msgspec.Raw(job.result), blockedBy=job.blocked_by,
        blockReason=job.block_reason, approvalId=job.approval_id, scheduleId=job.schedule_id,
        duplicate=duplicate, attemptLog=None if attempts is None else [attempt_out(a) for a in attempts],
    )


def attempt_out(attempt: Attempt) -> AttemptOut:
    return AttemptOut(
        attempt=attempt.attempt, at=iso(attempt.at), durationMs=attempt.duration_ms, status=attempt.status,
        outcome=attempt.outcome, error=attempt.error,
    )


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}
