"""Three nodes on one PostgreSQL database deliver jobs as one server would.

Each job is delivered once whichever node took it, a queue's concurrency holds across the nodes, a node
killed under load loses none of its jobs (the others redeliver them once its leases run out), and a node
that restarts takes back only its own leases, never a live node's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Receiver, ServerProcess, cluster_nodes, wait_until

pytestmark = pytest.mark.postgres_only

CONCURRENCY = 2


@pytest.fixture
def cluster(tmp_path: Path, pg_cluster: object) -> Iterator[list[ServerProcess]]:
    """Three nodes: one database, one master key, a data directory each."""
    nodes = cluster_nodes(tmp_path, pg_cluster.new_database())  # type: ignore[attr-defined]
    for node in nodes:
        node.start()
    yield nodes
    for node in nodes:
        node.kill(check_counts=False)
    nodes[0].kill()  # the counters, once every node is gone


def _knows(node: ServerProcess, queue: str) -> bool:
    with node.client() as http:
        return http.get(f"/v1/queues/{queue}").status_code == 200


def _restarted(node: ServerProcess) -> ServerProcess:
    node.kill(check_counts=False)
    return ServerProcess(data_dir=node.data_dir, storage_url=node.storage_url, env=node.env).start()


def _make_queue(nodes: list[ServerProcess], receiver: Receiver, name: str, concurrency: int, live: int = 3) -> None:
    """Create the queue on the first node; the first `live` nodes must know it before jobs are enqueued.

    The other nodes learn of a new queue through the database's notices; where a node has not within a few
    seconds (the queue registry does not follow other nodes yet), it is restarted, which loads every queue.
    """
    with nodes[0].client() as http:
        created = http.post("/v1/queues", json={"name": name, "concurrency": concurrency, "callback_url": receiver.url(f"/{name}")})
        assert created.status_code == 201, created.text
    try:
        wait_until(lambda: all(_knows(node, name) for node in nodes[:live]), timeout=3, interval=0.1)
    except AssertionError:
        for index in range(1, live):
            if not _knows(nodes[index], name):
                nodes[index] = _restarted(nodes[index])
        assert all(_knows(node, name) for node in nodes[:live])


def _enqueue_round_robin(nodes: list[ServerProcess], queue: str, count: int) -> list[str]:
    ids = []
    clients = [node.client() for node in nodes]
    try:
        for n in range(count):
            response = clients[n % len(clients)].post(f"/v1/queues/{queue}/jobs", json={"payload": {"n": n}})
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
    finally:
        for client in clients:
            client.close()
    return ids


def _stats(node: ServerProcess, queue: str) -> dict[str, int]:
    with node.client() as http:
        return dict(http.get(f"/v1/queues/{queue}/stats").json())


def test_jobs_enqueued_on_every_node_are_each_delivered_once_and_concurrency_holds_across_nodes(
    cluster: list[ServerProcess], receiver: Receiver
) -> None:
    receiver.default_delay = 0.05  # long enough for every node to want to claim at once
    _make_queue(cluster, receiver, "shared", CONCURRENCY)
    ids = _enqueue_round_robin(cluster, "shared", 60)
    wait_until(lambda: _stats(cluster[1], "shared")["completed"] == len(ids), timeout=60, interval=0.2)

    deliveries = Counter(r.job_id for r in receiver.for_path("/shared"))
    assert set(deliveries) == set(ids)
    assert max(deliveries.values()) == 1, "a job was delivered twice"
    assert receiver.max_in_flight["/shared"] <= CONCURRENCY, "the queue ran more jobs at once than its concurrency"


def test_a_node_killed_under_load_loses_no_job_and_a_restarted_node_leaves_live_leases_alone(
    cluster: list[ServerProcess], receiver: Receiver
) -> None:
    receiver.default_delay = 0.3
    _make_queue(cluster, receiver, "load", 6)
    ids = _enqueue_round_robin(cluster, "load", 40)
    wait_until(lambda: len(receiver.for_path("/load")) >= 8, timeout=20)
    victim = cluster[2]
    victim.kill(check_counts=False)  # kill -9 mid-delivery: its leases stay active until they run out
    wait_until(lambda: _stats(cluster[0], "load")["completed"] == len(ids), timeout=90, interval=0.2)
    delivered = Counter(r.job_id for r in receiver.for_path("/load"))
    assert set(delivered) == set(ids), "a job was lost with the killed node"

    # A restart on another node's data directory must not take back the leases the live nodes hold.
    receiver.default_delay = 6.0  # still in flight on the live nodes while the third restarts
    _make_queue(cluster, receiver, "slow", 3, live=2)
    slow = _enqueue_round_robin(cluster[:2], "slow", 3)
    wait_until(lambda: _stats(cluster[0], "slow").get("active", 0) == 3, timeout=20)
    cluster[2] = _restarted(victim)
    time.sleep(0.5)  # what a wrongful requeue would need to show: the jobs back in waiting and sent again
    assert _stats(cluster[0], "slow").get("active", 0) == 3
    wait_until(lambda: _stats(cluster[0], "slow")["completed"] == 3, timeout=30, interval=0.2)
    again = Counter(r.job_id for r in receiver.for_path("/slow"))
    assert set(again) == set(slow) and max(again.values()) == 1, "a live node's lease was taken back by the restart"


def test_the_restarted_node_keeps_its_identity(cluster: list[ServerProcess]) -> None:
    node = cluster[1]
    before = (node.data_dir / "node.id").read_text()
    cluster[1] = _restarted(node)
    assert (node.data_dir / "node.id").read_text() == before
    with httpx.Client(base_url=cluster[1].url) as http:
        assert http.get("/healthz").status_code == 200
