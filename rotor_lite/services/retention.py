"""Retention: how long history is kept. A workspace's finished jobs, runs and logs follow its plan's
`retention_days` (`services.workspaces.retention_days`); audit events are kept a year everywhere."""

from __future__ import annotations

__all__ = ["AUDIT_EVENTS_DAYS"]

AUDIT_EVENTS_DAYS = 365  # the same for every workspace; the audit table refuses to lose a younger event
