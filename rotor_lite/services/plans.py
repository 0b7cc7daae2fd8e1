"""Plans: each workspace's requests per minute, monthly job quota and retention days, from `[plans.*]`."""

from __future__ import annotations


import msgspec

from rotor_lite.config import PlanSettings, Settings
from rotor_lite.store import workspaces as ws_store
from rotor_lite.store.db import Database
from rotor_lite.store.contract import Conn

PLANS = ("free", "pro", "team", "enterprise", "self-hosted")
DEFAULT_PLAN = "self-hosted"


class PlanLimits(msgspec.Struct, frozen=True, kw_only=True):
    """A plan's figures as configured; 0 requests or jobs means unlimited."""

    plan: str
    requests_per_minute: int
    jobs_per_month: int
    retention_days: int


def plan_limits(settings: Settings, plan: str) -> PlanLimits:
    """The figures of `plan`; the self-hosted plan's requests per minute and monthly jobs are `[limits]`'s."""
    if plan == DEFAULT_PLAN:
        limits = settings.limits
        return PlanLimits(plan=plan, requests_per_minute=limits.rate_limit_per_minute,
                          jobs_per_month=limits.monthly_job_quota, retention_days=settings.plans.self_hosted.retention_days)
    figures: PlanSettings = getattr(settings.plans, plan)
    return PlanLimits(plan=plan, requests_per_minute=figures.requests_per_minute, jobs_per_month=figures.jobs_per_month,
                      retention_days=figures.retention_days)


class WorkspacePlans:
    """Every workspace's plan, in memory: the rate limit and the quota ask on every request.

    Plans are set when a workspace is created; one created by the offline command while the server
    runs is read on its first use.
    """

    def __init__(self, settings: Settings) -> None:
        self._limits = {plan: plan_limits(settings, plan) for plan in PLANS}
        self._plans: dict[str, str] = {}

    def load(self, conn: Conn) -> None:
        self._plans.update(ws_store.workspace_plans(conn))

    def put(self, workspace_id: str, plan: str) -> None:
        self._plans[workspace_id] = plan

    def of_plan(self, plan: str) -> PlanLimits:
        return self._limits.get(plan) or self._limits[DEFAULT_PLAN]

    def known(self, workspace_id: str) -> PlanLimits:
        """A workspace's limits without reading the database: every workspace with any history is known (its
        requests loaded it); one created offline and never used yet counts as on the default plan."""
        return self.of_plan(self._plans.get(workspace_id, DEFAULT_PLAN))

    def limits_in(self, conn: Conn, workspace_id: str) -> PlanLimits:
        """A workspace's limits, read in a write transaction when it is not known yet."""
        plan = self._plans.get(workspace_id)
        if plan is None:
            plan = self._plans[workspace_id] = ws_store.plan_of(conn, workspace_id) or DEFAULT_PLAN
        return self.of_plan(plan)

    async def limits(self, db: Database, workspace_id: str) -> PlanLimits:
        """A workspace's limits, read from the database when it is not known yet."""
        plan = self._plans.get(workspace_id)
        if plan is None:
            plan = self._plans[workspace_id] = await ws_store.workspace_plan(db, workspace_id) or DEFAULT_PLAN
        return self.of_plan(plan)
