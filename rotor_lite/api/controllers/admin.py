"""`/v1/admin`: the operator's routes across workspaces, behind `rotor-lite mcp --admin`.

Only `Authorization: Bearer <[mcp] admin_token>` is accepted here (never an API key), and no API
key route accepts the token. The operator acts as an admin of the workspace (id or name) in the
path, through the same service functions as the workspace routes.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler

from rotor_lite.api.controllers.queues import queue_list
from rotor_lite.api.controllers.schedules import schedule_out
from rotor_lite.api.auth import OPERATOR, provide_principal
from rotor_lite.api.http import core_of, header, json_response, page_limit, read_body
from rotor_lite.api.render import job_out
from rotor_lite.clock import iso
from rotor_lite.errors import KeyRefused
from rotor_lite.models import Principal, Schedule
from rotor_lite.schemas import FiredNow, JobOut, QueueList, Replayed, ReplayRequest, ScheduleOut
from rotor_lite.services import jobs, operator, schedules
from rotor_lite.services import queues as queue_service
from rotor_lite.services.core import Core

DRIFT_MS = 60_000  # an enabled schedule whose next fire time is this far behind is not being fired


class OperatorScheduleOut(ScheduleOut, kw_only=True):
    drift: bool


async def _operator_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The operator token passes; an API key, whatever its role, is a 403 (the routes' declared access,
    OPERATOR); anything else a 401."""
    assert isinstance(connection, Request)
    try:
        operator.check_operator_token(core_of(connection), header(connection, b"authorization"))
    except KeyRefused:
        await provide_principal(connection)  # 401 (and its audit) unless it is a valid key, else 403
        raise  # not reached: provide_principal refuses every key on an OPERATOR route


async def _operator_principal(request: Request[Any, Any, Any], workspace: str) -> Principal:
    principal = await operator.operator_principal(core_of(request), workspace)
    request.state.principal = principal  # the audit middleware records the change in that workspace
    return principal


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["Operator"]
    guards = [_operator_only]
    opt = {"access": OPERATOR}
    dependencies = {"principal": Provide(_operator_principal)}

    @get("/workspaces")
    async def list_workspaces(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """Every workspace with its plan and creation date."""
        found = await operator.list_workspaces(core_of(request))
        return json_response({"data": [
            {"id": ws_id, "name": name, "plan": plan, "createdAt": iso(created)} for ws_id, name, plan, created in found
        ]})

    @get("/workspaces/{workspace:str}/queues", opt={"returns": QueueList})
    async def workspace_queues(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """The workspace's queues with their settings and job counts per state."""
        return json_response(await queue_list(core_of(request), principal))

    @get("/workspaces/{workspace:str}/schedules")
    async def workspace_schedules(
        self, request: Request[Any, Any, Any], principal: Principal, limit: int | None = None, cursor: str | None = None,
    ) -> Response[bytes]:
        """The workspace's schedules; `drift` marks an enabled one whose next fire time has long passed."""
        core = core_of(request)
        found, next_cursor = await schedules.list_schedules(core, principal, limit=page_limit(limit), cursor=cursor)
        return json_response({"data": [_with_drift(core, s) for s in found], "nextCursor": next_cursor})

    @get("/workspaces/{workspace:str}/queues/{queue:str}/jobs/{job_id:str}", opt={"returns": JobOut})
    async def inspect_job(
        self, request: Request[Any, Any, Any], principal: Principal, queue: str, job_id: str,
    ) -> Response[bytes]:
        """One job with its payload, result, failure reason and attempt log."""
        job, attempts = await jobs.get_job(core_of(request), principal, queue, job_id)
        return json_response(job_out(job, attempts=attempts))

    @get("/workspaces/{workspace:str}/dlq")
    async def dead_letters(
        self, request: Request[Any, Any, Any], principal: Principal, queue: str | None = None,
        limit: int | None = None, cursor: str | None = None,
    ) -> Response[bytes]:
        """`depth` (failed jobs of the workspace, or of `queue`) and a page of them, newest first."""
        core = core_of(request)
        found, next_cursor = await jobs.list_dlq(core, principal, queue_name=queue, limit=page_limit(limit), cursor=cursor)
        queues = [core.queue_for(principal, queue)] if queue else core.queues.of_workspace(principal.workspace_id)
        depth = sum([(await queue_service.queue_counts(core, q))["failed"] for q in queues])
        return json_response({"depth": depth, "data": [job_out(j) for j in found], "nextCursor": next_cursor})

    @post("/workspaces/{workspace:str}/dlq/replay", status_code=200,
          opt={"audit": "job.retried", "body": ReplayRequest, "returns": Replayed})
    async def replay(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Failed jobs of a queue (all, or `jobIds`) back to waiting; harmless to call twice."""
        spec = await read_body(request, ReplayRequest)
        return json_response(Replayed(replayed=await jobs.replay_dlq(core_of(request), principal, spec.queue, spec.job_ids)))

    @post("/workspaces/{workspace:str}/schedules/{schedule_id:str}/fire-now", status_code=201,
          opt={"audit": "schedule.fired", "returns": FiredNow})
    async def fire_now(self, request: Request[Any, Any, Any], principal: Principal, schedule_id: str) -> Response[bytes]:
        """Enqueue the schedule's job now; its next cron fire time is unchanged."""
        run = await schedules.fire_now(core_of(request), principal, schedule_id)
        return json_response(FiredNow(jobId=run.job_id or "", runId=run.id), 201)


def _with_drift(core: Core, schedule: Schedule) -> OperatorScheduleOut:
    behind = schedule.next_fire_at is not None and schedule.next_fire_at < core.clock.now_ms() - DRIFT_MS
    return OperatorScheduleOut(**msgspec.structs.asdict(schedule_out(core, schedule)), drift=schedule.enabled and behind)
