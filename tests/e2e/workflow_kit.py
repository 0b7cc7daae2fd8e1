"""A real workflow app next to a real server: serve functions with uvicorn, register them, watch runs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

from rotor_lite.sdk import serve_workflow
from rotor_lite.sdk.workflows import WorkflowFunction
from tests.helpers import ServerProcess, served, wait_until


class WorkflowEnv:
    """A server, its signing key, and the apps serving functions to it (closed with the env)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = server.client()
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

    def close(self) -> None:
        self._stack.close()
        self.http.close()


def workflow_env(server: ServerProcess) -> Iterator[WorkflowEnv]:
    env = WorkflowEnv(server)
    try:
        yield env
    finally:
        env.close()
