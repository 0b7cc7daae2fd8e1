"""Several `rotor-lite serve` nodes on one PostgreSQL database: what one node changes, the others see."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Receiver, Reply, ServerProcess, cluster_nodes, offline, wait_until

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def nodes(tmp_path: Path, pg_cluster: Any) -> Iterator[list[ServerProcess]]:
    """Three nodes on one fresh database, with one master key."""
    started = [node.start() for node in
               cluster_nodes(tmp_path, pg_cluster.new_database(), ROTOR_PLANS_PRO_REQUESTS_PER_MINUTE="8")]
    yield started
    for node in started:
        node.kill()


def eventually(check: Callable[[], bool]) -> None:
    wait_until(check, timeout=5)


def test_a_queue_made_on_one_node_is_served_by_the_others(nodes: list[ServerProcess]) -> None:
    a, b, c = (node.client() for node in nodes)
    assert a.post("/v1/queues", json={"name": "shared", "concurrency": 3}).status_code == 201
    for other in (b, c):
        eventually(lambda other=other: other.get("/v1/queues/shared").status_code == 200)
    assert b.patch("/v1/queues/shared", json={"concurrency": 7}).status_code == 200
    eventually(lambda: c.get("/v1/queues/shared").json()["concurrency"] == 7)
    eventually(lambda: a.get("/v1/queues/shared").json()["concurrency"] == 7)
    assert c.delete("/v1/queues/shared").status_code in (200, 204)
    eventually(lambda: a.get("/v1/queues/shared").status_code == 404)
    eventually(lambda: b.get("/v1/queues/shared").status_code == 404)


def test_a_key_revoked_on_one_node_is_refused_by_the_others_at_once(nodes: list[ServerProcess]) -> None:
    a, b = nodes[0].client(), nodes[1].client()
    created = a.post("/v1/api-keys", json={"label": "temp", "role": "viewer"})
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["id"]
    with nodes[1].client(key) as as_viewer:
        assert as_viewer.get("/v1/queues").status_code == 200  # node b now caches the key
        assert a.delete(f"/v1/api-keys/{key_id}").status_code in (200, 204)
        eventually(lambda: as_viewer.get("/v1/queues").status_code == 401)
    b.close()


def test_a_node_whose_master_key_cannot_open_the_secrets_refuses_to_start(nodes: list[ServerProcess], tmp_path: Path) -> None:
    stranger = ServerProcess(
        data_dir=tmp_path / "stranger", storage_url=nodes[0].storage_url,
        env={"ROTOR_SECURITY_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()},
    )
    with pytest.raises(RuntimeError) as refused:
        stranger.start()
    assert "master key does not match" in str(refused.value)
    stranger.kill(check_counts=False)


def test_a_workspaces_rate_limit_is_shared_by_the_nodes(nodes: list[ServerProcess]) -> None:
    """8 requests a minute for the plan: 27 requests spread over 3 nodes get at most 16 answers (a minute's
    boundary may fall among them once), not 8 from each node."""
    workspace = offline(nodes[0].data_dir, "workspaces", "create", "busy", "--plan", "pro")
    clients = [node.client(workspace["key"]) for node in nodes]
    answers = [clients[i % 3].get("/v1/queues").status_code for i in range(27)]
    assert 8 <= answers.count(200) <= 16 and answers.count(429) == 27 - answers.count(200), answers
    for client in clients:
        client.close()


def test_nodes_carry_on_after_the_database_drops_their_connections(nodes: list[ServerProcess], pg_cluster: Any) -> None:
    """A database restart or failover ends every connection: the next writes reconnect (one may answer 503
    meanwhile), and the nodes hear each other again."""
    a, b = nodes[0].client(), nodes[1].client()
    assert a.post("/v1/queues", json={"name": "before"}).status_code == 201
    database = str(nodes[0].storage_url).rsplit("/", 1)[1]
    pg_cluster.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
    eventually(lambda: a.post("/v1/queues", json={"name": "after"}).status_code in (201, 409))
    eventually(lambda: b.get("/v1/queues/after").status_code == 200)
    eventually(lambda: b.post("/v1/queues", json={"name": "from-b"}).status_code in (201, 409))
    eventually(lambda: a.get("/v1/queues/from-b").status_code == 200)
    a.close()
    b.close()


def test_one_job_id_sent_to_every_node_at_once_makes_one_job(nodes: list[ServerProcess]) -> None:
    """Idempotency holds across nodes: the same `jobId` (and batch keys) enqueued through three nodes at the
    same moment is one job, and every caller is answered with it."""
    nodes[0].client().post("/v1/queues", json={"name": "once", "concurrency": 1})
    for node in nodes:
        eventually(lambda node=node: node.client().get("/v1/queues/once").status_code == 200)
    for round_ in range(5):
        job_id, key = f"contact-{round_}", f"batch-{round_}"
        with ThreadPoolExecutor(6) as pool:
            singles = list(pool.map(lambda n: n.client().post("/v1/queues/once/jobs", json={"jobId": job_id}), nodes))
            batches = list(pool.map(
                lambda n: n.client().post("/v1/queues/once/jobs/batch", json={"jobs": [{}], "idempotencyKeys": [key]}),
                nodes))
        assert {r.status_code for r in singles} <= {200, 201} and {r.json()["id"] for r in singles} == {job_id}
        assert {r.status_code for r in batches} <= {200, 201}, [r.text for r in batches]
    listed = nodes[1].client().get("/v1/queues/once/jobs", params={"limit": 100}).json()
    ids = [job["id"] for job in listed["data"]]
    assert len(ids) == len(set(ids)) == 10, ids


def deliveries_made_by(node: ServerProcess, queue: str) -> float:
    text = node.client().get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("rotor_deliveries_total{") and f'queue="{queue}"' in line)


def test_the_nodes_share_a_queues_concurrency_and_each_delivers(nodes: list[ServerProcess], receiver: Receiver) -> None:
    """A node claims no more than its share of a queue's concurrency, so one node filling every slot and
    refilling each as it settles does not leave the others idle."""
    receiver.script("/slow", *[Reply(delay=0.02)] * 400)
    a = nodes[0].client()
    assert a.post("/v1/queues", json={"name": "spread", "concurrency": 6, "callback_url": receiver.url("/slow")}).status_code == 201
    for node in nodes:
        eventually(lambda node=node: node.client().get("/v1/queues/spread").status_code == 200)
    assert a.post("/v1/queues/spread/jobs/batch", json={"jobs": [{"payload": {"n": n}} for n in range(300)]}).status_code == 201
    wait_until(lambda: len(receiver.for_path("/slow")) >= 300, timeout=60)
    made = [deliveries_made_by(node, "spread") for node in nodes]
    assert sum(made) >= 300 and all(count > 0 for count in made), made
