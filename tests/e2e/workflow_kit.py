"""A real workflow app next to a real server: serve functions with uvicorn, register them, watch runs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

from rotor_lite.ids import new_api_key, new_id
from rotor_lite.sdk import serve_workflow
from rotor_lite.sdk.workflows import WorkflowFunction
from rotor_lite.services.keyring import hash_key
from tests.helpers import ServerProcess, db_execute, offline, served, wait_until


class WorkflowEnv:
    """A server, a workspace's signing key, and the apps serving functions to it (closed with the env).

    `api_key` picks the workspace (default: the server's bootstrap key, in the default workspace).
    """

    def __init__(self, server: ServerProcess, api_key: str | None = None) -> None:
        self.server = server
        self.http = server.client(api_key)
        self.signing_key = self.http.get("/v1/functions/signing-key").json()["signingKey"]
        self._stack = ExitStack()

    def serve(self, functions: Sequence[WorkflowFunction], *, register: bool = True) -> str:
        """Serve the functions on 127.0.0.1; returns the serve URL (registered with the server)."""
        app = serve_workflow(functions=functions, signing_key=self.signing_key)
        url = self._stack.enter_context(served(app)) + "/"
        if register:
            for fn in functions:
                self.register(fn, url)
        return url

    def register(self, fn: WorkflowFunction, url: str) -> dict[str, Any]:
        reply = self.http.post("/v1/functions", json=fn.registration(url))
        assert reply.status_code in (200, 201), reply.text
        return dict(reply.json())

    def send(self, name: str, data: Any, **extra: Any) -> dict[str, Any]:
        reply = self.http.post("/v1/events", json={"name": name, "data": data, **extra})
        assert reply.status_code == 202, reply.text
        return dict(reply.json())

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/runs/{run_id}").json())

    def step(self, run_id: str, key: str) -> dict[str, Any] | None:
        return next((s for s in self.run(run_id)["steps"] if s["id"] == key), None)

    def wait_status(self, run_id: str, *statuses: str, timeout: float = 15) -> dict[str, Any]:
        return dict(wait_until(lambda: (r := self.run(run_id))["status"] in statuses and r, timeout=timeout))

    def wait_step(self, run_id: str, key: str, status: str, timeout: float = 15) -> dict[str, Any]:
        return dict(wait_until(lambda: (s := self.step(run_id, key)) is not None and s["status"] == status and s, timeout=timeout))

    def use(self, server: ServerProcess) -> None:
        """Talk to `server` from now on: the same data directory, restarted (the apps keep serving)."""
        self.http.close()
        self.server, self.http = server, server.client()

    def close(self) -> None:
        self._stack.close()
        self.http.close()


def workflow_env(server: ServerProcess, api_key: str | None = None) -> Iterator[WorkflowEnv]:
    env = WorkflowEnv(server, api_key)
    try:
        yield env
    finally:
        env.close()


def other_workspace_key(server: ServerProcess) -> str:
    """The admin key of a new workspace."""
    return str(offline(server.data_dir, "workspaces", "create", f"other-{uuid.uuid4().hex[:8]}")["key"])


def role_key(server: ServerProcess, role: str) -> str:
    """A new key of the default workspace with `role` (viewer, developer, approver, admin)."""
    return str(offline(server.data_dir, "keys", "create", "--workspace", "default", "--role", role)["key"])


def queue_scoped_key(server: ServerProcess, queue: str) -> str:
    """A developer key of the default workspace scoped to `queue` (no command makes one: it is written directly)."""
    key, now = new_api_key("ws"), int(time.time() * 1000)
    workspace_id = db_execute(server.data_dir, "SELECT workspace_id FROM api_key WHERE key_hash = ?", (hash_key(server.api_key),))[0][0]
    db_execute(
        server.data_dir,
        "INSERT INTO api_key (id, workspace_id, key_hash, key_prefix, label, role, queue_name, created_at)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (new_id("key", now), workspace_id, hash_key(key), key[:10], "queue-scoped", "developer", queue, now),
    )
    return key
