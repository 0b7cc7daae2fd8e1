"""Each SDK method sends the method, path, query and body API.md documents, sync and async alike."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from rotor_lite.sdk import AsyncRotor, Rotor, RotorError

Call = Callable[[Any], Any]


class Recorder:
    """A MockTransport handler that records requests and answers with one canned response."""

    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.status = status
        self.body = {"ok": True} if body is None else body
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status == 204:
            return httpx.Response(204)
        return httpx.Response(self.status, json=self.body)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


CASES: list[tuple[str, Call, str, str, dict[str, str], Any]] = [
    ("queues.create minimal", lambda c: c.queues.create("outreach"), "POST", "/v1/queues", {}, {"name": "outreach"}),
    (
        "queues.create full",
        lambda c: c.queues.create(
            "outreach",
            concurrency=5,
            retry_attempts=4,
            callback_url="https://example.com/hook",
            callback_headers={"X-Env": "prod"},
            rotate_callback_secret=True,
            approval_required=False,
            timeout_seconds=10,
            default_job_options={"attempts": 4, "backoff": {"type": "fixed", "delay": 500}},
        ),
        "POST",
        "/v1/queues",
        {},
        {
            "name": "outreach",
            "concurrency": 5,
            "retry_attempts": 4,
            "callback_url": "https://example.com/hook",
            "callback_headers": {"X-Env": "prod"},
            "rotate_callback_secret": True,
            "approval_required": False,
            "timeout_seconds": 10,
            "defaultJobOptions": {"attempts": 4, "backoff": {"type": "fixed", "delay": 500}},
        },
    ),
    ("queues.list", lambda c: c.queues.list(), "GET", "/v1/queues", {}, None),
    ("queues.get", lambda c: c.queues.get("a:b"), "GET", "/v1/queues/a%3Ab", {}, None),
    (
        "queues.update",
        lambda c: c.queues.update("outreach", concurrency=2, state="paused", approval_required=False),
        "PATCH",
        "/v1/queues/outreach",
        {},
        {"concurrency": 2, "approval_required": False, "state": "paused"},
    ),
    ("queues.stats", lambda c: c.queues.stats("outreach"), "GET", "/v1/queues/outreach/stats", {}, None),
    ("queues.pause", lambda c: c.queues.pause("outreach"), "POST", "/v1/queues/outreach/pause", {}, None),
    ("queues.resume", lambda c: c.queues.resume("outreach"), "POST", "/v1/queues/outreach/resume", {}, None),
    ("queues.drain", lambda c: c.queues.drain("outreach"), "POST", "/v1/queues/outreach/drain", {}, {"confirm": True}),
    ("jobs.enqueue minimal", lambda c: c.jobs.enqueue("outreach"), "POST", "/v1/queues/outreach/jobs", {}, {}),
    (
        "jobs.enqueue full",
        lambda c: c.jobs.enqueue(
            "outreach",
            {"contactId": "cid_123"},
            delay="30s",
            tags=("campaign:q2", "contact:cid_123"),
            concurrency_key="contact:cid_123",
            job_id="outreach:cmp_456:cid_123",
            idempotency_key="idem-1",
            priority=-1,
            strict=True,
        ),
        "POST",
        "/v1/queues/outreach/jobs",
        {},
        {
            "payload": {"contactId": "cid_123"},
            "delay": "30s",
            "tags": ["campaign:q2", "contact:cid_123"],
            "concurrencyKey": "contact:cid_123",
            "jobId": "outreach:cmp_456:cid_123",
            "idempotencyKey": "idem-1",
            "priority": -1,
            "strict": True,
        },
    ),
    (
        "jobs.enqueue run_at datetime",
        lambda c: c.jobs.enqueue("q", [1, 2], run_at=datetime(2026, 5, 20, 12, 0, tzinfo=timezone(timedelta(hours=2)))),
        "POST",
        "/v1/queues/q/jobs",
        {},
        {"payload": [1, 2], "run_at": "2026-05-20T10:00:00.000Z"},
    ),
    (
        "jobs.enqueue run_at naive and delay timedelta",
        lambda c: c.jobs.enqueue("q", {}, run_at=datetime(2026, 5, 20, 10, 0), delay=timedelta(milliseconds=1500)),
        "POST",
        "/v1/queues/q/jobs",
        {},
        {"payload": {}, "run_at": "2026-05-20T10:00:00.000Z", "delay": "1500ms"},
    ),
    (
        "jobs.enqueue run_at string and int delay",
        lambda c: c.jobs.enqueue("q", None, run_at="2026-05-20T10:00:00Z", delay=45),
        "POST",
        "/v1/queues/q/jobs",
        {},
        {"run_at": "2026-05-20T10:00:00Z", "delay": 45},
    ),
    (
        "jobs.add_batch",
        lambda c: c.jobs.add_batch(
            "outreach",
            [
                {
                    "payload": {"n": 1},
                    "concurrency_key": "k1",
                    "job_id": "j1",
                    "tags": ("a",),
                    "delay": timedelta(seconds=5),
                },
                {"payload": {"n": 2}, "concurrencyKey": "k2", "priority": 3, "tags": None},
            ],
            idempotency_keys=None,
        ),
        "POST",
        "/v1/queues/outreach/jobs/batch",
        {},
        {
            "jobs": [
                {"payload": {"n": 1}, "concurrencyKey": "k1", "jobId": "j1", "tags": ["a"], "delay": 5},
                {"payload": {"n": 2}, "concurrencyKey": "k2", "priority": 3},
            ]
        },
    ),
    (
        "jobs.add_batch idempotency keys",
        lambda c: c.jobs.add_batch("q", [{"payload": 1}, {"payload": 2}], idempotency_keys=["a", "b"]),
        "POST",
        "/v1/queues/q/jobs/batch",
        {},
        {"jobs": [{"payload": 1}, {"payload": 2}], "idempotencyKeys": ["a", "b"]},
    ),
    (
        "jobs.get encodes the id",
        lambda c: c.jobs.get("outreach", "outreach:cmp_456/cid 1"),
        "GET",
        "/v1/queues/outreach/jobs/outreach%3Acmp_456%2Fcid%201",
        {},
        None,
    ),
    ("jobs.list bare", lambda c: c.jobs.list("q"), "GET", "/v1/queues/q/jobs", {}, None),
    (
        "jobs.list filters",
        lambda c: c.jobs.list("q", state="failed", tag="campaign:q2", limit=10, cursor="abc"),
        "GET",
        "/v1/queues/q/jobs",
        {"state": "failed", "tag": "campaign:q2", "limit": "10", "cursor": "abc"},
        None,
    ),
    ("jobs.cancel", lambda c: c.jobs.cancel("q", "job_1"), "DELETE", "/v1/queues/q/jobs/job_1", {}, None),
    ("jobs.retry", lambda c: c.jobs.retry("q", "job_1"), "POST", "/v1/queues/q/jobs/job_1/retry", {}, None),
    ("jobs.retry_all", lambda c: c.jobs.retry_all("q"), "POST", "/v1/queues/q/retry-all", {}, None),
    ("jobs.dlq bare", lambda c: c.jobs.dlq(), "GET", "/v1/dlq", {}, None),
    (
        "jobs.dlq filters",
        lambda c: c.jobs.dlq(queue="q", limit=5, cursor="c"),
        "GET",
        "/v1/dlq",
        {"queue": "q", "limit": "5", "cursor": "c"},
        None,
    ),
    ("jobs.replay all", lambda c: c.jobs.replay("q"), "POST", "/v1/dlq/replay", {}, {"queue": "q"}),
    (
        "jobs.replay some",
        lambda c: c.jobs.replay("q", ["job_1", "job_2"]),
        "POST",
        "/v1/dlq/replay",
        {},
        {"queue": "q", "jobIds": ["job_1", "job_2"]},
    ),
    ("status.get", lambda c: c.status.get(), "GET", "/v1/status", {}, None),
    ("usage.current", lambda c: c.usage.current(), "GET", "/v1/usage", {}, None),
    (
        "request escape hatch",
        lambda c: c.request("GET", "/v1/schedules", params={"limit": 2, "cursor": None}),
        "GET",
        "/v1/schedules",
        {"limit": "2"},
        None,
    ),
]


def assert_shape(request: httpx.Request, method: str, path: str, query: dict[str, str], body: Any) -> None:
    assert request.method == method
    assert request.url.raw_path.decode().split("?")[0] == path
    assert dict(request.url.params) == query
    assert body_of(request) == body
    assert request.headers["authorization"] == "Bearer rt_ws_test"
    if body is not None:
        assert request.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("call", "method", "path", "query", "body"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_sync_request_shapes(call: Call, method: str, path: str, query: dict[str, str], body: Any) -> None:
    recorder = Recorder()
    with Rotor(api_key="rt_ws_test", transport=httpx.MockTransport(recorder)) as client:
        assert call(client) == {"ok": True}
    assert_shape(recorder.last, method, path, query, body)


@pytest.mark.parametrize(("call", "method", "path", "query", "body"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_async_request_shapes(call: Call, method: str, path: str, query: dict[str, str], body: Any) -> None:
    recorder = Recorder()
    async with AsyncRotor(api_key="rt_ws_test", transport=httpx.MockTransport(recorder)) as client:
        assert await call(client) == {"ok": True}
    assert_shape(recorder.last, method, path, query, body)


def test_enqueue_batch_is_an_alias_of_add_batch() -> None:
    recorder = Recorder()
    with Rotor(api_key="rt_ws_test", transport=httpx.MockTransport(recorder)) as client:
        client.jobs.enqueue_batch("q", [{"payload": 1}])
    assert recorder.last.url.path == "/v1/queues/q/jobs/batch"


def test_delete_returns_none_on_204() -> None:
    recorder = Recorder(status=204)
    with Rotor(api_key="rt_ws_test", transport=httpx.MockTransport(recorder)) as client:
        assert client.queues.delete("outreach") is None
    assert (recorder.last.method, recorder.last.url.path) == ("DELETE", "/v1/queues/outreach")


async def test_async_delete_returns_none_on_204() -> None:
    recorder = Recorder(status=204)
    async with AsyncRotor(api_key="rt_ws_test", transport=httpx.MockTransport(recorder)) as client:
        assert await client.queues.delete("outreach") is None


def test_responses_are_returned_as_decoded() -> None:
    job = {"id": "job_" + "a" * 32, "state": "waiting", "duplicate": True, "payload": {"x": [1, None]}}
    recorder = Recorder(status=200, body=job)
    with Rotor(api_key="rt_ws_test", transport=httpx.MockTransport(recorder)) as client:
        assert client.jobs.enqueue("q", {"x": 1}, job_id="j") == job


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTOR_API_KEY", "rt_ws_env")
    monkeypatch.setenv("ROTOR_API_URL", "https://rotor.internal:9000/base/")
    recorder = Recorder()
    with Rotor(transport=httpx.MockTransport(recorder)) as client:
        client.status.get()
    assert str(recorder.last.url) == "https://rotor.internal:9000/base/v1/status"
    assert recorder.last.headers["authorization"] == "Bearer rt_ws_env"


def test_base_url_defaults_to_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTOR_API_URL", raising=False)
    recorder = Recorder()
    with Rotor(api_key="k", transport=httpx.MockTransport(recorder)) as client:
        client.status.get()
    assert str(recorder.last.url) == "http://127.0.0.1:8080/v1/status"
    assert recorder.last.headers["user-agent"].startswith("rotor-lite-python/")


def test_missing_api_key_fails_at_the_first_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTOR_API_KEY", raising=False)
    recorder = Recorder()
    with Rotor(transport=httpx.MockTransport(recorder)) as client:
        with pytest.raises(RotorError, match="ROTOR_API_KEY"):
            client.queues.list()
    assert recorder.requests == []


async def test_async_missing_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTOR_API_KEY", raising=False)
    async with AsyncRotor(transport=httpx.MockTransport(Recorder())) as client:
        with pytest.raises(RotorError, match="API key"):
            await client.status.get()


def test_naive_and_aware_datetimes_are_sent_in_utc() -> None:
    recorder = Recorder()
    with Rotor(api_key="k", transport=httpx.MockTransport(recorder)) as client:
        client.jobs.enqueue("q", run_at=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
    assert body_of(recorder.last) == {"run_at": "2026-01-02T03:04:05.678Z"}
