"""The workflow API's refusals: bad functions, events and bodies (422, 413), and what each key may do (403)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, queue_scoped_key, role_key, workflow_env
from tests.helpers import ServerProcess

URL = "http://127.0.0.1:9/"
KIB = 1024


@create_function(id="api-gate", trigger={"event": "api.gate"})
async def gate(ctx: Context, step: Step) -> Any:
    return await step.wait_for_signal("gate", signal=f"api-{ctx.run_id}", timeout="1h")


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve([gate])
        yield wf_env


def refused(response: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    if field is not None:
        assert error["details"]["field"] == field, error


def function(**fields: Any) -> dict[str, Any]:
    return {"id": "api-fn", "serve_url": URL, "trigger_type": "event", "trigger_event": "api.fn", **fields}


@pytest.mark.parametrize(("body", "field"), [
    (function(id=""), "id"), (function(id="-starts-with-dash"), "id"), (function(id="has space"), "id"),
    (function(id="x" * 129), "id"), (function(id="a/b"), "id"),
    (function(trigger_event=None), "trigger_event"), (function(trigger_event="bad name"), "trigger_event"),
    (function(trigger_type="webhook"), "trigger_type"),
    (function(trigger_type="cron", trigger_event=None, cron="0 9 * * *"), "timezone"),
    (function(trigger_type="cron", trigger_event=None, cron="every day", timezone="UTC"), "cron"),
    (function(trigger_type="cron", trigger_event=None, cron="0 9 * * *", timezone="Mars/Olympus"), "timezone"),
    (function(serve_url="ftp://127.0.0.1/"), "serve_url"), (function(serve_url="not a url"), "serve_url"),
    (function(retries=-1), "retries"), (function(retries=21), "retries"), (function(concurrency=0), "concurrency"),
    (function(hooks=["on_start"]), "hooks"), (function(bogus=1), "bogus"), ({"serve_url": URL}, "id"),
])
def test_a_bad_function_is_422_and_registers_nothing(env: WorkflowEnv, body: dict[str, Any], field: str) -> None:
    refused(env.http.post("/v1/functions", json=body), 422, "VALIDATION_ERROR", field)
    assert env.http.get("/v1/functions/api-fn").status_code == 404


def test_a_serve_url_on_a_private_network_is_refused_when_they_are_off(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server(ROTOR_CALLBACKS_ALLOW_PRIVATE_NETWORKS="false")
    with server.client() as http:
        for url in ("http://127.0.0.1:8000/", "http://10.0.0.5/rotor", "http://169.254.169.254/latest", "http://[::1]/"):
            refused(http.post("/v1/functions", json=function(serve_url=url)), 422, "VALIDATION_ERROR", "serve_url")
        assert http.get("/v1/functions").json()["data"] == []
        assert http.post("/v1/functions", json=function(serve_url="https://app.example.com/api/rotor")).status_code == 201


@pytest.mark.parametrize("name", ["", "has space", "-dash-first", "x" * 129, "ünïcode", "a?b"])
def test_a_bad_event_name_is_422(env: WorkflowEnv, name: str) -> None:
    refused(env.http.post("/v1/events", json={"name": name, "data": {}}), 422, "VALIDATION_ERROR", "name")


def test_event_data_is_limited_to_512_kib(env: WorkflowEnv) -> None:
    overhead = len('{"blob":""}')
    at_limit = {"blob": "x" * (512 * KIB - overhead)}
    over = {"blob": "x" * (512 * KIB - overhead + 1)}

    assert env.http.post("/v1/events", json={"name": "api.nobody", "data": at_limit}).status_code == 202
    refused(env.http.post("/v1/events", json={"name": "api.nobody", "data": over}), 413, "PAYLOAD_TOO_LARGE")
    signal = env.http.post("/v1/signals/api-any/complete", json={"data": over})
    refused(signal, 422, "VALIDATION_ERROR", "data")


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/events", {"name": "api.x", "bogus": 1}, "bogus"),
    ("/v1/events", {"data": {}}, "name"),
    ("/v1/events", {"name": "api.x", "ts": "tomorrow"}, "ts"),
    ("/v1/events", {"name": "rotor/cancel.run", "data": {}}, "data.runId"),
    ("/v1/signals/api-any/complete", {"data": {}, "bogus": 1}, "bogus"),
    ("/v1/signals/api-any/complete", {"data": {}, "runId": 7}, None),  # details.field says `run_id`
])
def test_unknown_or_mistyped_fields_are_422(env: WorkflowEnv, path: str, body: dict[str, Any], field: str | None) -> None:
    refused(env.http.post(path, json=body), 422, "VALIDATION_ERROR", field)


def test_bad_run_list_filters_are_422(env: WorkflowEnv) -> None:
    refused(env.http.get("/v1/runs", params={"status": "sleepy"}), 422, "VALIDATION_ERROR", "status")
    refused(env.http.get("/v1/runs", params={"limit": 0}), 422, "VALIDATION_ERROR", "limit")
    refused(env.http.get("/v1/runs", params={"from": "yesterday"}), 422, "VALIDATION_ERROR", "from")
    refused(env.http.get("/v1/functions", params={"limit": 1000}), 422, "VALIDATION_ERROR", "limit")


def waiting_run(env: WorkflowEnv) -> str:
    [run_id] = env.send("api.gate", {})["runIds"]
    env.wait_step(run_id, "gate:1", "waiting")
    return run_id


def test_a_viewer_reads_runs_and_functions_but_changes_nothing(env: WorkflowEnv) -> None:
    run_id = waiting_run(env)
    with env.server.client(role_key(env.server, "viewer")) as viewer:
        assert viewer.get(f"/v1/runs/{run_id}").json()["status"] == "waiting"
        assert run_id in [r["id"] for r in viewer.get("/v1/runs").json()["data"]]
        assert viewer.get("/v1/functions/api-gate").status_code == 200
        assert viewer.get("/v1/functions").status_code == 200
        for response in (
            viewer.post("/v1/events", json={"name": "api.gate", "data": {}}),
            viewer.post(f"/v1/runs/{run_id}/cancel"), viewer.post(f"/v1/runs/{run_id}/replay"),
            viewer.post(f"/v1/signals/api-{run_id}/complete", json={"data": {}}),
            viewer.post("/v1/functions", json=function()), viewer.delete("/v1/functions/api-gate"),
            viewer.get("/v1/functions/signing-key"), viewer.post("/v1/functions/signing-key/rotate"),
        ):
            refused(response, 403, "FORBIDDEN")
    assert env.run(run_id)["status"] == "waiting"


def test_an_approver_completes_signals_and_nothing_else(env: WorkflowEnv) -> None:
    run_id = waiting_run(env)
    with env.server.client(role_key(env.server, "approver")) as approver:
        refused(approver.post("/v1/events", json={"name": "api.gate", "data": {}}), 403, "FORBIDDEN")
        refused(approver.post(f"/v1/runs/{run_id}/cancel"), 403, "FORBIDDEN")
        reply = approver.post(f"/v1/signals/api-{run_id}/complete", json={"data": {"by": "approver"}})
        assert reply.status_code == 200 and reply.json() == {"runId": run_id}
    assert env.wait_status(run_id, "completed")["output"] == {"by": "approver"}


def test_a_developer_sends_and_cancels_but_does_not_see_the_signing_key(env: WorkflowEnv) -> None:
    with env.server.client(role_key(env.server, "developer")) as developer:
        [run_id] = developer.post("/v1/events", json={"name": "api.gate", "data": {}}).json()["runIds"]
        env.wait_step(run_id, "gate:1", "waiting")
        assert developer.post(f"/v1/runs/{run_id}/cancel").json()["status"] == "cancelled"
        refused(developer.get("/v1/functions/signing-key"), 403, "FORBIDDEN")
        refused(developer.post("/v1/functions/signing-key/rotate"), 403, "FORBIDDEN")


def test_a_queue_scoped_key_reaches_no_workflow_route(env: WorkflowEnv) -> None:
    run_id = waiting_run(env)
    with env.server.client(queue_scoped_key(env.server, "some-queue")) as scoped:
        for response in (
            scoped.get("/v1/functions"), scoped.get("/v1/functions/api-gate"), scoped.post("/v1/functions", json=function()),
            scoped.delete("/v1/functions/api-gate"), scoped.get("/v1/functions/signing-key"),
            scoped.post("/v1/events", json={"name": "api.gate", "data": {}}),
            scoped.get("/v1/runs"), scoped.get(f"/v1/runs/{run_id}"), scoped.post(f"/v1/runs/{run_id}/cancel"),
            scoped.post(f"/v1/runs/{run_id}/replay"), scoped.post(f"/v1/signals/api-{run_id}/complete", json={"data": {}}),
        ):
            refused(response, 403, "FORBIDDEN")
    assert env.run(run_id)["status"] == "waiting"
    env.http.post(f"/v1/runs/{run_id}/cancel")
