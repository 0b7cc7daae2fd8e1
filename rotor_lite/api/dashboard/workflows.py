"""Workflow runs: the list with its filters, and a run's page with its step graph, cancel and replay."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from litestar import Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template

from rotor_lite.api.controllers.functions import FunctionController
from rotor_lite.api.controllers.runs import RunController
from rotor_lite.api.dashboard.access import act, allowed, allowed_all, mirror
from rotor_lite.api.dashboard.graph import run_graph, step_detail
from rotor_lite.api.dashboard.render import PAGE_SIZE, page
from rotor_lite.api.http import core_of
from rotor_lite.errors import ValidationError
from rotor_lite.models import RUN_TERMINAL, Principal, RunStatus
from rotor_lite.services import functions, runs
from rotor_lite.services.jobs import parse_timestamp

FUNCTIONS_SHOWN = 500  # the function filter's choices
_STATUSES = [status.value for status in RunStatus]


def run_url(run_id: str) -> str:
    return f"/dashboard/runs/{quote(run_id, safe='')}"


@get("/runs", opt=mirror(RunController.list_runs))
async def runs_page(
    request: Request[Any, Any, Any], principal: Principal, function: str | None = None, status: str | None = None,
    since: Annotated[str | None, Parameter(query="from")] = None, until: Annotated[str | None, Parameter(query="to")] = None,
    cursor: str | None = None,
) -> Template:
    """Runs newest first, filtered by function, status and creation time (UTC)."""
    core = core_of(request)
    if status and status not in _STATUSES:
        raise ValidationError(f"status must be one of {', '.join(_STATUSES)}", field="status")
    found, next_cursor = await runs.list_runs(
        core, principal, function_id=function or None, status=status or None,
        since=parse_timestamp(since, "from") if since else None, until=parse_timestamp(until, "to") if until else None,
        limit=PAGE_SIZE, cursor=cursor,
    )
    known = []
    if allowed(principal, FunctionController.list_functions):
        known = [fn.id for fn in (await functions.list_functions(core, principal, limit=FUNCTIONS_SHOWN, cursor=None))[0]]
    filters = {"function": function or "", "status": status or "", "from": since or "", "to": until or ""}
    return page(
        request, principal, "runs.html", runs=[runs.run_out(run) for run in found], filters=filters, functions=known,
        statuses=_STATUSES, more=urlencode({**filters, "cursor": next_cursor}) if next_cursor else None,
    )


@get("/runs/{run_id:str}", opt=mirror(RunController.get_run))
async def run_page(request: Request[Any, Any, Any], principal: Principal, run_id: str) -> Template:
    """A run: its step graph, each step's output preview and error, its event, outcome, cancel and replay."""
    return page(request, principal, "run.html", **await _run_context(request, principal, run_id))


@get("/runs/{run_id:str}/graph", opt=mirror(RunController.get_run))
async def run_graph_part(request: Request[Any, Any, Any], principal: Principal, run_id: str) -> Template:
    """The graph alone, which the run page fetches again while the run is open."""
    context = await _run_context(request, principal, run_id)
    return Template(template_name="_graph.html", context=context)


async def _run_context(request: Request[Any, Any, Any], principal: Principal, run_id: str) -> dict[str, Any]:
    run, steps, children = await runs.run_with_steps(core_of(request), principal, run_id)
    shown = runs.run_out(run, steps, children)
    details = {step.key: step_detail(step) for step in steps}
    return {
        "run": shown, "graph": run_graph(run, steps), "details": details, "open": run.status not in RUN_TERMINAL,
        "replayable": run.status in (RunStatus.FAILED, RunStatus.CANCELLED), "graph_url": f"{run_url(run.id)}/graph",
        "can": allowed_all(principal, cancel=cancel_run, replay=replay_run),
    }


@post("/runs/{run_id:str}/cancel", opt=mirror(RunController.cancel_run))
async def cancel_run(request: Request[Any, Any, Any], principal: Principal, run_id: str) -> Redirect:
    work = runs.cancel_run(core_of(request), principal, run_id)
    return await act(request, principal, run_url(run_id), work, lambda run: f"run {run.status.value}")


@post("/runs/{run_id:str}/replay", opt=mirror(RunController.replay_run))
async def replay_run(request: Request[Any, Any, Any], principal: Principal, run_id: str) -> Redirect:
    work = runs.replay_run(core_of(request), principal, run_id)
    return await act(request, principal, run_url(run_id), work, lambda run: f"replay of run {run_id}",
                     then=lambda run: run_url(run.id))


