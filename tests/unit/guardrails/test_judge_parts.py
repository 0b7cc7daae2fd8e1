"""The judge's parts: the circuit breaker (fake clock), verdict parsing, provider requests (MockTransport)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from rotor_lite.config import BrandToneSettings
from rotor_lite.store import guardrails as guardrail_store
from rotor_lite.store.contract import is_postgres
from rotor_lite.engine.judge import (
    CircuitBreaker,
    JudgeError,
    ask_provider,
    parse_verdict,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000

    def now_ms(self) -> int:
        return self.now


def test_breaker_opens_after_failures_and_half_opens_after_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures=3, cooldown_ms=500)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 500
    assert breaker.state == "half-open" and breaker.allow()
    assert not breaker.allow()  # one trial at a time
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 500
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


@pytest.mark.parametrize(
    ("text", "verdict"),
    [('{"score": 0.8, "reason": "calm"}', (0.8, "calm")), ('Sure!\n```json\n{"score": 0, "reason": "pushy"}\n```', (0.0, "pushy")),
     ('{"score": 1}', (1.0, ""))],
)
def test_parse_verdict(text: str, verdict: tuple[float, str]) -> None:
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize("text", ["fine", '{"score": 7}', '{"reason": "x"}', '{"score": "high"}'])
def test_unusable_answers_are_errors(text: str) -> None:
    with pytest.raises(JudgeError):
        parse_verdict(text)


async def test_anthropic_and_openai_requests() -> None:
    seen: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/messages":
            return httpx.Response(200, json={"content": [{"type": "text", "text": '{"score": 0.9, "reason": "ok"}'}]})
        return httpx.Response(200, json={"choices": [{"message": {"content": '{"score": 0.4, "reason": "meh"}'}}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(reply)) as http:
        anthropic = BrandToneSettings(base_url="https://llm.test")
        assert parse_verdict(await ask_provider(http, anthropic, "k1", "Be calm", '{"a":1}')) == (0.9, "ok")
        openai = BrandToneSettings(provider="openai", model="gpt-4o-mini", base_url="https://llm.test/v1")
        assert parse_verdict(await ask_provider(http, openai, "k2", "Be calm", '{"a":1}')) == (0.4, "meh")
    first, second = seen
    assert first.headers["x-api-key"] == "k1" and first.headers["anthropic-version"] == "2023-06-01"
    body = json.loads(first.content)
    assert body["model"] == "claude-3-5-haiku-latest" and "Be calm" in body["messages"][0]["content"] and body["system"]
    assert second.url.path == "/v1/chat/completions" and second.headers["authorization"] == "Bearer k2"
    assert json.loads(second.content)["messages"][0]["role"] == "system"


async def test_provider_errors_are_judge_errors() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(529, text="overloaded"))) as http:
        with pytest.raises(JudgeError, match="HTTP 529"):
            await ask_provider(http, BrandToneSettings(base_url="https://llm.test"), "k", "r", "{}")


def _screening_job(conn: Any, job_id: str) -> None:
    conn.execute(
        "INSERT INTO job (id, queue_id, workspace_id, state, payload, max_attempts, run_at, created_at)"
        " VALUES (?, 1, 'ws', 'screening', ?, 1, 0, 0)", (job_id, b"{}"),
    )


def test_each_screening_job_goes_to_one_judge_until_its_lease_runs_out(conn: Any) -> None:
    """Several nodes (PostgreSQL): a judge takes only jobs no other judge holds, so the provider is asked once."""
    for job_id in ("a", "b", "c"):
        _screening_job(conn, job_id)
    first = guardrail_store.screening_jobs(conn, [], 2, now=1000, lease_ms=500)
    assert [item.id for item in first] == ["a", "b"]
    others = guardrail_store.screening_jobs(conn, [], 10, now=1100, lease_ms=500)
    if is_postgres(conn):
        assert [item.id for item in others] == ["c"]  # a and b are leased to the first judge
        assert guardrail_store.screening_jobs(conn, [], 10, now=1200, lease_ms=500) == []
        # the first judge died: after the lease another takes its jobs
        assert [item.id for item in guardrail_store.screening_jobs(conn, [], 10, now=1501, lease_ms=500)] == ["a", "b"]
    else:  # one node: its judge skips what it holds in flight itself
        assert [item.id for item in others] == ["a", "b", "c"]
    assert guardrail_store.release_screened(conn, first[0].rowid, 2000, to_approval=False)
    assert conn.execute("SELECT lease_expires_at FROM job WHERE id = 'a'").fetchone()[0] is None
