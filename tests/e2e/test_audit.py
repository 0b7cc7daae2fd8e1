"""The audit log end to end: every mutating call and every refused key or role recorded, the client
address, filters, cursor, CSV safe for spreadsheets, append-only."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from rotor_lite.cli import main
from rotor_lite.store.contract import IntegrityError
from tests.helpers import Receiver, Reply, ServerProcess, api_routes, db_execute, offline, wait_until

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
    # SQLite's triggers, or PostgreSQL's (store/pg_sql): either refuses, whatever the connection.
    for statement in ("UPDATE audit_event SET actor_id = 'me'", "DELETE FROM audit_event"):
        with pytest.raises(IntegrityError, match="append-only"):
            db_execute(server.data_dir, statement)
    assert db_execute(server.data_dir, "SELECT count(*) FROM audit_event WHERE actor_id = 'me'")[0][0] == 0
    assert db_execute(server.data_dir, "SELECT count(*) FROM audit_event")[0][0] > 0


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
    db_execute(server.data_dir, "UPDATE api_key SET revoked_at = 1 WHERE id = ?", (revoked["id"],))  # no API revokes keys yet
    db_execute(server.data_dir, "UPDATE api_key SET expires_at = 1 WHERE id = ?", (expired["id"],))
    forged = server.api_key[:10] + "forged-forged-forged"  # the public prefix of a real key, the rest wrong
    unknown = "rt_ws_nobody_has_this_key_000000"
    with server.client(viewer["key"]) as http:
        assert http.post("/v1/queues", json={"name": "v"}).status_code == 403
    for key in (revoked["key"], expired["key"], forged, unknown):
        with server.client(key) as http:
            assert http.get("/v1/queues").status_code == 401
    assert httpx.get(f"{server.url}/v1/queues").status_code == 401  # no key at all
    with server.client() as http:
        events = http.get("/v1/audit", params={"event_type": "auth.failed"}).json()["data"]
        created = http.get("/v1/audit", params={"event_type": "api_key.created"}).json()["data"]
        [forbidden] = http.get("/v1/audit", params={"event_type": "auth.forbidden"}).json()["data"]
    with server.client(other) as http:  # the other workspace's log holds its own creation, no refusal
        assert {e["event_type"] for e in http.get("/v1/audit").json()["data"]} == {"workspace.created", "api_key.created"}

    assert forbidden["actor_id"] == viewer["id"] and forbidden["ip_address"] == "127.0.0.1"
    assert forbidden["metadata"] == {"role": "viewer", "method": "POST", "route": "/v1/queues", "path": "/v1/queues",
                                     "status": 403}
    failed = {e["metadata"]["reason"]: e for e in reversed(events)}
    assert [e["event_type"] for e in events] == ["auth.failed"] * 3 and list(failed) == ["revoked", "expired", "invalid"]
    assert (failed["revoked"]["actor_id"], failed["expired"]["actor_id"]) == (revoked["id"], expired["id"])
    assert failed["invalid"]["actor_id"] == "anonymous" and failed["invalid"]["resource_id"] is None
    assert {e["metadata"]["key_prefix"] for e in events} == {server.api_key[:10], revoked["key"][:10], expired["key"][:10]}
    assert failed["invalid"]["metadata"]["route"] == "/v1/queues" and failed["invalid"]["metadata"]["status"] == 401
    assert {e["resource_id"] for e in created} == {viewer["id"], revoked["id"], expired["id"]}  # the offline command's
    assert {e["actor_id"] for e in created} == {"system"}
    recorded = json.dumps(events + created)
    assert not any(key in recorded for key in (viewer["key"], revoked["key"], expired["key"], forged, unknown))
    log = server.log()  # the refusals no workspace can be told of are logged, without the key
    assert "API key refused (invalid)" in log and "API key refused (missing)" in log and unknown[6:] not in log


# Every mutating route of the app, called once in an order that makes each call valid, with the event
# it must leave in the audit log (None: the data plane, never audited). The routes come from the app
# itself: a new POST/PUT/PATCH/DELETE route fails `test_every_mutating_route_is_audited` until it is
# added here, with the event it records.
Step = tuple[str, str, str, Any, str | None]  # method, route template, path, body, event type


def _steps(receiver: Receiver) -> list[Step]:
    return [
        ("POST", "/v1/queues", "/v1/queues", {"name": "aq", "callback_url": receiver.url("/aq")}, "queue.created"),
        ("PATCH", "/v1/queues/{name}", "/v1/queues/aq", {"concurrency": 2}, "queue.updated"),
        ("POST", "/v1/queues/{name}/pause", "/v1/queues/aq/pause", None, "queue.paused"),
        ("POST", "/v1/queues/{name}/jobs", "/v1/queues/aq/jobs", {"jobId": "j1"}, None),
        ("POST", "/v1/queues/{name}/jobs/batch", "/v1/queues/aq/jobs/batch", {"jobs": [{"jobId": "j2"}]}, None),
        ("DELETE", "/v1/queues/{name}/jobs/{job_id}", "/v1/queues/aq/jobs/j1", None, "job.cancelled"),
        ("POST", "/v1/queues/{name}/jobs/{job_id}/retry", "/v1/queues/aq/jobs/j1/retry", None, "job.retried"),
        ("POST", "/v1/queues/{name}/drain", "/v1/queues/aq/drain", {"confirm": True}, "queue.drained"),
        ("POST", "/v1/queues/{name}/retry-all", "/v1/queues/aq/retry-all", None, "queue.retried_all"),
        ("POST", "/v1/dlq/replay", "/v1/dlq/replay", {"queue": "aq"}, "job.retried"),
        ("POST", "/v1/queues/{name}/resume", "/v1/queues/aq/resume", None, "queue.resumed"),
        ("POST", "/v1/queues", "/v1/queues", {"name": "pq", "concurrency": 4}, "queue.created"),  # a pull queue: its workers' routes
        ("POST", "/v1/queues/{name}/jobs/lease", "/v1/queues/pq/jobs/lease", {"max": 4}, None),
        ("POST", "/v1/queues/{name}/jobs/{job_id}/heartbeat", "/v1/queues/pq/jobs/p1/heartbeat",
         {"leaseToken": "{p1}"}, None),
        ("POST", "/v1/queues/{name}/jobs/{job_id}/complete", "/v1/queues/pq/jobs/p1/complete",
         {"leaseToken": "{p1}", "result": {"ok": True}}, None),
        ("POST", "/v1/queues/{name}/jobs/{job_id}/fail", "/v1/queues/pq/jobs/p2/fail",
         {"leaseToken": "{p2}", "error": "no", "retry": False}, None),
        ("POST", "/v1/queues/{name}/jobs/outcomes", "/v1/queues/pq/jobs/outcomes",
         {"outcomes": [{"id": "p3", "leaseToken": "{p3}"}, {"id": "p4", "leaseToken": "{p4}", "error": "no"}]}, None),
        ("POST", "/v1/schedules", "/v1/schedules", {"queue": "aq", "name": "s", "cron": "0 0 1 1 *", "timezone": "UTC"},
         "schedule.created"),
        ("POST", "/v1/schedules/preview", "/v1/schedules/preview", {"cron": "0 9 * * *", "timezone": "UTC"}, None),
        ("PATCH", "/v1/schedules/{schedule_id}", "/v1/schedules/s", {"payload": {"a": 1}}, "schedule.updated"),
        ("POST", "/v1/schedules/{schedule_id}/pause", "/v1/schedules/s/pause", None, "schedule.paused"),
        ("POST", "/v1/schedules/{schedule_id}/resume", "/v1/schedules/s/resume", None, "schedule.resumed"),
        ("PATCH", "/v1/schedules/{schedule_id}/pause", "/v1/schedules/s/pause", None, "schedule.paused"),
        ("PATCH", "/v1/schedules/{schedule_id}/resume", "/v1/schedules/s/resume", None, "schedule.resumed"),
        ("POST", "/v1/schedules/{schedule_id}/fire-now", "/v1/schedules/s/fire-now", None, "schedule.fired"),
        ("DELETE", "/v1/schedules/{schedule_id}", "/v1/schedules/s", None, "schedule.deleted"),
        ("POST", "/v1/webhooks", "/v1/webhooks", {"url": receiver.url("/wh"), "eventTypes": ["job.completed"]},
         "webhook.created"),
        ("PATCH", "/v1/webhooks/{webhook_id}", "/v1/webhooks/{webhook}", {"enabled": True}, "webhook.updated"),
        ("POST", "/v1/webhooks/{webhook_id}/test", "/v1/webhooks/{webhook}/test", None, "webhook.tested"),
        ("POST", "/v1/webhooks/{webhook_id}/deliveries/{message_id}/redeliver",
         "/v1/webhooks/{webhook}/deliveries/{message}/redeliver", None, "delivery.redelivered"),
        ("POST", "/v1/webhooks/{webhook_id}/rotate-secret", "/v1/webhooks/{webhook}/rotate-secret", None,
         "webhook.secret_rotated"),
        ("DELETE", "/v1/webhooks/{webhook_id}", "/v1/webhooks/{webhook}", None, "webhook.deleted"),
        ("POST", "/v1/secrets", "/v1/secrets", {"name": "TOKEN", "value": "first-value"}, "secret.created"),
        ("PATCH", "/v1/secrets/{name}", "/v1/secrets/TOKEN", {"value": "second-value"}, "secret.rotated"),
        ("DELETE", "/v1/secrets/{name}", "/v1/secrets/TOKEN", None, "secret.deleted"),
        ("PUT", "/v1/alerts", "/v1/alerts", {"email": "ops@example.com"}, "alert.updated"),
        ("PATCH", "/v1/guardrails", "/v1/guardrails", {"piiRedactionEnabled": False}, "guardrail.updated"),
        ("POST", "/v1/guardrails/dnc", "/v1/guardrails/dnc", {"emails": ["a@example.com"], "domains": ["example.org"]},
         "guardrail.dnc_added"),
        ("DELETE", "/v1/guardrails/dnc/emails/{email}", "/v1/guardrails/dnc/emails/a@example.com", None,
         "guardrail.dnc_removed"),
        ("DELETE", "/v1/guardrails/dnc/domains/{domain}", "/v1/guardrails/dnc/domains/example.org", None,
         "guardrail.dnc_removed"),
        ("POST", "/v1/approvals/{approval_id}/approve", "/v1/approvals/{first_approval}/approve", None,
         "approval.approved"),
        ("POST", "/v1/approvals/{approval_id}/reject", "/v1/approvals/{second_approval}/reject", {"reason": "no"},
         "approval.rejected"),
        ("DELETE", "/v1/queues/{name}", "/v1/queues/aq", None, "queue.deleted"),
        ("POST", "/v1/functions", "/v1/functions",
         {"id": "af", "serve_url": receiver.url("/wf"), "trigger_event": "audit.go", "retries": 0}, "function.registered"),
        ("POST", "/v1/functions/signing-key/rotate", "/v1/functions/signing-key/rotate", None,
         "function.signing_key_rotated"),
        ("POST", "/v1/events", "/v1/events", {"name": "audit.go"}, None),
        ("POST", "/v1/signals/{signal_id}/complete", "/v1/signals/audit-signal/complete", {"data": {"ok": True}},
         "signal.completed"),
        ("POST", "/v1/runs/{run_id}/cancel", "/v1/runs/{run}/cancel", None, "run.cancelled"),
        ("POST", "/v1/runs/{run_id}/replay", "/v1/runs/{run}/replay", None, "run.replayed"),
        ("DELETE", "/v1/functions/{function_id}", "/v1/functions/af", None, "function.deleted"),
        ("POST", "/v1/api-keys", "/v1/api-keys", {"label": "ci", "role": "developer"}, "api_key.created"),
        ("POST", "/v1/api-keys/{key_id}/rotate", "/v1/api-keys/{ci_key}/rotate", {"graceSeconds": 0}, "api_key.rotated"),
        ("DELETE", "/v1/api-keys/{key_id}", "/v1/api-keys/{rotated_key}", None, "api_key.revoked"),
        ("POST", "/v1/workspaces", "/v1/workspaces", {"name": "audited", "plan": "free"}, "workspace.created"),
    ]


def test_every_mutating_route_is_audited(server: ServerProcess, receiver: Receiver) -> None:
    ids: dict[str, str] = {}
    steps = _steps(receiver)
    mutating = {route for route in api_routes() if route[0] in ("POST", "PUT", "PATCH", "DELETE")
                and not route[1].startswith("/v1/admin/")}  # the operator token's routes: test_mcp_admin.py
    assert {(method, template) for method, template, *_ in steps} == mutating
    with server.client() as http:
        for method, template, path, body, event_type in steps:
            _prepare(http, template, ids, receiver)
            seen = {event["id"] for event in http.get("/v1/audit", params={"limit": 500}).json()["data"]}
            as_team = {"Authorization": f"Bearer {ids['team_key']}"} if template == "/v1/workspaces" else None
            response = http.request(method, path.format(**ids), json=_filled(body, ids), headers=as_team)
            assert response.status_code < 300, (method, template, response.text)
            _remember(response, template, ids)
            new = [e for e in http.get("/v1/audit", params={"limit": 500}).json()["data"] if e["id"] not in seen]
            assert [e["event_type"] for e in new] == ([] if event_type is None else [event_type]), (method, template)


def _prepare(http: httpx.Client, template: str, ids: dict[str, str], receiver: Receiver) -> None:
    """What a step needs that an earlier step does not leave: a delivery to redeliver, approvals to decide."""
    if template.endswith("/redeliver"):
        deliveries = wait_until(lambda: http.get(f"/v1/webhooks/{ids['webhook']}/deliveries").json()["data"])
        ids["message"] = deliveries[0]["id"]
    if template == "/v1/events":  # the run it starts waits on a signal (the receiver speaks the protocol once)
        plan = {"key": "gate:1", "id": "gate", "type": "wait_for_signal", "opts": {"signal": "audit-signal", "timeoutMs": 60_000}}
        receiver.script("/wf", Reply(body=json.dumps({"type": "plan", "steps": [plan]}).encode()))
    if template == "/v1/signals/{signal_id}/complete":
        wait_until(lambda: http.get(f"/v1/runs/{ids['run']}").json()["status"] == "waiting")
    if template == "/v1/queues/{name}/jobs/lease":
        jobs = [{"jobId": f"p{n}"} for n in (1, 2, 3, 4)]
        assert http.post("/v1/queues/pq/jobs/batch", json={"jobs": jobs}).status_code == 201
    if template == "/v1/workspaces":  # only a team key creates workspaces
        ids["team_key"] = http.post("/v1/api-keys", json={"label": "ops", "type": "team", "role": "admin"}).json()["key"]
    if template == "/v1/approvals/{approval_id}/approve":
        assert http.patch("/v1/queues/aq", json={"approval_required": True}).status_code == 200
        for n in (1, 2):
            assert http.post("/v1/queues/aq/jobs", json={"payload": {"n": n}}).status_code == 201
        pending = http.get("/v1/approvals", params={"status": "pending"}).json()["approvals"]
        ids["first_approval"], ids["second_approval"] = (a["id"] for a in pending)


def _filled(body: Any, ids: dict[str, str]) -> Any:
    """The body with each `"{name}"` string replaced by the id remembered under that name (lease tokens)."""
    if isinstance(body, dict):
        return {key: _filled(value, ids) for key, value in body.items()}
    if isinstance(body, list):
        return [_filled(value, ids) for value in body]
    if isinstance(body, str) and body.startswith("{") and body.endswith("}"):
        return ids[body[1:-1]]
    return body


def _remember(response: httpx.Response, template: str, ids: dict[str, str]) -> None:
    if template == "/v1/queues/{name}/jobs/lease":
        ids.update((job["id"], job["leaseToken"]) for job in response.json()["data"])
    if template == "/v1/webhooks":
        ids["webhook"] = response.json()["id"]
    if template == "/v1/events":
        [ids["run"]] = response.json()["runIds"]
    if template == "/v1/api-keys":
        ids["ci_key"] = response.json()["id"]
    if template == "/v1/api-keys/{key_id}/rotate":
        ids["rotated_key"] = response.json()["id"]
