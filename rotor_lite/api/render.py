"""Domain values → the response shapes of the API contract."""

from __future__ import annotations

from typing import Any

import msgspec

from rotor_lite.clock import iso, iso_from_ms
from rotor_lite.durations import format_duration_ms
from rotor_lite.models import Attempt, Job, Queue, RateLimit, public_state
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
        counts=Counts(**counts), fairness=None if queue.fairness_key is None else {"key": queue.fairness_key},
        rateLimit=_rate_limit_out(queue.rate_limit), callback_secret=secret,
    )


def _rate_limit_out(limit: RateLimit | None) -> dict[str, Any] | None:
    return None if limit is None else {"key": limit.key, "max": limit.max, "per": format_duration_ms(limit.per_ms)}


def job_out(job: Job, *, duplicate: bool | None = None, attempts: list[Attempt] | None = None) -> JobOut:
    return JobOut(  # positional, in JobOut's field order (see its docstring)
        job.id, job.queue_name, public_state(job.state), msgspec.Raw(job.payload), job.tags,
        job.concurrency_key, job.priority, job.attempts, job.max_attempts,
        iso(job.run_at), iso(job.created_at), iso_from_ms(job.started_at), iso_from_ms(job.finished_at),
        job.fail_reason, None if job.result is None else msgspec.Raw(job.result),
        job.blocked_by, job.block_reason, job.approval_id, job.schedule_id,
        duplicate, None if attempts is None else [attempt_out(a) for a in attempts],
    )


def attempt_out(attempt: Attempt) -> AttemptOut:
    return AttemptOut(
        attempt=attempt.attempt, at=iso(attempt.at), durationMs=attempt.duration_ms, status=attempt.status,
        outcome=attempt.outcome, error=attempt.error,
    )


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}
