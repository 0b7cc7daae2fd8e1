"""The audit log end to end: every mutating call recorded, filters, cursor, CSV, append-only."""

from __future__ import annotations

import csv
import io
import sqlite3

import pytest
from click.testing import CliRunner

from rotor_lite.cli import main
from tests.helpers import Receiver, ServerProcess


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
