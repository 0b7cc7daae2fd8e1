"""Concurrent enqueues of one queue are written together: each request is still answered as if alone."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from tests.helpers import ServerProcess

CONCURRENT = 16


def _client(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=30,
        limits=httpx.Limits(max_connections=CONCURRENT),
    )


async def _new_queue(http: httpx.AsyncClient) -> str:
    name = f"gq-{uuid.uuid4().hex[:10]}"
    assert (await http.post("/v1/queues", json={"name": name})).status_code == 201
    return name


async def _all(http: httpx.AsyncClient, path: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    return list(await asyncio.gather(*(http.post(path, json=body) for body in bodies)))


async def _job_ids(http: httpx.AsyncClient, queue: str) -> list[str]:
    page = (await http.get(f"/v1/queues/{queue}/jobs", params={"limit": 500})).json()
    return [job["id"] for job in page["data"]]


async def test_one_job_id_sent_at_once_creates_one_job(shared_server: ServerProcess) -> None:
    async with _client(shared_server) as http:
        queue = await _new_queue(http)
        answers = await _all(http, f"/v1/queues/{queue}/jobs", [{"jobId": "same", "payload": {"n": i}} for i in range(CONCURRENT)])
        assert Counter(a.status_code for a in answers) == {201: 1, 200: CONCURRENT - 1}
        assert {a.json()["id"] for a in answers} == {"same"}
        assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * (CONCURRENT - 1)
        first = next(a.json() for a in answers if a.status_code == 201)
        assert all(a.json()["payload"] == first["payload"] for a in answers)  # every duplicate shows the stored job
        assert await _job_ids(http, queue) == ["same"]


async def test_strict_job_id_sent_at_once_is_one_201_and_conflicts(shared_server: ServerProcess) -> None:
    async with _client(shared_server) as http:
        queue = await _new_queue(http)
        answers = await _all(http, f"/v1/queues/{queue}/jobs", [{"jobId": "once", "strict": True}] * CONCURRENT)
        assert Counter(a.status_code for a in answers) == {201: 1, 409: CONCURRENT - 1}
        assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"IDEMPOTENCY_CONFLICT"}


async def test_singles_and_a_batch_sharing_keys_create_each_job_once(shared_server: ServerProcess) -> None:
    async with _client(shared_server) as http:
        queue = await _new_queue(http)
        keys = [f"k{i}" for i in range(10)]
        batch = http.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": [{} for _ in keys], "idempotencyKeys": keys})
        singles = [http.post(f"/v1/queues/{queue}/jobs", json={"jobId": key}) for key in keys[:5] * 2]
        batch_answer, *single_answers = await asyncio.gather(batch, *singles)
        assert batch_answer.status_code == 201
        assert [job["id"] for job in batch_answer.json()["data"]] == keys
        assert all(a.status_code in (200, 201) for a in single_answers)
        created = [job["id"] for job in batch_answer.json()["data"] if not job["duplicate"]]
        created += [a.json()["id"] for a in single_answers if a.status_code == 201]
        assert sorted(created) == sorted(keys)  # each id created by exactly one request
        assert sorted(await _job_ids(http, queue)) == sorted(keys)


async def test_quota_is_shared_out_in_order_among_concurrent_requests(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server(ROTOR_LIMITS_MONTHLY_JOB_QUOTA="5")
    async with _client(server) as http:
        queue = await _new_queue(http)
        answers = await _all(http, f"/v1/queues/{queue}/jobs", [{}] * 12)
        assert Counter(a.status_code for a in answers) == {201: 5, 402: 7}
        assert {a.json()["error"]["code"] for a in answers if a.status_code == 402} == {"QUOTA_EXCEEDED"}
        assert len(await _job_ids(http, queue)) == 5
        assert (await http.get("/v1/status")).json()["quota"]["used"] == 5
