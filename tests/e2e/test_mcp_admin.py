"""`rotor-lite mcp --admin` with the operator token of the server's config, across workspaces, and the
`/v1/admin` routes behind it, which accept that token and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.mcp_kit import ADMIN_TOKEN, call, eventually, refused, stdio_session
from tests.helpers import Receiver, Reply, ServerProcess, offline
from tests.mcp_names import ADMIN_TOOL_NAMES


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = ServerProcess(data_dir=tmp_path_factory.mktemp("mcp-admin") / "data",
                            env={"ROTOR_MCP_ADMIN_TOKEN": ADMIN_TOKEN}).start()
    yield started
    started.kill()


def admin_env(server: ServerProcess, token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"ROTOR_ADMIN_TOKEN": token, "ROTOR_API_URL": server.url}


async def test_the_operator_sees_and_triages_every_workspace(server: ServerProcess, receiver: Receiver) -> None:
    name = f"tenant-{uuid.uuid4().hex[:8]}"
    tenant = offline(server.data_dir, "workspaces", "create", name)
    receiver.script("/down", Reply(status=503))
    with server.client(tenant["key"]) as http:
        http.post("/v1/queues", json={"name": "outbound", "retry_attempts": 1, "callback_url": receiver.url("/down")})
        http.post("/v1/schedules", json={"queue": "outbound", "name": "nightly", "cron": "0 2 * * *", "timezone": "UTC"})
        job = http.post("/v1/queues/outbound/jobs", json={"payload": {"to": "a@example.com"}}).json()

    async with stdio_session(admin_env(server), "--admin") as s:
        assert [t.name for t in (await s.list_tools()).tools] == ADMIN_TOOL_NAMES
        workspaces = (await call(s, "rotor_list_workspaces"))["workspaces"]
        queues = (await call(s, "rotor_get_workspace_queues", workspace=name))["queues"]
        schedules = (await call(s, "rotor_get_workspace_schedules", workspace=tenant["id"]))["schedules"]
        dlq = await eventually(lambda: _with_depth(s, name))
        inspected = await call(s, "rotor_inspect_job", workspace=name, queue="outbound", job_id=job["id"])
        unconfirmed = [await refused(s, "rotor_replay_dlq", workspace=name, queue="outbound"),
                       await refused(s, "rotor_fire_schedule_now", workspace=name, schedule_id="nightly")]
        replayed = await call(s, "rotor_replay_dlq", workspace=name, queue="outbound", job_ids=[job["id"]], confirm=True)
        fired = await call(s, "rotor_fire_schedule_now", workspace=name, schedule_id="nightly", confirm=True)
        missing = await refused(s, "rotor_get_workspace_queues", workspace="no-such-workspace")

    assert {"default", name} <= {w["name"] for w in workspaces}
    assert all(w["plan"] and w["createdAt"] for w in workspaces)
    assert [q["name"] for q in queues] == ["outbound"]
    assert [(x["name"], x["drift"]) for x in schedules] == [("nightly", False)]
    assert dlq["depth"] == 1 and [j["id"] for j in dlq["jobs"]] == [job["id"]]
    assert inspected["attemptLog"][0]["status"] == 503
    assert [e["details"]["field"] for e in unconfirmed] == ["confirm", "confirm"]
    assert replayed == {"replayed": 1} and fired["jobId"].startswith("job_")
    assert missing["code"] == "NOT_FOUND"
    with server.client(tenant["key"]) as http:
        audit = http.get("/v1/audit").json()["data"]
    assert {(e["event_type"], e["actor_id"]) for e in audit} >= {("job.retried", "operator"), ("schedule.fired", "operator")}


async def _with_depth(session: object, workspace: str) -> dict[str, object] | None:
    dlq = await call(session, "rotor_get_dlq", workspace=workspace)  # type: ignore[arg-type]
    return dlq if dlq["depth"] else None


def test_the_admin_routes_take_the_operator_token_and_nothing_else(server: ServerProcess) -> None:
    url = f"{server.url}/v1/admin/workspaces"
    with_token = httpx.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with_api_key = httpx.get(url, headers={"Authorization": f"Bearer {server.api_key}"})
    with_nothing = httpx.get(url)
    token_as_key = httpx.get(f"{server.url}/v1/queues", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    assert with_token.status_code == 200 and with_token.json()["data"]
    assert (with_api_key.status_code, with_api_key.json()["error"]["code"]) == (403, "FORBIDDEN")  # a key, not the token
    assert [r.status_code for r in (with_nothing, token_as_key)] == [401, 401]


def test_without_a_configured_token_the_admin_routes_refuse_everything(tmp_path: Path) -> None:
    plain = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        for authorization, status in (("Bearer", 401), (f"Bearer {ADMIN_TOKEN}", 401), (f"Bearer {plain.api_key}", 403)):
            reply = httpx.get(f"{plain.url}/v1/admin/workspaces", headers={"Authorization": authorization})
            assert reply.status_code == status
    finally:
        plain.kill()


async def test_a_wrong_token_is_a_tool_error(server: ServerProcess) -> None:
    async with stdio_session(admin_env(server, "not-the-token"), "--admin") as s:
        assert (await refused(s, "rotor_list_workspaces"))["code"] == "UNAUTHORIZED"


def test_the_token_comes_from_the_servers_config_file(server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "rotor.toml").write_text(f'[mcp]\nadmin_token = "{ADMIN_TOKEN}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTOR_")}
    without = subprocess.run([sys.executable, "-m", "rotor_lite", "mcp", "--admin"], input=b"", capture_output=True,
                             env=env, cwd=tmp_path.parent, timeout=60)
    with_file = subprocess.run([sys.executable, "-m", "rotor_lite", "mcp", "--admin"], input=b"", capture_output=True,
                               env=env, cwd=tmp_path, timeout=60)

    assert without.returncode == 1 and b"admin_token" in without.stderr and without.stdout == b""
    assert with_file.returncode == 0, with_file.stderr  # it found the token and served until stdin closed
