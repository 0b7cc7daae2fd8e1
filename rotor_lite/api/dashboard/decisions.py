"""The approvals inbox: jobs held for approval and workflow runs waiting on a signal, decided with a reason."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.response import Redirect, Template

from rotor_lite.api.controllers.approvals import ApprovalController
from rotor_lite.api.controllers.signals import complete_signal
from rotor_lite.api.dashboard.access import act, allowed_all, mirror
from rotor_lite.api.dashboard.render import PAGE_SIZE, page
from rotor_lite.api.http import core_of
from rotor_lite.models import Principal
from rotor_lite.schemas import SignalComplete
from rotor_lite.services import approvals, signals
from rotor_lite.store.runs import AwaitedSignal

INBOX = "/dashboard/approvals"


@get("/approvals", opt=mirror(ApprovalController.list_approvals))
async def approvals_page(
    request: Request[Any, Any, Any], principal: Principal, status: str = "pending", cursor: str | None = None,
    signals_cursor: str | None = None,
) -> Template:
    """Approvals by status (pending first) with a payload preview; the pending view lists awaited signals too."""
    core = core_of(request)
    rows, next_cursor = await approvals.list_approvals(core, principal, status=status or None, queue_name=None,
                                                       limit=PAGE_SIZE, cursor=cursor)
    awaited: list[AwaitedSignal] = []
    next_signals = None
    if status == "pending":
        awaited, next_signals = await signals.awaited_signals(core, principal, limit=PAGE_SIZE, cursor=signals_cursor)
    return page(
        request, principal, "approvals.html", approvals=rows, signals=awaited, status=status,
        more=urlencode({"status": status, "cursor": next_cursor}) if next_cursor else None,
        more_signals=urlencode({"signals_cursor": next_signals}) if next_signals else None,
        can=allowed_all(principal, approve=approve, reject=reject, signal=decide_signal),
    )


@post("/approvals/{approval_id:str}/approve", opt=mirror(ApprovalController.approve))
async def approve(request: Request[Any, Any, Any], principal: Principal, approval_id: str) -> Redirect:
    work = approvals.approve(core_of(request), principal, approval_id)
    return await act(request, principal, INBOX, work, lambda row: f"approved job {row.job_id} of '{row.queue_name}'")


@post("/approvals/{approval_id:str}/reject", opt=mirror(ApprovalController.reject))
async def reject(request: Request[Any, Any, Any], principal: Principal, approval_id: str) -> Redirect:
    reason = str((await request.form()).get("reason") or "").strip()
    work = approvals.reject(core_of(request), principal, approval_id, reason or None)
    return await act(request, principal, INBOX, work, lambda row: f"rejected job {row.job_id} of '{row.queue_name}'")


@post("/signals/decide", opt=mirror(complete_signal))
async def decide_signal(request: Request[Any, Any, Any], principal: Principal) -> Redirect:
    """Complete a waiting run's signal with `{"approved": true|false, "reason"?, "reviewer"}`."""
    form = await request.form()
    signal, approved = str(form.get("signal") or ""), form.get("decision") == "approve"
    data: dict[str, Any] = {"approved": approved, "reviewer": principal.key_id}
    reason = str(form.get("reason") or "").strip()
    if reason and not approved:
        data["reason"] = reason
    work = signals.complete_signal(core_of(request), principal, signal, SignalComplete(data=data))
    verdict = "approved" if approved else "rejected"
    return await act(request, principal, INBOX, work, lambda run_id: f"{verdict}: signal '{signal}' of run {run_id}",
                     params={"signal_id": signal})


