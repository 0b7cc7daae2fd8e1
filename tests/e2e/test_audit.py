"""The audit log end to end: every mutating call and every refused key or role recorded, the client
address, filters, cursor, CSV safe for spreadsheets, append-only."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable

import httpx
import pytest
from click.testing import CliRunner

from rotor_lite.cli import main
from tests.helpers import Receiver, ServerProcess, offline

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_mutating_calls_are_recorded_with_actor_and_address(server: ServerProcess, receiver: Receiver) -> None:
    with server.client() as http:
        http.post("/v1/queues", json={"name": "q"})
        http.post("/v1/queues/q/pause")
        job = http.post("/v1/queues/q/jobs", json={}).json()["id"]
        http.delete(f"/v1/queues/q/jobs/{job}")
        http.post(f"/v1/queues/q/jobs/{job}/retry")
        http.patch("/v1/queues/q", json={"callback_url": receiver.url(), "rotate_callback_secret": True})
        http.post("/v1/queues", json={"name": "q"})  # 409: not recorded
        http.get("/v1/queues")  # reads are not recorded
        events = http.get("/v1/audit").json()["data"]
        key_id = http.get("/v1/audit?event_type=queue.created").json()["data"][0]["actor_id"]
    types = [e["event_type"] for e in reversed(events)]
    assert types == ["queue.created", "queue.paused", "job.cancelled", "job.retried", "queue.updated",
                     "callback_secret.rotated"]
    assert key_id.startswith("key_") and all(e["actor_id"] == key_id for e in events)
    assert {e["ip_address"] for e in events} == {"127.0.0.1"}
    cancelled = events[3]
    assert cancelled["resource_type"] == "job" and cancelled["resource_id"] == job
    assert events[-1]["resource_id"] == "q" and events[-1]["metadata"]["method"] == "POST"
    assert set(events[0]) == {"id", "workspace_id", "event_type", "actor_id", "resource_type", "resource_id",
                              "metadata", "occurred_at", "ip_address"}


def test_filters_cursor_and_csv(server: ServerProcess) -> None:
    with server.client() as http:
        for i in range(7):
            http.post("/v1/queues", json={"name": f"q{i}"})
        http.post("/v1/secrets", json={"name": "A_KEY", "value": "value-that-must-not-leak"})
        pages, cursor = [], None
        while True:
            page = http.get("/v1/audit", params={"event_type": "queue.created", "limit": 3, **({"cursor": cursor} if cursor else {})}).json()
            pages.append([e["resource_id"] for e in page["data"]])
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert pages == [["q6", "q5", "q4"], ["q3", "q2", "q1"], ["q0"]]
        assert http.get("/v1/audit?resource_type=secret").json()["data"][0]["event_type"] == "secret.created"
        assert http.get("/v1/audit?from=2999-01-01T00:00:00Z").json()["data"] == []
        assert http.get("/v1/audit?to=2000-01-01T00:00:00Z").json()["data"] == []
        assert http.get("/v1/audit?from=yesterday").status_code == 422
        assert http.get("/v1/audit?format=xml").status_code == 422
        assert http.get("/v1/audit?limit=501").status_code == 422
        exported = http.get("/v1/audit?format=csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert list(rows[0]) == ["id", "workspace_id", "event_type", "actor_id", "resource_type", "resource_id",
                             "metadata", "occurred_at", "ip_address"]
    assert [r["resource_id"] for r in rows[:7]] == [f"q{i}" for i in range(7)]
    assert "value-that-must-not-leak" not in exported.text
    runner = CliRunner()
    cli = runner.invoke(main, ["audit", "--csv", "--event-type", "secret.created", "--api-key", server.api_key,
                               "--api-url", server.url])
    assert cli.exit_code == 0 and cli.output.count("\n") == 2 and "A_KEY" in cli.output


def test_the_table_is_append_only(server: ServerProcess) -> None:
    with server.client() as http:
        http.post("/v1/queues", json={"name": "q"})
    conn = sqlite3.connect(server.data_dir / "rotor.db")
    try:
        for statement in ("UPDATE audit_event SET actor_id = 'me'", "DELETE FROM audit_event"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
    finally:
        conn.close()


def test_csv_cells_that_start_like_a_formula_are_text(server: ServerProcess) -> None:
    entries = ["-2+3@evil.example", "+cmd@evil.example"]  # valid addresses a spreadsheet would run
    with server.client() as http:
        assert http.post("/v1/guardrails/dnc", json={"emails": entries}).status_code == 200
        for entry in entries:
            assert http.delete(f"/v1/guardrails/dnc/emails/{entry}").status_code == 204
        exported = http.get("/v1/audit?format=csv").text
    cli = CliRunner().invoke(main, ["audit", "--csv", "--api-key", server.api_key, "--api-url", server.url])
    assert cli.exit_code == 0, cli.output
    for text in (exported, cli.output):
        rows = list(csv.DictReader(io.StringIO(text)))
        removed = [row["resource_id"] for row in rows if row["event_type"] == "guardrail.dnc_removed"]
        assert removed == ["'-2+3@evil.example", "'+cmd@evil.example"]
        assert not [cell for row in rows for cell in row.values() if cell.startswith(FORMULA_STARTS)]


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(server: ServerProcess) -> None:
    with server.client() as http:
        http.post("/v1/queues", json={"name": "q"}, headers={"X-Forwarded-For": "203.0.113.7"})
        [event] = http.get("/v1/audit?event_type=queue.created").json()["data"]
    assert event["ip_address"] == "127.0.0.1"


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server(ROTOR_SERVER_FORWARDED_ALLOW_IPS="127.0.0.1, 10.0.0.0/8")
    forwarded = {
        "q": "198.51.100.1, 203.0.113.7, 10.1.2.3",  # forged by the client, the client, an inner trusted proxy
        "r": "=HYPERLINK(\"https://evil.example\")",  # not an address: not recorded as one
    }
    with server.client() as http:
        for name, header in forwarded.items():
            http.post("/v1/queues", json={"name": name}, headers={"X-Forwarded-For": header})
        http.post("/v1/queues", json={"name": "s"})
        events = http.get("/v1/audit?event_type=queue.created").json()["data"]
    assert {e["resource_id"]: e["ip_address"] for e in events} == {"q": "203.0.113.7", "r": None, "s": "127.0.0.1"}


def test_refused_keys_and_roles_are_audited(server: ServerProcess) -> None:
    viewer = offline(server.data_dir, "keys", "create", "--workspace", "default", "--role", "viewer")
    revoked = offline(server.data_dir, "keys", "create", "--workspace", "default")
    expired = offline(server.data_dir, "keys", "create", "--workspace", "default")
    other = offline(server.data_dir, "workspaces", "create", "other")["key"]
    with sqlite3.connect(server.data_dir / "rotor.db") as conn:  # no API revokes keys yet
        conn.execute("UPDATE api_key SET revoked_at = 1 WHERE id = ?", (revoked["id"],))
        conn.execute("UPDATE api_key SET expires_at = 1 WHERE id = ?", (expired["id"],))
    forged = server.api_key[:10] + "forged-forged-forged"  # the public prefix of a real key, the rest wrong
    unknown = "rt_ws_nobody_has_this_key_000000"
    with server.client(viewer["key"]) as http:
        assert http.post("/v1/queues", json={"name": "v"}).status_code == 403
    for key in (revoked["key"], expired["key"], forged, unknown):
        with server.client(key) as http:
            assert http.get("/v1/queues").status_code == 401
    assert httpx.get(f"{server.url}/v1/queues").status_code == 401  # no key at all
    with server.client() as http:
        events = http.get("/v1/audit", params={"resource_type": "api_key"}).json()["data"]
        [forbidden] = http.get("/v1/audit", params={"event_type": "auth.forbidden"}).json()["data"]
    with server.client(other) as http:
        assert http.get("/v1/audit").json()["data"] == []

    assert forbidden["actor_id"] == viewer["id"] and forbidden["ip_address"] == "127.0.0.1"
    assert forbidden["metadata"] == {"role": "viewer", "method": "POST", "route": "/v1/queues", "path": "/v1/queues",
                                     "status": 403}
    failed = {e["metadata"]["reason"]: e for e in reversed(events)}
    assert [e["event_type"] for e in events] == ["auth.failed"] * 3 and list(failed) == ["revoked", "expired", "invalid"]
    assert (failed["revoked"]["actor_id"], failed["expired"]["actor_id"]) == (revoked["id"], expired["id"])
    assert failed["invalid"]["actor_id"] == "anonymous" and failed["invalid"]["resource_id"] is None
    assert {e["metadata"]["key_prefix"] for e in events} == {server.api_key[:10], revoked["key"][:10], expired["key"][:10]}
    assert failed["invalid"]["metadata"]["route"] == "/v1/queues" and failed["invalid"]["metadata"]["status"] == 401
    recorded = json.dumps(events)
    assert not any(key in recorded for key in (revoked["key"], expired["key"], forged, unknown))
    log = server.log()  # the refusals no workspace can be told of are logged, without the key
    assert "API key refused (invalid)" in log and "API key refused (missing)" in log and unknown[6:] not in log
