"""Nothing acknowledged is lost: kill -9 the server mid-delivery, restart, every job completes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from tests.helpers import KillDuringDelivery, Receiver, Reply, ServerProcess, wait_until

pytestmark = pytest.mark.both_delivery_paths  # every test: in-process, and through two delivery helpers

JOBS = 1000
CONCURRENCY = 20


def _completed(server: ServerProcess) -> int:
    with server.client() as http:
        return int(http.get("/v1/queues/crash/stats").json()["completed"])


@pytest.mark.slow
def test_kill_9_during_delivery_loses_no_job(
    make_server: Callable[..., ServerProcess], receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.default_delay = 0.005
    server = make_server()
    with server.client() as http:
        http.post("/v1/queues", json={"name": "crash", "concurrency": CONCURRENCY, "callback_url": receiver.url("/cb")})
        accepted = []
        for start in range(0, JOBS, 250):
            batch = [{"payload": {"n": n}} for n in range(start, start + 250)]
            response = http.post("/v1/queues/crash/jobs/batch", json={"jobs": batch})
            assert response.status_code == 201
            accepted += [job["id"] for job in response.json()["data"]]

    killer = KillDuringDelivery(receiver)
    killer.kill_at(server, JOBS // 3)
    restarted = killer.restart(lambda: make_server(data_dir=server.data_dir))
    wait_until(lambda: _completed(restarted) == JOBS, timeout=60)

    deliveries = Counter(r.job_id for r in receiver.for_path("/cb"))
    assert set(accepted) <= set(deliveries), "an acknowledged job was never delivered"
    duplicates = sum(count - 1 for count in deliveries.values())
    [(in_flight, again)] = killer.per_kill()
    with capsys.disabled():
        print(f"\nkill -9 recovery: {JOBS} jobs completed; {len(in_flight)} in flight at the kill, "
              f"{duplicates} duplicate deliveries")
    assert in_flight, "the kill landed while no delivery was in flight"
    assert in_flight <= again, "a delivery cut off by the kill was never made again"
    assert duplicates == len(again) <= CONCURRENCY, "more redeliveries than jobs that can be in flight"


def test_a_concurrency_key_held_when_the_server_is_killed_is_free_after_the_restart(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    receiver.script("/holder", Reply(delay=2))  # still in flight when the kill lands
    server = make_server()
    with server.client() as http:
        for name in ("holder", "next"):
            created = http.post("/v1/queues", json={"name": name, "callback_url": receiver.url(f"/{name}")})
            assert created.status_code == 201, created.text
        holder = http.post("/v1/queues/holder/jobs", json={"concurrencyKey": "contact:1"}).json()["id"]
        wait_until(lambda: receiver.for_path("/holder"))
        # Paused, the holder's queue does not run the holder again after the restart (which would take
        # the key back and release it on completion): only the restart itself may free the key.
        assert http.post("/v1/queues/holder/pause").status_code == 200
    server.kill()

    restarted = make_server(data_dir=server.data_dir)
    with restarted.client() as http:
        assert http.get(f"/v1/queues/holder/jobs/{holder}").json()["state"] == "waiting"
        waiter = http.post("/v1/queues/next/jobs", json={"concurrencyKey": "contact:1"}).json()["id"]
        wait_until(lambda: http.get(f"/v1/queues/next/jobs/{waiter}").json()["state"] == "completed", timeout=5)
        assert http.post("/v1/queues/holder/resume").status_code == 200
        wait_until(lambda: http.get(f"/v1/queues/holder/jobs/{holder}").json()["state"] == "completed", timeout=5)
