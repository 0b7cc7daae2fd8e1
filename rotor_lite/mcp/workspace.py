"""The 27 workspace tools of `rotor-lite mcp` (stdio): queues, schedules, jobs, the DLQ, status, API keys
and workspaces, each one API call made with `$ROTOR_API_KEY`."""

from __future__ import annotations

from typing import Any, Literal


from rotor_lite.mcp.tools import CURSOR, LIMIT, Call, Tool, arguments, param, rest
from rotor_lite.schemas import (
    ApiKeyCreate,
    DrainRequest,
    JobCreate,
    QueueCreate,
    QueueUpdate,
    ReplayRequest,
    ScheduleCreate,
    ScheduleUpdate,
)
from rotor_lite.sdk import AsyncRotor
from rotor_lite.sdk._request import path

__all__ = ["QUEUE_STATES", "WORKSPACE_TOOLS", "set_queue_state"]

SCHEDULE_ID = {"id": param(str, "The schedule's id (sched_…) or its name.")}
KEY_ID = {"id": param(str, "The API key's id (key_…).")}
WORKSPACE_ID = {"id": param(str, "The workspace's id (ws_…) or its name.")}
JOB_STATE = Literal["waiting", "delayed", "active", "completed", "failed", "cancelled", "pending_approval",
                    "guardrail.blocked", "blocked"]
# "pause" and "resume" are the verbs a user says; "paused" and "active" the states the API shows
QUEUE_STATES = Literal["active", "paused", "pause", "resume"]
_STATE_OF = {"pause": "paused", "resume": "active"}


async def set_queue_state(client: AsyncRotor, call: Call[Any]) -> Any:
    """Pause (dispatch nothing, still accept jobs) or resume a queue; the queue as it is now."""
    state = _STATE_OF.get(call.args.state, call.args.state)
    return await client.request("PATCH", path("/v1/queues/{}", call.args.name), json={"state": state})


_QUEUE_TOOLS = [
    rest("rotor_list_queues", "List the workspace's queues with their settings and job counts per state. "
         "Changes nothing. An empty workspace answers {queues: []}.", "GET", "/v1/queues", wrap="queues"),
    rest("rotor_get_queue", "Show one queue: its settings, state and job counts. Changes nothing.",
         "GET", "/v1/queues/{name}"),
    rest("rotor_create_queue", "Create a queue (e.g. {name, concurrency, retry_attempts}); with a callback_url "
         "rotor-lite POSTs each job there, without one workers lease them. Answers the new queue "
         "(callback_secret shown this once).", "POST", "/v1/queues", body=QueueCreate),
    rest("rotor_update_queue", "Change a queue's settings (only the fields given): concurrency, retries, "
         "backoff, callback URL and headers, approval, timeout, state. Answers the queue.",
         "PATCH", "/v1/queues/{name}", body=QueueUpdate),
    Tool("rotor_set_queue_state", "Pause a queue (it keeps accepting jobs but dispatches none) or resume it: "
         "state paused|pause or active|resume. Answers the queue.",
         arguments("rotor_set_queue_state", name=param(str, "The queue's name."),
                   state=param(QUEUE_STATES, "paused/pause stops dispatching; active/resume restarts it.")),
         set_queue_state),
    rest("rotor_drain_queue", "DESTRUCTIVE, needs confirm: true. Cancel every waiting and delayed job of the "
         "queue (they become cancelled). Answers {drained: n}.", "POST", "/v1/queues/{name}/drain",
         body=DrainRequest, destructive=True),
    rest("rotor_delete_queue", "DESTRUCTIVE, needs confirm: true. Delete the queue with all its jobs and "
         "schedules.", "DELETE", "/v1/queues/{name}", done="deleted", destructive=True),
]

_SCHEDULE_TOOLS = [
    rest("rotor_list_schedules", "List the workspace's cron schedules with their next fire time. Changes nothing.",
         "GET", "/v1/schedules", query={"limit": LIMIT, "cursor": CURSOR}, wrap="schedules"),
    rest("rotor_get_schedule", "Show one schedule with its 20 latest runs. Changes nothing.",
         "GET", "/v1/schedules/{id}", ids=SCHEDULE_ID),
    rest("rotor_create_schedule", "Create a cron schedule that enqueues a job on a queue: queue, name, cron "
         "(5 fields, e.g. '0 2 * * *'), timezone (IANA name, required, e.g. 'UTC'), payload, enabled. "
         "Answers the schedule.", "POST", "/v1/schedules", body=ScheduleCreate),
    rest("rotor_update_schedule", "Change a schedule's cron, timezone, payload, enabled flag or name (only the "
         "fields given). Answers the schedule.", "PATCH", "/v1/schedules/{id}", body=ScheduleUpdate, ids=SCHEDULE_ID),
    rest("rotor_delete_schedule", "DESTRUCTIVE, needs confirm: true. Delete a schedule (its run history is kept).",
         "DELETE", "/v1/schedules/{id}", ids=SCHEDULE_ID, done="deleted", destructive=True),
    rest("rotor_force_fire_schedule", "DESTRUCTIVE, needs confirm: true. Enqueue the schedule's job now, out of "
         "band; its next cron time is unchanged. Answers {jobId, runId}.",
         "POST", "/v1/schedules/{id}/fire-now", ids=SCHEDULE_ID, destructive=True),
    rest("rotor_inspect_run_history", "List a schedule's runs (cron ticks and manual fires), newest first, with "
         "the job each enqueued and its callback status. Changes nothing.", "GET", "/v1/schedules/{id}/runs",
         ids=SCHEDULE_ID, query={"limit": LIMIT, "cursor": CURSOR}),
]

_JOB_TOOLS = [
    rest("rotor_list_jobs", "List a queue's jobs, newest first, optionally only those in one state or with a tag. "
         "Changes nothing.", "GET", "/v1/queues/{queue}/jobs", wrap="jobs",
         query={"state": param(JOB_STATE | None, "Only jobs in this state.", None),
                "tag": param(str | None, "Only jobs with this tag.", None), "limit": LIMIT, "cursor": CURSOR}),
    rest("rotor_get_job", "Show one job with its payload, result, failure reason and every delivery attempt. "
         "Changes nothing.", "GET", "/v1/queues/{queue}/jobs/{job_id}"),
    rest("rotor_add_job", "Enqueue a job on a queue: payload, and optionally delay or run_at, tags, priority, "
         "concurrency_key, job_id (a known job_id answers the existing job with duplicate: true). Answers the job.",
         "POST", "/v1/queues/{queue}/jobs", body=JobCreate),
    rest("rotor_retry_job", "Send a failed, cancelled or blocked job back to waiting with its attempts reset. "
         "Answers the job.", "POST", "/v1/queues/{queue}/jobs/{job_id}/retry"),
    rest("rotor_delete_job", "DESTRUCTIVE, needs confirm: true. Cancel a waiting, delayed or pending-approval job "
         "(an active job cannot be). Answers the job, now cancelled.", "DELETE", "/v1/queues/{queue}/jobs/{job_id}",
         destructive=True),
    rest("rotor_get_dlq", "List failed jobs (the dead-letter queue), newest first, of the workspace or of one queue. "
         "Changes nothing.", "GET", "/v1/dlq", wrap="jobs",
         query={"queue": param(str | None, "Only this queue's failed jobs.", None), "limit": LIMIT, "cursor": CURSOR}),
    rest("rotor_replay_dlq", "DESTRUCTIVE, needs confirm: true. Send failed jobs of a queue (all, or job_ids) "
         "back to waiting; replaying twice is harmless. Answers {replayed: n}.", "POST", "/v1/dlq/replay",
         body=ReplayRequest, destructive=True),
    rest("rotor_get_status", "Show the server's health, version, and the workspace's plan and monthly job quota. "
         "Changes nothing.", "GET", "/v1/status"),
]

_KEY_TOOLS = [
    rest("rotor_list_api_keys", "List the workspace's API keys (never their secret part): label, role, scope, "
         "expiry, last use. Changes nothing.", "GET", "/v1/api-keys", wrap="api_keys"),
    rest("rotor_create_api_key", "Create an API key (label, role admin|developer|approver|viewer, default viewer; "
         "optional queue scope and expiry). The key itself is in this answer only.",
         "POST", "/v1/api-keys", body=ApiKeyCreate),
    rest("rotor_revoke_api_key", "DESTRUCTIVE, needs confirm: true. Revoke an API key at once: its next request "
         "is refused.", "DELETE", "/v1/api-keys/{id}", ids=KEY_ID, done="revoked", destructive=True),
    rest("rotor_list_workspaces", "List the workspaces this key can reach. Changes nothing.",
         "GET", "/v1/workspaces", wrap="workspaces"),
    rest("rotor_get_workspace", "Show one workspace: name, plan, creation date and limits. Changes nothing.",
         "GET", "/v1/workspaces/{id}", ids=WORKSPACE_ID),
]

WORKSPACE_TOOLS: list[Tool] = _QUEUE_TOOLS + _SCHEDULE_TOOLS + _JOB_TOOLS + _KEY_TOOLS
