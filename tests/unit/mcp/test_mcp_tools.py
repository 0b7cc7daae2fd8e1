"""The MCP tools as data: names and schemas as documented, and the API request each call turns into."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from rotor_lite.mcp.admin import ADMIN_TOOLS
from rotor_lite.mcp.tools import Tool
from rotor_lite.mcp.workflows import WORKFLOW_TOOLS
from rotor_lite.mcp.workspace import WORKSPACE_TOOLS
from rotor_lite.schemas import JobCreate, QueueCreate, ScheduleUpdate
from rotor_lite.sdk import AsyncRotor
from tests.mcp_names import ADMIN_TOOL_NAMES, DESTRUCTIVE, WORKFLOW_TOOL_NAMES, WORKSPACE_TOOL_NAMES

ALL_TOOLS = WORKSPACE_TOOLS + WORKFLOW_TOOLS + ADMIN_TOOLS


def tool(name: str, tools: list[Tool] = WORKSPACE_TOOLS + WORKFLOW_TOOLS) -> Tool:
    return next(t for t in tools if t.name == name)


class Recorder:
    """A MockTransport answering every request with `reply`; keeps what was sent."""

    def __init__(self, reply: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.sent: list[httpx.Request] = []
        self._reply = reply or (lambda request: httpx.Response(200, json={"data": [{"id": 1}], "nextCursor": None}))

    def client(self) -> AsyncRotor:
        def handle(request: httpx.Request) -> httpx.Response:
            self.sent.append(request)
            return self._reply(request)

        return AsyncRotor(api_key="rt_ws_test", base_url="http://api", transport=httpx.MockTransport(handle))


def test_the_tool_lists_are_the_documented_ones() -> None:
    assert [t.name for t in WORKSPACE_TOOLS] == WORKSPACE_TOOL_NAMES
    assert [t.name for t in WORKFLOW_TOOLS] == WORKFLOW_TOOL_NAMES
    assert [t.name for t in ADMIN_TOOLS] == ADMIN_TOOL_NAMES


def test_docs_mcp_has_a_row_for_every_tool() -> None:
    rows = re.findall(r"^\| `(\w+)` \|", (Path(__file__).parents[3] / "docs" / "mcp.md").read_text(), flags=re.M)

    assert rows == WORKSPACE_TOOL_NAMES + WORKFLOW_TOOL_NAMES + ADMIN_TOOL_NAMES


@pytest.mark.parametrize("mcp_tool", ALL_TOOLS, ids=lambda t: t.name)
def test_every_tool_has_an_object_schema_and_says_what_it_changes(mcp_tool: Tool) -> None:
    schema = mcp_tool.input_schema()

    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert mcp_tool.description.endswith(".") and len(mcp_tool.description) > 40
    if mcp_tool.name in DESTRUCTIVE:
        assert mcp_tool.destructive and "confirm" in schema["properties"]
        assert "DESTRUCTIVE, needs confirm: true" in mcp_tool.description
    else:
        assert not mcp_tool.destructive
    assert mcp_tool.read_only == ("Changes nothing." in mcp_tool.description)


def test_schemas_come_from_the_api_request_structs() -> None:
    create = tool("rotor_create_queue").input_schema()
    add_job = tool("rotor_add_job").input_schema()

    assert set(create["properties"]) == set(QueueCreate.__struct_fields__) and create["required"] == ["name"]
    assert {"concurrency", "retry_attempts"} <= set(create["properties"])
    assert "Backoff" in create["$defs"]  # defaultJobOptions' nested Structs come along
    assert set(add_job["properties"]) == set(JobCreate.__struct_fields__) | {"queue"}
    assert set(tool("rotor_update_schedule").input_schema()["properties"]) == set(ScheduleUpdate.__struct_fields__) | {"id"}


async def test_a_call_is_the_api_request_with_the_arguments_given() -> None:
    recorder = Recorder()
    async with recorder.client() as client:
        await tool("rotor_update_queue").call(client, {"name": "out/bound", "concurrency": 1})
        listed = await tool("rotor_list_jobs").call(client, {"queue": "q", "state": "failed", "limit": 5})
        await tool("upsert_queue").call(client, {"name": "q", "retry_attempts": 3})

    update, jobs, upsert = recorder.sent
    assert (update.method, update.url.raw_path) == ("PATCH", b"/v1/queues/out%2Fbound")
    assert json.loads(update.content) == {"concurrency": 1}  # given, though it is QueueCreate's default
    assert (jobs.method, jobs.url.path, dict(jobs.url.params)) == ("GET", "/v1/queues/q/jobs", {"state": "failed", "limit": "5"})
    assert listed.value == {"jobs": [{"id": 1}], "nextCursor": None} and not listed.is_error
    assert json.loads(upsert.content) == {"name": "q", "retry_attempts": 3}


@pytest.mark.parametrize(("name", "arguments", "field"), [
    ("rotor_create_queue", {"name": "q", "concurency": 2}, "concurency"),
    ("rotor_create_queue", {"concurrency": 2}, "name"),
    ("rotor_get_job", {"queue": "q", "job_id": 7}, "job_id"),
    ("rotor_delete_queue", {"name": "q"}, "confirm"),
    ("rotor_replay_dlq", {"queue": "q", "confirm": False}, "confirm"),
    ("invoke_workflow", {"workflow": "w", "timeout": 10_000}, "timeout"),
])
async def test_bad_arguments_are_a_tool_error_and_send_nothing(name: str, arguments: dict[str, Any], field: str) -> None:
    recorder = Recorder()
    async with recorder.client() as client:
        result = await tool(name).call(client, arguments)

    assert result.is_error and result.value["error"]["code"] == "VALIDATION_ERROR"
    assert field in result.value["error"]["details"]["field"]
    assert recorder.sent == []


@pytest.mark.parametrize(("reply", "code"), [
    (lambda r: httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": "queue 'q' not found", "details": {}}}),
     "NOT_FOUND"),
    (lambda r: httpx.Response(403, json={"error": {"code": "FORBIDDEN", "message": "a viewer key may not do this",
                                                   "details": {"role": "viewer"}}}), "FORBIDDEN"),
    (lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused")), "UNAVAILABLE"),
    (lambda r: httpx.Response(200, content=b"not json"), "UNAVAILABLE"),
])
async def test_failures_are_tool_errors_with_the_api_code(
    reply: Callable[[httpx.Request], httpx.Response], code: str
) -> None:
    async with Recorder(reply).client() as client:
        result = await tool("rotor_get_queue").call(client, {"name": "q"})

    assert result.is_error and result.value["error"]["code"] == code and result.value["error"]["message"]


async def test_a_list_answered_bare_is_wrapped_too() -> None:
    async with Recorder(lambda r: httpx.Response(200, json=[{"id": "ws_1"}])).client() as client:
        result = await tool("rotor_list_workspaces").call(client, {})

    assert result.value == {"workspaces": [{"id": "ws_1"}]}


async def test_an_unexpected_failure_is_an_internal_tool_error() -> None:
    async with Recorder(lambda r: httpx.Response(200, json=[1, 2])).client() as client:
        result = await tool("list_runs").call(client, {})  # a list where a page was expected

    assert result.is_error and result.value["error"]["code"] == "INTERNAL"


def test_a_server_that_is_never_asked_for_mcp_does_not_load_the_sdk() -> None:
    code = ("import sys; from rotor_lite.api.app import create_app; from rotor_lite.config import load_settings; "
            "create_app(load_settings(env={})); print('mcp' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert done.stdout.strip() == "False", done.stderr
