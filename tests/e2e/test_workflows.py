"""Durable workflows end to end: a real app served by uvicorn, a real `rotor-lite serve`, the SDK's functions."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from rotor_lite.cli import main

from rotor_lite.sdk import create_function
from rotor_lite.sdk.errors import SignalTimeoutError, WorkflowFailedError, WorkflowTimeoutError
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess

pytestmark = pytest.mark.both_delivery_paths  # every test: in-process, and through two delivery helpers

executed: Counter[str] = Counter()


def fetch_profile(contact_id: str) -> dict[str, str]:
    executed["fetch-profile"] += 1
    return {"email": f"{contact_id}@example.com", "name": contact_id}


@create_function(id="contact-enricher", trigger={"event": "contact.enrich"})
async def enricher(ctx: Context, step: Step) -> Any:
    return await step.run("score", lambda: {"score": 42, "company": "Acme"})


@create_function(id="analytics", trigger={"event": "analytics/contact.scored"})
async def analytics(ctx: Context, step: Step) -> Any:
    return {"seen": ctx.event.data}


@create_function(id="full-primitives", trigger={"event": "campaign.requested"}, retries=2)
async def full_primitives(ctx: Context, step: Step) -> Any:
    """The reference's full-primitive workflow, its durations taken from the event so tests stay fast."""
    data = ctx.event.data
    profile = await step.run("fetch-profile", fetch_profile, data["contactId"])
    await step.sleep("initial-delay", data["sleep"])
    try:
        invoked = await step.invoke("enrich-contact", workflow="contact-enricher", data={"contactId": data["contactId"]}, timeout="5m")
        enriched = invoked["result"]
    except (WorkflowFailedError, WorkflowTimeoutError):
        enriched = {"score": 0, "company": "Unknown"}
    await step.send_event("notify-analytics", name="analytics/contact.scored", data={"contactId": data["contactId"], "score": enriched["score"]})
    try:
        approval = await step.wait_for_signal("approval-gate", signal=f"campaign-approval-{ctx.run_id}", timeout=data["approval_timeout"])
    except SignalTimeoutError:
        return {"status": "auto-rejected", "contactId": data["contactId"]}
    if not approval["approved"]:
        return {"status": "rejected", "contactId": data["contactId"]}
    opened = await step.wait_for_event(
        "wait-for-open", event="email.opened", match=f'data.contactId == "{data["contactId"]}"', timeout="7d"
    )
    return {"status": "complete", "email": profile["email"], "score": enriched["score"], "emailOpened": opened is not None}


@pytest.fixture
def env(server: ServerProcess) -> Iterator[WorkflowEnv]:
    yield from workflow_env(server)


def test_the_full_primitive_workflow(env: WorkflowEnv) -> None:
    env.serve([full_primitives, enricher, analytics])
    executed.clear()
    sent = env.send("campaign.requested", {"contactId": "c_1", "sleep": "300ms", "approval_timeout": "48h"})
    [run_id] = sent["runIds"]
    gate = env.wait_step(run_id, "approval-gate:1", "waiting")
    assert gate["signal"] == f"campaign-approval-{run_id}" and gate["wakeAt"] is not None
    run = env.wait_status(run_id, "waiting")
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["initial-delay:1"]["status"] == "completed"
    child = steps["enrich-contact:1"]
    assert child["status"] == "completed" and child["output"]["result"] == {"score": 42, "company": "Acme"}
    assert run["childRunIds"] == [child["childRunId"]]
    assert env.run(child["childRunId"])["parentRunId"] == run_id

    reply = env.http.post(f"/v1/signals/campaign-approval-{run_id}/complete", json={"data": {"approved": True}})
    assert reply.status_code == 200 and reply.json() == {"runId": run_id}
    env.wait_step(run_id, "wait-for-open:1", "waiting")
    assert env.send("email.opened", {"contactId": "c_other"})["resumed"] == 0
    assert env.send("email.opened", {"contactId": "c_1", "at": "now"})["resumed"] == 1

    done = env.wait_status(run_id, "completed")
    assert done["output"] == {"status": "complete", "email": "c_1@example.com", "score": 42, "emailOpened": True}
    assert executed["fetch-profile"] == 1  # every later call returned the saved outcome
    analytics_runs = env.http.get("/v1/runs", params={"function": "analytics"}).json()["data"]
    assert [r["event"]["data"] for r in analytics_runs] == [{"contactId": "c_1", "score": 42}]
    assert [s["type"] for s in done["steps"]] == [
        "run", "sleep", "invoke", "send_event", "wait_for_signal", "wait_for_event",
    ]


@create_function(id="approval-flow", trigger={"event": "outreach.requested"})
async def approval_flow(ctx: Context, step: Step) -> Any:
    draft = await step.run("draft", lambda: f"hello {ctx.event.data['contactId']}")
    decision = await step.wait_for_signal("wait-for-approval", signal=f"approval-{ctx.run_id}", timeout="48h")
    return {"draft": draft, "approved": decision["approved"]}


def rotor_cli(env: WorkflowEnv, *args: str) -> Any:
    result = CliRunner().invoke(main, [*args, "--api-url", env.server.url, "--api-key", env.server.api_key])
    assert result.exit_code == 0, result.output
    return result


def test_the_cli_registers_sends_shows_the_tree_and_completes_a_signal(env: WorkflowEnv) -> None:
    url = env.serve([approval_flow], register=False)
    rotor_cli(env, "functions", "register", "approval-flow", "--serve-url", url, "--event", "outreach.requested")
    assert "approval-flow" in rotor_cli(env, "functions", "list").output
    sent = json.loads(rotor_cli(env, "events", "send", "outreach.requested", "--data", '{"contactId": "c_9"}', "--json").output)
    [run_id] = sent["runIds"]
    env.wait_step(run_id, "wait-for-approval:1", "waiting")
    tree = rotor_cli(env, "runs", "get", run_id).output
    assert "draft:1 (run) completed" in tree and "wait-for-approval:1 (wait_for_signal) waiting" in tree
    assert f"signal approval-{run_id}" in tree
    assert "resumes" in rotor_cli(env, "signals", "complete", f"approval-{run_id}", "--data", '{"approved": true}').output
    env.wait_status(run_id, "completed")
    listed = rotor_cli(env, "runs", "list", "--function", "approval-flow").output
    assert run_id in listed and "completed" in listed
    key = rotor_cli(env, "functions", "signing-key").output.strip()
    assert key == env.signing_key
