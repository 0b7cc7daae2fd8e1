"""The `schedules` resource: cron schedules on queues, their runs, and cron previews."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rotor_lite.sdk._request import APIRequest, compact, path, timestamp
from rotor_lite.sdk._resources import R, Timestamp, _Resource

__all__ = ["ScheduleRuns", "Schedules"]


class Schedules(_Resource[R]):
    """`/v1/schedules`: a schedule is addressed by its `external_id` (`sched_…`) or its name."""

    def create(
        self,
        params: str | Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        name: str | None = None,
        payload: Any = None,
        enabled: bool | None = None,
        queue_name: str | None = None,
        job_data: Any = None,
    ) -> R:
        """Create a schedule; `timezone` (an IANA name) is required.

        Takes keyword arguments, or one dict as the reference SDK's `create({...})` does, or the
        queue name first: `create("enrichment", cron="0 2 * * *", timezone="UTC")`.
        """
        fields = {
            "queue": queue, "queue_name": queue_name, "name": name, "cron": cron, "timezone": timezone,
            "payload": payload, "job_data": job_data, "enabled": enabled,
        }
        body = _merge(params, "queue", fields)
        return self._send(APIRequest("POST", "/v1/schedules", json=body))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> R:
        """One page of schedules: `{"data": [...], "nextCursor": ...}`."""
        return self._send(APIRequest("GET", "/v1/schedules", params=compact({"limit": limit, "cursor": cursor})))

    def get(self, schedule_id: str) -> R:
        """One schedule with its 20 latest `runs`."""
        return self._send(APIRequest("GET", path("/v1/schedules/{}", schedule_id)))

    def update(
        self,
        schedule_id: str,
        params: Mapping[str, Any] | None = None,
        *,
        cron: str | None = None,
        timezone: str | None = None,
        payload: Any = None,
        job_data: Any = None,
        enabled: bool | None = None,
        name: str | None = None,
    ) -> R:
        """Change any of cron, timezone, payload, enabled, name (None leaves a field as it is)."""
        fields = {
            "cron": cron, "timezone": timezone, "payload": payload, "job_data": job_data, "enabled": enabled,
            "name": name,
        }
        body = _merge(params, None, fields)
        return self._send(APIRequest("PATCH", path("/v1/schedules/{}", schedule_id), json=body))

    def delete(self, schedule_id: str) -> R:
        """Delete a schedule (its run history is kept); returns None."""
        return self._send(APIRequest("DELETE", path("/v1/schedules/{}", schedule_id)))

    def pause(self, schedule_id: str) -> R:
        """Stop ticks until resumed."""
        return self._send(APIRequest("POST", path("/v1/schedules/{}/pause", schedule_id)))

    def resume(self, schedule_id: str) -> R:
        """Tick again from the next cron time after now."""
        return self._send(APIRequest("POST", path("/v1/schedules/{}/resume", schedule_id)))

    def fire_now(self, schedule_id: str) -> R:
        """Enqueue the schedule's job now: `{"jobId": ..., "runId": ...}`; the next fire time is unchanged."""
        return self._send(APIRequest("POST", path("/v1/schedules/{}/fire-now", schedule_id)))

    def preview(
        self, cron: str, timezone: str, *, from_: Timestamp | None = None, count: int | None = None
    ) -> R:
        """The next fire times of a cron (at most 50) and its plain-English description."""
        body = compact({"cron": cron, "timezone": timezone, "from": timestamp(from_), "count": count})
        return self._send(APIRequest("POST", "/v1/schedules/preview", json=body))

    def runs(self, schedule_id: str) -> ScheduleRuns[R]:
        """The run history of one schedule: `schedules.runs(id).list(limit=20)`."""
        return ScheduleRuns(self._send, schedule_id)


class ScheduleRuns(_Resource[R]):
    """`/v1/schedules/:id/runs`: cron ticks and manual fires, newest first."""

    def __init__(self, send: Callable[[APIRequest], R], schedule_id: str) -> None:
        super().__init__(send)
        self.schedule_id = schedule_id

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> R:
        """One page of runs: `{"runs": [...], "nextCursor": ...}`."""
        params = compact({"limit": limit, "cursor": cursor})
        return self._send(APIRequest("GET", path("/v1/schedules/{}/runs", self.schedule_id), params=params))


def _merge(params: str | Mapping[str, Any] | None, positional: str | None, fields: dict[str, Any]) -> dict[str, Any]:
    """A request body from a dict (the reference SDK's style) and/or keyword arguments."""
    body: dict[str, Any] = {}
    if isinstance(params, str) and positional is not None:
        body[positional] = params
    elif isinstance(params, Mapping):
        body.update(params)
    elif params is not None:
        raise TypeError("pass the fields as keyword arguments or as one dict")
    body.update(compact(fields))
    return body
