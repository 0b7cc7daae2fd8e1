"""`/mcp` on `rotor-lite serve` (Streamable HTTP) with real workflow runs: the 12 v2 tools and `approve_job`,
each call made under the key of the request that carries it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.mcp_kit import call, eventually, http_session, refused
from tests.e2e.workflow_kit import WorkflowEnv, queue_scoped_key, workflow_env
from tests.helpers import ServerProcess, offline
from tests.mcp_names import WORKFLOW_TOOL_NAMES


@create_function(id="mcp-greeter", trigger={"event": "mcp.greet"}, retries=0)
async def greeter(ctx: Context, step: Step) -> Any:
    name = await step.run("shout", str.upper, ctx.event.data["name"])
    return {"greeting": f"hello {name}"}


@create_function(id="mcp-approval", trigger={"event": "mcp.approval"}, retries=0)
async def needs_approval(ctx: Context, step: Step) -> Any:
    return {"decision": await step.wait_for_signal("approval", signal=f"approval-{ctx.run_id}", timeout="1h")}


@create_function(id="mcp-nightly", trigger={"cron": "0 2 * * *", "timezone": "UTC"}, retries=0)
async def nightly(ctx: Context, step: Step) -> Any:
    return None


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve([greeter, needs_approval, nightly])
        yield wf_env


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def role_key(server: ServerProcess, role: str) -> dict[str, Any]:
    return offline(server.data_dir, "keys", "create", "--workspace", "default", "--role", role)


async def waiting_run(session: Any) -> str:
    """A run of mcp-approval, once it waits for its approval signal."""
    run_id = (await call(session, "trigger_workflow", workflow="mcp-approval"))["run_id"]
    await eventually(lambda: _status_is(session, run_id, "waiting"))
    return str(run_id)


async def _status_is(session: Any, run_id: str, status: str) -> dict[str, Any] | None:
    run = await call(session, "get_run", run_id=run_id)
    return run if run["status"] == status else None


@pytest.mark.parametrize(("key", "status", "code"), [(None, 401, "UNAUTHORIZED"), ("rt_ws_not_a_key", 401, "UNAUTHORIZED")])
def test_mcp_needs_a_key(shared_server: ServerProcess, key: str | None, status: int, code: str) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    reply = httpx.post(f"{shared_server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)

    assert (reply.status_code, reply.json()["error"]["code"]) == (status, code)


def test_a_queue_scoped_key_is_refused(shared_server: ServerProcess) -> None:
    key = queue_scoped_key(shared_server, "some-queue")
    reply = httpx.post(f"{shared_server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                       headers={"Authorization": f"Bearer {key}"})

    assert (reply.status_code, reply.json()["error"]["code"]) == (403, "FORBIDDEN")


async def test_a_client_gets_the_12_v2_tools_and_approve_job(shared_server: ServerProcess) -> None:
    async with http_session(shared_server) as session:
        listed = (await session.list_tools()).tools

    assert [t.name for t in listed] == WORKFLOW_TOOL_NAMES
    drain = next(t for t in listed if t.name == "drain_queue")
    assert "confirm" in drain.input_schema["properties"] and "confirm: true" in (drain.description or "")


async def test_a_client_of_the_per_request_protocol_era_is_served_too(shared_server: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {shared_server.api_key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{shared_server.url}/mcp", http_client=http)) as client,
    ):
        era = client.protocol_version
        listed = await client.list_tools()
        missing = await client.call_tool("queue_stats", {"name": "no-such-queue"})

    assert era in MODERN_PROTOCOL_VERSIONS  # no initialize handshake: the newest era
    assert [t.name for t in listed.tools] == WORKFLOW_TOOL_NAMES
    assert missing.is_error and missing.structured_content["error"]["code"] == "NOT_FOUND"  # type: ignore[index]


async def test_trigger_invoke_and_follow_runs(env: WorkflowEnv) -> None:
    async with http_session(env.server) as s:
        workflows = {w["id"]: w for w in (await call(s, "list_workflows"))["workflows"]}
        triggered = await call(s, "trigger_workflow", workflow="mcp-greeter", data={"name": "ada"})
        run = await eventually(lambda: _status_is(s, triggered["run_id"], "completed"))
        invoked = await call(s, "invoke_workflow", workflow="mcp-greeter", data={"name": "bob"}, timeout=30)
        listed = await call(s, "list_runs", workflow="mcp-greeter", status="completed")
        cron_only = await refused(s, "trigger_workflow", workflow="mcp-nightly")
        unknown = await refused(s, "invoke_workflow", workflow="no-such-workflow")

    assert workflows["mcp-greeter"]["trigger_event"] == "mcp.greet" and "mcp-nightly" in workflows
    assert triggered["run_ids"] == [triggered["run_id"]] and triggered["event_id"].startswith("evt_")
    assert run["output"] == {"greeting": "hello ADA"} and run["functionId"] == "mcp-greeter"
    assert [(step["id"], step["type"], step["status"]) for step in run["steps"]] == [("shout:1", "run", "completed")]
    assert invoked == {"run_id": invoked["run_id"], "status": "completed", "output": {"greeting": "hello BOB"}}
    assert {triggered["run_id"], invoked["run_id"]} <= {r["id"] for r in listed["runs"]}
    assert cron_only["code"] == "VALIDATION_ERROR" and cron_only["details"]["field"] == "workflow"
    assert unknown["code"] == "NOT_FOUND"


async def test_approve_run_completes_the_runs_approval_signal(env: WorkflowEnv) -> None:
    async with http_session(env.server) as s:
        approved_run, rejected_run = await waiting_run(s), await waiting_run(s)
        approved = await call(s, "approve_run", run_id=approved_run)
        rejected = await call(s, "approve_run", signal_id=f"approval-{rejected_run}", action="reject", reason="too early")
        first = await eventually(lambda: _status_is(s, approved_run, "completed"))
        second = await eventually(lambda: _status_is(s, rejected_run, "completed"))
        again = await refused(s, "approve_run", run_id=approved_run)

    assert approved == {"runId": approved_run, "signal": f"approval-{approved_run}", "data": {"approved": True}}
    assert rejected["runId"] == rejected_run
    assert first["output"] == {"decision": {"approved": True}}
    assert second["output"] == {"decision": {"approved": False, "reason": "too early"}}
    assert again["code"] == "CONFLICT"


async def test_invoke_stops_waiting_at_its_timeout_and_cancel_run_ends_the_run(env: WorkflowEnv) -> None:
    async with http_session(env.server) as s:
        timed_out = await refused(s, "invoke_workflow", workflow="mcp-approval", timeout=0.5)
        run_id = timed_out["details"]["run_id"]
        cancelled = await call(s, "cancel_run", run_id=run_id)
        cancelled_again = await call(s, "cancel_run", run_id=run_id)

    assert timed_out["code"] == "TIMEOUT" and timed_out["details"]["status"] in ("running", "waiting")
    assert cancelled["status"] == cancelled_again["status"] == "cancelled"


async def test_queue_and_schedule_tools(shared_server: ServerProcess) -> None:
    queue, other, schedule = unique("mcp-q"), unique("mcp-other"), unique("mcp-nightly")
    async with http_session(shared_server) as s:
        created = await call(s, "upsert_queue", name=queue, concurrency=3, retry_attempts=2)
        updated = await call(s, "upsert_queue", name=queue, concurrency=1)
        paused = await call(s, "set_queue_state", name=queue, state="pause")
        resumed = await call(s, "set_queue_state", name=queue, state="active")
        unconfirmed = [await refused(s, "set_queue_state", name=queue, state="drain"),
                       await refused(s, "drain_queue", name=queue)]
        drained = [await call(s, "set_queue_state", name=queue, state="drain", confirm=True),
                   await call(s, "drain_queue", name=queue, confirm=True)]
        stats = await call(s, "queue_stats", name=queue)
        await call(s, "upsert_queue", name=other)
        first = await call(s, "upsert_schedule", name=schedule, queue=queue, cron="0 2 * * *", timezone="UTC")
        second = await call(s, "upsert_schedule", name=schedule, queue=queue, cron="0 3 * * *", timezone="UTC")
        moved = await refused(s, "upsert_schedule", name=schedule, queue=other, cron="0 3 * * *", timezone="UTC")

    assert (created["concurrency"], created["retry_attempts"]) == (3, 2)
    assert (updated["concurrency"], updated["retry_attempts"]) == (1, 2)
    assert (paused["state"], resumed["state"]) == ("paused", "active")
    assert [e["details"]["field"] for e in unconfirmed] == ["confirm", "confirm"]
    assert drained == [{"drained": 0}, {"drained": 0}]
    assert set(stats) == {"waiting", "delayed", "active", "completed", "failed", "pending_approval", "blocked", "cancelled"}
    assert second["id"] == first["id"] and (first["cron"], second["cron"]) == ("0 2 * * *", "0 3 * * *")
    assert moved["code"] == "CONFLICT"


async def test_approve_job_lists_approves_and_rejects(shared_server: ServerProcess) -> None:
    queue = unique("mcp-approvals")
    async with http_session(shared_server) as s:
        await call(s, "upsert_queue", name=queue, approval_required=True)
        with shared_server.client() as http:
            jobs = [http.post(f"/v1/queues/{queue}/jobs", json={"payload": {"n": n}}).json() for n in range(3)]
        pending = await call(s, "approve_job", action="list", queue=queue)
        approved = await call(s, "approve_job", approval_id=jobs[0]["approvalId"])
        rejected = await call(s, "approve_job", action="reject", queue=queue, job_id=jobs[1]["id"], reason="too aggressive")
        via_run_tool = await call(s, "approve_run", queue=queue, job_id=jobs[2]["id"])
        decided_twice = await refused(s, "approve_job", approval_id=jobs[0]["approvalId"])

    assert sorted(a["jobId"] for a in pending["approvals"]) == sorted(j["id"] for j in jobs)
    assert (approved["status"], rejected["status"], via_run_tool["status"]) == ("approved", "rejected", "approved")
    assert rejected["reason"] == "too aggressive" and decided_twice["code"] == "CONFLICT"
    with shared_server.client() as http:
        states = [http.get(f"/v1/queues/{queue}/jobs/{j['id']}").json() for j in jobs]
    assert [(j["state"], j["failReason"]) for j in states] == [("waiting", None), ("failed", "rejected"), ("waiting", None)]


async def test_a_viewer_keys_session_reads_but_changes_nothing(env: WorkflowEnv) -> None:
    viewer = role_key(env.server, "viewer")["key"]
    queue = unique("mcp-viewer")
    async with http_session(env.server, viewer) as s:
        assert "workflows" in await call(s, "list_workflows")
        assert "approvals" in await call(s, "approve_job", action="list")
        refusals = [
            await refused(s, "trigger_workflow", workflow="mcp-greeter", data={"name": "x"}),
            await refused(s, "upsert_queue", name=queue),
            await refused(s, "upsert_schedule", name=queue, queue=queue, cron="0 2 * * *", timezone="UTC"),
            await refused(s, "approve_run", signal_id="approval-run_x"),
            await refused(s, "cancel_run", run_id="run_x"),
        ]

    assert [(e["code"], e["details"].get("role")) for e in refusals] == [("FORBIDDEN", "viewer")] * 5
    with env.server.client() as http:
        assert http.get(f"/v1/queues/{queue}").status_code == 404


async def test_each_tool_call_is_audited_with_the_callers_key(shared_server: ServerProcess) -> None:
    developer = role_key(shared_server, "developer")
    queue = unique("mcp-audited")
    async with http_session(shared_server, developer["key"]) as s:
        await call(s, "upsert_queue", name=queue)

    with shared_server.client() as http:
        events = http.get("/v1/audit", params={"event_type": "queue.created"}).json()["data"]
    assert [(e["actor_id"], e["resource_id"]) for e in events if e["resource_id"] == queue] == [(developer["id"], queue)]
