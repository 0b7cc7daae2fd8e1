"""`render.job_out` builds `JobOut` positionally: every field must land under its own name."""

from __future__ import annotations

import msgspec

from rotor_lite.api.render import job_out
from rotor_lite.models import Attempt, Job, JobState


def test_every_job_field_lands_under_its_own_name() -> None:
    job = Job(
        rowid=7, id="job_1", queue_id=3, queue_name="q", workspace_id="ws", state=JobState.FAILED,
        payload=b'{"p":1}', tags=["t"], concurrency_key="ck", priority=5, attempts=2, max_attempts=3,
        run_at=1_000, created_at=2_000, started_at=3_000, finished_at=4_000, fail_reason="HTTP 500",
        result=b'{"r":2}', blocked_by="pii", block_reason="found an SSN", approval_id="apv_1", schedule_id="sched_1",
    )
    attempt = Attempt(attempt=1, at=5_000, duration_ms=12, status=500, outcome="5xx", error="HTTP 500")

    shown = msgspec.json.decode(msgspec.json.encode(job_out(job, duplicate=True, attempts=[attempt])))

    assert shown == {
        "id": "job_1", "queue": "q", "state": "failed", "payload": {"p": 1}, "tags": ["t"],
        "concurrencyKey": "ck", "priority": 5, "attempts": 2, "maxAttempts": 3,
        "runAt": "1970-01-01T00:00:01.000Z", "createdAt": "1970-01-01T00:00:02.000Z",
        "startedAt": "1970-01-01T00:00:03.000Z", "finishedAt": "1970-01-01T00:00:04.000Z",
        "failReason": "HTTP 500", "result": {"r": 2}, "blockedBy": "pii", "blockReason": "found an SSN",
        "approvalId": "apv_1", "scheduleId": "sched_1", "duplicate": True,
        "attemptLog": [{"attempt": 1, "at": "1970-01-01T00:00:05.000Z", "durationMs": 12, "status": 500,
                        "outcome": "5xx", "error": "HTTP 500"}],
    }


def test_a_new_job_shows_its_unset_fields_as_null_and_omits_the_optional_ones() -> None:
    job = Job(
        rowid=1, id="job_2", queue_id=3, queue_name="q", workspace_id="ws", state=JobState.WAITING,
        payload=b"{}", tags=[], concurrency_key=None, priority=0, attempts=0, max_attempts=3, run_at=0, created_at=0,
    )

    shown = msgspec.json.decode(msgspec.json.encode(job_out(job)))

    assert "duplicate" not in shown and "attemptLog" not in shown
    assert all(shown[key] is None for key in (
        "concurrencyKey", "startedAt", "finishedAt", "failReason", "result", "blockedBy", "blockReason",
        "approvalId", "scheduleId",
    ))
