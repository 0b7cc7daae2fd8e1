"""The 7 operator tools of `rotor-lite mcp --admin`, over the `/v1/admin` routes with the operator token."""

from __future__ import annotations

from rotor_lite.mcp.tools import CURSOR, LIMIT, Tool, param, rest
from rotor_lite.schemas import ReplayRequest

__all__ = ["ADMIN_TOOLS"]

_WS = "/v1/admin/workspaces/{workspace}"
WORKSPACE = {"workspace": param(str, "The workspace's id (ws_…) or name.")}
SCHEDULE = WORKSPACE | {"schedule_id": param(str, "The schedule's id (sched_…) or name.")}

ADMIN_TOOLS: list[Tool] = [
    rest("rotor_list_workspaces", "List every workspace on the server with its plan and creation date. "
         "Changes nothing.", "GET", "/v1/admin/workspaces", wrap="workspaces"),
    rest("rotor_get_workspace_queues", "Every queue of a workspace with its settings, state and job depth per "
         "state. Changes nothing.", "GET", f"{_WS}/queues", ids=WORKSPACE, wrap="queues"),
    rest("rotor_get_workspace_schedules", "Every schedule of a workspace with its next fire time and a drift "
         "flag (enabled, but its next fire time passed over a minute ago). Changes nothing.",
         "GET", f"{_WS}/schedules", ids=WORKSPACE, query={"limit": LIMIT, "cursor": CURSOR}, wrap="schedules"),
    rest("rotor_inspect_job", "One job in full: payload, result, failure reason, every delivery attempt. "
         "Changes nothing.", "GET", f"{_WS}/queues/{{queue}}/jobs/{{job_id}}", ids=WORKSPACE),
    rest("rotor_get_dlq", "A workspace's dead-letter queue: its depth (failed jobs) and the latest failed jobs, "
         "optionally of one queue. Changes nothing.", "GET", f"{_WS}/dlq", ids=WORKSPACE, wrap="jobs",
         query={"queue": param(str | None, "Only this queue.", None), "limit": LIMIT, "cursor": CURSOR}),
    rest("rotor_replay_dlq", "DESTRUCTIVE, needs confirm: true. Send failed jobs of a workspace's queue (all, or "
         "job_ids) back to waiting; replaying twice is harmless. Answers {replayed: n}.",
         "POST", f"{_WS}/dlq/replay", ids=WORKSPACE, body=ReplayRequest, destructive=True),
    rest("rotor_fire_schedule_now", "DESTRUCTIVE, needs confirm: true. Enqueue a schedule's job now, out of band; "
         "its cron's next fire time is unchanged. Answers {jobId, runId}.",
         "POST", f"{_WS}/schedules/{{schedule_id}}/fire-now", ids=SCHEDULE, destructive=True),
]
