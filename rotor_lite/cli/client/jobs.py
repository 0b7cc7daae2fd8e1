"""`rotor jobs ...`: enqueue, inspect, list, retry, cancel and replay jobs."""

from __future__ import annotations

import json
from typing import Any

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output

__all__ = ["jobs"]


@click.group("jobs")
def jobs() -> None:
    """Enqueue, inspect and manage jobs."""


def _parse_payload(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", ctx=ctx, param=param) from exc


def _parse_tags(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def _parse_delay(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.strip().isdigit() else value.strip()


@jobs.command("enqueue")
@click.argument("queue")
@click.option("--payload", required=True, callback=_parse_payload, metavar="JSON", help="Job payload as a JSON string.")
@click.option("--delay", callback=_parse_delay, metavar="DURATION", help='Delay: seconds or "30s", "5m", "2h".')
@click.option("--run-at", metavar="TIMESTAMP", help="When the job is due (ISO 8601).")
@click.option("--tags", callback=_parse_tags, metavar="A,B", help="Comma-separated tags.")
@click.option("--concurrency-key", metavar="KEY", help="At most one active job per key.")
@click.option("--idempotency-key", metavar="KEY", help="Deduplicate: the same key is the same job.")
@click.option("--job-id", metavar="ID", help="Deterministic job id (same meaning as --idempotency-key).")
@click.option("--priority", type=int, help="Lower runs first (default 0).")
@click.option("--strict", is_flag=True, default=None, help="Fail with 409 instead of returning an existing job.")
@client_command
def enqueue(session: Session, /, *, queue: str, payload: Any, **options: Any) -> None:
    """Add a job to QUEUE."""
    with session.client() as rotor:
        job = rotor.jobs.enqueue(queue, payload, **options)
    session.output.emit(job, _render_enqueued)


@jobs.command("get")
@click.argument("queue")
@click.argument("job_id")
@client_command
def get_job(session: Session, /, *, queue: str, job_id: str) -> None:
    """Show job JOB_ID of QUEUE: state, payload, attempts, timestamps and the delivery log."""
    with session.client() as rotor:
        job = rotor.jobs.get(queue, job_id)
    session.output.emit(job, render_job)


@jobs.command("list")
@click.argument("queue")
@click.option("--status", "state", metavar="STATE", help="Only jobs in this state (waiting, active, failed, ...).")
@click.option("--tag", help="Only jobs with this tag.")
@click.option("--limit", type=click.IntRange(1, 500), help="Jobs per page (default 50).")
@click.option("--cursor", help="Page cursor printed by the previous call.")
@client_command
def list_jobs(session: Session, /, *, queue: str, **filters: Any) -> None:
    """List jobs of QUEUE, newest first."""
    with session.client() as rotor:
        page = rotor.jobs.list(queue, **filters)
    session.output.emit(page, render_job_table)


@jobs.command("retry")
@click.argument("queue")
@click.argument("job_id")
@client_command
def retry_job(session: Session, /, *, queue: str, job_id: str) -> None:
    """Send a failed, cancelled or blocked job back to waiting, with its attempts reset."""
    with session.client() as rotor:
        job = rotor.jobs.retry(queue, job_id)
    session.output.emit(job, lambda out, j: out.line(f"Job {job_id} is {_state(j, 'waiting')} again."))


@jobs.command("cancel")
@click.argument("queue")
@click.argument("job_id")
@client_command
def cancel_job(session: Session, /, *, queue: str, job_id: str) -> None:
    """Cancel a waiting, delayed or pending-approval job (not an active one)."""
    with session.client() as rotor:
        job = rotor.jobs.cancel(queue, job_id)
    session.output.emit(job, lambda out, j: out.line(f"Job {job_id} is {_state(j, 'cancelled')}."))


@jobs.command("dlq")
@click.option("--queue", help="Only failed jobs of this queue.")
@click.option("--limit", type=click.IntRange(1, 500), help="Jobs per page (default 50).")
@click.option("--cursor", help="Page cursor printed by the previous call.")
@client_command
def dead_letter_queue(session: Session, /, **filters: Any) -> None:
    """List failed jobs (the dead-letter queue)."""
    with session.client() as rotor:
        page = rotor.jobs.dlq(**filters)
    session.output.emit(page, render_dlq_table)


@jobs.command("replay")
@click.argument("queue")
@click.option("--job-id", "job_ids", multiple=True, metavar="ID", help="Replay only this job; repeat for several.")
@client_command
def replay(session: Session, /, *, queue: str, job_ids: tuple[str, ...]) -> None:
    """Retry the failed jobs of QUEUE (all of them unless --job-id is given)."""
    with session.client() as rotor:
        response = rotor.jobs.replay(queue, list(job_ids) or None)
    replayed = response.get("replayed", 0) if isinstance(response, dict) else 0
    session.output.emit(response, lambda out, _: out.line(f"Replayed {replayed} failed job(s) of queue {queue}."))


def _render_enqueued(output: Output, job: dict[str, Any]) -> None:
    if job.get("duplicate"):
        output.line(f"Job {job.get('id')} already exists (duplicate): nothing new was enqueued.", style="yellow")
        output.line(f"State: {job.get('state')}")
        return
    output.line(f"Enqueued job {job.get('id')} in queue {job.get('queue')}.")
    output.line(f"State: {job.get('state')}")


def render_job(output: Output, job: dict[str, Any]) -> None:
    """A job's fields, payload, result and attempt log."""
    output.fields(
        [
            ("ID", job.get("id")),
            ("Queue", job.get("queue")),
            ("State", job.get("state")),
            ("Attempts", _attempts(job)),
            ("Tags", ", ".join(job.get("tags") or []) or None),
            ("Priority", job.get("priority")),
            ("Concurrency key", job.get("concurrencyKey")),
            ("Run at", job.get("runAt")),
            ("Created", job.get("createdAt")),
            ("Started", job.get("startedAt")),
            ("Finished", job.get("finishedAt")),
            *_optional_fields(job),
        ]
    )
    output.block("Payload", job.get("payload"))
    if job.get("result") is not None:
        output.block("Result", job["result"])
    _render_attempt_log(output, job.get("attemptLog") or [])


def render_job_table(output: Output, page: dict[str, Any]) -> None:
    """The `jobs list` table: ID, STATE, ATTEMPTS, TAGS, CREATED, then the next cursor."""
    items = page.get("data") or []
    if not items:
        output.line("No jobs found.")
    else:
        output.table(
            ["ID", "STATE", "ATTEMPTS", "TAGS", "CREATED"],
            (
                [j.get("id"), j.get("state"), _attempts(j), ",".join(j.get("tags") or []), j.get("createdAt")]
                for j in items
            ),
        )
    output.next_page(page)


def render_dlq_table(output: Output, page: dict[str, Any]) -> None:
    """The `jobs dlq` table: ID, QUEUE, ATTEMPTS, FAIL REASON, FAILED."""
    items = page.get("data") or []
    if not items:
        output.line("The dead-letter queue is empty.")
    else:
        output.table(
            ["ID", "QUEUE", "ATTEMPTS", "FAIL REASON", "FAILED"],
            ([j.get("id"), j.get("queue"), _attempts(j), j.get("failReason"), j.get("finishedAt")] for j in items),
        )
    output.next_page(page)


def _render_attempt_log(output: Output, log: list[dict[str, Any]]) -> None:
    if not log:
        return
    output.line()
    output.table(
        ["ATTEMPT", "AT", "DURATION", "STATUS", "OUTCOME", "ERROR"],
        (
            [entry.get(key) for key in ("attempt", "at")]
            + [_duration(entry.get("durationMs"))]
            + [entry.get(key) for key in ("status", "outcome", "error")]
            for entry in log
        ),
        title="Attempt log",
    )


def _optional_fields(job: dict[str, Any]) -> list[tuple[str, Any]]:
    labels = {
        "failReason": "Fail reason",
        "blockedBy": "Blocked by",
        "blockReason": "Block reason",
        "approvalId": "Approval",
        "scheduleId": "Schedule",
    }
    return [(label, job[key]) for key, label in labels.items() if job.get(key) is not None]


def _attempts(job: dict[str, Any]) -> str:
    return f"{job.get('attempts', 0)}/{job.get('maxAttempts', '?')}"


def _duration(milliseconds: Any) -> str | None:
    return None if milliseconds is None else f"{milliseconds} ms"


def _state(job: Any, default: str) -> str:
    return str(job.get("state") or default) if isinstance(job, dict) else default
