"""The overview (queues with live counts and the last hour's charts), a queue, a job, and the DLQ."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import msgspec
from litestar import Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage, Template

from rotor_lite.api.controllers.jobs import DlqController, JobController
from rotor_lite.api.controllers.queues import QueueController
from rotor_lite.api.dashboard.access import (
    SignInRequired, act, allowed_all, mirror, record_action, session_of, session_principal,
)
from rotor_lite.api.dashboard.render import PAGE_SIZE, failure_chart, page, throughput_chart, total_series
from rotor_lite.api.http import core_of
from rotor_lite.api.render import attempt_out, job_out, queue_out
from rotor_lite.errors import JobNotFound, RotorError
from rotor_lite.models import CANCELLABLE_STATES, COUNT_KEYS, RETRYABLE_STATES, Principal, Queue, QueueState
from rotor_lite.services import jobs, status, throughput
from rotor_lite.services import queues as queue_service
from rotor_lite.services.core import Core

LIVE_EVERY_S = 2.0
LIVE_FOR_S = 300.0  # a live stream ends after this; the browser opens a new one (EventSource retries)


def queue_url(name: str) -> str:
    return f"/dashboard/queues/{quote(name, safe='')}"


def job_url(queue: str, job_id: str) -> str:
    return f"{queue_url(queue)}/jobs/{quote(job_id, safe='')}"


# Overview --------------------------------------------------------------------------------------------


@get("/", opt=mirror(QueueController.list_queues))
async def overview(request: Request[Any, Any, Any], principal: Principal) -> Template:
    """Every queue with its counts and the last hour's throughput and failure rate; health and quota."""
    core = core_of(request)
    queues = core.queues.of_workspace(principal.workspace_id)
    counts = await queue_service.counts_of_queues(core, queues)
    series = await throughput.last_hour(core.db, core.clock.now_ms(), [q.rowid for q in queues])
    rows = [
        {"queue": q, "counts": counts[q.rowid], "throughput": throughput_chart(series[q.rowid]),
         "failures": failure_chart(series[q.rowid])}
        for q in queues
    ]
    total = total_series(list(series.values()))
    return page(
        request, principal, "overview.html", rows=rows, states=COUNT_KEYS, health=await status.status(core, principal),
        throughput=throughput_chart(total, 360, 60), failures=failure_chart(total, 360, 60),
    )


@get("/live", opt=mirror(QueueController.list_queues))
async def live_counts(request: Request[Any, Any, Any], principal: Principal) -> ServerSentEvent:
    """Server-sent events: `counts` of every queue every 2 s; `signout` when the session's key stops working."""
    return ServerSentEvent(_counts_stream(request, principal), retry_duration=2000)


async def _counts_stream(request: Request[Any, Any, Any], principal: Principal) -> AsyncIterator[ServerSentEventMessage]:
    core = core_of(request)
    started = asyncio.get_running_loop().time()
    while not core.stopping.is_set() and asyncio.get_running_loop().time() - started < LIVE_FOR_S:
        try:
            principal = await session_principal(request)  # a revoked key's stream ends too
        except (SignInRequired, RotorError):
            yield ServerSentEventMessage(event="signout", data="{}")
            return
        yield ServerSentEventMessage(event="counts", data=msgspec.json.encode(await _counts(core, principal)).decode())
        with contextlib.suppress(TimeoutError):  # the server's stop ends the wait (and the stream) at once
            await asyncio.wait_for(core.stopping.wait(), LIVE_EVERY_S)


async def _counts(core: Core, principal: Principal) -> dict[str, dict[str, int]]:
    queues = core.queues.of_workspace(principal.workspace_id)
    counts = await queue_service.counts_of_queues(core, queues)
    return {q.name: counts[q.rowid] for q in queues}


# A queue -------------------------------------------------------------------------------------------


@get("/queues/{name:str}", opt=mirror(QueueController.get_queue))
async def queue_page(
    request: Request[Any, Any, Any], principal: Principal, name: str,
    job_state: Annotated[str | None, Parameter(query="state")] = None, tag: str | None = None, cursor: str | None = None,
    job: str | None = None,
) -> Template | Redirect:
    """A queue's settings and counts, its jobs by state with a tag filter, and a job id search."""
    core = core_of(request)
    queue = core.queue_for(principal, name)
    if job:
        return await _find_job(request, principal, queue, job.strip())
    found, next_cursor = await jobs.list_jobs(core, principal, name, state=job_state or None, tag=tag or None,
                                              limit=PAGE_SIZE, cursor=cursor)
    counts = await queue_service.queue_counts(core, queue)
    series = (await throughput.last_hour(core.db, core.clock.now_ms(), [queue.rowid]))[queue.rowid]
    more = {"state": job_state or "", "tag": tag or "", "cursor": next_cursor} if next_cursor else None
    return page(
        request, principal, "queue.html", queue=queue_out(queue, counts), counts=counts, states=COUNT_KEYS,
        jobs=[job_out(j) for j in found], state=job_state or "", tag=tag or "", more=urlencode(more) if more else None,
        throughput=throughput_chart(series, 360, 60), failures=failure_chart(series, 360, 60),
        can=allowed_all(principal, pause=pause_queue, resume=resume_queue, drain=drain_queue, retry_all=retry_all),
    )


async def _find_job(request: Request[Any, Any, Any], principal: Principal, queue: Queue, job_id: str) -> Redirect:
    try:
        await jobs.get_job(core_of(request), principal, queue.name, job_id)
    except JobNotFound:
        session_of(request).flash("error", f"no job '{job_id}' in queue '{queue.name}'")
        return Redirect(queue_url(queue.name), status_code=303)
    return Redirect(job_url(queue.name, job_id), status_code=303)


@post("/queues/{name:str}/pause", opt=mirror(QueueController.pause_queue))
async def pause_queue(request: Request[Any, Any, Any], principal: Principal, name: str) -> Redirect:
    work = queue_service.set_queue_state(core_of(request), principal, name, QueueState.PAUSED)
    return await act(request, principal, queue_url(name), work, lambda _: f"queue '{name}' paused")


@post("/queues/{name:str}/resume", opt=mirror(QueueController.resume_queue))
async def resume_queue(request: Request[Any, Any, Any], principal: Principal, name: str) -> Redirect:
    work = queue_service.set_queue_state(core_of(request), principal, name, QueueState.ACTIVE)
    return await act(request, principal, queue_url(name), work, lambda _: f"queue '{name}' resumed")


@post("/queues/{name:str}/drain", opt=mirror(QueueController.drain_queue))
async def drain_queue(request: Request[Any, Any, Any], principal: Principal, name: str) -> Redirect:
    confirmed = (await request.form()).get("confirm") == "yes"
    work = queue_service.drain_queue(core_of(request), principal, name, confirm=confirmed)
    return await act(request, principal, queue_url(name), work, lambda n: f"{n} waiting and delayed jobs cancelled")


@post("/queues/{name:str}/retry-all", opt=mirror(QueueController.retry_all))
async def retry_all(request: Request[Any, Any, Any], principal: Principal, name: str) -> Redirect:
    work = queue_service.retry_all(core_of(request), principal, name)
    return await act(request, principal, queue_url(name), work, lambda n: f"{n} failed jobs back to waiting")


# A job ---------------------------------------------------------------------------------------------


@get("/queues/{name:str}/jobs/{job_id:str}", opt=mirror(JobController.get_job))
async def job_page(request: Request[Any, Any, Any], principal: Principal, name: str, job_id: str) -> Template:
    """A job: its payload and result pretty-printed, its attempt log, its tags, retry and cancel."""
    job, attempts = await jobs.get_job(core_of(request), principal, name, job_id)
    return page(
        request, principal, "job.html", job=job_out(job), attempts=[attempt_out(a) for a in attempts],
        payload=job.payload, result=job.result, queue_link=queue_url(name),
        retryable=job.state in RETRYABLE_STATES, cancellable=job.state in CANCELLABLE_STATES,
        can=allowed_all(principal, retry=retry_job, cancel=cancel_job),
    )


@post("/queues/{name:str}/jobs/{job_id:str}/retry", opt=mirror(JobController.retry_job))
async def retry_job(request: Request[Any, Any, Any], principal: Principal, name: str, job_id: str) -> Redirect:
    work = jobs.retry_job(core_of(request), principal, name, job_id)
    return await act(request, principal, job_url(name, job_id), work, lambda _: "job back to waiting")


@post("/queues/{name:str}/jobs/{job_id:str}/cancel", opt=mirror(JobController.cancel_job))
async def cancel_job(request: Request[Any, Any, Any], principal: Principal, name: str, job_id: str) -> Redirect:
    work = jobs.cancel_job(core_of(request), principal, name, job_id)
    return await act(request, principal, job_url(name, job_id), work, lambda _: "job cancelled")


# The DLQ -------------------------------------------------------------------------------------------


@get("/dlq", opt=mirror(DlqController.list_dlq))
async def dlq_page(
    request: Request[Any, Any, Any], principal: Principal, queue: str | None = None, cursor: str | None = None,
) -> Template:
    """Failed jobs across queues (or of one), newest first, to select and replay."""
    core = core_of(request)
    found, next_cursor = await jobs.list_dlq(core, principal, queue_name=queue or None, limit=PAGE_SIZE, cursor=cursor)
    queues = core.queues.of_workspace(principal.workspace_id)
    counts = await queue_service.counts_of_queues(core, queues)
    depth = {q.name: counts[q.rowid]["failed"] for q in queues}
    more = urlencode({"queue": queue or "", "cursor": next_cursor}) if next_cursor else None
    return page(
        request, principal, "dlq.html", jobs=[job_out(j) for j in found], queue=queue or "", depth=depth,
        more=more, can=allowed_all(principal, replay=replay_dlq),
    )


@post("/dlq/replay", opt=mirror(DlqController.replay))
async def replay_dlq(request: Request[Any, Any, Any], principal: Principal) -> Redirect:
    """The selected failed jobs (`job` = queue/id), or every failed job of `queue`, back to waiting."""
    form = await request.form()
    selected: dict[str, list[str]] = {}
    for value in form.getall("job", []):
        queue_name, _, job_id = str(value).partition("/")
        selected.setdefault(queue_name, []).append(job_id)
    whole = str(form.get("queue") or "")
    back = "/dashboard/dlq" + (f"?{urlencode({'queue': whole})}" if whole else "")
    if not selected and not whole:
        session_of(request).flash("error", "select failed jobs to replay, or choose a queue to replay whole")
        return Redirect(back, status_code=303)
    chosen: dict[str, list[str] | None] = {whole: None} if whole else dict(selected.items())  # a whole queue wins
    work = _replay(request, principal, chosen)
    return await act(request, principal, back, work, lambda n: f"{n} failed jobs back to waiting", record=False)


async def _replay(request: Request[Any, Any, Any], principal: Principal, chosen: dict[str, list[str] | None]) -> int:
    core, replayed = core_of(request), 0
    for queue_name, job_ids in chosen.items():
        replayed += await jobs.replay_dlq(core, principal, queue_name, job_ids)
        await record_action(request, principal, found_id=queue_name)  # one event per queue, as the API's
    return replayed


