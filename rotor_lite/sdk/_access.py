"""Resources for API keys and workspaces (both clients)."""

from __future__ import annotations

from collections.abc import Iterable

from rotor_lite.sdk._request import APIRequest, compact, path
from rotor_lite.sdk._resources import R, _Resource

__all__ = ["ApiKeys", "Workspaces"]


class ApiKeys(_Resource[R]):
    """`/v1/api-keys`: mint, list, rotate and revoke the workspace's keys (admin keys only)."""

    def create(
        self, label: str, *, role: str | None = None, type: str | None = None, queue: str | None = None,
        workspaces: Iterable[str] | None = None, expires_in_days: int | None = None, never_expires: bool = False,
    ) -> R:
        """Mint a key: role viewer unless given; type workspace, or queue (with `queue`), or team (over
        `workspaces` and the current one); it expires in `expires_in_days` (default 90, never after the
        calling key) or, with `never_expires`, never. The response's `key` is shown only this once."""
        body = compact({
            "label": label, "role": role, "type": type, "queue": queue,
            "workspaces": None if workspaces is None else list(workspaces), "expiresInDays": expires_in_days,
        })
        if never_expires:
            body["expiresInDays"] = None
        return self._send(APIRequest("POST", "/v1/api-keys", json=body))

    def list(self) -> R:
        """The workspace's keys, without key material: `{"data": [...]}`."""
        return self._send(APIRequest("GET", "/v1/api-keys"))

    def get(self, key_id: str) -> R:
        """One key: prefix, label, role, type, queue, createdAt, expiresAt, lastUsedAt, revokedAt."""
        return self._send(APIRequest("GET", path("/v1/api-keys/{}", key_id)))

    def rotate(self, key_id: str, *, grace_seconds: float | None = None) -> R:
        """A new key with the same role, scope and expiry (its `key` shown once); the old key keeps
        working for `grace_seconds` (default 3600)."""
        body = compact({"graceSeconds": grace_seconds})
        return self._send(APIRequest("POST", path("/v1/api-keys/{}/rotate", key_id), json=body))

    def revoke(self, key_id: str) -> R:
        """Revoke a key at once; returns None."""
        return self._send(APIRequest("DELETE", path("/v1/api-keys/{}", key_id)))


class Workspaces(_Resource[R]):
    """`/v1/workspaces`: the workspaces the key reaches, with plan and limits; team keys create them."""

    def list(self) -> R:
        """`{"data": [{id, name, plan, createdAt, limits}, ...]}`."""
        return self._send(APIRequest("GET", "/v1/workspaces"))

    def get(self, workspace: str) -> R:
        """One workspace by id or name: `{id, name, plan, createdAt, limits: {jobsPerMonth, requestsPerMinute,
        retentionDays}}`."""
        return self._send(APIRequest("GET", path("/v1/workspaces/{}", workspace)))

    def create(self, name: str, *, plan: str | None = None) -> R:
        """Create a workspace (team admin keys only); the response's `apiKey.key` is its first admin key,
        shown only this once."""
        return self._send(APIRequest("POST", "/v1/workspaces", json=compact({"name": name, "plan": plan})))
