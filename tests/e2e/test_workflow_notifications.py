"""What runs tell the outside: `run.*` webhooks, a failure alert, the audit log, and `/metrics`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rotor_lite.sdk import Webhook, create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import Receiver, ServerProcess, wait_until


@create_function(id="notify-me", trigger={"event": "notify.run"}, retries=1)
async def notify_me(ctx: Context, step: Step) -> Any:
    outcome = ctx.event.data["outcome"]
    if outcome == "fail":
        raise RuntimeError("the run fails on purpose")
    if outcome == "wait":
        await step.wait_for_signal("gate", signal=f"notify-{ctx.run_id}", timeout="1h")
    return {"outcome": outcome}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rec:
        yield rec


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("notify") / "data"
    server = ServerProcess(data_dir=data_dir, env={
        "ROTOR_ALERTS_SLACK_URL_PREFIXES": f"http://127.0.0.1:{receiver.port}/",
        "ROTOR_ALERTS_DASHBOARD_URL": "https://rotor.example.test/dash",
        "ROTOR_WEBHOOKS_POLL_INTERVAL": "50ms", "ROTOR_WEBHOOKS_RETRY_SCHEDULE": "0s,50ms,100ms",
    }).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def env(server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(server):
        wf_env.serve([notify_me])
        yield wf_env


def run_with(env: WorkflowEnv, outcome: str) -> str:
    [run_id] = env.send("notify.run", {"outcome": outcome})["runIds"]
    return run_id


def samples(env: WorkflowEnv, name: str) -> dict[str, float]:
    """The samples of one counter for the `notify-me` function, by their `status` label (or "" without one)."""
    text = env.http.get("/metrics").text  # an admin key scrapes its workspace's series
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_total" and sample.labels.get("function") == "notify-me":
                found[sample.labels.get("status", "")] = sample.value
    return found


def test_run_webhooks_and_one_failure_alert(env: WorkflowEnv, receiver: Receiver) -> None:
    hook = env.http.post("/v1/webhooks", json={"url": receiver.url("/wh"),
                                               "eventTypes": ["run.completed", "run.failed", "run.cancelled"]}).json()
    assert env.http.put("/v1/alerts", json={"slackWebhookUrl": receiver.url("/slack")}).status_code == 200
    completed, failed, cancelled = run_with(env, "complete"), run_with(env, "fail"), run_with(env, "wait")
    env.wait_step(cancelled, "gate:1", "waiting")
    env.http.post(f"/v1/runs/{cancelled}/cancel")

    got = wait_until(lambda: len(receiver.for_path("/wh")) >= 3 and receiver.for_path("/wh"))
    [alert] = wait_until(lambda: receiver.for_path("/slack"))

    events = {event["type"]: event["data"] for event in (Webhook(hook["secret"]).verify(r.body, r.headers) for r in got)}
    assert set(events) == {"run.completed", "run.failed", "run.cancelled"}
    assert events["run.completed"]["runId"] == completed and events["run.completed"]["output"] == {"outcome": "complete"}
    assert events["run.completed"]["functionId"] == "notify-me" and events["run.completed"]["status"] == "completed"
    assert events["run.failed"]["runId"] == failed and events["run.failed"]["status"] == "failed"
    assert events["run.failed"]["error"] == {"name": "RuntimeError", "message": "the run fails on purpose"}
    assert events["run.cancelled"]["runId"] == cancelled and events["run.cancelled"]["error"]["name"] == "WorkflowCancelledError"
    assert all(data["endedAt"] for data in events.values())
    card = alert.json()
    assert card["blocks"][0]["text"]["text"] == "❌ *Run failed in `notify-me`*"
    assert f"Run ID: {failed}" in card["blocks"][1]["text"]["text"]
    assert "Reason: RuntimeError: the run fails on purpose" in card["blocks"][1]["text"]["text"]
    assert card["blocks"][2]["elements"][0]["url"] == f"https://rotor.example.test/dash/runs/{failed}"
    assert env.run(failed)["attempt"] == 2  # retries=1: the alert came once, after the second attempt
    assert len(receiver.for_path("/slack")) == 1 and len(receiver.for_path("/wh")) == 3


def test_the_audit_log_records_registration_cancel_replay_and_signals(env: WorkflowEnv) -> None:
    waiting = run_with(env, "wait")
    env.wait_step(waiting, "gate:1", "waiting")
    env.http.post(f"/v1/signals/notify-{waiting}/complete", json={"data": {"ok": True}})
    to_cancel = run_with(env, "wait")
    env.wait_step(to_cancel, "gate:1", "waiting")
    env.http.post(f"/v1/runs/{to_cancel}/cancel")
    replay = env.http.post(f"/v1/runs/{to_cancel}/replay").json()["id"]
    env.wait_step(replay, "gate:1", "waiting")
    env.http.post(f"/v1/runs/{replay}/cancel")
    env.http.post("/v1/functions/signing-key/rotate")

    audit = env.http.get("/v1/audit", params={"limit": 200}).json()["data"]

    seen = {(e["event_type"], e["resource_type"], e["resource_id"]) for e in audit}
    assert ("function.registered", "function", "notify-me") in seen
    assert ("signal.completed", "signal", f"notify-{waiting}") in seen
    assert ("run.cancelled", "run", to_cancel) in seen and ("run.cancelled", "run", replay) in seen
    assert ("run.replayed", "run", to_cancel) in seen
    assert ("function.signing_key_rotated", "signing_key", None) in seen
    assert not [e for e in audit if e["event_type"].startswith("event")]  # sending events is the data plane
    actor = next(e["actor_id"] for e in audit if e["event_type"] == "run.replayed")
    assert actor.startswith("key_")


def test_runs_started_and_finished_are_in_metrics(env: WorkflowEnv) -> None:
    started, finished = samples(env, "rotor_runs_started"), samples(env, "rotor_runs_finished")
    done, failed = run_with(env, "complete"), run_with(env, "fail")
    cancelled = run_with(env, "wait")
    env.wait_status(done, "completed")
    env.wait_status(failed, "failed")
    env.wait_step(cancelled, "gate:1", "waiting")
    env.http.post(f"/v1/runs/{cancelled}/cancel")

    after_started, after_finished = samples(env, "rotor_runs_started"), samples(env, "rotor_runs_finished")

    assert after_started[""] == started.get("", 0) + 3
    for status in ("completed", "failed", "cancelled"):
        assert after_finished[status] == finished.get(status, 0) + 1, status
