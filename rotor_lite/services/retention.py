"""Retention: how long a workspace keeps its history (the sweeper prunes what is older)."""

from __future__ import annotations

from rotor_lite.services.core import Core

__all__ = ["AUDIT_EVENTS_DAYS", "DAY_MS", "retention_days"]

DAY_MS = 86_400_000
AUDIT_EVENTS_DAYS = 365  # the same for every workspace; the audit table refuses to lose a younger event


def retention_days(core: Core, workspace_id: str) -> float:
    """Days the workspace keeps its finished jobs (completed, failed, cancelled, blocked) with their
    attempt logs and tags, its ended workflow runs with their steps, and its webhook delivery logs.

    Every workspace has the configured default (`[retention] finished_jobs`) until plans set it.
    """
    return core.settings.retention.ms("finished_jobs") / DAY_MS
