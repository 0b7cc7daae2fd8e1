"""`/v1/queues/:name/jobs` and `/v1/dlq`: enqueue, batch, get, list, cancel, retry, DLQ, replay."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import Parameter
from litestar.types import ASGIApp

from rotor_lite.api.auth import QUEUE_READ, QUEUE_WRITE, READ, WRITE, provide_principal
from rotor_lite.api.http import JsonBody, core_of, header, json_response, page_limit, read_body
from rotor_lite.api.render import job_out
from rotor_lite.models import Principal
from rotor_lite.schemas import BatchCreate, JobCreate, JobList, JobOut, JobPage, Replayed, ReplayRequest
from rotor_lite.services import jobs as service


class JobController(Controller):
    path = "/v1/queues/{name:str}/jobs"
    tags = ["Jobs"]

    # The enqueue routes take only the request: Litestar's parameter and dependency resolution
    # costs more per call than the rest of a single enqueue's work on the event loop.
    @post("/", status_code=201, opt={"access": QUEUE_WRITE, "body": JobCreate, "returns": JobOut})
    async def enqueue(self, request: Request[Any, Any, Any]) -> ASGIApp:
        """Enqueue a job; a known `jobId` answers 200 with `duplicate: true` (409 with `strict`)."""
        principal = await provide_principal(request)
        spec = await read_body(request, JobCreate)
        header_key = header(request, b"idempotency-key")
        done = await service.enqueue(
            core_of(request), principal, request.path_params["name"], spec, header_key.strip() if header_key else None
        )
        return JsonBody(job_out(done.job, duplicate=done.duplicate), 200 if done.duplicate else 201)

    @post("/batch", status_code=201, opt={"access": QUEUE_WRITE, "body": BatchCreate, "returns": JobList})
    async def enqueue_batch(self, request: Request[Any, Any, Any]) -> ASGIApp:
        """Enqueue up to 1000 jobs, all or none."""
        principal = await provide_principal(request)
        spec = await read_body(request, BatchCreate, ("jobs",))
        done = await service.enqueue_batch(core_of(request), principal, request.path_params["name"], spec)
        return JsonBody(JobList(data=[job_out(d.job, duplicate=d.duplicate) for d in done]), 201)

    @get("/", opt={"access": QUEUE_READ, "returns": JobPage})
    async def list_jobs(
        self, request: Request[Any, Any, Any], principal: Principal, name: str,
        job_state: Annotated[str | None, Parameter(query="state")] = None,
        tag: str | None = None, limit: int | None = None, cursor: str | None = None,
    ) -> Response[bytes]:
        """Jobs of the queue, newest first; filter by `state` and `tag`."""
        jobs, next_cursor = await service.list_jobs(
            core_of(request), principal, name, state=job_state, tag=tag, limit=page_limit(limit), cursor=cursor
        )
        return json_response(JobPage(data=[job_out(j) for j in jobs], nextCursor=next_cursor))

    @get("/{job_id:str}", opt={"access": QUEUE_READ, "returns": JobOut})
    async def get_job(self, request: Request[Any, Any, Any], principal: Principal, name: str, job_id: str) -> Response[bytes]:
        """The job with its attempt log."""
        job, attempts = await service.get_job(core_of(request), principal, name, job_id)
        return json_response(job_out(job, attempts=attempts))

    @delete("/{job_id:str}", status_code=200, opt={"access": WRITE, "returns": JobOut})
    async def cancel_job(self, request: Request[Any, Any, Any], principal: Principal, name: str, job_id: str) -> Response[bytes]:
        """Cancel a waiting, delayed or pending-approval job; an active job is a 409."""
        return json_response(job_out(await service.cancel_job(core_of(request), principal, name, job_id)))

    @post("/{job_id:str}/retry", status_code=200, opt={"access": WRITE, "returns": JobOut})
    async def retry_job(self, request: Request[Any, Any, Any], principal: Principal, name: str, job_id: str) -> Response[bytes]:
        """A failed, cancelled or blocked job back to waiting with its attempts reset."""
        return json_response(job_out(await service.retry_job(core_of(request), principal, name, job_id)))


class DlqController(Controller):
    path = "/v1/dlq"
    tags = ["Jobs"]

    @get("/", opt={"access": READ, "returns": JobPage})
    async def list_dlq(
        self, request: Request[Any, Any, Any], principal: Principal, queue: str | None = None,
        limit: int | None = None, cursor: str | None = None,
    ) -> Response[bytes]:
        """Failed jobs (the dead-letter queue), newest first."""
        jobs, next_cursor = await service.list_dlq(
            core_of(request), principal, queue_name=queue, limit=page_limit(limit), cursor=cursor
        )
        return json_response(JobPage(data=[job_out(j) for j in jobs], nextCursor=next_cursor))

    @post("/replay", status_code=200, opt={"access": WRITE, "body": ReplayRequest, "returns": Replayed})
    async def replay(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Retry failed jobs of a queue (all, or `jobIds`); harmless to call twice."""
        spec = await read_body(request, ReplayRequest)
        replayed = await service.replay_dlq(core_of(request), principal, spec.queue, spec.job_ids)
        return json_response(Replayed(replayed=replayed))
