"""`/v1/queues`: create, list, get, update, delete, stats, pause, resume, drain, retry-all."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post

from rotor_lite.api.auth import QUEUE_READ, READ, WRITE
from rotor_lite.api.http import core_of, json_response, read_body
from rotor_lite.api.render import queue_out
from rotor_lite.models import Principal, QueueState
from rotor_lite.schemas import Counts, Drained, DrainRequest, QueueCreate, QueueList, QueueOut, QueueUpdate, Retried
from rotor_lite.services import queues as service
from rotor_lite.services.core import Core

_NESTED = ("default_job_options", "backoff")


class QueueController(Controller):
    path = "/v1/queues"
    tags = ["Queues"]

    @post("/", status_code=201, opt={"access": WRITE, "body": QueueCreate, "returns": QueueOut})
    async def create_queue(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Create a queue; the response carries `callback_secret` once when one was minted."""
        spec = await read_body(request, QueueCreate, _NESTED)
        core = core_of(request)
        queue, secret = await service.create_queue(core, principal, spec)
        return json_response(queue_out(queue, await service.queue_counts(core, queue), secret), 201)

    @get("/", opt={"access": READ, "returns": QueueList})
    async def list_queues(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Every queue of the workspace with its job counts."""
        return json_response(await queue_list(core_of(request), principal))

    @get("/{name:str}", opt={"access": READ, "returns": QueueOut})
    async def get_queue(self, request: Request[Any, Any, Any], principal: Principal, name: str) -> Response[bytes]:
        """A queue's configuration and job counts."""
        core = core_of(request)
        queue = core.queue_for(principal, name)
        return json_response(queue_out(queue, await service.queue_counts(core, queue)))

    @get("/{name:str}/stats", opt={"access": QUEUE_READ, "returns": Counts})
    async def queue_stats(self, request: Request[Any, Any, Any], principal: Principal, name: str) -> Response[bytes]:
        """Job counts per state."""
        core = core_of(request)
        return json_response(await service.queue_counts(core, core.queue_for(principal, name)))

    @patch("/{name:str}", opt={"access": WRITE, "body": QueueUpdate, "returns": QueueOut})
    async def update_queue(self, request: Request[Any, Any, Any], principal: Principal, name: str) -> Response[bytes]:
        """Change any setting but the name; `rotate_callback_secret` mints a new secret, returned once."""
        spec = await read_body(request, QueueUpdate, _NESTED)
        core = core_of(request)
        queue, secret = await service.update_queue(core, principal, name, spec)
        return json_response(queue_out(queue, await service.queue_counts(core, queue), secret))

    @post("/{name:str}/pause", status_code=200, opt={"access": WRITE, "returns": QueueOut})
    async def pause_queue(self, request: Request[Any, Any, Any], principal: Principal, name: str) -> Response[bytes]:
        """Accept jobs but dispatch none."""
        return await self._set_state(request, principal, name, QueueState.PAUSED)

    @post("/{name:str}/resume", status_code=200, opt={"access": WRITE, "returns": QueueOut})
    async def resume_queue(self, request: Request[Any, Any, Any], principal: Principal, name: str) -> Response[bytes]:
        """Dispatch again."""
        return await self._set_state(request, principal, name, QueueState.ACTIVE)

    async def _set_state(
        self, request: Request[Any, Any, Any], principal: Principal, name: str, state: QueueState
    ) -> Response[bytes]:
        core = core_of(request)
        queue = await service.set_queue_state(core, principal, name, state)
        return json_response(queue_out(queue, await service.queue_counts(core, queue)))

    @post("/{name:str}/drain", status_code=200, opt={"access": WRITE, "body": DrainRequest, "returns": Drained})
    async def drain_queue(self, request: Request[Any, Any, Any], principal: Principal, name: str) -> Response[bytes]:
        """Cancel every waiting and delayed job; needs `{"confirm": true}`."""
        spec = await read_body(request, DrainRequest)
        drained = await service.drain_queue(core_of(request), principal, name, confirm=spec.confirm)
        return json_response(Drained(drained=drained))

    @post("/{name:str}/retry-all", status_code=200, opt={"access": WRITE, "returns": Retried})
    async def retry_all(self, request: Request[Any, Any, Any], principal: Principal, name: str) -> Response[bytes]:
        """Every failed job of the queue back to waiting."""
        return json_response(Retried(retried=await service.retry_all(core_of(request), principal, name)))

    @delete("/{name:str}", status_code=204, opt={"access": WRITE})
    async def delete_queue(self, request: Request[Any, Any, Any], principal: Principal, name: str) -> None:
        """Delete the queue with its jobs."""
        await service.delete_queue(core_of(request), principal, name)


async def queue_list(core: Core, principal: Principal) -> QueueList:
    """The caller's queues (a queue-scoped key: its own) with their job counts."""
    queues = [q for q in core.queues.of_workspace(principal.workspace_id) if principal.queue_name in (None, q.name)]
    counts = await service.counts_of_queues(core, queues)
    return QueueList(data=[queue_out(q, counts[q.rowid]) for q in queues])
