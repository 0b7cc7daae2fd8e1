"""API keys: a queue-scoped key reaches its own queue's jobs and stats only, no key is stored in plaintext, and
keys are minted, listed, rotated with a grace period, revoked and expire over HTTP."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.helpers import ServerProcess, api_routes, db_execute, offline, wait_until

# What API.md lets an rt_q_ key do, on its own queue; every other /v1 route is a 403.
# The pull-worker routes (a worker's key) reach the job, whose lease token "not-held" is then a 409.
WORKER_ROUTES = {("POST", f"/v1/queues/{{name}}/jobs/{{job_id}}/{report}") for report in ("heartbeat", "complete", "fail")}
QUEUE_KEY_ROUTES = {
    ("POST", "/v1/queues/{name}/jobs"), ("POST", "/v1/queues/{name}/jobs/batch"), ("GET", "/v1/queues/{name}/jobs"),
    ("GET", "/v1/queues/{name}/jobs/{job_id}"), ("GET", "/v1/queues/{name}/stats"),
    ("POST", "/v1/queues/{name}/jobs/lease"), ("POST", "/v1/queues/{name}/jobs/outcomes"), *WORKER_ROUTES,
}
BODIES: dict[str, Any] = {
    "/v1/queues/{name}/jobs": {"payload": {"n": 1}}, "/v1/queues/{name}/jobs/batch": {"jobs": [{}]},
    "/v1/queues/{name}/jobs/lease": {}, "/v1/queues/{name}/jobs/{job_id}/heartbeat": {"leaseToken": "not-held"},
    "/v1/queues/{name}/jobs/{job_id}/complete": {"leaseToken": "not-held"},
    "/v1/queues/{name}/jobs/{job_id}/fail": {"leaseToken": "not-held", "error": "x"},
    "/v1/queues/{name}/jobs/outcomes": {"outcomes": [{"id": "x", "leaseToken": "not-held"}]},
}


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
        assert call("mine").status_code in ((409,) if (method, template) in WORKER_ROUTES else (200, 201))
        hidden = call("other")
        assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "NOT_FOUND"), hidden.text


def test_the_queue_key_routes_exist(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    assert QUEUE_KEY_ROUTES <= set(api_routes())


@pytest.mark.sqlite_only  # reads the database files byte by byte
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


# --- API keys over HTTP ----------------------------------------------------------------------------------------

DAY_MS = 86_400_000


def _iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _set_expiry(server: ServerProcess, key_id: str, expires_at_ms: int) -> None:
    """Move a key's expiry in the database (the API allows no expiry shorter than a day)."""
    db_execute(server.data_dir, "UPDATE api_key SET expires_at = ? WHERE id = ?", (expires_at_ms, key_id))


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_keys_are_minted_listed_and_read_without_key_material(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    server, _ = keyed
    before = int(time.time() * 1000)
    with server.client() as http:
        made = http.post("/v1/api-keys", json={"label": "claude-code"})
        assert made.status_code == 201, made.text
        key = made.json()
        scoped = http.post("/v1/api-keys", json={"label": "outreach", "queue": "mine", "role": "developer"}).json()
        listed = http.get("/v1/api-keys")
        got = http.get(f"/v1/api-keys/{key['id']}").json()
    assert key["key"].startswith("rt_ws_") and key["prefix"] == key["key"][:10]
    assert (key["role"], key["type"], key["queue"], key["label"]) == ("viewer", "workspace", None, "claude-code")
    assert abs(_iso_ms(key["expiresAt"]) - (before + 90 * DAY_MS)) < 60_000 and key["revokedAt"] is None
    assert (scoped["type"], scoped["queue"], scoped["key"][:5]) == ("queue", "mine", "rt_q_")
    assert set(got) == {"id", "prefix", "label", "role", "type", "queue", "workspaces", "createdAt", "expiresAt",
                        "lastUsedAt", "revokedAt"}
    assert got == {k: v for k, v in key.items() if k != "key"}
    assert {key["id"], scoped["id"]} <= {k["id"] for k in listed.json()["data"]}
    for secret in (key["key"], scoped["key"], server.api_key):
        assert secret[10:] not in listed.text  # only the public prefixes
    with server.client(key["key"]) as viewer:
        assert viewer.get("/v1/queues").status_code == 200
        refused(viewer.get("/v1/api-keys"), 403, "FORBIDDEN")  # keys are an admin's


def test_another_workspaces_keys_are_not_found(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    server, _ = keyed
    other = offline(server.data_dir, "workspaces", "create", f"other-{uuid.uuid4().hex[:8]}")["key"]
    with server.client() as http:
        mine = http.post("/v1/api-keys", json={"label": "mine"}).json()["id"]
    with server.client(other) as http:
        assert mine not in [k["id"] for k in http.get("/v1/api-keys").json()["data"]]
        for response in (http.get(f"/v1/api-keys/{mine}"), http.delete(f"/v1/api-keys/{mine}"),
                         http.post(f"/v1/api-keys/{mine}/rotate")):
            refused(response, 404, "NOT_FOUND")


def test_a_rotated_key_works_for_the_grace_period_then_is_refused(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    server, _ = keyed
    with server.client() as http:
        old = http.post("/v1/api-keys", json={"label": "ci", "role": "developer", "expiresInDays": 30}).json()
        with server.client(old["key"]) as as_old:
            assert as_old.get("/v1/queues").status_code == 200  # cached by the server before the rotation
        rotated = http.post(f"/v1/api-keys/{old['id']}/rotate", json={"graceSeconds": 0.5})
        assert rotated.status_code == 201, rotated.text
        new = rotated.json()
        assert new["key"] != old["key"] and new["id"] != old["id"]
        assert {k: new[k] for k in ("label", "role", "type", "queue", "expiresAt")} == \
               {k: old[k] for k in ("label", "role", "type", "queue", "expiresAt")}
        old_now = http.get(f"/v1/api-keys/{old['id']}").json()
        assert 0 < _iso_ms(old_now["revokedAt"]) - _iso_ms(new["createdAt"]) <= 500
        refused(http.post(f"/v1/api-keys/{old['id']}/rotate"), 409, "CONFLICT")  # rotated once is enough
    with server.client(old["key"]) as as_old, server.client(new["key"]) as as_new:
        assert as_old.get("/v1/queues").status_code == 200  # the grace period
        assert as_new.get("/v1/queues").status_code == 200
        ended = wait_until(lambda: (r := as_old.get("/v1/queues")).status_code == 401 and r, timeout=5)
        assert ended.json()["error"]["message"] == "API key has been revoked"
        assert as_new.get("/v1/queues").status_code == 200


def test_a_revoked_key_is_refused_on_its_next_request(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    server, _ = keyed
    with server.client() as http:
        made = http.post("/v1/api-keys", json={"label": "leaked", "role": "developer"}).json()
        with server.client(made["key"]) as leaked:
            assert leaked.get("/v1/queues").status_code == 200
            assert http.delete(f"/v1/api-keys/{made['id']}").status_code == 204
            error = refused(leaked.get("/v1/queues"), 401, "UNAUTHORIZED")
        assert error["message"] == "API key has been revoked"
        assert http.get(f"/v1/api-keys/{made['id']}").json()["revokedAt"] is not None
        assert http.delete(f"/v1/api-keys/{made['id']}").status_code == 204  # again: nothing changes
        events = http.get("/v1/audit", params={"resource_type": "api_key", "limit": 500}).json()["data"]
    mine = [e for e in events if e["resource_id"] == made["id"]]
    assert {"api_key.created", "api_key.revoked", "auth.failed"} <= {e["event_type"] for e in mine}
    assert [e["metadata"]["reason"] for e in mine if e["event_type"] == "auth.failed"] == ["revoked"]
    assert made["key"][10:] not in json.dumps(events)


def test_an_expired_key_is_refused_saying_so(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    server, _ = keyed
    made = offline(server.data_dir, "keys", "create", "--workspace", "default", "--expires-in-days", "1")
    with server.client() as http:
        listed = http.get(f"/v1/api-keys/{made['id']}").json()
    assert abs(_iso_ms(listed["expiresAt"]) - (int(time.time() * 1000) + DAY_MS)) < 60_000
    _set_expiry(server, made["id"], int(time.time() * 1000) - 1)  # before the server ever saw the key
    with server.client(made["key"]) as http:
        assert refused(http.get("/v1/queues"), 401, "UNAUTHORIZED")["message"] == "API key has expired"


def test_no_key_mints_a_key_with_more_rights_than_its_own(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    server, made = keyed
    other_name = f"other-{uuid.uuid4().hex[:8]}"
    offline(server.data_dir, "workspaces", "create", other_name)
    short = offline(server.data_dir, "keys", "create", "--workspace", "default", "--expires-in-days", "10")
    developer = offline(server.data_dir, "keys", "create", "--workspace", "default", "--role", "developer")["key"]
    with server.client(developer) as http:
        refused(http.post("/v1/api-keys", json={"label": "x", "role": "viewer"}), 403, "FORBIDDEN")
    with server.client(made["key"]) as http:  # a queue key
        refused(http.post("/v1/api-keys", json={"label": "x"}), 403, "FORBIDDEN")
    with server.client() as http:
        refused(http.post("/v1/api-keys", json={"label": "x", "type": "team", "workspaces": [other_name]}), 404,
                "NOT_FOUND")
        refused(http.post("/v1/api-keys", json={"label": "x", "queue": "not-a-queue"}), 404, "NOT_FOUND")
        for body in ({"label": "x", "expiresInDays": 0}, {"label": "x", "expiresInDays": 366}, {"label": "x", "role": "root"},
                     {"label": ""}, {"label": "x", "type": "queue"}, {"label": "x", "workspaces": ["default"]}):
            refused(http.post("/v1/api-keys", json=body), 422, "VALIDATION_ERROR")
    with server.client(short["key"]) as http:  # an admin key that expires in 10 days
        refused(http.post("/v1/api-keys", json={"label": "x", "expiresInDays": 30}), 403, "FORBIDDEN")
        refused(http.post("/v1/api-keys", json={"label": "x", "expiresInDays": None}), 403, "FORBIDDEN")
        capped = http.post("/v1/api-keys", json={"label": "x", "role": "admin"}).json()
        assert capped["expiresAt"] == http.get(f"/v1/api-keys/{short['id']}").json()["expiresAt"]
        never = http.post("/v1/api-keys", json={"label": "forever", "expiresInDays": None})
        refused(never, 403, "FORBIDDEN")
    with server.client() as http:  # the bootstrap key never expires: it may mint a key that never does
        assert http.post("/v1/api-keys", json={"label": "forever", "expiresInDays": None}).json()["expiresAt"] is None


def test_last_use_is_kept_in_memory_and_written_at_most_once_a_minute(make_server: Any) -> None:
    server = make_server()
    with server.client() as http:
        assert http.post("/v1/queues", json={"name": "q"}).status_code == 201
        made = http.post("/v1/api-keys", json={"label": "worker", "role": "developer"}).json()
        assert made["lastUsedAt"] is None
    with server.client(made["key"]) as worker:
        for _ in range(3):
            assert worker.post("/v1/queues/q/jobs", json={}).status_code == 201
    with server.client() as http:
        shown = http.get(f"/v1/api-keys/{made['id']}").json()["lastUsedAt"]
    assert shown is not None and abs(_iso_ms(shown) - int(time.time() * 1000)) < 10_000

    def stored() -> Any:
        return db_execute(server.data_dir, "SELECT last_used_at FROM api_key WHERE id = ?", (made["id"],))[0][0]

    assert stored() is None  # not one write on the enqueue path: the flush comes once a minute …
    assert server.terminate() == 0
    assert stored() == _iso_ms(shown)  # … and when the server stops


def test_a_team_key_names_its_workspace_in_a_header(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    server, _ = keyed
    other = offline(server.data_dir, "workspaces", "create", f"team-{uuid.uuid4().hex[:8]}")
    with server.client(other["key"]) as http:
        assert http.post("/v1/queues", json={"name": "theirs"}).status_code == 201
        other_team = http.post("/v1/api-keys", json={"label": "t", "type": "team", "role": "admin"}).json()
    with server.client() as http:
        team = http.post("/v1/api-keys", json={"label": "ops", "type": "team", "role": "developer"}).json()
        assert team["key"].startswith("rt_team_") and team["type"] == "team"
        default_id = http.get("/v1/workspaces").json()["data"][0]["id"]
        assert team["workspaces"] == [default_id]
        refused(http.post(f"/v1/api-keys/{other_team['id']}/rotate"), 404, "NOT_FOUND")
    with server.client(team["key"]) as http:
        error = refused(http.get("/v1/queues"), 422, "VALIDATION_ERROR")
        assert error["details"]["field"] == "X-Rotor-Workspace"
        mine = http.get("/v1/queues", headers={"X-Rotor-Workspace": "default"})
        assert "mine" in [q["name"] for q in mine.json()["data"]]
        assert http.get("/v1/queues", headers={"X-Rotor-Workspace": default_id}).json() == mine.json()
        refused(http.get("/v1/queues", headers={"X-Rotor-Workspace": other["name"]}), 404, "NOT_FOUND")
        assert [w["id"] for w in http.get("/v1/workspaces").json()["data"]] == [default_id]  # no header needed
    with server.client(other_team["key"]) as http:
        assert [q["name"] for q in http.get("/v1/queues", headers={"X-Rotor-Workspace": other["id"]}).json()["data"]] \
            == ["theirs"]
        refused(http.get("/v1/queues", headers={"X-Rotor-Workspace": "default"}), 404, "NOT_FOUND")
