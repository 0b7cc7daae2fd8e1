"""`step.wait_for_event`: only the runs whose `match` holds resume, a timeout returns None, a bad `match` fails the step."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess


@create_function(id="event-waiter", trigger={"event": "event.wait"}, retries=0)
async def event_waiter(ctx: Context, step: Step) -> Any:
    data = ctx.event.data
    got = await step.wait_for_event("wait", event=data["event"], match=data.get("match"), timeout=data.get("timeout", "1h"))
    return {"got": got}


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve([event_waiter])
        yield wf_env


@pytest.fixture
def event_name() -> str:
    """An event name of the test's own, so that tests sharing the server do not resume each other's runs."""
    return f"order.{uuid.uuid4().hex[:8]}"


def waiting(env: WorkflowEnv, event: str, match: str | None, **data: Any) -> str:
    [run_id] = env.send("event.wait", {"event": event, "match": match, **data})["runIds"]
    env.wait_step(run_id, "wait:1", "waiting")
    return run_id


def test_only_the_run_whose_match_holds_resumes(env: WorkflowEnv, event_name: str) -> None:
    runs = {order: waiting(env, event_name, f'data.orderId == "{order}"') for order in ("o_1", "o_2", "o_3")}
    reversed_pin = waiting(env, event_name, '"o_2" == data.orderId && data.total > 10')

    sent = env.send(event_name, {"orderId": "o_2", "total": 5})

    assert sent["resumed"] == 1 and sent["runIds"] == []
    assert env.wait_status(runs["o_2"], "completed")["output"] == {"got": {"orderId": "o_2", "total": 5}}
    assert env.run(reversed_pin)["status"] == "waiting"  # pinned to o_2 too, but its total condition fails
    assert env.send(event_name, {"orderId": "o_2", "total": 50})["resumed"] == 1
    assert env.wait_status(reversed_pin, "completed")["output"]["got"]["total"] == 50
    for order in ("o_1", "o_3"):
        assert env.run(runs[order])["status"] == "waiting"
        assert env.step(runs[order], "wait:1")["event"] == event_name


def test_unpinned_matches_and_no_match(env: WorkflowEnv, event_name: str) -> None:
    either = waiting(env, event_name, 'data.source == "web" || data.source == "mobile"')
    scored = waiting(env, event_name, "data.score >= 50")
    anything = waiting(env, event_name, None)

    assert env.send(event_name, {"source": "email", "score": 10})["resumed"] == 1  # the one without a match
    assert env.wait_status(anything, "completed")["output"] == {"got": {"source": "email", "score": 10}}
    assert env.send(event_name, {"source": "mobile"})["resumed"] == 1  # no score: `scored` errors, so no match
    assert env.wait_status(either, "completed")["output"] == {"got": {"source": "mobile"}}
    assert env.run(scored)["status"] == "waiting"
    assert env.send("event.other", {"score": 99})["resumed"] == 0  # another event name
    assert env.send(event_name, {"score": 50.0})["resumed"] == 1
    assert env.wait_status(scored, "completed")["output"] == {"got": {"score": 50.0}}


def test_an_event_sent_before_the_wait_does_not_resume_it(env: WorkflowEnv, event_name: str) -> None:
    env.send(event_name, {"orderId": "early"})
    run_id = waiting(env, event_name, 'data.orderId == "early"')

    assert env.run(run_id)["status"] == "waiting"


def test_a_timeout_returns_none(env: WorkflowEnv, event_name: str) -> None:
    [run_id] = env.send("event.wait", {"event": event_name, "match": 'data.id == "x"', "timeout": "200ms"})["runIds"]

    done = env.wait_status(run_id, "completed", "failed")

    assert done["status"] == "completed" and done["output"] == {"got": None}
    assert done["steps"][0]["status"] == "completed"
    assert env.send(event_name, {"id": "x"})["resumed"] == 0


def test_a_match_that_does_not_parse_fails_the_step_and_the_run(env: WorkflowEnv, event_name: str) -> None:
    [run_id] = env.send("event.wait", {"event": event_name, "match": "data.orderId == == 1"})["runIds"]

    failed = env.wait_status(run_id, "completed", "failed")

    assert failed["status"] == "failed" and failed["error"]["name"] == "InvalidMatchError"
    assert "does not parse" in failed["error"]["message"]
    [step] = failed["steps"]
    assert step["status"] == "failed" and step["error"] == failed["error"]
    assert env.send(event_name, {"orderId": 1})["resumed"] == 0


def test_an_event_name_no_event_can_have_fails_the_step_at_once(env: WorkflowEnv) -> None:
    [run_id] = env.send("event.wait", {"event": "not a name", "match": None})["runIds"]

    failed = env.wait_status(run_id, "completed", "failed")

    assert failed["status"] == "failed" and failed["error"]["name"] == "InvalidStepError"
    assert "not a name" in failed["error"]["message"]
    assert failed["steps"][0]["status"] == "failed"
