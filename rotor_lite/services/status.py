"""Workspace health, quota and this month's usage."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rotor_lite import __version__
from rotor_lite.clock import iso_from_ms
from rotor_lite.models import Principal, Role
from rotor_lite.services.core import Core, billing_period
from rotor_lite.services.queues import counts_of_queues
from rotor_lite.store import jobs as job_store
from rotor_lite.store.contract import is_postgres
from rotor_lite.store.leader import CRON_LEADER, current_leader


def _period_bounds(now_ms: int) -> tuple[int, int]:
    moment = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


async def status(core: Core, principal: Principal) -> dict[str, Any]:
    """`{api, database, version, quota}`, and `deliveryHelpers` for an admin; `database` is "error" when a read fails."""
    now = core.clock.now_ms()
    limits = await core.plans.limits(core.db, principal.workspace_id)  # known: the request was counted against it
    try:
        used = sum((await job_store.usage_by_queue(core.db, principal.workspace_id, billing_period(now))).values())
        database = "ok"
    except Exception:
        used, database = 0, "error"
    _, reset = _period_bounds(now)
    answer: dict[str, Any] = {
        "api": "ok", "database": database, "version": __version__,
        "quota": {"used": used, "limit": limits.jobs_per_month or None, "plan": limits.plan, "resetAt": iso_from_ms(reset)},
    }
    if principal.role == Role.ADMIN:  # the helpers serve every workspace: their figures are the operator's
        answer["deliveryHelpers"] = [
            {"pid": h.pid, "alive": h.alive, "inFlight": h.in_flight, "restarts": h.restarts, "delivered": h.delivered}
            for h in core.delivery_helpers()
        ]
        if is_postgres(core.db):
            answer["cluster"] = await _cluster(core)
    return answer


async def _cluster(core: Core) -> dict[str, Any]:
    """This node and the cron leader (several nodes on PostgreSQL); the leader's lease shows whether it is alive."""
    leader = await current_leader(core.db, CRON_LEADER)
    return {
        "node": getattr(core.db, "node_id", None),
        "cronLeader": None if leader is None else {"node": leader[0], "leaseExpiresAt": iso_from_ms(leader[1])},
    }


async def usage(core: Core, principal: Principal) -> dict[str, Any]:
    """Jobs accepted this month, in total and per queue."""
    now = core.clock.now_ms()
    start, end = _period_bounds(now)
    by_queue = await job_store.usage_by_queue(core.db, principal.workspace_id, billing_period(now))
    return {
        "period": {"from": iso_from_ms(start), "to": iso_from_ms(end)},
        "executions": {"total": sum(by_queue.values()), "byQueue": by_queue},
    }


async def metrics_text(core: Core, workspace_id: str | None) -> bytes:
    """The Prometheus text of one workspace's queues, or of every workspace's (None)."""
    queues = core.queues.all() if workspace_id is None else core.queues.of_workspace(workspace_id)
    counts = await counts_of_queues(core, queues)
    return core.metrics.render({(q.workspace_id, q.name): counts[q.rowid] for q in queues}, workspace_id)
