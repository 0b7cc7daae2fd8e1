"""Idempotent triggers: a key seen before for a function starts no new run for it; the quota's 402 comes first."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess, wait_until


@create_function(id="charge-receipt", trigger={"event": "charge.succeeded"})
async def receipt(ctx: Context, step: Step) -> Any:
    return {"receipt": ctx.event.data}


@create_function(id="charge-ledger", trigger={"event": "charge.succeeded"})
async def ledger(ctx: Context, step: Step) -> Any:
    return {"ledger": ctx.event.data}


@create_function(id="refund-receipt", trigger={"event": "charge.refunded"})
async def refund(ctx: Context, step: Step) -> Any:
    return None


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve([receipt, refund])
        yield wf_env


def runs_of(env: WorkflowEnv, function: str) -> list[dict[str, Any]]:
    return list(env.http.get("/v1/runs", params={"function": function, "limit": 200}).json()["data"])


def test_the_same_key_twice_returns_the_first_run_and_starts_none(env: WorkflowEnv) -> None:
    first = env.send("charge.succeeded", {"chargeId": "ch_1"}, idempotencyKey="stripe-evt_1")
    before = len(runs_of(env, "charge-receipt"))

    again = env.send("charge.succeeded", {"chargeId": "ch_1", "retry": True}, idempotencyKey="stripe-evt_1")

    assert "duplicate" not in first and len(first["runIds"]) == 1
    assert again["duplicate"] is True and again["runIds"] == first["runIds"]
    assert len(runs_of(env, "charge-receipt")) == before
    assert env.wait_status(first["runIds"][0], "completed")["output"] == {"receipt": {"chargeId": "ch_1"}}
    snake = env.http.post("/v1/events", json={"name": "charge.succeeded", "data": {}, "idempotency_key": "stripe-evt_1"})
    assert snake.json()["duplicate"] is True and snake.json()["runIds"] == first["runIds"]


def test_another_key_or_none_starts_a_fresh_run(env: WorkflowEnv) -> None:
    first = env.send("charge.succeeded", {}, idempotencyKey="stripe-evt_2")["runIds"]

    other = env.send("charge.succeeded", {}, idempotencyKey="stripe-evt_3")
    without = [env.send("charge.succeeded", {})["runIds"] for _ in range(2)]

    assert "duplicate" not in other and other["runIds"] != first
    assert len({*first, *other["runIds"], *without[0], *without[1]}) == 4


def test_keys_are_per_function(env: WorkflowEnv) -> None:
    """Two functions on one event dedupe separately: a function registered later still gets its first run."""
    first = env.send("charge.succeeded", {"n": 1}, idempotencyKey="stripe-evt_4")
    refunded = env.send("charge.refunded", {}, idempotencyKey="stripe-evt_4")  # same key, another function
    assert "duplicate" not in refunded and len(refunded["runIds"]) == 1
    env.serve([ledger])

    both = env.send("charge.succeeded", {"n": 2}, idempotencyKey="stripe-evt_4")

    assert "duplicate" not in both  # not every function had seen the key
    [receipt_run] = first["runIds"]
    assert len(both["runIds"]) == 2 and receipt_run in both["runIds"]
    [ledger_run] = [run_id for run_id in both["runIds"] if run_id != receipt_run]
    assert env.wait_status(ledger_run, "completed")["output"] == {"ledger": {"n": 2}}
    again = env.send("charge.succeeded", {"n": 3}, idempotencyKey="stripe-evt_4")
    assert again["duplicate"] is True and sorted(again["runIds"]) == sorted(both["runIds"])
    env.http.delete("/v1/functions/charge-ledger")


def test_a_bad_key_is_422(env: WorkflowEnv) -> None:
    for key in ("", "k" * 257):
        reply = env.http.post("/v1/events", json={"name": "charge.succeeded", "data": {}, "idempotencyKey": key})
        assert reply.status_code == 422 and reply.json()["error"]["details"]["field"] == "idempotencyKey"


def test_at_the_quota_the_402_wins_over_a_duplicate(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server(ROTOR_LIMITS_MONTHLY_JOB_QUOTA="2")
    for env in workflow_env(server):
        env.serve([refund])
        first = env.send("charge.refunded", {}, idempotencyKey="k-1")
        env.send("charge.refunded", {}, idempotencyKey="k-2")  # the quota is used up

        duplicate = env.http.post("/v1/events", json={"name": "charge.refunded", "data": {}, "idempotencyKey": "k-1"})
        fresh = env.http.post("/v1/events", json={"name": "charge.refunded", "data": {}, "idempotencyKey": "k-3"})

        for reply in (duplicate, fresh):
            assert reply.status_code == 402 and reply.json()["error"]["code"] == "QUOTA_EXCEEDED", reply.text
        assert len(runs_of(env, "refund-receipt")) == 2
        assert env.run(first["runIds"][0])["status"] in ("pending", "running", "completed")
        no_trigger = env.http.post("/v1/events", json={"name": "nobody.listens", "data": {}})
        assert no_trigger.status_code == 202 and no_trigger.json()["runIds"] == []  # starts no run: nothing to count


def test_a_deferred_event_keeps_its_key(env: WorkflowEnv) -> None:
    at = int(time.time() * 1000) + 300
    first = env.send("charge.refunded", {"n": 1}, idempotencyKey="deferred-1", ts=at)
    second = env.send("charge.refunded", {"n": 2}, idempotencyKey="deferred-1", ts=at)
    assert first["deferred"] is True and second["deferred"] is True and first["runIds"] == []

    # Both are due at the same moment, so one pass of the run driver publishes both.
    runs = wait_until(lambda: [r for r in runs_of(env, "refund-receipt") if r["event"]["id"] in (first["id"], second["id"])])

    assert len(runs) == 1 and runs[0]["event"]["id"] == first["id"] and runs[0]["event"]["data"] == {"n": 1}
    assert env.send("charge.refunded", {}, idempotencyKey="deferred-1")["duplicate"] is True
