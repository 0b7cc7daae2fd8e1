"""The server's own log, read from a real `rotor-lite serve` in JSON: requests, failed attempts, the DLQ,
schedule fires, and never a key, a secret value, a query string or a payload."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Receiver, Reply, ServerProcess, wait_until

SECRET_VALUE = "vault-value-9f8e7d6c5b4a"
PAYLOAD_TEXT = "payload-text-0a1b2c3d"
QUERY_SECRET = "query-secret-7e6d5c4b"


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir=tmp_path / "data", env={"ROTOR_SERVER_LOG_FORMAT": "json"}, log_level="info")
    yield server.start()
    server.kill()


def entries(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def with_message(server: ServerProcess, message: str, **fields: Any) -> list[dict[str, Any]]:
    return [e for e in entries(server) if e["message"] == message and fields.items() <= e.items()]


def test_json_log_lines_tell_requests_failures_and_fires_without_secrets(
    json_server: ServerProcess, receiver: Receiver
) -> None:
    echoed = json.dumps({"echo": SECRET_VALUE}).encode()
    receiver.script("/fail", Reply(status=500, body=echoed), Reply(status=500, body=echoed))
    with json_server.client() as http:
        assert http.post("/v1/secrets", json={"name": "TOKEN", "value": SECRET_VALUE}).status_code == 201
        assert http.post("/v1/queues", json={
            "name": "logged", "callback_url": receiver.url("/fail"), "retry_attempts": 2,
            "callback_headers": {"X-Token": "${{ secrets.TOKEN }}"},
            "defaultJobOptions": {"backoff": {"type": "fixed", "delay": 10}},
        }).status_code == 201
        job_id = http.post("/v1/queues/logged/jobs", json={"payload": {"note": PAYLOAD_TEXT}}).json()["id"]
        assert http.get("/v1/queues", params={"token": QUERY_SECRET}).status_code == 200
        assert http.get("/v1/queues", headers={"Authorization": "Bearer rt_ws_not_a_key"}).status_code == 401
        assert http.post("/v1/queues", json={"name": "ticks"}).status_code == 201
        schedule = http.post("/v1/schedules", json={"queue": "ticks", "cron": "* * * * * *", "timezone": "UTC"}).json()
        fired_now = http.post(f"/v1/schedules/{schedule['id']}/fire-now").json()
    wait_until(lambda: with_message(json_server, "job failed, moved to the DLQ", job_id=job_id))
    [tick, *_] = wait_until(lambda: with_message(json_server, "schedule fired", manual=False))

    requests = with_message(json_server, "request")
    assert all(set(r) == {"time", "level", "logger", "message", "method", "path", "status", "ms", "workspace"}
               for r in requests)
    enqueue = next(r for r in requests if r["path"] == "/v1/queues/logged/jobs")
    assert enqueue["method"] == "POST" and enqueue["status"] == 201 and enqueue["workspace"].startswith("ws_")
    assert {(r["status"], r["workspace"]) for r in requests if r["path"] == "/v1/queues" and r["method"] == "GET"} == {
        (200, enqueue["workspace"]), (401, None)}

    [retried] = with_message(json_server, "job attempt failed, retry scheduled", job_id=job_id)
    [dead] = with_message(json_server, "job failed, moved to the DLQ", job_id=job_id)
    assert retried["level"] == "INFO" and dead["level"] == "WARNING"
    assert (retried["attempt"], dead["attempt"], dead["max_attempts"]) == (1, 2, 2)
    for attempt in (retried, dead):
        assert attempt["queue"] == "logged" and attempt["status"] == 500 and attempt["outcome"] == "5xx"
        assert attempt["error"] == 'HTTP 500: {"echo": "[secret]"}'
    assert retried["retry_at"].endswith("Z")

    [manual] = with_message(json_server, "schedule fired", manual=True)
    assert (manual["run_id"], manual["job_id"]) == (fired_now["runId"], fired_now["jobId"])
    assert tick["schedule_id"] == schedule["id"] and tick["queue"] == "ticks" and tick["run_id"].startswith("sr_")
    assert tick["scheduled_for"].endswith("Z") and tick["lateness_ms"] >= 0

    text = json_server.log()
    for secret in (json_server.api_key, SECRET_VALUE, PAYLOAD_TEXT, QUERY_SECRET, "rt_ws_not_a_key"):
        assert secret not in text
    assert [line for line in text.splitlines() if not line.startswith("{")] == [
        f"rotor-lite listening on {json_server.url}"]
