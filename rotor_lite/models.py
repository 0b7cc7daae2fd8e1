"""Domain values: states and the records services hand around."""

from __future__ import annotations

from enum import StrEnum

import msgspec


class JobState(StrEnum):
    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PENDING_APPROVAL = "pending_approval"
    BLOCKED = "guardrail.blocked"
    # Internal: awaiting the brand-tone verdict. Kept out of the claim index, shown as `waiting`.
    SCREENING = "screening"


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.BLOCKED})
CANCELLABLE_STATES = frozenset({JobState.WAITING, JobState.DELAYED, JobState.PENDING_APPROVAL, JobState.SCREENING})
RETRYABLE_STATES = frozenset({JobState.FAILED, JobState.CANCELLED, JobState.BLOCKED})
STATE_ALIASES = {"blocked": JobState.BLOCKED}
# A job awaiting its brand-tone verdict is shown as `waiting` (a dict: this runs once per job of a batch).
_PUBLIC_STATES = {state: state.value for state in JobState} | {JobState.SCREENING: JobState.WAITING.value}


def public_state(state: JobState) -> str:
    """The state as the API shows it."""
    return _PUBLIC_STATES[state]


# The keys of a queue's `counts`, in the order the API lists them.
COUNT_KEYS = ("waiting", "delayed", "active", "completed", "failed", "pending_approval", "blocked", "cancelled")


class QueueState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class BackoffType(StrEnum):
    EXPONENTIAL = "exponential"
    FIXED = "fixed"


class Role(StrEnum):
    """What a key may do; each role may do everything the roles below it may (viewer < approver < developer < admin)."""

    ADMIN = "admin"
    DEVELOPER = "developer"
    APPROVER = "approver"
    VIEWER = "viewer"

    def covers(self, other: Role) -> bool:
        """True when this role may do everything `other` may."""
        return _ROLE_RANK[self] >= _ROLE_RANK[other]


_ROLE_RANK = {Role.VIEWER: 0, Role.APPROVER: 1, Role.DEVELOPER: 2, Role.ADMIN: 3}


class KeyType(StrEnum):
    """`rt_ws_` keys reach one workspace, `rt_q_` keys one queue of it, `rt_team_` keys several workspaces."""

    WORKSPACE = "workspace"
    QUEUE = "queue"
    TEAM = "team"


def key_type_of(team: bool, queue_name: str | None) -> KeyType:
    if team:
        return KeyType.TEAM
    return KeyType.WORKSPACE if queue_name is None else KeyType.QUEUE


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: the API key's id, the workspace the request acts in, the key's role, its queue scope,
    the workspaces a team key reaches and when the key expires."""

    key_id: str
    workspace_id: str
    role: Role
    queue_name: str | None = None
    team_workspaces: tuple[str, ...] = ()  # a team key's workspaces (ids); empty for the other kinds
    expires_at: int | None = None

    @property
    def key_type(self) -> KeyType:
        return key_type_of(bool(self.team_workspaces), self.queue_name)

    @property
    def reachable(self) -> tuple[str, ...]:
        """The ids of every workspace the key may act in."""
        return self.team_workspaces or (self.workspace_id,)


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """At most `max` jobs of one key start in any `per_ms` window."""

    key: str
    max: int
    per_ms: int


class Queue(msgspec.Struct, kw_only=True):
    """A queue as stored; `callback_secret` is the decrypted secret, held only in memory.

    A queue without a `callback_url` is a pull queue: workers lease its jobs over the API.
    """

    rowid: int
    workspace_id: str
    name: str
    concurrency: int
    max_attempts: int
    backoff_type: BackoffType
    backoff_delay_ms: int
    callback_url: str | None
    callback_headers: dict[str, str]
    callback_secret: str | None
    approval_required: bool
    timeout_ms: int
    state: QueueState
    created_at: int
    updated_at: int
    fairness_key: str | None = None  # serve the jobs' keys in turn: `concurrencyKey` or `payload.<path>`
    rate_limit: RateLimit | None = None

    @property
    def group_by(self) -> str | None:
        """What the queue's jobs are grouped by (fairness and rate limits share it), if anything."""
        return self.fairness_key or (self.rate_limit.key if self.rate_limit else None)


class Attempt(msgspec.Struct, kw_only=True):
    """One delivery of a job and how it ended."""

    attempt: int
    at: int
    duration_ms: int
    status: int | None
    outcome: str
    error: str | None


class Job(msgspec.Struct, kw_only=True):
    """A job as stored."""

    rowid: int
    id: str
    queue_id: int
    queue_name: str
    workspace_id: str
    state: JobState
    payload: bytes
    tags: list[str]
    concurrency_key: str | None
    priority: int
    attempts: int
    max_attempts: int
    run_at: int
    created_at: int
    started_at: int | None = None
    finished_at: int | None = None
    fail_reason: str | None = None
    result: bytes | None = None
    blocked_by: str | None = None
    block_reason: str | None = None
    approval_id: str | None = None
    schedule_id: str | None = None
    stalled: int = 0
    group_key: str | None = None  # the job's value of its queue's group key (fairness, rate limits)


class Claimed(msgspec.Struct, kw_only=True):
    """A job the dispatcher leased for one delivery."""

    rowid: int
    id: str
    queue_id: int
    payload: bytes
    attempt: int
    max_attempts: int
    lease_token: str
    concurrency_key: str | None
    schedule_id: str | None = None


class Schedule(msgspec.Struct, kw_only=True):
    """A cron rule on a queue; `next_fire_at` is None while it is paused."""

    rowid: int
    id: str
    workspace_id: str
    queue_id: int
    name: str
    cron: str
    timezone: str
    payload: bytes
    enabled: bool
    next_fire_at: int | None
    last_fired_at: int | None
    created_at: int
    updated_at: int
    function_id: str | None = None  # a cron-triggered function's schedule (it has no queue)


class ScheduleRun(msgspec.Struct, kw_only=True):
    """One tick (or manual fire) of a schedule; a skipped tick has no `fired_at` and no job."""

    id: str
    schedule_id: str
    scheduled_for: int
    fired_at: int | None
    job_id: str | None
    manual: bool
    callback_status: str | None
    error: str | None
    rowid: int = 0


class DeliveryHelper(msgspec.Struct, kw_only=True, frozen=True):
    """One delivery helper process as the server sees it (`[delivery] processes`)."""

    index: int
    pid: int | None  # None until its first start
    alive: bool
    in_flight: int
    restarts: int
    delivered: int


class Settlement(msgspec.Struct, kw_only=True, frozen=True):
    """How one delivery ends for its job: `state` completed, failed, or delayed/waiting for a retry.

    `at` is when the outcome was known: `finished_at` of a completed or failed job.
    """

    claimed: Claimed
    attempt: Attempt
    state: JobState
    at: int
    result: bytes | None = None
    reason: str | None = None
    retry_at: int | None = None


# Durable workflows --------------------------------------------------------------------


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


RUN_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class StepType(StrEnum):
    RUN = "run"
    SLEEP = "sleep"
    INVOKE = "invoke"
    SEND_EVENT = "send_event"
    WAIT_FOR_SIGNAL = "wait_for_signal"
    WAIT_FOR_EVENT = "wait_for_event"
    HOOK = "hook"  # a lifecycle hook's call: kept with the steps, never shown among them


class StepStatus(StrEnum):
    SCHEDULED = "scheduled"  # its call is due at `due_at`
    RUNNING = "running"  # its call is in flight
    SLEEPING = "sleeping"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


STEP_OPEN = frozenset({StepStatus.SCHEDULED, StepStatus.RUNNING, StepStatus.SLEEPING, StepStatus.WAITING})
STEP_DONE = frozenset({StepStatus.COMPLETED, StepStatus.FAILED})


class Function(msgspec.Struct, kw_only=True):
    """A registered workflow function: where to call it and what starts its runs."""

    rowid: int
    workspace_id: str
    id: str
    serve_url: str
    trigger_type: str  # "event" | "cron"
    trigger_event: str | None
    cron: str | None
    timezone: str | None
    retries: int
    concurrency: int | None
    hooks: list[str]
    schedule_id: str | None
    created_at: int
    updated_at: int


class Run(msgspec.Struct, kw_only=True):
    """One execution of a function for one event."""

    rowid: int
    id: str
    workspace_id: str
    function_id: str
    status: RunStatus
    event_id: str
    event_name: str
    event_data: bytes
    event_ts: int
    attempt: int
    output: bytes | None
    error: str | None  # JSON {"name", "message"}
    parent_run_id: str | None
    parent_step_rowid: int | None
    idempotency_key: str | None
    replay_of: str | None
    schedule_id: str | None
    hook_errors: str | None  # JSON list
    created_at: int
    started_at: int | None
    ended_at: int | None


class Step(msgspec.Struct, kw_only=True):
    """One step of a run, by its key `<id>:<n>`."""

    rowid: int
    run_rowid: int
    key: str
    name: str
    type: StepType
    status: StepStatus
    attempts: int
    output: bytes | None
    error: str | None  # JSON {"name", "message"}
    child_run_id: str | None
    signal: str | None
    event_name: str | None
    started_at: int | None
    ended_at: int | None
    due_at: int | None


class RunCall(msgspec.Struct, kw_only=True, frozen=True):
    """A leased call to a function's serve URL: the function body (`step` None) or one step's."""

    run_rowid: int
    run_id: str
    workspace_id: str
    function_id: str
    lease_token: str
    attempt: int
    step_rowid: int | None = None
    step_key: str | None = None
    hook: str | None = None  # on_success | on_failure | on_cancel, for a hook's call
