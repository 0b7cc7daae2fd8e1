"""Workspaces: another workspace's function, run, event trigger, event waiter and signal are out of reach (404)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.errors import WorkflowError
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, other_workspace_key, workflow_env
from tests.helpers import ServerProcess


@create_function(id="iso-private", trigger={"event": "iso.start"}, retries=0)
async def private(ctx: Context, step: Step) -> Any:
    if ctx.event.data.get("fail"):
        raise ValueError("failed for the replay attempt")
    await step.wait_for_event("hear", event="iso.ping", match='data.to == "me"', timeout="1h")
    return await step.wait_for_signal("gate", signal=f"iso-{ctx.run_id}", timeout="1h")


@create_function(id="iso-prober", trigger={"event": "iso.probe"}, retries=0)
async def prober(ctx: Context, step: Step) -> Any:
    try:
        return await step.invoke("reach", workflow="iso-private", data={}, timeout="1m")
    except WorkflowError as exc:
        return {"name": exc.name, "message": exc.message}


@pytest.fixture(scope="module")
def home(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for env in workflow_env(shared_server):
        env.serve([private])
        yield env


@pytest.fixture(scope="module")
def intruder(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for env in workflow_env(shared_server, other_workspace_key(shared_server)):
        env.serve([prober])
        yield env


def not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_another_workspaces_function_run_and_signal_are_404(home: WorkflowEnv, intruder: WorkflowEnv) -> None:
    [run_id] = home.send("iso.start", {})["runIds"]
    home.wait_step(run_id, "hear:1", "waiting")
    [failed_id] = home.send("iso.start", {"fail": True})["runIds"]
    home.wait_status(failed_id, "failed")
    http = intruder.http

    for response in (
        http.get("/v1/functions/iso-private"), http.delete("/v1/functions/iso-private"),
        http.get(f"/v1/runs/{run_id}"), http.post(f"/v1/runs/{run_id}/cancel"), http.post(f"/v1/runs/{failed_id}/replay"),
        http.post(f"/v1/signals/iso-{run_id}/complete", json={"data": {}}),
    ):
        not_found(response)
    assert "iso-private" not in [f["id"] for f in http.get("/v1/functions").json()["data"]]
    assert run_id not in [r["id"] for r in http.get("/v1/runs").json()["data"]]
    assert http.get("/v1/runs", params={"function": "iso-private"}).json()["data"] == []
    assert http.get("/v1/functions/signing-key").json()["signingKey"] == intruder.signing_key != home.signing_key

    # Events stay in their workspace: no run starts, no waiter resumes, no cancel lands.
    assert intruder.send("iso.start", {})["runIds"] == []
    assert intruder.send("iso.ping", {"to": "me"})["resumed"] == 0
    intruder.send("rotor/cancel.run", {"runId": run_id})
    assert home.run(run_id)["status"] == "waiting" and home.step(run_id, "hear:1")["status"] == "waiting"

    # The owner still reaches everything.
    assert home.send("iso.ping", {"to": "me"})["resumed"] == 1
    home.wait_step(run_id, "gate:1", "waiting")
    not_found(http.post(f"/v1/signals/iso-{run_id}/complete", json={"data": {}}))
    assert home.http.post(f"/v1/signals/iso-{run_id}/complete", json={"data": "ok"}).json() == {"runId": run_id}
    assert home.wait_status(run_id, "completed")["output"] == "ok"
    assert home.http.get("/v1/functions/iso-private").status_code == 200


def test_an_invoke_cannot_reach_another_workspaces_function(home: WorkflowEnv, intruder: WorkflowEnv) -> None:
    [run_id] = intruder.send("iso.probe", {})["runIds"]

    done = intruder.wait_status(run_id, "completed", "failed")

    assert done["output"] == {"name": "InvokeError", "message": "function 'iso-private' does not exist"}
    assert home.http.get("/v1/runs", params={"function": "iso-private", "status": "pending"}).json()["data"] == []


def test_function_ids_are_per_workspace(home: WorkflowEnv, intruder: WorkflowEnv) -> None:
    url = "http://127.0.0.1:9/"
    mine = home.http.get("/v1/functions/iso-private").json()

    created = intruder.http.post("/v1/functions", json={"id": "iso-private", "serve_url": url, "trigger_event": "x.y"})

    assert created.status_code == 201, created.text
    assert home.http.get("/v1/functions/iso-private").json() == mine
    assert intruder.http.delete("/v1/functions/iso-private").status_code == 204
    assert home.http.get("/v1/functions/iso-private").json() == mine
