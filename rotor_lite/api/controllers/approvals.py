"""`/v1/approvals`: list, get, approve, reject."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter

from rotor_lite.api.auth import DECIDE, READ
from rotor_lite.api.http import core_of, json_response, page_limit, read_body
from rotor_lite.models import Principal
from rotor_lite.schemas import ApprovalReject
from rotor_lite.services import approvals as service

_SELF_AUDITED = {"audit": False}  # the service audits the decision with its job, queue and reason


class ApprovalController(Controller):
    path = "/v1/approvals"
    tags = ["Approvals"]

    @get("/", opt={"access": READ})
    async def list_approvals(
        self, request: Request[Any, Any, Any], principal: Principal,
        status: str | None = None, queue: str | None = None, limit: int | None = None, cursor: str | None = None,
    ) -> Response[bytes]:
        """Approvals, newest first; filter by `status` (pending, approved, rejected) and `queue`."""
        rows, next_cursor = await service.list_approvals(
            core_of(request), principal, status=status, queue_name=queue, limit=page_limit(limit), cursor=cursor
        )
        return json_response({"approvals": [service.approval_out(r) for r in rows], "nextCursor": next_cursor})

    @get("/{approval_id:str}", opt={"access": READ})
    async def get_approval(self, request: Request[Any, Any, Any], principal: Principal, approval_id: str) -> Response[bytes]:
        """One approval with the payload under review."""
        return json_response(service.approval_out(await service.get_approval(core_of(request), principal, approval_id)))

    @post("/{approval_id:str}/approve", status_code=200, opt={"access": DECIDE, **_SELF_AUDITED})
    async def approve(self, request: Request[Any, Any, Any], principal: Principal, approval_id: str) -> Response[bytes]:
        """The job goes on to `waiting`; an approval already decided is a 409."""
        return json_response(service.approval_out(await service.approve(core_of(request), principal, approval_id)))

    @post("/{approval_id:str}/reject", status_code=200, opt={"access": DECIDE, **_SELF_AUDITED})
    async def reject(
        self, request: Request[Any, Any, Any], principal: Principal, approval_id: str,
        reason_query: Annotated[str | None, Parameter(query="reason")] = None,
    ) -> Response[bytes]:
        """The job is `failed` with `failReason: "rejected"`, never retried; body `{reason?}`."""
        spec = await read_body(request, ApprovalReject)
        reason = spec.reason if spec.reason is not None else reason_query
        return json_response(service.approval_out(await service.reject(core_of(request), principal, approval_id, reason)))
