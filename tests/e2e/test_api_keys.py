"""API keys: a queue-scoped key reaches its own queue's jobs and stats only, and no key is stored in plaintext."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.helpers import ServerProcess, api_routes, offline

# What API.md lets an rt_q_ key do, on its own queue; every other /v1 route is a 403.
QUEUE_KEY_ROUTES = {
    ("POST", "/v1/queues/{name}/jobs"), ("POST", "/v1/queues/{name}/jobs/batch"), ("GET", "/v1/queues/{name}/jobs"),
    ("GET", "/v1/queues/{name}/jobs/{job_id}"), ("GET", "/v1/queues/{name}/stats"),
}
BODIES: dict[str, Any] = {"/v1/queues/{name}/jobs": {"payload": {"n": 1}}, "/v1/queues/{name}/jobs/batch": {"jobs": [{}]}}


@pytest.fixture(scope="module")
def keyed(shared_server: ServerProcess) -> tuple[ServerProcess, dict[str, str]]:
    """The module's server with queues `mine` and `other`, a job in each, and a developer key scoped to `mine`."""
    server = shared_server
    ids = {}
    with server.client() as http:
        for queue in ("mine", "other"):
            assert http.post("/v1/queues", json={"name": queue}).status_code == 201
            ids[queue] = http.post(f"/v1/queues/{queue}/jobs", json={}).json()["id"]
    created = offline(server.data_dir, "keys", "create", "--workspace", "default", "--queue", "mine", "--role", "developer")
    assert created["queue"] == "mine" and created["key"].startswith("rt_q_")
    return server, {"key": created["key"], **ids}


@pytest.mark.parametrize(("method", "template"), api_routes())
def test_a_queue_key_may_only_enqueue_and_read_its_own_queue(
    keyed: tuple[ServerProcess, dict[str, str]], method: str, template: str
) -> None:
    server, made = keyed
    with server.client(made["key"]) as http:
        def call(queue: str) -> httpx.Response:
            path = template.replace("{name}", queue).replace("{job_id}", made[queue])
            path = re.sub(r"\{\w+\}", "x", path)  # any other id: the key must be refused before it is looked up
            return http.request(method, path, json=BODIES.get(template))

        if (method, template) not in QUEUE_KEY_ROUTES:
            refused = call("mine")
            assert (refused.status_code, refused.json()["error"]["code"]) == (403, "FORBIDDEN"), refused.text
            return
        assert call("mine").status_code in (200, 201)
        hidden = call("other")
        assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "NOT_FOUND"), hidden.text


def test_the_queue_key_routes_exist(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    assert QUEUE_KEY_ROUTES <= set(api_routes())


def test_no_api_key_is_stored_in_plaintext(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    server, made = keyed
    workspace_key = offline(server.data_dir, "keys", "create", "--workspace", "default")["key"]
    keys = [server.api_key, made["key"], workspace_key]
    for key in keys:
        with server.client(key) as http:
            assert http.get("/v1/queues/mine/stats").status_code == 200  # each key works …
    files = [path for path in server.data_dir.iterdir() if path.name.startswith("rotor.db")]
    stored = b"".join(path.read_bytes() for path in files)  # the database with its WAL, as on disk
    assert {path.name for path in files} >= {"rotor.db"}
    for key in keys:
        assert key.encode() not in stored  # … though none is anywhere in the database files
        assert key[10:].encode() not in stored  # not even past the prefix shown in lists
