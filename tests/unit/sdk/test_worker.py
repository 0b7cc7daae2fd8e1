"""RotorWorker against a scripted API (httpx.MockTransport): retries, heartbeats, outcomes, draining."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from rotor_lite.sdk import NonRetriableError, RotorNotFound, RotorWorker
from rotor_lite.sdk.worker import Job


class FakeApi:
    """Hands out `jobs` one lease at a time, then empty long polls; records every call; `failures` scripts
    the status of the next calls of a route ("complete", "heartbeat", …)."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = list(jobs)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failures: dict[str, list[int]] = {}
        self.lost: set[str] = set()  # jobs whose lease the server no longer holds
        self.leased = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        route = request.url.path.rsplit("/", 1)[-1]
        body = json.loads(request.content or b"{}")
        self.calls.append((route, body))
        scripted = self.failures.get(route)
        if scripted:
            status = scripted.pop(0)
            code = {404: "NOT_FOUND", 409: "CONFLICT"}.get(status, "UNAVAILABLE")
            return httpx.Response(status, json={"error": {"code": code, "message": "scripted", "details": {}}})
        if route == "lease":
            if not self.jobs:
                await asyncio.sleep(0.02)  # a long poll that found nothing
                return httpx.Response(200, json={"data": []})
            self.leased.set()
            job, self.jobs = self.jobs[0], self.jobs[1:]
            return httpx.Response(200, json={"data": [job]})
        if route == "outcomes":
            return httpx.Response(200, json={"data": [
                {"id": o["id"], "error": {"code": "CONFLICT", "message": "lost"}} if o["id"] in self.lost
                else {"id": o["id"], "state": "completed" if "error" not in o else "failed"} for o in body["outcomes"]
            ]})
        return httpx.Response(200, json={"id": request.url.path.split("/")[-2], "state": "active"})

    def routes(self, route: str) -> list[dict[str, Any]]:
        return [body for name, body in self.calls if name == route]

    def outcomes(self) -> list[dict[str, Any]]:
        return [outcome for body in self.routes("outcomes") for outcome in body["outcomes"]]


def leased(job_id: str, payload: Any = None) -> dict[str, Any]:
    return {"id": job_id, "payload": payload if payload is not None else {"n": 1}, "attempt": 1,
            "leaseToken": f"token-{job_id}", "leaseExpiresAt": "2026-01-01T00:00:00.000Z", "tags": ["t"]}


def worker(api: FakeApi, processor: Callable[[Job], Awaitable[Any]], **options: Any) -> RotorWorker:
    return RotorWorker("q", processor, api_key="rt_ws_x", base_url="http://rotor.test", handle_signals=False,
                       transport=httpx.MockTransport(api), **options)


async def until(done: Callable[[], bool]) -> None:
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


async def run_until(runner: RotorWorker, done: Callable[[], bool]) -> None:
    task = asyncio.create_task(runner.run())
    for _ in range(500):
        if done() or task.done():
            break
        await asyncio.sleep(0.01)
    runner.stop()
    await asyncio.wait_for(task, 5)


async def test_the_result_is_reported_until_the_server_takes_it() -> None:
    api = FakeApi([leased("job_1")])
    api.failures["outcomes"] = [503, 502]

    async def handle(job: Job) -> Any:
        return {"got": job.data, "tags": job.tags, "attempt": job.attempt}

    await run_until(worker(api, handle), lambda: len(api.routes("outcomes")) == 3)
    result = {"got": {"n": 1}, "tags": ["t"], "attempt": 1}
    assert api.outcomes() == [{"id": "job_1", "lease_token": "token-job_1", "result": result}] * 3
    assert api.routes("lease")[0] == {"max": 5, "lease_seconds": "30000ms", "wait_seconds": "20000ms"}


async def test_outcomes_that_finish_together_travel_in_one_request_and_a_lost_lease_is_not_retried() -> None:
    api = FakeApi([leased(f"job_{n}") for n in range(6)])
    api.lost = {"job_2"}
    gate = asyncio.Event()

    async def handle(job: Job) -> Any:
        await gate.wait()
        return job.id

    runner = worker(api, handle, concurrency=6)
    task = asyncio.create_task(runner.run())
    await until(lambda: not api.jobs)  # six jobs leased one at a time, all six running
    gate.set()
    await until(lambda: len(api.outcomes()) == 6)
    runner.stop()
    await asyncio.wait_for(task, 5)
    assert sorted(o["result"] for o in api.outcomes()) == [f"job_{n}" for n in range(6)]  # job_2's not sent again
    assert len(api.routes("outcomes")) <= 2  # the first finisher's request, then all the others together


async def test_an_exception_fails_the_job_and_a_non_retriable_one_fails_it_for_good() -> None:
    api = FakeApi([leased("job_1", {"kind": "flaky"}), leased("job_2", {"kind": "fatal"})])

    async def handle(job: Job) -> Any:
        if job.data["kind"] == "fatal":
            raise NonRetriableError("bad input")
        raise ValueError("timeout talking to the CRM")

    await run_until(worker(api, handle), lambda: len(api.outcomes()) == 2)
    assert sorted(api.outcomes(), key=lambda outcome: outcome["id"]) == [
        {"id": "job_1", "lease_token": "token-job_1", "error": "ValueError: timeout talking to the CRM", "retry": True},
        {"id": "job_2", "lease_token": "token-job_2", "error": "NonRetriableError: bad input", "retry": False},
    ]


async def test_a_long_job_heartbeats_its_lease_and_a_lost_lease_stops_the_heartbeats() -> None:
    api = FakeApi([leased("job_1")])
    api.failures["heartbeat"] = [503]
    release = asyncio.Event()

    async def handle(job: Job) -> Any:
        await release.wait()
        return None

    runner = worker(api, handle, lease_seconds=0.15)
    task = asyncio.create_task(runner.run())
    for _ in range(300):
        if len(api.routes("heartbeat")) >= 3:
            break
        await asyncio.sleep(0.01)
    assert api.routes("heartbeat")[-1] == {"lease_token": "token-job_1", "lease_seconds": "150ms"}  # on after a 503
    api.failures["heartbeat"] = [409]
    await asyncio.sleep(0.3)
    beats = len(api.routes("heartbeat"))
    await asyncio.sleep(0.2)
    assert len(api.routes("heartbeat")) == beats  # the lease is gone: no more heartbeats
    release.set()
    runner.stop()
    await asyncio.wait_for(task, 5)


async def test_stop_leases_nothing_more_and_drains_within_the_timeout() -> None:
    api = FakeApi([leased("quick"), leased("slow")])
    finished: list[str] = []

    async def handle(job: Job) -> Any:
        await asyncio.sleep(0.05 if job.id == "quick" else 10)
        finished.append(job.id)

    runner = worker(api, handle, drain_timeout=0.3)
    task = asyncio.create_task(runner.run())
    await until(lambda: len(api.routes("lease")) >= 3)  # both jobs leased and running, the worker waiting for more
    runner.stop()
    leases = len(api.routes("lease"))
    await asyncio.wait_for(task, 5)
    assert finished == ["quick"]  # the slow one was cancelled at the drain timeout: its lease runs out
    assert [outcome["id"] for outcome in api.outcomes()] == ["quick"]
    assert len(api.routes("lease")) == leases


async def test_an_outcome_still_on_its_way_at_the_drain_timeout_is_delivered_before_run_returns() -> None:
    api = FakeApi([leased("job_1")])
    api.failures["outcomes"] = [503, 503, 503]  # the server answers only after the drain timeout

    async def handle(job: Job) -> Any:
        await asyncio.sleep(0.05)
        return "done"

    runner = worker(api, handle, drain_timeout=0.1)
    task = asyncio.create_task(runner.run())
    await until(lambda: bool(api.routes("outcomes")))
    runner.stop()
    await asyncio.wait_for(task, 5)
    assert len(api.routes("outcomes")) == 4 and api.outcomes()[-1]["result"] == "done"


async def test_a_refusal_for_good_ends_the_run() -> None:
    api = FakeApi([])
    api.failures["lease"] = [404]

    async def handle(job: Job) -> Any:
        return None

    with pytest.raises(RotorNotFound):
        await asyncio.wait_for(worker(api, handle).run(), 5)
