"""The SDK's `schedules` requests (over httpx.MockTransport) and the Vercel importer's plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from rotor_lite.cli import main
from rotor_lite.cli.importers import queue_name_for, vercel_plan
from rotor_lite.sdk import AsyncRotor, Rotor

SID = "sched_0123456789abcdef0123456789abcdef"


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"ok": True})

    def last(self) -> tuple[str, str, Any]:
        request = self.requests[-1]
        body = json.loads(request.content) if request.content else None
        return request.method, str(request.url).removeprefix("http://rotor.test"), body


CASES: list[tuple[Any, str, str, Any]] = [
    (lambda s: s.create(queue="q", cron="0 9 * * 1-5", timezone="UTC"), "POST", "/v1/schedules",
     {"queue": "q", "cron": "0 9 * * 1-5", "timezone": "UTC"}),
    (lambda s: s.create({"queue_name": "q", "cron": "0 2 * * *", "timezone": "UTC", "job_data": {"a": 1}}),
     "POST", "/v1/schedules", {"queue_name": "q", "cron": "0 2 * * *", "timezone": "UTC", "job_data": {"a": 1}}),
    (lambda s: s.create("q", cron="* * * * *", timezone="UTC", name="n", payload={}, enabled=False), "POST",
     "/v1/schedules", {"queue": "q", "cron": "* * * * *", "timezone": "UTC", "name": "n", "payload": {}, "enabled": False}),
    (lambda s: s.list(), "GET", "/v1/schedules", None),
    (lambda s: s.list(limit=10, cursor="abc"), "GET", "/v1/schedules?limit=10&cursor=abc", None),
    (lambda s: s.get(SID), "GET", f"/v1/schedules/{SID}", None),
    (lambda s: s.get("my/name"), "GET", "/v1/schedules/my%2Fname", None),
    (lambda s: s.update(SID, {"enabled": False}), "PATCH", f"/v1/schedules/{SID}", {"enabled": False}),
    (lambda s: s.update(SID, cron="0 3 * * *", job_data={"b": 2}), "PATCH", f"/v1/schedules/{SID}",
     {"cron": "0 3 * * *", "job_data": {"b": 2}}),
    (lambda s: s.delete(SID), "DELETE", f"/v1/schedules/{SID}", None),
    (lambda s: s.pause(SID), "POST", f"/v1/schedules/{SID}/pause", None),
    (lambda s: s.resume(SID), "POST", f"/v1/schedules/{SID}/resume", None),
    (lambda s: s.fire_now(SID), "POST", f"/v1/schedules/{SID}/fire-now", None),
    (lambda s: s.preview("0 9 * * *", "UTC", from_="2026-01-01T00:00:00Z", count=3), "POST",
     "/v1/schedules/preview", {"cron": "0 9 * * *", "timezone": "UTC", "from": "2026-01-01T00:00:00Z", "count": 3}),
    (lambda s: s.runs(SID).list(limit=20), "GET", f"/v1/schedules/{SID}/runs?limit=20", None),
]


@pytest.mark.parametrize(("call", "method", "url", "body"), CASES)
def test_sync_requests(call: Any, method: str, url: str, body: Any) -> None:
    recorder = Recorder()
    with Rotor(api_key="rt_ws_x", base_url="http://rotor.test", transport=httpx.MockTransport(recorder)) as rotor:
        call(rotor.schedules)
    assert recorder.last() == (method, url, body)


@pytest.mark.parametrize(("call", "method", "url", "body"), CASES)
async def test_async_requests_are_the_same(call: Any, method: str, url: str, body: Any) -> None:
    recorder = Recorder()
    transport = httpx.MockTransport(recorder)
    async with AsyncRotor(api_key="rt_ws_x", base_url="http://rotor.test", transport=transport) as rotor:
        await call(rotor.schedules)
    assert recorder.last() == (method, url, body)


@pytest.mark.parametrize(
    ("path", "name"),
    [("/api/cron/cleanup", "cron-cleanup"), ("/api/cron/daily-digest", "cron-daily-digest"),
     ("/jobs/sync?full=1", "jobs-sync"), ("/api/weird path!", "weird-path"), ("/", "cron")],
)
def test_queue_names_from_vercel_paths(path: str, name: str) -> None:
    assert queue_name_for(path) == name


def test_one_queue_per_path_one_schedule_per_cron() -> None:
    plan = vercel_plan(
        [{"path": "/api/cron/a", "schedule": "0 * * * *"}, {"path": "/api/cron/a", "schedule": "30 * * * *"}],
        "https://app.example.com/", "Europe/London",
    )
    assert plan == [
        {"type": "queue", "config": {"name": "cron-a", "callback_url": "https://app.example.com/api/cron/a"}},
        {"type": "schedule", "config": {"queue": "cron-a", "cron": "0 * * * *", "timezone": "Europe/London"}},
        {"type": "schedule", "config": {"queue": "cron-a", "cron": "30 * * * *", "timezone": "Europe/London"}},
    ]


@pytest.mark.parametrize(
    ("content", "words"),
    [("{", "as JSON"), ('{"functions": {}}', 'no "crons"'), ('{"crons": [{"path": "/x"}]}', "crons[0]"),
     ('{"crons": [{"path": "x", "schedule": "* * * * *"}]}', "must start with '/'")],
)
def test_bad_vercel_files_are_explained(tmp_path: Path, content: str, words: str) -> None:
    vercel = tmp_path / "vercel.json"
    vercel.write_text(content)
    result = CliRunner().invoke(main, ["import", "vercel-cron", str(vercel)])
    assert result.exit_code == 1 and words in result.output


def test_apply_needs_a_real_base_url(tmp_path: Path) -> None:
    vercel = tmp_path / "vercel.json"
    vercel.write_text('{"crons": [{"path": "/api/cron/a", "schedule": "0 * * * *"}]}')
    result = CliRunner().invoke(main, ["import", "vercel-cron", str(vercel), "--apply", "--api-key", "rt_ws_x"])
    assert result.exit_code == 2 and "--base-url" in result.output
