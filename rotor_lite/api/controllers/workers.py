"""Pull workers: `/v1/queues/:name/jobs/lease` and a leased job's `heartbeat`, `complete` and `fail`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from litestar import Controller, Request, post
from litestar.types import ASGIApp

from rotor_lite.api.auth import QUEUE_WRITE, provide_principal
from rotor_lite.api.http import JsonBody, core_of, read_body
from rotor_lite.clock import iso
from rotor_lite.models import Principal
from rotor_lite.schemas import (
    CompleteRequest, FailRequest, HeartbeatRequest, LeasedJobOut, LeaseOut, LeaseOutcomeOut, LeaseRequest, OutcomeError,
    OutcomeOut, OutcomesOut, OutcomesRequest,
)
from rotor_lite.services import workers as service
from rotor_lite.services.core import Core
from rotor_lite.services.workers import Reported

T = TypeVar("T")
_NOT_HELD = OutcomeError(code="CONFLICT", message=service.NOT_HELD)

# Like enqueue, these routes take only the request: workers call them once per job.


class WorkerController(Controller):
    path = "/v1/queues/{name:str}/jobs"
    tags = ["Workers"]

    @post("/lease", status_code=200, opt={"access": QUEUE_WRITE, "body": LeaseRequest, "returns": LeaseOut})
    async def lease(self, request: Request[Any, Any, Any]) -> ASGIApp:
        """Lease up to `max` waiting jobs of a pull queue; with `waitSeconds`, wait for the first (long poll)."""
        principal = await provide_principal(request)
        spec = await read_body(request, LeaseRequest)
        gone = asyncio.Event()
        watch = asyncio.ensure_future(_until_hung_up(request, gone))
        try:
            leased = await service.lease_jobs(core_of(request), principal, request.path_params["name"], spec, gone)
        finally:
            watch.cancel()
        return JsonBody(LeaseOut(data=[
            LeasedJobOut(
                id=job.claimed.id, payload=msgspec.Raw(job.payload), attempt=job.claimed.attempt,
                leaseToken=job.claimed.lease_token, leaseExpiresAt=iso(job.expires_at), tags=job.tags,
            )
            for job in leased
        ]))

    @post("/outcomes", status_code=200, opt={"access": QUEUE_WRITE, "body": OutcomesRequest, "returns": OutcomesOut})
    async def outcomes(self, request: Request[Any, Any, Any]) -> ASGIApp:
        """Complete or fail up to 100 leased jobs at once; each outcome is applied or refused on its own."""
        principal = await provide_principal(request)
        spec = await read_body(request, OutcomesRequest, ("outcomes",))
        answers = await service.report_outcomes(core_of(request), principal, request.path_params["name"], spec)
        return JsonBody(OutcomesOut(data=[
            OutcomeOut(id=outcome.id, error=_NOT_HELD) if answer is None
            else OutcomeOut(id=outcome.id, state=service.reported_state(answer))
            for outcome, answer in zip(spec.outcomes, answers)
        ]))

    @post("/{job_id:str}/heartbeat", status_code=200, opt={"access": QUEUE_WRITE, "body": HeartbeatRequest, "returns": LeaseOutcomeOut})
    async def heartbeat(self, request: Request[Any, Any, Any]) -> ASGIApp:
        """Extend the lease of a job the caller holds to `leaseSeconds` from now; a lease that no longer holds is a 409."""
        return await _report(request, HeartbeatRequest, service.heartbeat)

    @post("/{job_id:str}/complete", status_code=200, opt={"access": QUEUE_WRITE, "body": CompleteRequest, "returns": LeaseOutcomeOut})
    async def complete(self, request: Request[Any, Any, Any]) -> ASGIApp:
        """Complete a leased job with its `result`; a lease that no longer holds is a 409 and changes nothing."""
        return await _report(request, CompleteRequest, service.complete_job)

    @post("/{job_id:str}/fail", status_code=200, opt={"access": QUEUE_WRITE, "body": FailRequest, "returns": LeaseOutcomeOut})
    async def fail(self, request: Request[Any, Any, Any]) -> ASGIApp:
        """Fail a leased job's attempt with `error`: retried after the backoff (unless `retry` is false), else dead-lettered."""
        return await _report(request, FailRequest, service.fail_job)


async def _report(
    request: Request[Any, Any, Any], struct: type[T],
    operation: Callable[[Core, Principal, str, str, T], Awaitable[Reported]],
) -> JsonBody:
    """One report on a leased job: the caller's key, the body, the operation, the answer."""
    principal = await provide_principal(request)
    spec = await read_body(request, struct)
    params = request.path_params
    reported = await operation(core_of(request), principal, params["name"], params["job_id"], spec)
    expires = None if reported.expires_at is None else iso(reported.expires_at)
    return JsonBody(LeaseOutcomeOut(id=reported.job_id, state=service.reported_state(reported), leaseExpiresAt=expires))


async def _until_hung_up(request: Request[Any, Any, Any], gone: asyncio.Event) -> None:
    """Set `gone` when the client disconnects (the body is read: the next ASGI message is the disconnect)."""
    with contextlib.suppress(Exception):
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone.set()
