"""What the API accepts and refuses: idempotency, batches, limits, field spellings, errors, auth, tenancy."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ServerProcess, storage_env

QueueMaker = Callable[..., str]
ERROR_CODES = {
    "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "CONFLICT", "IDEMPOTENCY_CONFLICT", "GONE", "PAYLOAD_TOO_LARGE",
    "VALIDATION_ERROR", "QUOTA_EXCEEDED", "RATE_LIMITED", "INTERNAL",
}


def new_queue(http: httpx.Client, **fields: Any) -> str:
    """A uniquely named queue without a callback URL: its jobs stay where they are put."""
    name = f"rq-{uuid.uuid4().hex[:10]}"
    created = http.post("/v1/queues", json={"name": name, **fields})
    assert created.status_code == 201, created.text
    return name


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is exactly `{"error": {"code", "message", "details"}}` with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    error = body["error"]
    assert error["code"] == code and code in ERROR_CODES
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["details"], dict)
    return dict(error)


def job_count(http: httpx.Client, queue: str) -> int:
    return sum(http.get(f"/v1/queues/{queue}/stats").json().values())


def accepted(http: httpx.Client, queue: str) -> int:
    return int(http.get("/v1/usage").json()["executions"]["byQueue"].get(queue, 0))


def cli(*args: str, cwd: Any, data_dir: Path) -> dict[str, Any]:
    """The CLI in a process of its own, on the database of `data_dir`'s servers."""
    done = subprocess.run([sys.executable, "-m", "rotor_lite", *args, "--data-dir", str(data_dir)], capture_output=True,
                          text=True, cwd=cwd, timeout=30, check=False, env={**os.environ, **storage_env(data_dir, None)})
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# Idempotency ----------------------------------------------------------------------------------


def test_same_job_id_twice_is_a_duplicate_and_creates_nothing(http: httpx.Client) -> None:
    queue = new_queue(http)
    first = http.post(f"/v1/queues/{queue}/jobs", json={"payload": {"v": 1}, "jobId": "outreach:cmp_456:cid_123"})
    assert first.status_code == 201 and first.json()["duplicate"] is False
    assert first.json()["id"] == "outreach:cmp_456:cid_123"

    second = http.post(f"/v1/queues/{queue}/jobs", json={"payload": {"v": 2}, "jobId": "outreach:cmp_456:cid_123"})
    assert second.status_code == 200, second.text
    assert second.json()["duplicate"] is True and second.json()["id"] == first.json()["id"]
    assert second.json()["payload"] == {"v": 1}  # the existing job, untouched
    assert job_count(http, queue) == 1 and accepted(http, queue) == 1
    assert "duplicate" not in http.get(f"/v1/queues/{queue}/jobs/{first.json()['id']}").json()


def test_strict_duplicate_is_an_idempotency_conflict(http: httpx.Client) -> None:
    queue = new_queue(http)
    assert http.post(f"/v1/queues/{queue}/jobs", json={"jobId": "once", "strict": True}).status_code == 201

    error = assert_error(http.post(f"/v1/queues/{queue}/jobs", json={"jobId": "once", "strict": True}), 409, "IDEMPOTENCY_CONFLICT")
    assert "once" in json.dumps(error)
    assert job_count(http, queue) == 1


def test_idempotency_key_header_becomes_the_job_id(http: httpx.Client) -> None:
    queue = new_queue(http)
    first = http.post(f"/v1/queues/{queue}/jobs", json={"payload": {}}, headers={"Idempotency-Key": "hdr-key-1"})
    assert first.status_code == 201 and first.json()["id"] == "hdr-key-1"

    again = http.post(f"/v1/queues/{queue}/jobs", json={"payload": {}}, headers={"Idempotency-Key": "hdr-key-1"})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    body_wins = http.post(f"/v1/queues/{queue}/jobs", json={"jobId": "body-id"}, headers={"Idempotency-Key": "hdr-key-2"})
    assert body_wins.status_code == 201 and body_wins.json()["id"] == "body-id"
    assert job_count(http, queue) == 2


@pytest.mark.parametrize("field", ["idempotencyKey", "idempotency_key"])
def test_idempotency_key_field_means_the_same_as_job_id(http: httpx.Client, field: str) -> None:
    queue = new_queue(http)
    first = http.post(f"/v1/queues/{queue}/jobs", json={field: "welcome:user_1"})
    assert first.status_code == 201 and first.json()["id"] == "welcome:user_1"

    by_job_id = http.post(f"/v1/queues/{queue}/jobs", json={"jobId": "welcome:user_1"})
    assert by_job_id.status_code == 200 and by_job_id.json()["duplicate"] is True
    assert job_count(http, queue) == 1


CONTROL_CHARACTERS = ["a\r\nx-injected: 1", "a\x00b", "a\x1bb", "a\x7fb", "a\x85b"]


@pytest.mark.parametrize("key", CONTROL_CHARACTERS, ids=["crlf", "nul", "esc", "del", "c1-nel"])
@pytest.mark.parametrize(
    "where", ["jobId", "idempotencyKey", "idempotencyKeys", "batch-jobId", "concurrencyKey", "tags"]
)
def test_ids_and_keys_with_control_characters_are_422_and_create_nothing(http: httpx.Client, where: str, key: str) -> None:
    queue = new_queue(http)
    jobs = f"/v1/queues/{queue}/jobs"
    response = {
        "jobId": lambda: http.post(jobs, json={"jobId": key}),
        "idempotencyKey": lambda: http.post(jobs, json={"idempotencyKey": key}),
        "idempotencyKeys": lambda: http.post(f"{jobs}/batch", json={"jobs": [{}, {}], "idempotencyKeys": ["ok", key]}),
        "batch-jobId": lambda: http.post(f"{jobs}/batch", json={"jobs": [{"jobId": "ok"}, {"jobId": key}]}),
        "concurrencyKey": lambda: http.post(jobs, json={"concurrencyKey": key}),
        "tags": lambda: http.post(jobs, json={"tags": ["ok", key]}),
    }[where]()
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert "control character" in error["message"], error
    assert job_count(http, queue) == 0


@pytest.mark.parametrize("value", [b"a\x85b", b"a\x01b", b"a\x00b"], ids=["c1-nel", "soh", "nul"])
def test_an_idempotency_key_header_with_a_control_character_is_refused(shared_server: ServerProcess, value: bytes) -> None:
    """Sent byte for byte: HTTP clients refuse to put such bytes in a header, a hostile client does not."""
    with shared_server.client() as http:
        queue = new_queue(http)
    body = b'{"payload": {}}'
    request = (
        f"POST /v1/queues/{queue}/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {shared_server.api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    ).encode() + b"Idempotency-Key: " + value + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 422), answer  # the HTTP parser may refuse the request before rotor-lite sees it
    with shared_server.client() as http:
        assert job_count(http, queue) == 0


# Batches --------------------------------------------------------------------------------------


def test_batch_with_one_invalid_job_creates_none(http: httpx.Client) -> None:
    queue = new_queue(http)
    jobs = [{"payload": {"i": 0}}, {"payload": {"i": 1}, "tags": [f"t{i}" for i in range(11)]}, {"payload": {"i": 2}}]
    assert_error(http.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": jobs}), 422, "VALIDATION_ERROR")
    jobs[1] = {"payload": {"i": 1}, "priority": "high"}
    assert_error(http.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": jobs}), 422, "VALIDATION_ERROR")
    assert job_count(http, queue) == 0 and accepted(http, queue) == 0


def test_batch_of_1000_is_accepted_in_input_order_and_1001_is_refused(http: httpx.Client) -> None:
    queue = new_queue(http)
    assert_error(
        http.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": [{"payload": {"i": i}} for i in range(1001)]}),
        422, "VALIDATION_ERROR",
    )
    assert job_count(http, queue) == 0

    created = http.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": [{"payload": {"i": i}} for i in range(1000)]})
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    assert [job["payload"]["i"] for job in data] == list(range(1000))
    assert len({job["id"] for job in data}) == 1000
    assert job_count(http, queue) == 1000 and accepted(http, queue) == 1000


@pytest.mark.parametrize(
    ("jobs", "keys"),
    [
        ([{}, {}, {}], ["k1", "k2"]),
        ([{}, {}], ["k1", "k1"]),
        ([{"jobId": "own-id"}, {}], ["k1", "k2"]),
    ],
    ids=["length-mismatch", "duplicate-keys", "conflicts-with-own-jobId"],
)
def test_bad_idempotency_keys_reject_the_batch(http: httpx.Client, jobs: list[dict[str, Any]], keys: list[str]) -> None:
    queue = new_queue(http)
    assert_error(
        http.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": jobs, "idempotencyKeys": keys}), 422, "VALIDATION_ERROR"
    )
    assert job_count(http, queue) == 0


def test_known_idempotency_keys_are_silent_no_ops_and_data_keeps_input_order(http: httpx.Client) -> None:
    queue = new_queue(http)
    first = http.post(f"/v1/queues/{queue}/jobs/batch",
                      json={"jobs": [{"payload": {"c": "001"}}, {"payload": {"c": "002"}}],
                            "idempotencyKeys": ["outreach:001", "outreach:002"]})
    assert first.status_code == 201, first.text
    assert [job["id"] for job in first.json()["data"]] == ["outreach:001", "outreach:002"]

    second = http.post(f"/v1/queues/{queue}/jobs/batch",
                       json={"jobs": [{"payload": {"c": "003"}}, {"payload": {"c": "002-again"}}, {"jobId": "own"}],
                             "idempotency_keys": ["outreach:003", "outreach:002", "own"]})
    assert second.status_code == 201, second.text
    data = second.json()["data"]
    assert [job["id"] for job in data] == ["outreach:003", "outreach:002", "own"]
    assert data[1]["payload"] == {"c": "002"}  # the known key returned the existing job
    assert job_count(http, queue) == 4 and accepted(http, queue) == 4


# Sizes, unknown fields, spellings, types --------------------------------------------------------


def test_payload_over_512_kib_is_413(http: httpx.Client) -> None:
    queue = new_queue(http)
    assert http.post(f"/v1/queues/{queue}/jobs", json={"payload": {"blob": "x" * (500 * 1024)}}).status_code == 201

    assert_error(http.post(f"/v1/queues/{queue}/jobs", json={"payload": {"blob": "x" * (512 * 1024)}}), 413, "PAYLOAD_TOO_LARGE")
    batch = {"jobs": [{"payload": {}}, {"payload": {"blob": "x" * (513 * 1024)}}]}
    assert_error(http.post(f"/v1/queues/{queue}/jobs/batch", json=batch), 413, "PAYLOAD_TOO_LARGE")
    assert job_count(http, queue) == 1


def test_request_body_over_16_mib_is_413(http: httpx.Client) -> None:
    queue = new_queue(http)
    jobs = [{"payload": {"blob": "x" * (400 * 1024)}} for _ in range(42)]  # each payload is fine, the body is not
    assert_error(http.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": jobs}), 413, "PAYLOAD_TOO_LARGE")
    assert job_count(http, queue) == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/queues", {"name": "unknown-field-q", "colour": "red"}, "colour"),
        ("/v1/queues", {"name": "unknown-field-q", "defaultJobOptions": {"attempts": 2, "maxAge": 5}}, "max_age"),
        ("{queue}/jobs", {"payload": {}, "sendAt": "2030-01-01T00:00:00Z"}, "send_at"),
        ("{queue}/jobs/batch", {"jobs": [{"payload": {}, "urgent": True}]}, "urgent"),
        ("{queue}/drain", {"confirm": True, "force": True}, "force"),
    ],
    ids=["queue", "nested-options", "job", "batch-job", "drain"],
)
def test_unknown_fields_are_422_naming_the_field(http: httpx.Client, path: str, body: dict[str, Any], field: str) -> None:
    queue = new_queue(http)
    error = assert_error(http.post(path.format(queue=f"/v1/queues/{queue}"), json=body), 422, "VALIDATION_ERROR")
    spellings = {field, camel(field)}
    assert any(s in error["message"] or s in str(error["details"].get("field", "")) for s in spellings), error
    assert job_count(http, queue) == 0


@pytest.mark.parametrize("spell", [str, camel], ids=["snake_case", "camelCase"])
def test_every_field_is_accepted_in_snake_and_camel_case(http: httpx.Client, spell: Callable[[str], str]) -> None:
    name = f"spell-{uuid.uuid4().hex[:8]}"
    queue_body = {
        "name": name, "concurrency": 2, "retry_attempts": 4, "callback_url": "http://127.0.0.1:9/cb",
        "callback_headers": {"X-Env": "test"}, "approval_required": False, "timeout_seconds": 7,
        "rotate_callback_secret": True,
        "default_job_options": {"attempts": 4, "backoff": {"type": "fixed", "delay": 250}},
    }
    created = http.post("/v1/queues", json={spell(k): v for k, v in queue_body.items()})
    assert created.status_code == 201, created.text
    queue = created.json()
    assert (queue["concurrency"], queue["retry_attempts"], queue["timeout_seconds"]) == (2, 4, 7)
    assert queue["callback_url"] == "http://127.0.0.1:9/cb" and queue["callback_headers"] == {"X-Env": "test"}
    assert queue["defaultJobOptions"] == {"attempts": 4, "backoff": {"type": "fixed", "delay": 250}}
    assert queue["callback_secret"]
    assert http.post(f"/v1/queues/{name}/pause").status_code == 200  # nothing below is delivered

    patch = {"retry_attempts": 2, "timeout_seconds": 9, "callback_headers": {"X-Env": "prod"}, "approval_required": True}
    patched = http.patch(f"/v1/queues/{name}", json={spell(k): v for k, v in patch.items()})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["retry_attempts"], patched.json()["timeout_seconds"]) == (2, 9)
    assert patched.json()["approval_required"] is True and patched.json()["callback_headers"] == {"X-Env": "prod"}
    http.patch(f"/v1/queues/{name}", json={spell("approval_required"): False})

    run_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    job_body = {"payload": {"a": 1}, "run_at": run_at.isoformat(), "tags": ["t"], "concurrency_key": "ck-1",
                "job_id": "jid-1", "priority": 3, "strict": True}
    job = http.post(f"/v1/queues/{name}/jobs", json={spell(k): v for k, v in job_body.items()})
    assert job.status_code == 201, job.text
    assert (job.json()["id"], job.json()["concurrencyKey"], job.json()["priority"]) == ("jid-1", "ck-1", 3)
    assert job.json()["state"] == "delayed" and job.json()["runAt"].startswith(run_at.strftime("%Y-%m-%dT%H:%M:%S"))
    keyed = http.post(f"/v1/queues/{name}/jobs", json={spell("idempotency_key"): "ik-1"})
    assert keyed.status_code == 201 and keyed.json()["id"] == "ik-1"
    batch = http.post(f"/v1/queues/{name}/jobs/batch",
                      json={"jobs": [{spell("concurrency_key"): "b"}], spell("idempotency_keys"): ["bk-1"]})
    assert batch.status_code == 201 and batch.json()["data"][0]["id"] == "bk-1"
    replay = http.post("/v1/dlq/replay", json={"queue": name, spell("job_ids"): ["jid-1"]})
    assert (replay.status_code, replay.json()) == (200, {"replayed": 0})


def test_both_spellings_of_one_field_is_422(http: httpx.Client) -> None:
    queue = new_queue(http)
    assert_error(http.post(f"/v1/queues/{queue}/jobs", json={"jobId": "a", "job_id": "b"}), 422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("queue", {"concurrency": "five"}),
        ("queue", {"concurrency": 0}),
        ("queue", {"retry_attempts": 0}),
        ("queue", {"timeout_seconds": "30s"}),
        ("queue", {"callback_headers": {"X-Count": 1}}),
        ("queue", {"callback_url": "ftp://example.com/x"}),
        ("queue", {"defaultJobOptions": {"backoff": {"type": "linear", "delay": 10}}}),
        ("queue", {"approval_required": "yes"}),
        ("job", {"priority": "high"}),
        ("job", {"priority": 1.5}),
        ("job", {"tags": "campaign"}),
        ("job", {"tags": [1, 2]}),
        ("job", {"delay": "soon"}),
        ("job", {"delay": -5}),
        ("job", {"run_at": "tomorrow"}),
        ("job", {"concurrencyKey": 7}),
        ("job", {"concurrencyKey": "k" * 257}),
        ("job", {"jobId": "j" * 257}),
        ("job", {"strict": "yes"}),
        ("batch", {"jobs": {"payload": {}}}),
        ("batch", {"jobs": []}),
    ],
)
def test_bad_types_and_values_are_422(http: httpx.Client, target: str, body: dict[str, Any]) -> None:
    if target == "queue":
        response = http.post("/v1/queues", json={"name": f"bad-{uuid.uuid4().hex[:8]}", **body})
    else:
        queue = new_queue(http)
        response = http.post(f"/v1/queues/{queue}/jobs{'/batch' if target == 'batch' else ''}", json=body)
        assert job_count(http, queue) == 0
    assert_error(response, 422, "VALIDATION_ERROR")


@pytest.mark.parametrize("name", ["", "-leading-dash", ".dot", "has space", "x" * 129, "naïve", "a/b", "tab\t"])
def test_bad_queue_names_are_422(http: httpx.Client, name: str) -> None:
    assert_error(http.post("/v1/queues", json={"name": name}), 422, "VALIDATION_ERROR")


def test_good_queue_names_and_a_taken_name_is_409(http: httpx.Client) -> None:
    suffix = uuid.uuid4().hex[:8]
    for name in (f"A{suffix}", f"{suffix}_x.y:z-w", f"{suffix}" + "q" * 120):
        assert http.post("/v1/queues", json={"name": name}).status_code == 201, name
    assert_error(http.post("/v1/queues", json={"name": f"A{suffix}"}), 409, "CONFLICT")
    assert_error(http.post("/v1/queues", json={}), 422, "VALIDATION_ERROR")


@pytest.mark.parametrize("content", [b"{not json", b'{"payload": ', b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_422(http: httpx.Client, content: bytes) -> None:
    queue = new_queue(http)
    headers = {"Content-Type": "application/json"}
    assert_error(http.post(f"/v1/queues/{queue}/jobs", content=content, headers=headers), 422, "VALIDATION_ERROR")
    assert_error(http.post("/v1/queues", content=content, headers=headers), 422, "VALIDATION_ERROR")


def nested(depth: int) -> Any:
    """A JSON value `depth` levels of objects and arrays deep."""
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def deep_body(depth: int) -> bytes:
    """The encoding of `nested(depth)` without recursion (json.dumps cannot nest 100,000 levels)."""
    opens = "".join('[' if level % 2 else '{"k":' for level in reversed(range(depth)))
    closes = "".join(']' if level % 2 else '}' for level in range(depth))
    return f'{opens}"leaf"{closes}'.encode()


def test_deep_body_is_nested() -> None:
    assert json.loads(deep_body(7)) == nested(7)


def test_a_payload_nesting_64_levels_is_accepted_in_every_route(http: httpx.Client) -> None:
    queue = new_queue(http)
    payload = nested(64)
    single = http.post(f"/v1/queues/{queue}/jobs", json={"payload": payload})
    assert single.status_code == 201, single.text
    assert http.get(f"/v1/queues/{queue}/jobs/{single.json()['id']}").json()["payload"] == payload
    batch = http.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": [{"payload": payload}] * 2})
    assert batch.status_code == 201, batch.text
    schedule = {"queue": queue, "cron": "0 0 1 1 *", "timezone": "UTC", "payload": payload, "enabled": False}
    assert http.post("/v1/schedules", json=schedule).status_code == 201


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
@pytest.mark.parametrize("route", ["job", "job-camelCase", "batch", "schedule", "schedule-update", "guardrails", "queue"])
def test_json_nested_deeper_than_64_levels_is_422_naming_the_limit(http: httpx.Client, route: str, depth: int) -> None:
    queue = new_queue(http)
    payload = deep_body(depth)
    schedule = {"queue": queue, "cron": "0 0 1 1 *", "timezone": "UTC", "enabled": False}
    target, body = {
        "job": (f"/v1/queues/{queue}/jobs", b'{"payload": ' + payload + b"}"),
        "job-camelCase": (f"/v1/queues/{queue}/jobs", b'{"jobId": "deep", "payload": ' + payload + b"}"),
        "batch": (f"/v1/queues/{queue}/jobs/batch", b'{"jobs": [{"payload": {}}, {"payload": ' + payload + b"}]}"),
        "schedule": ("/v1/schedules", json.dumps(schedule)[:-1].encode() + b', "payload": ' + payload + b"}"),
        "schedule-update": ("/v1/schedules/{id}", b'{"payload": ' + payload + b"}"),
        "guardrails": ("/v1/guardrails", b'{"dncEmails": ' + payload + b"}"),
        "queue": ("/v1/queues", b'{"name": "deep", "callback_headers": ' + payload + b"}"),
    }[route]
    if route == "schedule-update":
        created = http.post("/v1/schedules", json={**schedule, "payload": {}})
        assert created.status_code == 201, created.text
        target = target.format(id=created.json()["id"])
    method = "PATCH" if route in ("schedule-update", "guardrails") else "POST"
    response = http.request(method, target, content=body, headers={"Content-Type": "application/json"})
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert "64 levels" in error["message"] and error["details"]["limit"] == 64, error
    assert job_count(http, queue) == 0


@pytest.mark.parametrize("limit", ["501", "0", "-1", "ten"])
def test_list_limit_outside_1_to_500_is_422(http: httpx.Client, limit: str) -> None:
    queue = new_queue(http)
    assert_error(http.get(f"/v1/queues/{queue}/jobs", params={"limit": limit}), 422, "VALIDATION_ERROR")
    assert_error(http.get("/v1/dlq", params={"limit": limit}), 422, "VALIDATION_ERROR")
    assert http.get(f"/v1/queues/{queue}/jobs", params={"limit": 500}).status_code == 200


# Quota and rate limit --------------------------------------------------------------------------


def test_monthly_quota_is_checked_at_write_time_and_all_or_nothing(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server(ROTOR_LIMITS_MONTHLY_JOB_QUOTA="5")
    with server.client() as http:
        queue = new_queue(http)
        for i in range(3):
            assert http.post(f"/v1/queues/{queue}/jobs", json={"jobId": f"j{i}"}).status_code == 201
        crossing = http.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": [{}, {}, {}]})
        error = assert_error(crossing, 402, "QUOTA_EXCEEDED")
        assert error["details"]["used"] == 3 and error["details"]["limit"] == 5 and isinstance(error["details"]["plan"], str)
        assert job_count(http, queue) == 3

        assert http.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": [{}, {}]}).status_code == 201
        sixth = assert_error(http.post(f"/v1/queues/{queue}/jobs", json={}), 402, "QUOTA_EXCEEDED")
        assert {k: sixth["details"][k] for k in ("used", "limit")} == {"used": 5, "limit": 5}
        assert set(sixth["details"]) == {"used", "limit", "plan"}
        assert http.post(f"/v1/queues/{queue}/jobs", json={"jobId": "j0"}).status_code == 200  # a duplicate costs nothing
        assert job_count(http, queue) == 5
        quota = http.get("/v1/status").json()["quota"]
        assert (quota["used"], quota["limit"]) == (5, 5)


def test_rate_limit_answers_429_with_retry_after_and_headers(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server(ROTOR_LIMITS_RATE_LIMIT_PER_MINUTE="5")
    if time.time() % 60 > 58:  # the window is a calendar minute: do not straddle its end
        time.sleep(60 - time.time() % 60 + 0.05)
    with server.client() as http:
        remaining = []
        for _ in range(5):
            ok = http.get("/v1/queues")
            assert ok.status_code == 200, ok.text
            assert ok.headers["X-RateLimit-Limit"] == "5"
            remaining.append(int(ok.headers["X-RateLimit-Remaining"]))
        assert remaining == [4, 3, 2, 1, 0]

        limited = http.get("/v1/queues")
        assert_error(limited, 429, "RATE_LIMITED")
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.headers["X-RateLimit-Limit"] == "5" and limited.headers["X-RateLimit-Remaining"] == "0"
        assert 0 < int(limited.headers["X-RateLimit-Reset"]) - time.time() <= 61
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # not counted, not limited


# Envelope, auth, tenancy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "Bearer rt_ws_not_a_real_key", "Bearer", "Basic dXNlcjpwYXNz", "rt_ws_test_bootstrap_key_0000000000000000"]
)
def test_missing_or_bad_key_is_401(shared_server: ServerProcess, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path in (("GET", "/v1/queues"), ("POST", "/v1/queues"), ("GET", "/v1/status"), ("GET", "/v1/dlq")):
        response = httpx.request(method, f"{shared_server.url}{path}", headers=headers, json={"name": "x"})
        assert_error(response, 401, "UNAUTHORIZED")


def test_unknown_route_is_a_404_envelope(http: httpx.Client) -> None:
    assert_error(http.get("/v1/no-such-thing"), 404, "NOT_FOUND")
    assert_error(http.get("/v1/queues/no-such-queue-anywhere"), 404, "NOT_FOUND")


def test_another_workspace_sees_404_never_401_or_403(http: httpx.Client, shared_server: ServerProcess) -> None:
    queue = new_queue(http)
    job_id = http.post(f"/v1/queues/{queue}/jobs", json={"payload": {"secret": 1}}).json()["id"]
    other = cli("workspaces", "create", f"other-{uuid.uuid4().hex[:6]}", "--json", cwd=shared_server.data_dir.parent,
                data_dir=shared_server.data_dir)
    assert set(other) == {"id", "name", "key"} and other["key"].startswith("rt_ws_")

    with shared_server.client(other["key"]) as intruder:
        attempts = [
            intruder.get(f"/v1/queues/{queue}"),
            intruder.get(f"/v1/queues/{queue}/stats"),
            intruder.get(f"/v1/queues/{queue}/jobs"),
            intruder.get(f"/v1/queues/{queue}/jobs/{job_id}"),
            intruder.post(f"/v1/queues/{queue}/jobs", json={}),
            intruder.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": [{}]}),
            intruder.delete(f"/v1/queues/{queue}/jobs/{job_id}"),
            intruder.post(f"/v1/queues/{queue}/jobs/{job_id}/retry"),
            intruder.patch(f"/v1/queues/{queue}", json={"concurrency": 9}),
            intruder.post(f"/v1/queues/{queue}/pause"),
            intruder.post(f"/v1/queues/{queue}/drain", json={"confirm": True}),
            intruder.post(f"/v1/queues/{queue}/retry-all"),
            intruder.get("/v1/dlq", params={"queue": queue}),
            intruder.post("/v1/dlq/replay", json={"queue": queue}),
            intruder.delete(f"/v1/queues/{queue}"),
        ]
        for response in attempts:
            assert_error(response, 404, "NOT_FOUND")
        assert queue not in [q["name"] for q in intruder.get("/v1/queues").json()["data"]]
        assert queue not in intruder.get("/v1/usage").json()["executions"]["byQueue"]

        assert intruder.post("/v1/queues", json={"name": queue}).status_code == 201  # names are per workspace
        assert_error(intruder.get(f"/v1/queues/{queue}/jobs/{job_id}"), 404, "NOT_FOUND")
        assert intruder.get(f"/v1/queues/{queue}/jobs").json()["data"] == []

    survivor = http.get(f"/v1/queues/{queue}/jobs/{job_id}").json()
    assert survivor["state"] == "waiting" and survivor["payload"] == {"secret": 1}
    assert http.get(f"/v1/queues/{queue}").json()["concurrency"] == 1


# Status, usage, metrics, docs, health ---------------------------------------------------------------


def test_status_shape(http: httpx.Client, backend: str) -> None:
    status = http.get("/v1/status")
    assert status.status_code == 200
    body = status.json()
    several_nodes = {"cluster"} if backend == "postgres" else set()  # its node and the cron leader: to admins only
    assert set(body) == {"api", "database", "version", "quota", "deliveryHelpers"} | several_nodes  # helpers too
    assert body["api"] == "ok" and body["database"] == "ok" and isinstance(body["version"], str) and body["version"]
    assert set(body["quota"]) == {"used", "limit", "plan", "resetAt"}
    assert isinstance(body["quota"]["used"], int) and body["quota"]["limit"] is None
    reset = datetime.fromisoformat(body["quota"]["resetAt"])
    assert reset > datetime.now(UTC) and (reset.day, reset.hour, reset.minute) == (1, 0, 0)


def test_usage_counts_accepted_jobs_by_queue(http: httpx.Client) -> None:
    first, second = new_queue(http), new_queue(http)
    for i in range(3):
        http.post(f"/v1/queues/{first}/jobs", json={"jobId": f"u{i}"})
    http.post(f"/v1/queues/{first}/jobs", json={"jobId": "u0"})  # a duplicate is not an execution
    http.post(f"/v1/queues/{second}/jobs/batch", json={"jobs": [{}, {}]})

    usage = http.get("/v1/usage").json()
    assert set(usage) == {"period", "executions"} and set(usage["period"]) == {"from", "to"}
    assert set(usage["executions"]) == {"total", "byQueue"}
    by_queue = usage["executions"]["byQueue"]
    assert (by_queue[first], by_queue[second]) == (3, 2)
    assert usage["executions"]["total"] == sum(by_queue.values())
    start = datetime.fromisoformat(usage["period"]["from"])
    end = datetime.fromisoformat(usage["period"]["to"])
    assert start <= datetime.now(UTC) < end and start.day == 1


def test_metrics_is_prometheus_text(http: httpx.Client, shared_server: ServerProcess) -> None:
    queue = new_queue(http)
    http.post(f"/v1/queues/{queue}/jobs", json={})

    response = http.get("/metrics")  # the bootstrap key is an admin key
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert families, response.text
    enqueued = [s for f in families.values() for s in f.samples if s.name.startswith("rotor_jobs_enqueued")]
    assert any(s.labels.get("queue") == queue and s.value == 1 for s in enqueued), enqueued


def test_doc_is_an_openapi_document_with_the_queue_paths(shared_server: ServerProcess) -> None:
    response = httpx.get(f"{shared_server.url}/doc")  # no auth
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert re.match(r"^3\.", doc["openapi"]) and doc["info"]["title"]
    paths = {re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", path).rstrip("/") or "/" for path in doc["paths"]}
    for path in ("/v1/queues", "/v1/queues/{name}", "/v1/queues/{name}/jobs", "/v1/queues/{name}/jobs/batch",
                 "/v1/queues/{name}/jobs/{job_id}", "/v1/queues/{name}/drain", "/v1/dlq", "/v1/dlq/replay"):
        assert path in paths, sorted(paths)


def test_healthz_needs_no_auth(shared_server: ServerProcess) -> None:
    response = httpx.get(f"{shared_server.url}/healthz")
    assert response.status_code == 200
