"""`rotor-lite mcp` (stdio) as Claude Code starts it, against a real `rotor-lite serve`: the 27 workspace tools,
confirm-gating, the key's role, tool errors, and a stdout that carries nothing but JSON-RPC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from tests.e2e.mcp_kit import call, eventually, mcp_env, refused, stdio_session
from tests.e2e.test_readme import README, code_blocks, section
from tests.helpers import Receiver, Reply, ServerProcess, offline
from tests.mcp_names import WORKSPACE_TOOL_NAMES

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = ServerProcess(data_dir=tmp_path_factory.mktemp("mcp") / "data").start()
    yield started
    started.kill()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_workspace(server: ServerProcess) -> str:
    """The admin key of a new, empty workspace."""
    return str(offline(server.data_dir, "workspaces", "create", unique("ws"))["key"])


async def test_an_ai_tool_gets_the_27_documented_tools_each_with_a_schema(server: ServerProcess) -> None:
    async with stdio_session(mcp_env(server)) as session:
        listed = (await session.list_tools()).tools

    assert [t.name for t in listed] == WORKSPACE_TOOL_NAMES
    create = next(t for t in listed if t.name == "rotor_create_queue")
    assert {"name", "concurrency", "retry_attempts"} <= set(create.input_schema["properties"])
    assert all(t.input_schema["type"] == "object" and t.description for t in listed)
    destructive = {t.name for t in listed if t.annotations and t.annotations.destructive_hint}
    assert destructive == {t.name for t in listed if "confirm" in t.input_schema["properties"]}
    assert len(destructive) == 7


async def test_the_readmes_three_configs_start_the_workspace_server(server: ServerProcess) -> None:
    configs = [json.loads(block) for block in code_blocks(section(README.read_text(), "## Use it from AI tools"), "json")]

    assert [list(config) for config in configs] == [["mcpServers"], ["mcpServers"], ["servers"]]  # Claude Code, Desktop, Cursor
    entries = [next(iter(config.values()))["rotor"] for config in configs]
    assert all((e["command"], e["args"], set(e["env"])) == ("rotor-lite", ["mcp"], {"ROTOR_API_KEY", "ROTOR_API_URL"})
               for e in entries)
    installed = str(Path(sys.executable).parent / entries[0]["command"])  # the script this environment installed
    async with stdio_session(mcp_env(server), program=[installed]) as session:
        assert len((await session.list_tools()).tools) == 27


async def test_list_queues_on_an_empty_workspace_and_the_documented_first_prompt(server: ServerProcess) -> None:
    key = new_workspace(server)
    async with stdio_session(mcp_env(server, key)) as session:
        assert await call(session, "rotor_list_queues") == {"queues": []}
        created = await call(session, "rotor_create_queue", name="welcome-emails", concurrency=5, retry_attempts=3)
        listed = await call(session, "rotor_list_queues")

    assert (created["name"], created["concurrency"], created["retry_attempts"]) == ("welcome-emails", 5, 3)
    assert [q["name"] for q in listed["queues"]] == ["welcome-emails"]
    # the CLI and the MCP server share one backend
    with server.client(key) as http:
        assert http.get("/v1/queues/welcome-emails").json()["concurrency"] == 5


async def test_queue_job_and_dlq_tools_against_the_real_server(server: ServerProcess, receiver: Receiver) -> None:
    queue = unique("mcp-jobs")
    receiver.script("/fail", Reply(status=500), Reply(status=500))
    async with stdio_session(mcp_env(server)) as s:
        created = await call(s, "rotor_create_queue", name=queue, concurrency=2, retry_attempts=1,
                             callback_url=receiver.url("/fail"))
        assert created["callback_secret"] and (await call(s, "rotor_get_queue", name=queue))["state"] == "active"
        assert (await call(s, "rotor_update_queue", name=queue, timeout_seconds=5))["timeout_seconds"] == 5
        assert (await call(s, "rotor_set_queue_state", name=queue, state="pause"))["state"] == "paused"

        failing = await call(s, "rotor_add_job", queue=queue, payload={"n": 1}, job_id=unique("job"))
        later = await call(s, "rotor_add_job", queue=queue, payload={"n": 2}, delay="1h", tags=["later"])
        assert [j["id"] for j in (await call(s, "rotor_list_jobs", queue=queue, tag="later"))["jobs"]] == [later["id"]]
        cancelled = await call(s, "rotor_delete_job", queue=queue, job_id=later["id"], confirm=True)
        assert cancelled["state"] == "cancelled"
        assert (await call(s, "rotor_retry_job", queue=queue, job_id=later["id"]))["state"] == "waiting"

        assert (await call(s, "rotor_set_queue_state", name=queue, state="active"))["state"] == "active"
        job = await eventually(lambda: _in_state(s, queue, failing["id"], "failed"))
        assert job["attemptLog"][0]["status"] == 500
        dlq = await call(s, "rotor_get_dlq", queue=queue)
        assert failing["id"] in [j["id"] for j in dlq["jobs"]]
        assert await call(s, "rotor_replay_dlq", queue=queue, job_ids=[failing["id"]], confirm=True) == {"replayed": 1}
        assert "drained" in await call(s, "rotor_drain_queue", name=queue, confirm=True)
        assert (await call(s, "rotor_get_status"))["api"] == "ok"
        assert await call(s, "rotor_delete_queue", name=queue, confirm=True) == {"deleted": True, "name": queue}
        assert (await refused(s, "rotor_get_queue", name=queue))["code"] == "NOT_FOUND"


async def _in_state(session: Any, queue: str, job_id: str, state: str) -> dict[str, Any] | None:
    job = await call(session, "rotor_get_job", queue=queue, job_id=job_id)
    return job if job["state"] == state else None


async def test_schedule_tools_against_the_real_server(server: ServerProcess) -> None:
    queue, name = unique("mcp-sched"), unique("nightly-export")
    async with stdio_session(mcp_env(server)) as s:
        await call(s, "rotor_create_queue", name=queue)
        created = await call(s, "rotor_create_schedule", queue=queue, name=name, cron="0 2 * * *", timezone="UTC",
                             payload={"export": "all"})
        assert created["description"] == "At 02:00" and created["id"].startswith("sched_")
        assert (await call(s, "rotor_get_schedule", id=name))["id"] == created["id"]
        assert name in [x["name"] for x in (await call(s, "rotor_list_schedules"))["schedules"]]
        updated = await call(s, "rotor_update_schedule", id=created["id"], cron="30 2 * * *", enabled=False)
        assert (updated["cron"], updated["enabled"]) == ("30 2 * * *", False)
        fired = await call(s, "rotor_force_fire_schedule", id=name, confirm=True)
        runs = (await call(s, "rotor_inspect_run_history", id=name))["runs"]
        assert [(r["job_id"], r["manual"]) for r in runs] == [(fired["jobId"], True)]
        assert await call(s, "rotor_delete_schedule", id=name, confirm=True) == {"deleted": True, "id": name}
        assert (await refused(s, "rotor_get_schedule", id=name))["code"] == "NOT_FOUND"


async def test_key_and_workspace_tools_against_the_real_server(server: ServerProcess) -> None:
    async with stdio_session(mcp_env(server)) as s:
        created = await call(s, "rotor_create_api_key", label="claude-code", role="viewer")
        listed = await call(s, "rotor_list_api_keys")
        revoked = await call(s, "rotor_revoke_api_key", id=created["id"], confirm=True)
        workspaces = (await call(s, "rotor_list_workspaces"))["workspaces"]
        default = next(w for w in workspaces if w["name"] == "default")
        got = await call(s, "rotor_get_workspace", id=default["id"])

    assert created["key"].startswith("rt_") and created["role"] == "viewer"
    assert created["id"] in [k["id"] for k in listed["api_keys"]] and "key" not in listed["api_keys"][0]
    assert revoked == {"revoked": True, "id": created["id"]}
    with server.client(created["key"]) as http:
        assert http.get("/v1/status").status_code == 401
    assert (got["name"], got["id"]) == ("default", default["id"])


async def test_destructive_tools_do_nothing_without_confirm(server: ServerProcess) -> None:
    queue, schedule = unique("keep"), unique("keep-sched")
    async with stdio_session(mcp_env(server)) as s:
        await call(s, "rotor_create_queue", name=queue)
        job = await call(s, "rotor_add_job", queue=queue, delay="1h")
        await call(s, "rotor_create_schedule", queue=queue, name=schedule, cron="0 2 * * *", timezone="UTC")
        attempts = [
            ("rotor_drain_queue", {"name": queue}), ("rotor_delete_queue", {"name": queue, "confirm": False}),
            ("rotor_delete_schedule", {"id": schedule}), ("rotor_force_fire_schedule", {"id": schedule}),
            ("rotor_delete_job", {"queue": queue, "job_id": job["id"]}), ("rotor_replay_dlq", {"queue": queue}),
            ("rotor_revoke_api_key", {"id": "key_0"}),
        ]
        for tool, arguments in attempts:
            error = await refused(s, tool, **arguments)
            assert (error["code"], error["details"]["field"]) == ("VALIDATION_ERROR", "confirm"), tool
            assert "confirm: true" in error["message"]

        assert (await call(s, "rotor_get_job", queue=queue, job_id=job["id"]))["state"] == "delayed"
        assert (await call(s, "rotor_inspect_run_history", id=schedule))["runs"] == []
        assert (await call(s, "rotor_get_queue", name=queue))["counts"]["delayed"] == 1


async def test_a_viewer_keys_session_reads_but_changes_nothing(server: ServerProcess) -> None:
    queue = unique("viewed")
    with server.client() as http:
        assert http.post("/v1/queues", json={"name": queue, "concurrency": 2}).status_code == 201
    viewer = offline(server.data_dir, "keys", "create", "--workspace", "default", "--role", "viewer")["key"]
    changes = [
        ("rotor_create_queue", {"name": unique("nope")}), ("rotor_update_queue", {"name": queue, "concurrency": 9}),
        ("rotor_set_queue_state", {"name": queue, "state": "paused"}), ("rotor_drain_queue", {"name": queue, "confirm": True}),
        ("rotor_delete_queue", {"name": queue, "confirm": True}), ("rotor_add_job", {"queue": queue, "payload": {}}),
        ("rotor_create_schedule", {"queue": queue, "cron": "0 2 * * *", "timezone": "UTC"}),
        ("rotor_replay_dlq", {"queue": queue, "confirm": True}),
    ]
    async with stdio_session(mcp_env(server, viewer)) as s:
        assert queue in [q["name"] for q in (await call(s, "rotor_list_queues"))["queues"]]
        for tool, arguments in changes:
            error = await refused(s, tool, **arguments)
            assert error["code"] == "FORBIDDEN" and error["details"]["role"] == "viewer", tool

    with server.client() as http:
        after = http.get(f"/v1/queues/{queue}").json()
        assert (after["concurrency"], after["state"], sum(after["counts"].values())) == (2, "active", 0)
        assert queue not in [s["queue"] for s in http.get("/v1/schedules").json()["data"]]


async def test_errors_are_tool_errors_and_the_session_goes_on(server: ServerProcess, tmp_path: Path) -> None:
    async with stdio_session(mcp_env(server)) as s:
        missing = await refused(s, "rotor_get_job", queue=unique("none"), job_id="job_0")
        queue = (await call(s, "rotor_create_queue", name=unique("zoned")))["name"]
        bad_zone = await refused(s, "rotor_create_schedule", queue=queue, cron="0 2 * * *", timezone="+05:30")
        unknown_field = await refused(s, "rotor_create_queue", name=unique("q"), concurency=3)
        with pytest.raises(MCPError, match="unknown tool"):
            await s.call_tool("rotor_fly", {})
        assert "queues" in await call(s, "rotor_list_queues")

    assert missing["code"] == "NOT_FOUND" and "not found" in missing["message"]
    assert bad_zone["code"] == "VALIDATION_ERROR" and bad_zone["details"]["field"] == "timezone"
    assert unknown_field["code"] == "VALIDATION_ERROR" and unknown_field["details"]["field"] == "concurency"
    unreachable = {"ROTOR_API_KEY": server.api_key, "ROTOR_API_URL": "http://127.0.0.1:9"}
    async with stdio_session(unreachable) as s:
        assert (await refused(s, "rotor_list_queues"))["code"] == "UNAVAILABLE"


def test_stdout_carries_only_json_rpc(server: ServerProcess, tmp_path: Path) -> None:
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "rotor_list_queues", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "rotor_get_queue", "arguments": {"name": "no"}}},
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "rotor_nope", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "rotor_add_job", "arguments": {"queue": 1}}},
    ]
    env = {**os.environ, **mcp_env(server), "PYTHONWARNINGS": "always"}
    process = subprocess.Popen([sys.executable, "-m", "rotor_lite", "mcp"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("".join(json.dumps(r) + "\n" for r in requests).encode())
    process.stdin.flush()
    answered = [process.stdout.readline() for _ in range(6)]  # one line per request with an id
    process.stdin.close()  # end of input: the server stops
    rest, stderr = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
    process.wait(30)

    stdout = b"".join(answered) + rest
    assert stdout.endswith(b"\n") and rest == b""
    messages = [types.jsonrpc_message_adapter.validate_json(line) for line in stdout.splitlines()]
    assert sorted(m.id for m in messages) == [1, 2, 3, 4, 5, 6]  # type: ignore[union-attr]
    assert process.returncode == 0, stderr


def test_without_a_key_it_says_so_on_stderr_and_stops(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ROTOR_API_KEY"}
    done = subprocess.run([sys.executable, "-m", "rotor_lite", "mcp"], input=b"", capture_output=True, env=env,
                          cwd=tmp_path, timeout=60)

    assert done.returncode == 1 and done.stdout == b""
    assert b"ROTOR_API_KEY" in done.stderr
