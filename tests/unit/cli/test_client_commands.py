"""How the `rotor` client commands print what the API answers, from canned responses (httpx.MockTransport).

Only the printing is tested here; what each command asks of the server, and its errors, are tested
against a real `rotor-lite serve` in tests/e2e/test_cli.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from rotor_lite.cli.client import context, register_client_commands
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
    """Canned responses per (method, path)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], httpx.Response] = {}

    def on(
        self, method: str, path: str, body: Any = None, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.routes[(method, path)] = httpx.Response(status, json=body, headers=headers)

    def fail(self, method: str, path: str, status: int, code: str, message: str, **extra: Any) -> None:
        self.on(method, path, {"error": {"code": code, "message": message, "details": {}}}, status=status, **extra)

    def handle(self, request: httpx.Request) -> httpx.Response:
        route = self.routes.get((request.method, request.url.raw_path.decode().split("?")[0]))
        return route or httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": "no such route"}})

    def factory(self, api_key: str | None, api_url: str) -> Rotor:
        return Rotor(api_key=api_key, base_url=api_url, transport=httpx.MockTransport(self.handle))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeAPI:
    fake = FakeAPI()
    monkeypatch.setattr(context, "client_factory", fake.factory)
    monkeypatch.setenv("ROTOR_CONFIG_DIR", str(tmp_path / "rotor-config"))
    monkeypatch.setenv("ROTOR_API_KEY", "rt_ws_test")
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


# --- registration and errors ----------------------------------------------------------------


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


# --- errors ------------------------------------------------------------------------------------


def test_a_rate_limited_answer_says_when_to_retry(api: FakeAPI, rotor: Invoke) -> None:
    api.fail("GET", "/v1/queues", 429, "RATE_LIMITED", "slow down", headers={"Retry-After": "12"})
    result = rotor("queues", "list", "--quiet")
    assert result.exit_code == 1
    assert "Error [RATE_LIMITED]: slow down" in result.stderr and "Retry after 12 s" in result.stderr


def test_the_url_defaults_to_the_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTOR_API_URL", raising=False)
    assert context.resolve_api_url(None, {}) == "http://127.0.0.1:8080"


# --- queues ------------------------------------------------------------------------------------


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


# --- jobs --------------------------------------------------------------------------------------


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


def test_jobs_list_table_filters_and_cursor(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", "/v1/queues/outreach/jobs", {"data": [JOB], "nextCursor": "cur_2"})
    result = rotor(
        "jobs", "list", "outreach", "--status", "failed", "--tag", "campaign:q2", "--limit", "10", "--cursor", "cur_1"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "ATTEMPTS", "TAGS", "CREATED"]
    assert lines[1].split() == [JOB_ID, "failed", "2/3", "campaign:q2,contact:cid_123", "2026-05-20T10:00:00.000Z"]
    assert "Next page: --cursor cur_2" in result.stdout


def test_jobs_dlq(api: FakeAPI, rotor: Invoke) -> None:
    api.on("GET", "/v1/dlq", {"data": [JOB], "nextCursor": None})
    result = rotor("jobs", "dlq", "--queue", "outreach", "--limit", "5")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "QUEUE", "ATTEMPTS", "FAIL", "REASON", "FAILED"]
    assert JOB_ID in lines[1] and "callback returned 503" in lines[1]


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
