"""Resources for webhooks, the secrets vault, failure alerts and the audit log (both clients)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rotor_lite.sdk._request import APIRequest, compact, path, timestamp
from rotor_lite.sdk._resources import R, _Resource

__all__ = ["Alerts", "Audit", "Secrets", "Webhooks"]


class Webhooks(_Resource[R]):
    """`/v1/webhooks`: lifecycle-event endpoints, signed with Standard Webhooks."""

    def create(self, url: str, event_types: Iterable[str]) -> R:
        """Register an endpoint; the response's `secret` (whsec_…) is shown only this once."""
        return self._send(APIRequest("POST", "/v1/webhooks", json={"url": url, "eventTypes": list(event_types)}))

    def list(self) -> R:
        """Every endpoint, as `{"data": [...]}`."""
        return self._send(APIRequest("GET", "/v1/webhooks"))

    def get(self, webhook_id: str) -> R:
        """One endpoint: url, eventTypes, enabled, createdAt."""
        return self._send(APIRequest("GET", path("/v1/webhooks/{}", webhook_id)))

    def update(
        self, webhook_id: str, *, url: str | None = None, event_types: Iterable[str] | None = None,
        enabled: bool | None = None,
    ) -> R:
        """Change the given fields; any update re-enables an endpoint disabled after failing for days."""
        body = compact({"url": url, "eventTypes": None if event_types is None else list(event_types), "enabled": enabled})
        return self._send(APIRequest("PATCH", path("/v1/webhooks/{}", webhook_id), json=body))

    def delete(self, webhook_id: str) -> R:
        """Delete an endpoint; returns None."""
        return self._send(APIRequest("DELETE", path("/v1/webhooks/{}", webhook_id)))

    def test(self, webhook_id: str) -> R:
        """Send a `webhook.test` event to the endpoint; returns the queued delivery."""
        return self._send(APIRequest("POST", path("/v1/webhooks/{}/test", webhook_id)))

    def rotate_secret(self, webhook_id: str) -> R:
        """A new signing secret (`{"secret": ...}`); the old one keeps verifying for 24 hours."""
        return self._send(APIRequest("POST", path("/v1/webhooks/{}/rotate-secret", webhook_id)))

    def deliveries(
        self, webhook_id: str, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> R:
        """The endpoint's delivery log, newest first: `{"data": [...], "nextCursor": ...}`."""
        params = compact({"status": status, "limit": limit, "cursor": cursor})
        return self._send(APIRequest("GET", path("/v1/webhooks/{}/deliveries", webhook_id), params=params))

    def redeliver(self, webhook_id: str, message_id: str) -> R:
        """Send one delivery again (same message id and body)."""
        return self._send(APIRequest("POST", path("/v1/webhooks/{}/deliveries/{}/redeliver", webhook_id, message_id)))


class Secrets(_Resource[R]):
    """`/v1/secrets`: values referenced as `${{ secrets.NAME }}`, resolved at dispatch time."""

    def create(self, name: str, value: str) -> R:
        """Store a secret; returns `{name, value_hint, created_at}` (409 when the name exists)."""
        return self._send(APIRequest("POST", "/v1/secrets", json={"name": name, "value": value}))

    def list(self) -> R:
        """Names and hints, never values."""
        return self._send(APIRequest("GET", "/v1/secrets"))

    def rotate(self, name: str, value: str) -> R:
        """Replace a secret's value; queued jobs use it from their next dispatch."""
        return self._send(APIRequest("PATCH", path("/v1/secrets/{}", name), json={"value": value}))

    update = rotate

    def delete(self, name: str) -> R:
        """Delete a secret; returns None."""
        return self._send(APIRequest("DELETE", path("/v1/secrets/{}", name)))


class Alerts(_Resource[R]):
    """`/v1/alerts`: where terminal job failures are reported (email, Slack)."""

    def get(self) -> R:
        """`{email, slackWebhookUrl, ...}`."""
        return self._send(APIRequest("GET", "/v1/alerts"))

    def set(self, *, email: str | None = None, slack_webhook_url: str | None = None) -> R:
        """Set both destinations (one left None is turned off)."""
        return self._send(APIRequest("PUT", "/v1/alerts", json={"email": email, "slackWebhookUrl": slack_webhook_url}))


class Audit(_Resource[R]):
    """`/v1/audit`: the workspace's audit log."""

    def list(
        self, *, event_type: str | None = None, resource_type: str | None = None,
        from_: datetime | str | None = None, to: datetime | str | None = None,
        limit: int | None = None, cursor: str | None = None,
    ) -> R:
        """One page of events, newest first: `{"data": [...], "nextCursor": ...}`."""
        return self._send(APIRequest("GET", "/v1/audit", params=_filters(event_type, resource_type, from_, to)
                                     | compact({"limit": limit, "cursor": cursor})))

    def export_csv(
        self, *, event_type: str | None = None, resource_type: str | None = None,
        from_: datetime | str | None = None, to: datetime | str | None = None,
    ) -> R:
        """Every matching event as CSV text, oldest first."""
        params = _filters(event_type, resource_type, from_, to) | {"format": "csv"}
        return self._send(APIRequest("GET", "/v1/audit", params=params, raw=True))


def _filters(
    event_type: str | None, resource_type: str | None, from_: datetime | str | None, to: datetime | str | None
) -> dict[str, Any]:
    return compact({"event_type": event_type, "resource_type": resource_type, "from": timestamp(from_), "to": timestamp(to)})
