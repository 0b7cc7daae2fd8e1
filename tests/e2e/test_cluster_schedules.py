"""Three nodes on one PostgreSQL: one cron leader fires each tick once, another takes over within seconds of a
kill -9, and a webhook gets each event once whichever node fans it out and sends it."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Receiver, ServerProcess, cluster_nodes, wait_until

pytestmark = pytest.mark.postgres_only

CLUSTER_ENV = {"ROTOR_WEBHOOKS_RETRY_SCHEDULE": "0s,50ms,100ms", "ROTOR_WEBHOOKS_POLL_INTERVAL": "50ms"}


@pytest.fixture(params=["200ms", "1s"])
def nodes(tmp_path: Path, pg_cluster: Any, request: pytest.FixtureRequest) -> Iterator[list[ServerProcess]]:
    """Three servers (data directories of their own) on one database, trying to lead every `param`
    (the default and a fast one); started by the test, killed after it."""
    servers = cluster_nodes(tmp_path, pg_cluster.new_database(), **CLUSTER_ENV, ROTOR_SCHEDULES_LEADER_RETRY=request.param)
    for server in servers:
        server.log_level = "info"
        server.data_dir.mkdir()
    yield servers
    for server in servers:
        server.kill(check_counts=False)


def cluster_of(server: ServerProcess) -> dict[str, Any]:
    with server.client() as http:
        body: dict[str, Any] = http.get("/v1/status").json()["cluster"]
    return body


def parse(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def test_one_leader_fires_each_tick_once_and_another_takes_over_after_a_kill(
    nodes: list[ServerProcess], receiver: Receiver
) -> None:
    first = nodes[0].start()  # it starts first, so it leads
    for node in nodes[1:]:
        node.start()
    # Each made through another node: the others follow (services.cluster).
    with nodes[1].client() as http:
        hook = http.post("/v1/webhooks", json={"url": receiver.url("/wh"), "eventTypes": ["job.completed"]})
        assert hook.status_code == 201, hook.text
    with first.client() as http:
        assert http.post("/v1/queues", json={"name": "ticks", "callback_url": receiver.url("/tick")}).status_code == 201
    with nodes[2].client() as http:
        schedule = http.post("/v1/schedules", json={"queue": "ticks", "cron": "* * * * * *", "timezone": "UTC"}).json()
    ids = {cluster_of(node)["node"]: node for node in nodes}
    assert len(ids) == 3
    leader_id = cluster_of(nodes[1])["cronLeader"]["node"]
    assert leader_id == cluster_of(first)["node"], "the node that started first leads"

    with first.client() as http:
        wait_until(lambda: len(_runs(http, schedule["id"])) >= 3, timeout=30)
    killed_at, killed_wall = time.monotonic(), time.time()
    first.kill(check_counts=False)
    survivors = nodes[1:]

    def new_leader() -> str | None:
        node = cluster_of(survivors[0])["cronLeader"]["node"]
        return node if node != leader_id else None

    successor = wait_until(new_leader, timeout=30, interval=0.02)
    failover_s = time.monotonic() - killed_at
    assert successor in {cluster_of(node)["node"] for node in survivors}
    with survivors[0].client() as http:
        fired_before = len(_runs(http, schedule["id"]))
        wait_until(lambda: len(_runs(http, schedule["id"])) >= fired_before + 3, timeout=30)
        http.post(f"/v1/schedules/{schedule['id']}/pause")
        runs = wait_until(lambda: _settled(http, schedule["id"]), timeout=60)
    first_tick_after_s = min(parse(r["fired_at"]) for r in runs if parse(r["fired_at"]) >= killed_wall) - killed_wall
    print(f"\ncron failover: new leader {failover_s:.2f} s after kill -9; first tick fired by it "
          f"{first_tick_after_s:.2f} s after the kill (leader_retry {nodes[0].env['ROTOR_SCHEDULES_LEADER_RETRY']})")

    ticks = sorted(parse(r["scheduled_for"]) for r in runs)
    assert ticks == [ticks[0] + i for i in range(len(ticks))], "a second was skipped or fired twice"
    assert failover_s < 5
    assert first_tick_after_s < 5

    # Every tick's job was delivered, and the webhook got each completion once (one message id, one job each).
    wait_until(lambda: len(_completions(receiver)) >= len(runs), timeout=60)
    time.sleep(0.5)  # a duplicate would come within the poll interval
    delivered = Counter(r.headers["x-rotor-job-id"] for r in receiver.for_path("/tick"))
    assert set(delivered) == {r["job_id"] for r in runs}
    completions = _completions(receiver)
    assert [job for job, n in Counter(completions.values()).items() if n > 1] == [], "an event was sent twice"
    assert len(completions) == len(receiver.for_path("/wh")), "a message was sent twice"
    assert set(completions.values()) >= {r["job_id"] for r in runs}


def _runs(http: httpx.Client, schedule_id: str) -> list[dict[str, Any]]:
    """Every run of the schedule, page by page."""
    runs: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = http.get(f"/v1/schedules/{schedule_id}/runs", params={"limit": 100, **({"cursor": cursor} if cursor else {})}).json()
        runs += page["runs"]
        if not (cursor := page["nextCursor"]):
            return runs


def _settled(http: httpx.Client, schedule_id: str) -> list[dict[str, Any]] | None:
    runs = _runs(http, schedule_id)
    return runs if runs and all(r["callback_status"] not in (None, "pending") for r in runs) else None


def _completions(receiver: Receiver) -> dict[str, str]:
    """webhook message id → the completed job it is about."""
    return {r.headers["webhook-id"]: json.loads(r.body)["data"]["jobId"] for r in receiver.for_path("/wh")}
