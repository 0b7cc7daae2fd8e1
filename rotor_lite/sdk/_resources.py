"""API resources, written once for both clients.

Each method builds an `APIRequest` and hands it to the client's `send`: the sync client returns the
decoded JSON, the async client an awaitable of it. `R` is that return type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from rotor_lite.sdk._request import APIRequest, compact, duration, path, timestamp

__all__ = ["Jobs", "Queues", "Status", "Usage"]

R = TypeVar("R")

Duration = int | str | timedelta
Timestamp = datetime | str
Grouping = Mapping[str, Any] | Literal[False]  # False removes the setting (`update`)

# job fields the SDK takes in snake_case but the API documents in camelCase
_JOB_FIELD_NAMES = {
    "concurrency_key": "concurrencyKey",
    "job_id": "jobId",
    "idempotency_key": "idempotencyKey",
}


class _Resource(Generic[R]):
    def __init__(self, send: Callable[[APIRequest], R]) -> None:
        self._send = send


class Queues(_Resource[R]):
    """`/v1/queues`: create, inspect, configure, pause and empty queues."""

    def create(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        retry_attempts: int | None = None,
        callback_url: str | None = None,
        callback_headers: Mapping[str, str] | None = None,
        rotate_callback_secret: bool | None = None,
        approval_required: bool | None = None,
        timeout_seconds: int | None = None,
        default_job_options: Mapping[str, Any] | None = None,
        fairness: Grouping | None = None,
        rate_limit: Grouping | None = None,
    ) -> R:
        """Create a queue; the response carries `callback_secret` once when one was minted.

        Without `callback_url` it is a pull queue, processed by `RotorWorker`s. `fairness={"key":
        "payload.tenantId"}` serves the jobs of each key in turn; `rate_limit={"key": ..., "max": 10,
        "per": "1s"}` starts at most `max` jobs of one key per `per`.
        """
        body = {"name": name} | _queue_fields(
            concurrency=concurrency,
            retry_attempts=retry_attempts,
            callback_url=callback_url,
            callback_headers=callback_headers,
            rotate_callback_secret=rotate_callback_secret,
            approval_required=approval_required,
            timeout_seconds=timeout_seconds,
            default_job_options=default_job_options,
            fairness=fairness,
            rate_limit=rate_limit,
        )
        return self._send(APIRequest("POST", "/v1/queues", json=body))

    def list(self) -> R:
        """All queues of the workspace, as `{"data": [queue, ...]}`."""
        return self._send(APIRequest("GET", "/v1/queues"))

    def get(self, name: str) -> R:
        """One queue, with its configuration and job `counts`."""
        return self._send(APIRequest("GET", path("/v1/queues/{}", name)))

    def update(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        retry_attempts: int | None = None,
        callback_url: str | None = None,
        callback_headers: Mapping[str, str] | None = None,
        rotate_callback_secret: bool | None = None,
        approval_required: bool | None = None,
        timeout_seconds: int | None = None,
        default_job_options: Mapping[str, Any] | None = None,
        state: str | None = None,
        fairness: Grouping | None = None,
        rate_limit: Grouping | None = None,
    ) -> R:
        """Change the given settings (None leaves a setting as it is); `state` is "active" or "paused";
        `fairness=False` and `rate_limit=False` remove those settings."""
        body = _queue_fields(
            concurrency=concurrency,
            retry_attempts=retry_attempts,
            callback_url=callback_url,
            callback_headers=callback_headers,
            rotate_callback_secret=rotate_callback_secret,
            approval_required=approval_required,
            timeout_seconds=timeout_seconds,
            default_job_options=default_job_options,
            fairness=fairness,
            rate_limit=rate_limit,
        ) | compact({"state": state})
        return self._send(APIRequest("PATCH", path("/v1/queues/{}", name), json=body))

    def delete(self, name: str) -> R:
        """Delete a queue with its jobs and schedules; returns None."""
        return self._send(APIRequest("DELETE", path("/v1/queues/{}", name)))

    def stats(self, name: str) -> R:
        """Job counts per state for one queue."""
        return self._send(APIRequest("GET", path("/v1/queues/{}/stats", name)))

    def pause(self, name: str) -> R:
        """Stop dispatching the queue's jobs (it still accepts new ones)."""
        return self._send(APIRequest("POST", path("/v1/queues/{}/pause", name)))

    def resume(self, name: str) -> R:
        """Resume dispatching a paused queue."""
        return self._send(APIRequest("POST", path("/v1/queues/{}/resume", name)))

    def drain(self, name: str) -> R:
        """Cancel every waiting and delayed job of the queue."""
        return self._send(APIRequest("POST", path("/v1/queues/{}/drain", name), json={"confirm": True}))


class Jobs(_Resource[R]):
    """`/v1/queues/:name/jobs` and the dead-letter queue `/v1/dlq`."""

    def enqueue(
        self,
        queue: str,
        payload: Any = None,
        *,
        delay: Duration | None = None,
        run_at: Timestamp | None = None,
        tags: Iterable[str] | None = None,
        concurrency_key: str | None = None,
        job_id: str | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        strict: bool | None = None,
    ) -> R:
        """Add one job; a known `job_id` returns the existing job with `duplicate: true` (or 409 if strict)."""
        body = compact(
            {
                "payload": payload,
                "delay": duration(delay),
                "run_at": timestamp(run_at),
                "tags": None if tags is None else list(tags),
                "concurrencyKey": concurrency_key,
                "jobId": job_id,
                "idempotencyKey": idempotency_key,
                "priority": priority,
                "strict": strict,
            }
        )
        return self._send(APIRequest("POST", path("/v1/queues/{}/jobs", queue), json=body))

    def add_batch(
        self,
        queue: str,
        jobs: Sequence[Mapping[str, Any]],
        *,
        idempotency_keys: Sequence[str] | None = None,
    ) -> R:
        """Add up to 1000 jobs at once, all or nothing; job dicts may use snake_case or camelCase keys."""
        body: dict[str, Any] = {"jobs": [_batch_job(job) for job in jobs]}
        if idempotency_keys is not None:
            body["idempotencyKeys"] = list(idempotency_keys)
        return self._send(APIRequest("POST", path("/v1/queues/{}/jobs/batch", queue), json=body))

    enqueue_batch = add_batch

    def get(self, queue: str, job_id: str) -> R:
        """One job, with its `attemptLog`."""
        return self._send(APIRequest("GET", path("/v1/queues/{}/jobs/{}", queue, job_id)))

    def list(
        self,
        queue: str,
        *,
        state: str | None = None,
        tag: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> R:
        """One page of the queue's jobs, newest first: `{"data": [...], "nextCursor": ...}`."""
        params = compact({"state": state, "tag": tag, "limit": limit, "cursor": cursor})
        return self._send(APIRequest("GET", path("/v1/queues/{}/jobs", queue), params=params))

    def cancel(self, queue: str, job_id: str) -> R:
        """Cancel a waiting, delayed or pending-approval job."""
        return self._send(APIRequest("DELETE", path("/v1/queues/{}/jobs/{}", queue, job_id)))

    def retry(self, queue: str, job_id: str) -> R:
        """Send a failed, cancelled or blocked job back to waiting with its attempts reset."""
        return self._send(APIRequest("POST", path("/v1/queues/{}/jobs/{}/retry", queue, job_id)))

    def retry_all(self, queue: str) -> R:
        """Move every failed job of the queue back to waiting: `{"retried": n}`."""
        return self._send(APIRequest("POST", path("/v1/queues/{}/retry-all", queue)))

    def lease(self, queue: str, *, max: int = 1, lease_seconds: Duration = 30, wait_seconds: Duration = 0) -> R:
        """Lease up to `max` waiting jobs of a pull queue, waiting up to `wait_seconds` (≤ 30) for the first:
        `{"data": [{id, payload, attempt, leaseToken, leaseExpiresAt, tags}]}` (see `RotorWorker`)."""
        body = {"max": max, "lease_seconds": duration(lease_seconds), "wait_seconds": duration(wait_seconds)}
        return self._send(APIRequest("POST", path("/v1/queues/{}/jobs/lease", queue), json=body))

    def heartbeat(self, queue: str, job_id: str, lease_token: str, *, lease_seconds: Duration = 30) -> R:
        """Extend a lease to `lease_seconds` from now; a lease that no longer holds the job is a RotorConflict."""
        body = {"lease_token": lease_token, "lease_seconds": duration(lease_seconds)}
        return self._send(APIRequest("POST", path("/v1/queues/{}/jobs/{}/heartbeat", queue, job_id), json=body))

    def complete(self, queue: str, job_id: str, lease_token: str, result: Any = None) -> R:
        """Complete a leased job with `result`: `{"id", "state": "completed"}`."""
        body = {"lease_token": lease_token, "result": result}
        return self._send(APIRequest("POST", path("/v1/queues/{}/jobs/{}/complete", queue, job_id), json=body))

    def fail(self, queue: str, job_id: str, lease_token: str, error: str, *, retry: bool = True) -> R:
        """Fail a leased job's attempt: retried after the queue's backoff (unless `retry=False`), else dead-lettered."""
        body = {"lease_token": lease_token, "error": error, "retry": retry}
        return self._send(APIRequest("POST", path("/v1/queues/{}/jobs/{}/fail", queue, job_id), json=body))

    def report(self, queue: str, outcomes: Sequence[Mapping[str, Any]]) -> R:
        """Complete or fail up to 100 leased jobs in one request: each outcome is `{id, lease_token, result}`,
        or `{id, lease_token, error, retry}`; the answer holds each job's new `state`, or an `error` when
        its lease no longer held it (then nothing changed)."""
        body = {"outcomes": [dict(outcome) for outcome in outcomes]}
        return self._send(APIRequest("POST", path("/v1/queues/{}/jobs/outcomes", queue), json=body))

    def dlq(self, *, queue: str | None = None, limit: int | None = None, cursor: str | None = None) -> R:
        """One page of failed jobs (the dead-letter queue), optionally of one queue."""
        params = compact({"queue": queue, "limit": limit, "cursor": cursor})
        return self._send(APIRequest("GET", "/v1/dlq", params=params))

    def replay(self, queue: str, job_ids: Sequence[str] | None = None) -> R:
        """Retry the given failed jobs of a queue, or all of them: `{"replayed": n}`."""
        body = compact({"queue": queue, "jobIds": None if job_ids is None else list(job_ids)})
        return self._send(APIRequest("POST", "/v1/dlq/replay", json=body))


class Status(_Resource[R]):
    """`/v1/status`: server health, version and quota."""

    def get(self) -> R:
        """`{api, database, version, quota: {used, limit, plan, resetAt}}`."""
        return self._send(APIRequest("GET", "/v1/status"))


class Usage(_Resource[R]):
    """`/v1/usage`: jobs accepted this period."""

    def current(self) -> R:
        """`{period: {from, to}, executions: {total, byQueue}}`."""
        return self._send(APIRequest("GET", "/v1/usage"))


def _queue_fields(
    *,
    concurrency: int | None,
    retry_attempts: int | None,
    callback_url: str | None,
    callback_headers: Mapping[str, str] | None,
    rotate_callback_secret: bool | None,
    approval_required: bool | None,
    timeout_seconds: int | None,
    default_job_options: Mapping[str, Any] | None,
    fairness: Grouping | None,
    rate_limit: Grouping | None,
) -> dict[str, Any]:
    grouping = {name: None if value is False else dict(value)
                for name, value in (("fairness", fairness), ("rateLimit", rate_limit)) if value is not None}
    return grouping | compact(
        {
            "concurrency": concurrency,
            "retry_attempts": retry_attempts,
            "callback_url": callback_url,
            "callback_headers": None if callback_headers is None else dict(callback_headers),
            "rotate_callback_secret": rotate_callback_secret,
            "approval_required": approval_required,
            "timeout_seconds": timeout_seconds,
            "defaultJobOptions": None if default_job_options is None else dict(default_job_options),
        }
    )


def _batch_job(job: Mapping[str, Any]) -> dict[str, Any]:
    converted = {_JOB_FIELD_NAMES.get(key, key): value for key, value in job.items()}
    if "delay" in converted:
        converted["delay"] = duration(converted["delay"])
    if "run_at" in converted:
        converted["run_at"] = timestamp(converted["run_at"])
    if converted.get("tags") is not None:
        converted["tags"] = list(converted["tags"])
    return compact(converted)
