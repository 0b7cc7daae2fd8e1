"""Several nodes on one PostgreSQL database drive one workflow app's runs together.

A run started on one node completes with each step executed once; an event or a signal sent to
another node than the one the run waits on resumes it; a node killed while it drives a call leaves
the run to the others, which finish it once its lease runs out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv
from tests.helpers import ServerProcess, cluster_nodes, db_execute, wait_until

pytestmark = pytest.mark.postgres_only

executed: Counter[str] = Counter()  # "<run id>:<step>" -> how many times the app ran it


@create_function(id="cluster-steps", trigger={"event": "cluster.steps"}, retries=2)
async def three_steps(ctx: Context, step: Step) -> Any:
    results = []
    for name in ("one", "two", "three"):
        results.append(await step.run(name, lambda name=name: _executed(ctx.run_id, name)))
    return results


@create_function(id="cluster-waiter", trigger={"event": "cluster.wait"}, retries=0)
async def waiter(ctx: Context, step: Step) -> Any:
    order = ctx.event.data["orderId"]
    paid = await step.wait_for_event("paid", event="cluster.paid", match=f'data.orderId == "{order}"', timeout="1h")
    approved = await step.wait_for_signal("approve", signal=f"approve-{order}", timeout="1h")
    return {"paid": paid, "approved": approved}


@create_function(id="cluster-slow", trigger={"event": "cluster.slow"}, retries=2)
async def slow(ctx: Context, step: Step) -> Any:
    async def long_call() -> str:
        _executed(ctx.run_id, "slow")
        await asyncio.sleep(ctx.event.data["seconds"])  # long enough to kill or restart a node meanwhile
        return "done"

    return await step.run("slow", long_call)


running = [0, 0]  # calls of cluster-single in flight now, the most seen at once


@create_function(id="cluster-single", trigger={"event": "cluster.single"}, retries=2, concurrency=1)
async def single(ctx: Context, step: Step) -> Any:
    async def one_at_a_time() -> int:
        running[0] += 1
        running[1] = max(running)
        await asyncio.sleep(0.2)
        running[0] -= 1
        return 1

    return await step.run("alone", one_at_a_time)


def _executed(run_id: str, name: str) -> str:
    executed[f"{run_id}:{name}"] += 1
    return name


@pytest.fixture
def nodes(tmp_path: Path, pg_cluster: Any) -> Iterator[list[ServerProcess]]:
    """Three nodes on one database, with one master key (the call lease is short: a dead node's call is
    due again within seconds)."""
    made = cluster_nodes(tmp_path, pg_cluster.new_database(), names=("a", "b", "c"),
                         ROTOR_WORKFLOWS_CALL_TIMEOUT="8s", ROTOR_WORKFLOWS_LEASE="1s")
    started = []
    try:
        for node in made:  # one after the other: the first one makes the schema and the workspace
            started.append(node.start())
        yield started
    finally:
        for node in started:
            node.kill(check_counts=False)


@pytest.fixture
def env(nodes: list[ServerProcess]) -> Iterator[WorkflowEnv]:
    """The app, registered through every node (each node's function registry is its own)."""
    first = WorkflowEnv(nodes[0])
    app = [three_steps, waiter, slow, single]
    url = first.serve(app)
    for node in nodes[1:]:
        other = WorkflowEnv(node)
        assert other.signing_key == first.signing_key  # made once, by the first node, never replaced
        for fn in app:
            other.register(fn, url)
        other.close()
    executed.clear()
    try:
        yield first
    finally:
        first.close()


def on(env: WorkflowEnv, node: ServerProcess) -> WorkflowEnv:
    """`env` talking to `node` (the app keeps serving)."""
    env.use(node)
    return env


def test_runs_started_on_every_node_complete_with_each_step_executed_once(env: WorkflowEnv, nodes: list[ServerProcess]) -> None:
    run_ids = []
    for i in range(12):
        run_ids += on(env, nodes[i % 3]).send("cluster.steps", {"i": i})["runIds"]

    for run_id in run_ids:
        assert on(env, nodes[0]).wait_status(run_id, "completed", "failed", timeout=30)["output"] == ["one", "two", "three"]
    assert {key: n for key, n in executed.items() if n != 1} == {}
    assert len(executed) == 3 * len(run_ids)


def test_an_event_and_a_signal_sent_to_other_nodes_resume_a_run_waiting_on_the_first(
    env: WorkflowEnv, nodes: list[ServerProcess]
) -> None:
    orders = [f"o-{uuid.uuid4().hex[:6]}" for _ in range(8)]
    run_ids = {order: on(env, nodes[0]).send("cluster.wait", {"orderId": order})["runIds"][0] for order in orders}
    for run_id in run_ids.values():
        env.wait_step(run_id, "paid:1", "waiting")

    for order in orders:  # node b never ran these runs' wait: their pins must reach it through the database
        assert on(env, nodes[1]).send("cluster.paid", {"orderId": order})["resumed"] == 1
    for order, run_id in run_ids.items():
        env.wait_step(run_id, "approve:1", "waiting")
        # two nodes complete the signal at once: one wins, the other is told it is gone
        answers = at_once([
            lambda node=node: node.client().post(f"/v1/signals/approve-{order}/complete", json={"data": {"by": node.port}})
            for node in nodes[1:]
        ])
        assert sorted(answer.status_code for answer in answers) == [200, 410], [a.text for a in answers]
        [winner] = [nodes[1 + i].port for i, answer in enumerate(answers) if answer.status_code == 200]
        output = on(env, nodes[0]).wait_status(run_id, "completed", timeout=20)["output"]
        assert output == {"paid": {"orderId": order}, "approved": {"by": winner}}


def test_one_idempotency_key_sent_to_every_node_at_once_starts_one_run(env: WorkflowEnv, nodes: list[ServerProcess]) -> None:
    for _ in range(10):  # each round a race; without a guard one of them breaks the unique index (a 500)
        key = uuid.uuid4().hex
        answers = at_once([
            lambda node=node: node.client().post("/v1/events", json={"name": "cluster.steps", "data": {}, "idempotencyKey": key})
            for node in nodes
        ])
        assert [answer.status_code for answer in answers] == [202, 202, 202], [a.text for a in answers]
        assert len({answer.json()["runIds"][0] for answer in answers}) == 1


def test_a_function_concurrency_holds_across_nodes(env: WorkflowEnv, nodes: list[ServerProcess]) -> None:
    run_ids = []
    for i in range(6):
        run_ids += on(env, nodes[i % 3]).send("cluster.single", {"i": i})["runIds"]
    for run_id in run_ids:
        assert env.wait_status(run_id, "completed", "failed", timeout=30)["status"] == "completed"
    assert running[1] == 1


def test_a_node_restarting_leaves_the_calls_of_the_others_alone(env: WorkflowEnv, nodes: list[ServerProcess]) -> None:
    [run_id] = on(env, nodes[0]).send("cluster.slow", {"seconds": 6})["runIds"]
    owner = _calling(nodes[0], run_id)
    other = next(node for node in nodes if not owner.startswith(_node_id(node) + "."))
    other.terminate()
    other.start()

    assert on(env, other).wait_status(run_id, "completed", "failed", timeout=30)["output"] == "done"
    assert executed[f"{run_id}:slow"] == 1


def test_a_node_killed_while_driving_a_call_leaves_the_run_to_the_others(env: WorkflowEnv, nodes: list[ServerProcess]) -> None:
    [run_id] = on(env, nodes[0]).send("cluster.slow", {"seconds": 2.5})["runIds"]
    owner = _calling(nodes[0], run_id)
    [driving] = [node for node in nodes if owner.startswith(_node_id(node) + ".")]
    driving.kill(check_counts=False)
    alive = next(node for node in nodes if node is not driving)

    assert on(env, alive).wait_status(run_id, "completed", "failed", timeout=30)["output"] == "done"
    assert executed[f"{run_id}:slow"] == 2  # the call in flight at the kill is made again, once


def _calling(node: ServerProcess, run_id: str) -> str:
    """The lease owner of the slow call once the app is making it (the body calls before it are quick)."""
    wait_until(lambda: executed[f"{run_id}:slow"] == 1)
    owner = _lease_owner(node, run_id)
    assert owner is not None
    return owner


def _lease_owner(node: ServerProcess, run_id: str) -> str | None:
    """Who holds the run's call in flight (a body call or a step call: the SDK decides)."""
    rows = db_execute(
        node.data_dir,
        "SELECT lease_owner FROM run WHERE id = ? AND lease_owner IS NOT NULL UNION ALL SELECT s.lease_owner"
        " FROM run_step s JOIN run r ON r.rowid = s.run_rowid WHERE r.id = ? AND s.lease_owner IS NOT NULL",
        (run_id, run_id),
    )
    return str(rows[0][0]) if rows else None


def _node_id(node: ServerProcess) -> str:
    return (node.data_dir / "node.id").read_text().strip()


def at_once(requests: list[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(lambda request: request(), requests))
