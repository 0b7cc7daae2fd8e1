"""`/v1/runs`: list, get (with the step graph), cancel, replay."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter

from rotor_lite.api.auth import READ, WRITE
from rotor_lite.api.http import core_of, json_response, page_limit
from rotor_lite.errors import ValidationError
from rotor_lite.models import Principal, RunStatus
from rotor_lite.schemas import Page
from rotor_lite.services import runs as service
from rotor_lite.services.jobs import parse_timestamp

_STATUSES = {status.value for status in RunStatus}


class RunController(Controller):
    path = "/v1/runs"
    tags = ["Workflows"]

    @get("/", opt={"access": READ})
    async def list_runs(
        self, request: Request[Any, Any, Any], principal: Principal,
        function: str | None = None, status: str | None = None,
        since: Annotated[str | None, Parameter(query="from")] = None, until: Annotated[str | None, Parameter(query="to")] = None,
        limit: int | None = None, cursor: str | None = None,
    ) -> Response[bytes]:
        """Runs, newest first; filter by `function`, `status` and creation time (`from`, `to`)."""
        if status is not None and status not in _STATUSES:
            raise ValidationError(f"status must be one of {', '.join(sorted(_STATUSES))}", field="status")
        runs, next_cursor = await service.list_runs(
            core_of(request), principal, function_id=function, status=status,
            since=None if since is None else parse_timestamp(since, "from"),
            until=None if until is None else parse_timestamp(until, "to"), limit=page_limit(limit), cursor=cursor,
        )
        return json_response(Page(data=[service.run_out(run) for run in runs], nextCursor=next_cursor))

    @get("/{run_id:str}", opt={"access": READ})
    async def get_run(self, request: Request[Any, Any, Any], principal: Principal, run_id: str) -> Response[bytes]:
        """The run with its steps (status, timing, attempts, output preview), children and hook errors."""
        run, steps, children = await service.run_with_steps(core_of(request), principal, run_id)
        return json_response(service.run_out(run, steps, children))

    @post("/{run_id:str}/cancel", status_code=200, opt={"access": WRITE, "audit": "run.cancelled"})
    async def cancel_run(self, request: Request[Any, Any, Any], principal: Principal, run_id: str) -> Response[bytes]:
        """Cancel the run and its children (an ended run is returned unchanged)."""
        return json_response(service.run_out(await service.cancel_run(core_of(request), principal, run_id)))

    @post("/{run_id:str}/replay", status_code=201, opt={"access": WRITE, "audit": "run.replayed"})
    async def replay_run(self, request: Request[Any, Any, Any], principal: Principal, run_id: str) -> Response[bytes]:
        """Start a failed or cancelled run again as a new run that keeps its completed steps' outcomes."""
        return json_response(service.run_out(await service.replay_run(core_of(request), principal, run_id)), 201)
