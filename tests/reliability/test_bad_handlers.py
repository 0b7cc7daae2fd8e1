"""Slow, hanging, resetting and 500-ing handlers on other queues do not starve a healthy queue.

A healthy queue's throughput is measured on a server of its own, then on another server where four
other queues, each with a backlog and a misbehaving handler (served from another process), were
started first, then on the first server again. Beside the bad queues it must keep most of the
mean of its two solo figures. The hanging queue's concurrency is above `callbacks.max_connections`:
while that cap was shared by all hosts, such a queue stalled every other queue until its requests
timed out (the cap is now per callback host).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Receiver, ServerProcess, free_port, wait_until

HEALTHY_JOBS = 3000
HEALTHY_CONCURRENCY = 20
MARGIN = 0.6  # beside the bad queues the healthy queue keeps at least 60 % of its solo throughput
RETRY_SOON: dict[str, Any] = {"retry_attempts": 100, "defaultJobOptions": {"backoff": {"type": "fixed", "delay": 200}}}
BAD_QUEUES: dict[str, dict[str, Any]] = {
    "slow": {"concurrency": 50},  # answers after 1 s
    "hang": {"concurrency": 300, "timeout_seconds": 30},  # never answers; more than max_connections (256)
    "reset": {"concurrency": 5, **RETRY_SOON},  # closes the connection, retried every 200 ms
    "fail500": {"concurrency": 5, **RETRY_SOON},  # answers 500, retried every 200 ms
}
# A failing handler answers at once, so a failing queue with a big backlog is as busy as a healthy
# one (each first attempt runs at full speed): that is CPU shared, not starvation. The failing
# queues get a few jobs that keep failing and retrying instead.
BACKLOG = {"slow": 1000, "hang": 1000, "reset": 20, "fail500": 20}


@pytest.fixture
def bad_handlers() -> Iterator[Callable[[], str]]:
    """Start misbehaving-handler servers, each in its own process (no CPU taken from the healthy receiver)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.bad_handlers", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[2],
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


def _backlog(http: httpx.Client, queue: str, jobs: int) -> None:
    for start in range(0, jobs, 1000):
        response = http.post(f"/v1/queues/{queue}/jobs/batch",
                             json={"jobs": [{"payload": {"n": n}} for n in range(start, min(jobs, start + 1000))]})
        assert response.status_code == 201, response.text


def _throughput(server: ServerProcess, receiver: Receiver, queue: str) -> float:
    """Deliveries/s of a fresh healthy queue: backlog enqueued while paused, timed from resume to all completed."""
    with server.client() as http:
        created = http.post("/v1/queues", json={"name": queue, "concurrency": HEALTHY_CONCURRENCY,
                                                "callback_url": receiver.url(f"/{queue}")})
        assert created.status_code == 201, created.text
        http.post(f"/v1/queues/{queue}/pause")
        _backlog(http, queue, HEALTHY_JOBS)
        started = time.perf_counter()
        http.post(f"/v1/queues/{queue}/resume")
        wait_until(lambda: http.get(f"/v1/queues/{queue}/stats").json()["completed"] >= HEALTHY_JOBS, timeout=90)
        return HEALTHY_JOBS / (time.perf_counter() - started)


def _start_bad_queues(server: ServerProcess, hosts: dict[str, str]) -> None:
    with server.client() as http:
        for name, settings in BAD_QUEUES.items():
            created = http.post("/v1/queues", json={"name": name, "callback_url": f"{hosts[name]}/{name}", **settings})
            assert created.status_code == 201, created.text
            _backlog(http, name, BACKLOG[name])
        wait_until(lambda: http.get("/v1/queues/hang/stats").json()["active"] == 300, timeout=20)
    time.sleep(0.5)  # the failing queues are now failing and retrying


def _outcomes(server: ServerProcess, queue: str) -> set[str]:
    """The attempt outcomes seen so far on a few jobs of `queue`."""
    with server.client() as http:
        jobs, cursor = [], None
        while True:  # the oldest jobs, the ones attempted, are on the last page
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = http.get(f"/v1/queues/{queue}/jobs", params=params).json()
            jobs += page["data"]
            cursor = page["nextCursor"]
            if not cursor:
                break
        tried = [job for job in jobs if job["attempts"] > 0][:10]
        assert tried, f"no job of {queue} was attempted"
        logs = [http.get(f"/v1/queues/{queue}/jobs/{job['id']}").json()["attemptLog"] for job in tried]
    return {entry["outcome"] for log in logs for entry in log}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_misbehaving_handlers_do_not_starve_a_healthy_queue(
    make_server: Callable[..., ServerProcess], receiver: Receiver, bad_handlers: Callable[[], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The connection cap is per callback host: the hanging queue gets a host of its own, or it
    # would (by design) hold every connection to the host the other bad queues share.
    shared, hanging = bad_handlers(), bad_handlers()
    solo_server, busy_server = make_server(), make_server()
    first = _throughput(solo_server, receiver, "solo-1")
    _start_bad_queues(busy_server, {**dict.fromkeys(BAD_QUEUES, shared), "hang": hanging})
    beside = _throughput(busy_server, receiver, "beside-bad")
    with busy_server.client() as http:
        bad = {name: http.get(f"/v1/queues/{name}/stats").json() for name in BAD_QUEUES}
    outcomes = {name: _outcomes(busy_server, name) for name in ("reset", "fail500")}
    busy_server.kill()
    second = _throughput(solo_server, receiver, "solo-2")
    solo = (first + second) / 2
    with capsys.disabled():
        print(f"\nhealthy queue: {first:,.0f} and {second:,.0f} deliveries/s alone, {beside:,.0f} beside slow, "
              f"hanging, resetting and 500-ing queues ({beside / solo:.2f}× the mean)")
    assert bad["slow"]["completed"] > 0 and bad["hang"]["active"] == 300 and bad["hang"]["completed"] == 0
    assert outcomes == {"reset": {"network"}, "fail500": {"5xx"}}, outcomes
    assert beside >= MARGIN * solo, f"the healthy queue fell to {beside / solo:.2f}× of its solo throughput"
