"""The `rotor` client commands against an httpx.MockTransport standing in for the server."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from rotor_lite.cli.client import context, register_client_commands
from rotor_lite.cli.client import status as status_module
from rotor_lite.sdk import Rotor

JOB_ID = "job_0123456789abcdef0123456789abcdef"

QUEUE: dict[str, Any] = {
    "name": "outreach",
    "concurrency": 10,
    "retry_attempts": 5,
    "defaultJobOptions": {"attempts": 5, "backoff": {"type": "exponential", "delay": 2000}},
    "callback_url": "https://app.example.com/rotor/outreach",
    "callback_headers": {"X-Env": "prod"},
    "approval_required": False,
    "timeout_seconds": 30,
    "state": "active",
    "created_at": "2026-05-20T10:00:00.000Z",
    "updated_at": "2026-05-20T10:00:00.000Z",
    "counts": {
        "waiting": 142,
        "delayed": 0,
        "active": 3,
        "completed": 99,
        "failed": 1,
        "pending_approval": 0,
        "blocked": 0,
        "cancelled": 0,
    },
}

JOB: dict[str, Any] = {
    "id": JOB_ID,
    "queue": "outreach",
    "state": "failed",
    "payload": {"contactId": "cid_123"},
    "tags": ["campaign:q2", "contact:cid_123"],
    "concurrencyKey": "contact:cid_123",
    "priority": 0,
    "attempts": 2,
    "maxAttempts": 3,
    "runAt": "2026-05-20T10:00:00.000Z",
    "createdAt": "2026-05-20T10:00:00.000Z",
    "startedAt": "2026-05-20T10:00:01.000Z",
    "finishedAt": "2026-05-20T10:00:09.000Z",
    "failReason": "callback returned 503",
    "result": None,
    "attemptLog": [
        {
            "attempt": 1,
            "at": "2026-05-20T10:00:01.000Z",
            "durationMs": 120,
            "status": 500,
            "outcome": "5xx",
            "error": "boom",
        },
        {
            "attempt": 2,
            "at": "2026-05-20T10:00:09.000Z",
            "durationMs": 30000,
            "status": None,
            "outcome": "timeout",
            "error": "deadline",
        },
    ],
}

STATUS: dict[str, Any] = {
    "api": "ok",
    "database": "ok",
    "version": "0.1.0",
    "quota": {"used": 12450, "limit": 100000, "plan": "pro", "resetAt": "2026-06-01T00:00:00.000Z"},
}


class FakeAPI:
    """Canned responses per (method, path); records every request and the key/URL each client got."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], httpx.Response | Callable[[httpx.Request], httpx.Response]] = {}
        self.requests: list[httpx.Request] = []
        self.clients: list[tuple[str | None, str]] = []

    def on(
        self, method: str, path: str, body: Any = None, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        response = (
            httpx.Response(status, headers=headers)
            if body is None
            else httpx.Response(status, json=body, headers=headers)
        )
        self.routes[(method, path)] = response

    def fail(self, method: str, path: str, status: int, code: str, message: str, **extra: Any) -> None:
        self.on(
            method,
            path,
            {"error": {"code": code, "message": message, "details": extra.pop("details", {})}},
            status=status,
            **extra,
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get((request.method, request.url.raw_path.decode().split("?")[0]))
        if route is None:
            return httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": "no such route"}})
        return route(request) if callable(route) else route

    def factory(self, api_key: str | None, api_url: str) -> Rotor:
        self.clients.append((api_key, api_url))
        return Rotor(api_key=api_key, base_url=api_url, transport=httpx.MockTransport(self.handle))

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def last_body(self) -> Any:
        return json.loads(self.last.content) if self.last.content else None


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "rotor-config"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, config_dir: Path) -> FakeAPI:
    fake = FakeAPI()
    monkeypatch.setattr(context, "client_factory", fake.factory)
    monkeypatch.setenv("ROTOR_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("ROTOR_API_KEY", "rt_ws_test")
    monkeypatch.delenv("ROTOR_API_URL", raising=False)
    return fake


Invoke = Callable[..., Result]


@pytest.fixture
def rotor() -> Invoke:
    group = click.Group("rotor")
    register_client_commands(group)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(group, list(args), input=input)

    return invoke


# --- registration and global options ----------------------------------------------------------


def test_registers_the_client_commands() -> None:
    group = click.Group("rotor")
    register_client_commands(group)
    assert {"login", "queues", "jobs", "status", "usage", "webhooks", "alerts", "secrets", "audit"} <= set(group.commands)
    assert set(group.commands["queues"].commands) == {  # type: ignore[attr-defined]
        "create",
        "list",
        "get",
        "update",
        "delete",
        "stats",
        "pause",
        "resume",
        "drain",
        "retry-all",
    }
    assert set(group.commands["jobs"].commands) == {  # type: ignore[attr-defined]
        "enqueue",
        "get",
        "list",
        "retry",
        "cancel",
        "dlq",
        "replay",
    }


def test_key_and_url_come_from_flags_first(api: FakeAPI, rotor: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTOR_API_URL", "http://env.example:1")
    api.on("GET", "/v1/status", STATUS)
    result = rotor("status", "--api-key", "rt_ws_flag", "--api-url", "http://flag.example:2")
    assert result.exit_code == 0, result.output
    assert api.clients == [("rt_ws_flag", "http://flag.example:2")]
    assert str(api.last.url) == "http://flag.example:2/v1/status"
    assert api.last.headers["authorization"] == "Bearer rt_ws_flag"


def test_environment_beats_the_saved_config(api: FakeAPI, rotor: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    context.save_config({"apiKey": "rt_ws_saved", "apiUrl": "http://saved.example:3"})
    monkeypatch.setenv("ROTOR_API_URL", "http://env.example:1")
    api.on("GET", "/v1/status", STATUS)
    assert rotor("status").exit_code == 0
    assert api.clients == [("rt_ws_test", "http://env.example:1")]


def test_saved_config_is_used_without_flags_or_environment(
    api: FakeAPI, rotor: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROTOR_API_KEY")
    context.save_config({"apiKey": "rt_ws_saved", "apiUrl": "http://saved.example:3"})
    api.on("GET", "/v1/status", STATUS)
    assert rotor("status").exit_code == 0
    assert api.clients == [("rt_ws_saved", "http://saved.example:3")]


def test_url_defaults_to_localhost(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", "/v1/status", STATUS)
    assert rotor("status").exit_code == 0
    assert api.clients == [("rt_ws_test", "http://127.0.0.1:8080")]


def test_no_key_anywhere_is_a_clear_error(api: FakeAPI, rotor: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTOR_API_KEY")
    result = rotor("queues", "list")
    assert result.exit_code == 1
    assert "No API key" in result.stderr and "rotor login" in result.stderr
    assert api.requests == []


# --- errors ------------------------------------------------------------------------------------


def test_api_errors_print_code_and_message_and_exit_1(api: FakeAPI, rotor: Invoke) -> None:
    api.fail("GET", "/v1/queues/nope", 404, "NOT_FOUND", "queue 'nope' not found")
    result = rotor("queues", "get", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Error [NOT_FOUND]: queue 'nope' not found" in result.stderr


def test_error_details_and_retry_after_are_shown(api: FakeAPI, rotor: Invoke) -> None:
    api.fail("POST", "/v1/queues", 422, "VALIDATION_ERROR", "name is invalid", details={"field": "name"})
    result = rotor("queues", "create", "bad name")
    assert result.exit_code == 1
    assert "Error [VALIDATION_ERROR]: name is invalid" in result.stderr
    assert '"field": "name"' in result.stderr
    api.fail("GET", "/v1/queues", 429, "RATE_LIMITED", "slow down", headers={"Retry-After": "12"})
    result = rotor("queues", "list", "--quiet")
    assert result.exit_code == 1
    assert "Error [RATE_LIMITED]: slow down" in result.stderr and "Retry after 12 s" in result.stderr


def test_unreachable_server_exits_1(api: FakeAPI, rotor: Invoke) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api.routes[("GET", "/v1/queues")] = refuse
    result = rotor("queues", "list")
    assert result.exit_code == 1
    assert "Error: Could not reach the Rotor API at http://127.0.0.1:8080" in result.stderr


# --- queues ------------------------------------------------------------------------------------


def test_queues_create_sends_every_option_and_prints_the_secret_once(api: FakeAPI, rotor: Invoke) -> None:
    api.on("POST", "/v1/queues", QUEUE | {"callback_secret": "cbsec_s3cr3t"}, status=201)
    result = rotor(
        "queues",
        "create",
        "outreach",
        "--concurrency",
        "10",
        "--retry-attempts",
        "5",
        "--callback-url",
        "https://app.example.com/rotor/outreach",
        "--callback-header",
        "X-Env=prod",
        "--callback-header",
        "Authorization=Bearer ${{ secrets.TOKEN }}",
        "--rotate-callback-secret",
        "--no-approval-required",
        "--timeout-seconds",
        "30",
    )
    assert result.exit_code == 0, result.output
    assert api.last_body() == {
        "name": "outreach",
        "concurrency": 10,
        "retry_attempts": 5,
        "callback_url": "https://app.example.com/rotor/outreach",
        "callback_headers": {"X-Env": "prod", "Authorization": "Bearer ${{ secrets.TOKEN }}"},
        "rotate_callback_secret": True,
        "approval_required": False,
        "timeout_seconds": 30,
    }
    assert "Created queue outreach." in result.stdout
    assert "New callback secret: cbsec_s3cr3t" in result.stdout
    assert "Copy this — it's shown once." in result.stdout


def test_queues_create_sends_only_what_was_given(api: FakeAPI, rotor: Invoke) -> None:
    api.on("POST", "/v1/queues", QUEUE | {"callback_url": None}, status=201)
    result = rotor("queues", "create", "outreach")
    assert result.exit_code == 0, result.output
    assert api.last_body() == {"name": "outreach"}
    assert "callback secret" not in result.stdout


def test_queues_create_rejects_a_malformed_header(api: FakeAPI, rotor: Invoke) -> None:
    result = rotor("queues", "create", "outreach", "--callback-header", "no-equals-sign")
    assert result.exit_code == 2
    assert "NAME=VALUE" in result.stderr
    assert api.requests == []


def test_queues_create_json_and_quiet(api: FakeAPI, rotor: Invoke) -> None:
    created = QUEUE | {"callback_secret": "cbsec_s3cr3t"}
    api.on("POST", "/v1/queues", created, status=201)
    result = rotor("queues", "create", "outreach", "--json")
    assert json.loads(result.stdout) == created
    result = rotor("queues", "create", "outreach", "--quiet")
    assert (result.exit_code, result.stdout) == (0, "")


def test_queues_list_table(api: FakeAPI, rotor: Invoke) -> None:
    other = QUEUE | {
        "name": "enrichment",
        "concurrency": 5,
        "state": "paused",
        "counts": {"waiting": 0, "active": 0, "failed": 0},
    }
    api.on("GET", "/v1/queues", {"data": [QUEUE, other]})
    result = rotor("queues", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CONCURRENCY", "STATE", "JOBS", "(waiting/active/failed)"]
    assert lines[1].split() == ["outreach", "10", "active", "142", "/", "3", "/", "1"]
    assert lines[2].split() == ["enrichment", "5", "paused", "0", "/", "0", "/", "0"]


def test_queues_list_empty_and_json(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", "/v1/queues", {"data": []})
    assert "No queues yet" in rotor("queues", "list").stdout
    assert json.loads(rotor("queues", "list", "--json").stdout) == {"data": []}


def test_queues_get_shows_config_and_counts(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", "/v1/queues/outreach", QUEUE)
    result = rotor("queues", "get", "outreach")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (
        "https://app.example.com/rotor/outreach",
        "X-Env: prod",
        "exponential, 2000 ms",
        "Retry attempts:",
        "Approval required:",
    ):
        assert expected in out
    assert any(line.split() == ["waiting", "142"] for line in out.splitlines())
    assert any(line.split() == ["pending_approval", "0"] for line in out.splitlines())


def test_queues_get_encodes_the_name(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", "/v1/queues/team%3Aoutreach", QUEUE | {"name": "team:outreach"})
    assert rotor("queues", "get", "team:outreach").exit_code == 0


def test_queues_update(api: FakeAPI, rotor: Invoke) -> None:
    api.on("PATCH", "/v1/queues/outreach", QUEUE | {"state": "paused", "callback_secret": "cbsec_new"})
    result = rotor(
        "queues",
        "update",
        "outreach",
        "--concurrency",
        "2",
        "--state",
        "paused",
        "--rotate-callback-secret",
        "--approval-required",
    )
    assert result.exit_code == 0, result.output
    assert api.last_body() == {
        "concurrency": 2,
        "state": "paused",
        "rotate_callback_secret": True,
        "approval_required": True,
    }
    assert "Updated queue outreach." in result.stdout
    assert "New callback secret: cbsec_new" in result.stdout


def test_queues_update_needs_an_option(api: FakeAPI, rotor: Invoke) -> None:
    result = rotor("queues", "update", "outreach")
    assert result.exit_code == 2
    assert "Nothing to update" in result.stderr
    assert rotor("queues", "update", "outreach", "--state", "stopped").exit_code == 2
    assert api.requests == []


def test_queues_delete_asks_first(api: FakeAPI, rotor: Invoke) -> None:
    api.on("DELETE", "/v1/queues/outreach", status=204)
    declined = rotor("queues", "delete", "outreach", input="n\n")
    assert declined.exit_code == 1
    assert api.requests == []
    accepted = rotor("queues", "delete", "outreach", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert (api.last.method, api.last.url.path) == ("DELETE", "/v1/queues/outreach")
    assert "Deleted queue outreach." in accepted.stdout


def test_queues_delete_force_and_json(api: FakeAPI, rotor: Invoke) -> None:
    api.on("DELETE", "/v1/queues/outreach", status=204)
    result = rotor("queues", "delete", "outreach", "--force", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "outreach", "deleted": True}


def test_queues_stats(api: FakeAPI, rotor: Invoke) -> None:
    api.on(
        "GET",
        "/v1/queues/outreach/stats",
        {
            "waiting": 4,
            "active": 1,
            "completed": 7,
            "failed": 2,
            "delayed": 0,
            "pending_approval": 0,
            "blocked": 0,
            "cancelled": 3,
        },
    )
    result = rotor("queues", "stats", "outreach")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["STATE", "JOBS"]
    assert ["waiting", "4"] in rows and ["cancelled", "3"] in rows and ["completed", "7"] in rows


def test_queues_pause_and_resume(api: FakeAPI, rotor: Invoke) -> None:
    api.on("POST", "/v1/queues/outreach/pause", QUEUE | {"state": "paused"})
    api.on("POST", "/v1/queues/outreach/resume", QUEUE)
    assert "Queue outreach is paused." in rotor("queues", "pause", "outreach").stdout
    assert "Queue outreach is active." in rotor("queues", "resume", "outreach").stdout


def test_queues_drain(api: FakeAPI, rotor: Invoke) -> None:
    api.on("POST", "/v1/queues/outreach/drain", QUEUE)
    assert rotor("queues", "drain", "outreach", input="n\n").exit_code == 1
    assert api.requests == []
    result = rotor("queues", "drain", "outreach", "--force")
    assert result.exit_code == 0, result.output
    assert api.last_body() == {"confirm": True}
    assert "Drained queue outreach." in result.stdout


def test_queues_retry_all(api: FakeAPI, rotor: Invoke) -> None:
    api.on("POST", "/v1/queues/outreach/retry-all", {"retried": 4})
    result = rotor("queues", "retry-all", "outreach")
    assert result.exit_code == 0, result.output
    assert "Retried 4 failed job(s) in queue outreach." in result.stdout
    assert json.loads(rotor("queues", "retry-all", "outreach", "--json").stdout) == {"retried": 4}


# --- jobs --------------------------------------------------------------------------------------


def test_jobs_enqueue_sends_every_option(api: FakeAPI, rotor: Invoke) -> None:
    api.on("POST", "/v1/queues/outreach/jobs", JOB | {"state": "delayed"}, status=201)
    result = rotor(
        "jobs",
        "enqueue",
        "outreach",
        "--payload",
        '{"contactId":"cid_123","campaignId":"camp_456"}',
        "--delay",
        "30s",
        "--run-at",
        "2026-05-20T10:00:00Z",
        "--tags",
        "campaign:q2-outbound, contact:cid_123,",
        "--concurrency-key",
        "contact:cid_123",
        "--idempotency-key",
        "idem-1",
        "--job-id",
        "outreach:camp_456:cid_123",
        "--priority",
        "-2",
        "--strict",
    )
    assert result.exit_code == 0, result.output
    assert api.last_body() == {
        "payload": {"contactId": "cid_123", "campaignId": "camp_456"},
        "delay": "30s",
        "run_at": "2026-05-20T10:00:00Z",
        "tags": ["campaign:q2-outbound", "contact:cid_123"],
        "concurrencyKey": "contact:cid_123",
        "idempotencyKey": "idem-1",
        "jobId": "outreach:camp_456:cid_123",
        "priority": -2,
        "strict": True,
    }
    assert f"Enqueued job {JOB_ID} in queue outreach." in result.stdout
    assert "State: delayed" in result.stdout


def test_jobs_enqueue_minimal_and_integer_delay(api: FakeAPI, rotor: Invoke) -> None:
    api.on("POST", "/v1/queues/outreach/jobs", JOB | {"state": "waiting"}, status=201)
    assert rotor("jobs", "enqueue", "outreach", "--payload", "[1, 2]", "--delay", "45").exit_code == 0
    assert api.last_body() == {"payload": [1, 2], "delay": 45}


def test_jobs_enqueue_notes_a_duplicate(api: FakeAPI, rotor: Invoke) -> None:
    api.on("POST", "/v1/queues/outreach/jobs", JOB | {"state": "completed", "duplicate": True})
    result = rotor("jobs", "enqueue", "outreach", "--payload", "{}", "--job-id", JOB_ID)
    assert result.exit_code == 0, result.output
    assert "duplicate" in result.stdout and JOB_ID in result.stdout
    assert "State: completed" in result.stdout


def test_jobs_enqueue_rejects_bad_json(api: FakeAPI, rotor: Invoke) -> None:
    result = rotor("jobs", "enqueue", "outreach", "--payload", "{not json")
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr
    assert rotor("jobs", "enqueue", "outreach").exit_code == 2
    assert api.requests == []


def test_jobs_enqueue_strict_conflict_exits_1(api: FakeAPI, rotor: Invoke) -> None:
    api.fail("POST", "/v1/queues/outreach/jobs", 409, "IDEMPOTENCY_CONFLICT", "job already exists")
    result = rotor("jobs", "enqueue", "outreach", "--payload", "{}", "--job-id", "j", "--strict")
    assert result.exit_code == 1
    assert "Error [IDEMPOTENCY_CONFLICT]: job already exists" in result.stderr


def test_jobs_get_shows_everything(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", "/v1/queues/outreach/jobs/outreach%3Acamp%2F1", JOB | {"result": {"sent": True}})
    result = rotor("jobs", "get", "outreach", "outreach:camp/1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (
        JOB_ID,
        "failed",
        "2/3",
        "campaign:q2, contact:cid_123",
        "callback returned 503",
        '"contactId": "cid_123"',
        '"sent": true',
        "Attempt log",
        "timeout",
        "30000 ms",
        "deadline",
    ):
        assert expected in out, expected
    assert any(line.split()[:5] == ["1", "2026-05-20T10:00:01.000Z", "120", "ms", "500"] for line in out.splitlines())


def test_jobs_get_json(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", f"/v1/queues/outreach/jobs/{JOB_ID}", JOB)
    assert json.loads(rotor("jobs", "get", "outreach", JOB_ID, "--json").stdout) == JOB


def test_jobs_list_table_filters_and_cursor(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", "/v1/queues/outreach/jobs", {"data": [JOB], "nextCursor": "cur_2"})
    result = rotor(
        "jobs", "list", "outreach", "--status", "failed", "--tag", "campaign:q2", "--limit", "10", "--cursor", "cur_1"
    )
    assert result.exit_code == 0, result.output
    assert dict(api.last.url.params) == {"state": "failed", "tag": "campaign:q2", "limit": "10", "cursor": "cur_1"}
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "ATTEMPTS", "TAGS", "CREATED"]
    assert lines[1].split() == [JOB_ID, "failed", "2/3", "campaign:q2,contact:cid_123", "2026-05-20T10:00:00.000Z"]
    assert "Next page: --cursor cur_2" in result.stdout


def test_jobs_list_empty_without_filters(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", "/v1/queues/outreach/jobs", {"data": [], "nextCursor": None})
    result = rotor("jobs", "list", "outreach")
    assert "No jobs found." in result.stdout and "Next page" not in result.stdout
    assert dict(api.last.url.params) == {}


def test_jobs_retry_and_cancel(api: FakeAPI, rotor: Invoke) -> None:
    api.on("POST", f"/v1/queues/outreach/jobs/{JOB_ID}/retry", JOB | {"state": "waiting", "attempts": 0})
    api.on("DELETE", f"/v1/queues/outreach/jobs/{JOB_ID}", JOB | {"state": "cancelled"})
    assert f"Job {JOB_ID} is waiting again." in rotor("jobs", "retry", "outreach", JOB_ID).stdout
    assert f"Job {JOB_ID} is cancelled." in rotor("jobs", "cancel", "outreach", JOB_ID).stdout


def test_jobs_cancel_active_job_conflict(api: FakeAPI, rotor: Invoke) -> None:
    api.fail("DELETE", f"/v1/queues/outreach/jobs/{JOB_ID}", 409, "CONFLICT", "job is active")
    result = rotor("jobs", "cancel", "outreach", JOB_ID)
    assert result.exit_code == 1
    assert "Error [CONFLICT]: job is active" in result.stderr


def test_jobs_dlq(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", "/v1/dlq", {"data": [JOB], "nextCursor": None})
    result = rotor("jobs", "dlq", "--queue", "outreach", "--limit", "5")
    assert result.exit_code == 0, result.output
    assert dict(api.last.url.params) == {"queue": "outreach", "limit": "5"}
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "QUEUE", "ATTEMPTS", "FAIL", "REASON", "FAILED"]
    assert JOB_ID in lines[1] and "callback returned 503" in lines[1]


def test_jobs_replay(api: FakeAPI, rotor: Invoke) -> None:
    api.on("POST", "/v1/dlq/replay", {"replayed": 2})
    result = rotor("jobs", "replay", "outreach", "--job-id", "job_a", "--job-id", "job_b")
    assert result.exit_code == 0, result.output
    assert api.last_body() == {"queue": "outreach", "jobIds": ["job_a", "job_b"]}
    assert "Replayed 2 failed job(s) of queue outreach." in result.stdout
    assert rotor("jobs", "replay", "outreach").exit_code == 0
    assert api.last_body() == {"queue": "outreach"}


# --- status and usage --------------------------------------------------------------------------


def test_status_lines(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", "/v1/status", STATUS)
    result = rotor("status")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "API: ok",
        "Database: ok",
        "Version: 0.1.0",
        "Plan: pro",
        "Quota: 12,450 / 100,000 jobs used this period",
        "Resets: 2026-06-01",
    ]


def test_status_unlimited_and_json(api: FakeAPI, rotor: Invoke) -> None:
    unlimited = STATUS | {
        "quota": {"used": 3, "limit": None, "plan": "self-hosted", "resetAt": "2026-06-01T00:00:00.000Z"}
    }
    api.on("GET", "/v1/status", unlimited)
    assert "Quota: 3 / unlimited jobs used this period" in rotor("status").stdout
    assert json.loads(rotor("status", "--json").stdout) == unlimited


def test_status_watch_refreshes_until_interrupted(api: FakeAPI, rotor: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    api.on("GET", "/v1/status", STATUS)
    api.on("GET", "/v1/queues", {"data": [QUEUE]})
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(status_module, "sleep", fake_sleep)
    result = rotor("status", "--watch", "--interval", "2")
    assert result.exit_code == 0, result.output
    assert sleeps == [2.0, 2.0]
    assert result.stdout.count("API: ok") == 2
    assert any(
        line.split() == ["outreach", "10", "active", "142", "/", "3", "/", "1"] for line in result.stdout.splitlines()
    )


def test_status_watch_keeps_going_when_the_server_is_down(
    api: FakeAPI, rotor: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json=STATUS)

    api.routes[("GET", "/v1/status")] = flaky
    api.on("GET", "/v1/queues", {"data": []})
    ticks = iter([None, KeyboardInterrupt])

    def fake_sleep(seconds: float) -> None:
        if next(ticks) is KeyboardInterrupt:
            raise KeyboardInterrupt

    monkeypatch.setattr(status_module, "sleep", fake_sleep)
    result = rotor("status", "--watch", "--json")
    assert result.exit_code == 0, result.output
    assert "Could not reach" in result.stderr
    snapshot = json.loads(result.stdout.strip())
    assert snapshot == {"status": STATUS, "queues": []}


def test_status_watch_stops_on_an_api_error(api: FakeAPI, rotor: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    api.fail("GET", "/v1/status", 401, "UNAUTHORIZED", "invalid API key")
    monkeypatch.setattr(status_module, "sleep", lambda seconds: None)
    result = rotor("status", "--watch")
    assert result.exit_code == 1
    assert "Error [UNAUTHORIZED]: invalid API key" in result.stderr


def test_usage(api: FakeAPI, rotor: Invoke) -> None:
    usage = {
        "period": {"from": "2026-05-01T00:00:00.000Z", "to": "2026-06-01T00:00:00.000Z"},
        "executions": {"total": 12450, "byQueue": {"outreach": 450, "enrichment": 12000}},
    }
    api.on("GET", "/v1/usage", usage)
    result = rotor("usage")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Period: 2026-05-01 to 2026-06-01"
    assert lines[1] == "Jobs accepted: 12,450"
    assert [line.split() for line in lines[3:]] == [["QUEUE", "JOBS"], ["enrichment", "12,000"], ["outreach", "450"]]
    assert json.loads(rotor("usage", "--json").stdout) == usage


# --- login -------------------------------------------------------------------------------------


def test_login_checks_the_key_and_saves_it_owner_only(
    api: FakeAPI, rotor: Invoke, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROTOR_API_KEY")
    api.on("GET", "/v1/status", STATUS)
    result = rotor("login", "--api-key", "rt_ws_new", "--api-url", "http://rotor.local:8080")
    assert result.exit_code == 0, result.output
    assert api.last.headers["authorization"] == "Bearer rt_ws_new"
    assert str(api.last.url) == "http://rotor.local:8080/v1/status"
    path = config_dir / "config.json"
    assert json.loads(path.read_text()) == {"apiKey": "rt_ws_new", "apiUrl": "http://rotor.local:8080"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    assert f"Saved to {path}" in result.stdout
    assert "rt_ws_new" not in result.stdout
    assert list(config_dir.iterdir()) == [path]


def test_login_prompts_for_the_key_without_echoing_it(api: FakeAPI, rotor: Invoke, config_dir: Path) -> None:
    api.on("GET", "/v1/status", STATUS)
    result = rotor("login", input="rt_ws_prompted\n")
    assert result.exit_code == 0, result.output
    assert "rt_ws_prompted" not in result.output
    saved = json.loads((config_dir / "config.json").read_text())
    assert saved == {"apiKey": "rt_ws_prompted", "apiUrl": "http://127.0.0.1:8080"}


def test_login_keeps_other_settings_and_tightens_permissions(api: FakeAPI, rotor: Invoke, config_dir: Path) -> None:
    config_dir.mkdir(mode=0o755)
    (config_dir / "config.json").write_text(json.dumps({"apiKey": "old", "theme": "dark"}))
    (config_dir / "config.json").chmod(0o644)
    api.on("GET", "/v1/status", STATUS)
    assert rotor("login", "--api-key", "rt_ws_new").exit_code == 0
    path = config_dir / "config.json"
    assert json.loads(path.read_text()) == {"apiKey": "rt_ws_new", "theme": "dark", "apiUrl": "http://127.0.0.1:8080"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700


def test_login_with_a_bad_key_saves_nothing(api: FakeAPI, rotor: Invoke, config_dir: Path) -> None:
    api.fail("GET", "/v1/status", 401, "UNAUTHORIZED", "invalid API key")
    result = rotor("login", "--api-key", "rt_ws_wrong")
    assert result.exit_code == 1
    assert "Error [UNAUTHORIZED]: invalid API key" in result.stderr
    assert not (config_dir / "config.json").exists()


def test_login_json(api: FakeAPI, rotor: Invoke, config_dir: Path) -> None:
    api.on("GET", "/v1/status", STATUS)
    result = rotor("login", "--api-key", "rt_ws_new", "--json")
    assert json.loads(result.stdout) == {
        "saved": str(config_dir / "config.json"),
        "apiUrl": "http://127.0.0.1:8080",
        "status": STATUS,
    }


def test_unreadable_config_is_an_error(
    api: FakeAPI, rotor: Invoke, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROTOR_API_KEY")
    config_dir.mkdir()
    (config_dir / "config.json").write_text("{oops")
    result = rotor("status")
    assert result.exit_code == 1
    assert "Cannot read" in result.stderr
