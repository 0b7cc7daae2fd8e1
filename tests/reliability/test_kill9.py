"""kill -9 at random moments of a 10,000-job run, five times in a row: no acknowledged job is lost.

A producer enqueues 10,000 jobs in batches of 100 with idempotency keys, retrying a batch on the
current server until it is acknowledged (a 201 means committed). Meanwhile the server is killed
with SIGKILL five times, each time while the receiver holds a delivery of it unanswered (at a random
delivery), and restarted on the same data directory. In the end every acknowledged job must be
completed; the deliveries a kill repeats (at least once) must include every delivery in flight at
that kill and be no more than the jobs one server can have in flight.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from tests.helpers import KillDuringDelivery, Receiver, ServerProcess, wait_until

JOBS = 10_000
BATCH = 100
CONCURRENCY = 20
KILLS = 5


class Producer(threading.Thread):
    """Enqueues every batch, retrying on whichever server is current, until each one is acknowledged."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.acked: set[str] = set()
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for start in range(0, JOBS, BATCH):
                keys = [f"k{n:05d}" for n in range(start, start + BATCH)]
                body = {"jobs": [{"payload": {"n": key}} for key in keys], "idempotencyKeys": keys}
                self.acked.update(self._until_acknowledged(body))
                time.sleep(0.03)  # spread the enqueues over the kills
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def _until_acknowledged(self, body: dict[str, object]) -> list[str]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            server = self.server
            try:
                with server.client() as http:
                    response = http.post("/v1/queues/crash/jobs/batch", json=body, timeout=10)
                if response.status_code == 201:
                    return [job["id"] for job in response.json()["data"]]
            except httpx.TransportError:
                pass
            self.retries += 1
            time.sleep(0.05)
        raise AssertionError("a batch was never acknowledged")


def _completed_ids(server: ServerProcess) -> set[str]:
    found: set[str] = set()
    cursor = None
    with server.client() as http:
        while True:
            params: dict[str, str | int] = {"state": "completed", "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/v1/queues/crash/jobs", params=params).json()
            found.update(job["id"] for job in page["data"])
            cursor = page["nextCursor"]
            if not cursor:
                return found


def _stats(server: ServerProcess) -> dict[str, int]:
    with server.client() as http:
        return dict(http.get("/v1/queues/crash/stats").json())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_five_kill_9s_during_10000_jobs_lose_no_acknowledged_job(
    make_server: Callable[..., ServerProcess], receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("ROTOR_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    receiver.default_delay = 0.002
    server = make_server()
    with server.client() as http:
        created = http.post("/v1/queues", json={"name": "crash", "concurrency": CONCURRENCY,
                                                "callback_url": receiver.url("/cb")})
        assert created.status_code == 201, created.text
    producer = Producer(server)
    producer.start()
    killer = KillDuringDelivery(receiver)
    kill_at = sorted(rng.sample(range(500, JOBS - 1000), KILLS))
    for number in kill_at:
        killer.kill_at(server, number)
        server = killer.restart(lambda: make_server(data_dir=server.data_dir))
        producer.server = server
    producer.join(120)
    assert not producer.is_alive() and producer.error is None, f"the producer did not finish: {producer.error!r}"
    wait_until(lambda: _stats(server)["completed"] >= JOBS, timeout=120, interval=0.2)

    stats = _stats(server)
    completed = _completed_ids(server)
    deliveries = Counter(r.job_id for r in receiver.for_path("/cb"))
    duplicates = sum(count - 1 for count in deliveries.values())
    per_kill = killer.per_kill()
    with capsys.disabled():
        print(f"\nkill -9 ×{KILLS} (seed {seed}; at deliveries {kill_at}; in flight/delivered again per kill: "
              f"{[(len(flying), len(again)) for flying, again in per_kill]}): {len(producer.acked)} acknowledged, "
              f"{stats['completed']} completed, {duplicates} duplicate deliveries, {producer.retries} enqueue retries")
    assert len(producer.acked) == JOBS
    assert producer.acked <= completed, f"acknowledged but not completed: {sorted(producer.acked - completed)[:5]}"
    assert stats["completed"] == JOBS and stats["failed"] == stats["waiting"] == stats["active"] == 0, stats
    assert set(deliveries) == producer.acked, "a job was delivered that nobody enqueued, or one was never delivered"
    for in_flight, again in per_kill:
        assert in_flight, "a kill landed while no delivery was in flight"
        assert in_flight <= again, "a delivery cut off by a kill was never made again"
        assert len(again) <= CONCURRENCY, "a kill repeated more deliveries than one server can have in flight"
    assert duplicates == sum(len(again) for _, again in per_kill)
