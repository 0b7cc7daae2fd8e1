"""The workflow resources: `functions`, `runs`, `signals`, `workflow` (triggers) and `Rotor.send`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rotor_lite.sdk._request import APIRequest, compact, path, timestamp
from rotor_lite.sdk._resources import R, _Resource

__all__ = ["Functions", "Runs", "Signals", "Workflow", "event_request"]


def event_request(name: str, data: Any = None, *, idempotency_key: str | None = None, ts: int | None = None,
                  id: str | None = None) -> APIRequest:
    """`POST /v1/events`: starts every function triggered by `name`, resumes runs waiting for it."""
    body = compact({"name": name, "data": {} if data is None else data, "idempotencyKey": idempotency_key, "ts": ts, "id": id})
    return APIRequest("POST", "/v1/events", json=body)


class Workflow(_Resource[R]):
    """`rotor.workflow.trigger(name, data, idempotency_key=...)`: the reference SDK's trigger call."""

    def trigger(self, name: str, data: Any = None, *, idempotency_key: str | None = None, ts: int | None = None) -> R:
        """Send the event `name`: `{id, runIds, resumed}`, or `{duplicate: true, runIds}` for a known key."""
        return self._send(event_request(name, data, idempotency_key=idempotency_key, ts=ts))


class Functions(_Resource[R]):
    """`/v1/functions`: where each workflow function is served and what starts its runs."""

    def register(
        self, id: str, *, serve_url: str, event: str | None = None, cron: str | None = None, timezone: str | None = None,
        retries: int | None = None, concurrency: int | None = None, hooks: Sequence[str] | None = None,
    ) -> R:
        """Create or update a function: give `event` (event-triggered) or `cron` and `timezone`."""
        body = compact({
            "id": id, "serve_url": serve_url, "trigger_type": "cron" if cron else "event", "trigger_event": event,
            "cron": cron, "timezone": timezone, "retries": retries, "concurrency": concurrency,
            "hooks": list(hooks) if hooks is not None else None,
        })
        return self._send(APIRequest("POST", "/v1/functions", json=body))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> R:
        return self._send(APIRequest("GET", "/v1/functions", params=compact({"limit": limit, "cursor": cursor})))

    def get(self, function_id: str) -> R:
        return self._send(APIRequest("GET", path("/v1/functions/{}", function_id)))

    def delete(self, function_id: str) -> R:
        """Delete a function (its runs are kept); returns None."""
        return self._send(APIRequest("DELETE", path("/v1/functions/{}", function_id)))

    def signing_key(self) -> R:
        """`{signingKey, …}`: the key `serve_workflow` verifies calls with (admin keys only)."""
        return self._send(APIRequest("GET", "/v1/functions/signing-key"))

    def rotate_signing_key(self) -> R:
        """A new signing key; the previous one keeps signing for 24 hours."""
        return self._send(APIRequest("POST", "/v1/functions/signing-key/rotate"))


class Runs(_Resource[R]):
    """`/v1/runs`: workflow runs and their steps."""

    def list(
        self, *, function: str | None = None, status: str | None = None, since: datetime | str | None = None,
        until: datetime | str | None = None, limit: int | None = None, cursor: str | None = None,
    ) -> R:
        """One page of runs, newest first: `{"data": [...], "nextCursor": ...}`."""
        params = {
            "function": function, "status": status, "from": timestamp(since), "to": timestamp(until), "limit": limit,
            "cursor": cursor,
        }
        return self._send(APIRequest("GET", "/v1/runs", params=compact(params)))

    def get(self, run_id: str) -> R:
        """The run with its `steps`, `childRunIds` and `hookErrors`."""
        return self._send(APIRequest("GET", path("/v1/runs/{}", run_id)))

    def cancel(self, run_id: str) -> R:
        """Cancel the run and its children (an ended run comes back unchanged)."""
        return self._send(APIRequest("POST", path("/v1/runs/{}/cancel", run_id)))

    def replay(self, run_id: str) -> R:
        """A failed or cancelled run again, as a new run keeping its completed steps."""
        return self._send(APIRequest("POST", path("/v1/runs/{}/replay", run_id)))


class Signals(_Resource[R]):
    """`/v1/signals`: resume a run waiting in `step.wait_for_signal`."""

    def complete(self, signal_id: str, data: Any, *, run_id: str | None = None) -> R:
        """`{runId}` of the resumed run."""
        body = compact({"data": data, "runId": run_id})
        body.setdefault("data", None)
        return self._send(APIRequest("POST", path("/v1/signals/{}/complete", signal_id), json=body))
