"""What crosses HTTP: request Structs (validated at the edge) and response Structs.

Requests accept every field in snake_case and camelCase; `decode_request` folds the
camelCase spellings into the snake_case names below and rejects unknown fields.
Response field names follow the API contract, which differs per resource.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal, TypeVar

import msgspec

from rotor_lite.errors import ValidationError

T = TypeVar("T")
QUEUE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
MAX_PAYLOAD_DEPTH = 64  # levels of objects and arrays a payload may nest
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_AS_PARENS = bytes.maketrans(b"[{]}", b"(())")


class Backoff(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    type: Literal["exponential", "fixed"] = "exponential"
    delay: int = 2000


class DefaultJobOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    attempts: int | None = None
    backoff: Backoff | None = None


class Fairness(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: str


class RateLimitSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: str
    max: int
    per: int | str


class QueueCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    concurrency: int = 1
    retry_attempts: int | None = None
    default_job_options: DefaultJobOptions | None = None
    callback_url: str | None = None
    callback_headers: dict[str, str] | None = None
    rotate_callback_secret: bool = False
    approval_required: bool = False
    timeout_seconds: int | None = None
    fairness: Fairness | None = None
    rate_limit: RateLimitSpec | None = None


class QueueUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    concurrency: int | None = None
    retry_attempts: int | None = None
    default_job_options: DefaultJobOptions | None = None
    callback_url: str | None | msgspec.UnsetType = msgspec.UNSET
    callback_headers: dict[str, str] | None = None
    rotate_callback_secret: bool = False
    approval_required: bool | None = None
    timeout_seconds: int | None = None
    state: Literal["active", "paused"] | None = None
    fairness: Fairness | None | msgspec.UnsetType = msgspec.UNSET
    rate_limit: RateLimitSpec | None | msgspec.UnsetType = msgspec.UNSET


class DrainRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    confirm: bool = False


class JobCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    payload: Any = msgspec.field(default_factory=dict)
    delay: int | str | None = None
    run_at: str | None = None
    tags: list[str] | None = None
    concurrency_key: str | None = None
    job_id: str | None = None
    idempotency_key: str | None = None
    priority: int = 0
    strict: bool = False


class BatchCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    jobs: list[JobCreate]
    idempotency_keys: list[str] | None = None


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    queue: str
    job_ids: list[str] | None = None


class LeaseRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max: int = 1
    lease_seconds: int | str = 30
    wait_seconds: int | str = 0


class HeartbeatRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    lease_token: str
    lease_seconds: int | str = 30


class CompleteRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    lease_token: str
    result: Any = None


class FailRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    lease_token: str
    error: str
    retry: bool = True


class Outcome(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One leased job's outcome in a batch: completed with `result`, or failed when `error` is given."""

    id: str
    lease_token: str
    result: Any = None
    error: str | None = None
    retry: bool = True


class OutcomesRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    outcomes: list[Outcome]


# Responses -----------------------------------------------------------------


class Counts(msgspec.Struct, kw_only=True):
    waiting: int = 0
    delayed: int = 0
    active: int = 0
    completed: int = 0
    failed: int = 0
    pending_approval: int = 0
    blocked: int = 0
    cancelled: int = 0


class QueueOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    concurrency: int
    retry_attempts: int
    defaultJobOptions: dict[str, Any]
    callback_url: str | None
    callback_headers: dict[str, str]
    approval_required: bool
    timeout_seconds: int
    state: str
    created_at: str
    updated_at: str
    counts: Counts
    fairness: dict[str, str] | None
    rateLimit: dict[str, Any] | None
    callback_secret: str | None = None


class AttemptOut(msgspec.Struct, kw_only=True):
    attempt: int
    at: str
    durationMs: int
    status: int | None
    outcome: str
    error: str | None


class JobOut(msgspec.Struct, omit_defaults=True):
    """Positional on purpose: `render.job_out` builds one per job of a batch, and keyword
    construction of 21 fields costs three times as much. Keep the field order in step with it."""

    id: str
    queue: str
    state: str
    payload: msgspec.Raw
    tags: list[str]
    concurrencyKey: str | None
    priority: int
    attempts: int
    maxAttempts: int
    runAt: str
    createdAt: str
    startedAt: str | None
    finishedAt: str | None
    failReason: str | None
    result: msgspec.Raw | None
    blockedBy: str | None
    blockReason: str | None
    approvalId: str | None
    scheduleId: str | None
    duplicate: bool | None = None
    attemptLog: list[AttemptOut] | None = None


class LeasedJobOut(msgspec.Struct, kw_only=True):
    id: str
    payload: msgspec.Raw
    attempt: int
    leaseToken: str
    leaseExpiresAt: str
    tags: list[str]


class LeaseOut(msgspec.Struct, kw_only=True):
    data: list[LeasedJobOut]


class LeaseOutcomeOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The answer to a heartbeat (`leaseExpiresAt`) or to a completion or failure (the job's new `state`)."""

    id: str
    state: str
    leaseExpiresAt: str | None = None


class OutcomeError(msgspec.Struct, kw_only=True):
    code: str
    message: str


class OutcomeOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One outcome of a batch: the job's new `state`, or why nothing changed (`error`)."""

    id: str
    state: str | None = None
    error: OutcomeError | None = None


class OutcomesOut(msgspec.Struct, kw_only=True):
    data: list[OutcomeOut]


class Page(msgspec.Struct, kw_only=True):
    data: list[Any]
    nextCursor: str | None


class JobPage(msgspec.Struct, kw_only=True):
    data: list[JobOut]
    nextCursor: str | None


class JobList(msgspec.Struct, kw_only=True):
    data: list[JobOut]


class QueueList(msgspec.Struct, kw_only=True):
    data: list[QueueOut]


class Drained(msgspec.Struct, kw_only=True):
    drained: int


class Retried(msgspec.Struct, kw_only=True):
    retried: int


class Replayed(msgspec.Struct, kw_only=True):
    replayed: int


class Quota(msgspec.Struct, kw_only=True):
    used: int
    limit: int | None
    plan: str
    resetAt: str


class DeliveryHelperOut(msgspec.Struct, kw_only=True):
    pid: int | None
    alive: bool
    inFlight: int
    restarts: int
    delivered: int


class StatusOut(msgspec.Struct, kw_only=True):
    api: str
    database: str
    version: str
    quota: Quota
    deliveryHelpers: list[DeliveryHelperOut] | msgspec.UnsetType = msgspec.UNSET  # admins only


class Period(msgspec.Struct, kw_only=True):
    from_: str = msgspec.field(name="from")
    to: str


class Executions(msgspec.Struct, kw_only=True):
    total: int
    byQueue: dict[str, int]


class UsageOut(msgspec.Struct, kw_only=True):
    period: Period
    executions: Executions


# API keys and workspaces ------------------------------------------------------

RoleName = Literal["admin", "developer", "approver", "viewer"]
PlanName = Literal["free", "pro", "team", "enterprise", "self-hosted"]


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /v1/api-keys`; `expires_in_days` null means never (an admin's choice), left out 90 days."""

    label: str
    role: RoleName = "viewer"
    type: Literal["workspace", "queue", "team"] | None = None
    queue: str | None = None
    workspaces: list[str] | None = None
    expires_in_days: int | None | msgspec.UnsetType = msgspec.UNSET


class ApiKeyRotate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    grace_seconds: float = 3600.0


class ApiKeyOut(msgspec.Struct, kw_only=True):
    """A key as listed (`workspaces`: the ids it reaches); `key`, the plaintext, only in the response that minted it."""

    id: str
    prefix: str
    label: str
    role: str
    type: str
    queue: str | None
    workspaces: list[str]
    createdAt: str
    expiresAt: str | None
    lastUsedAt: str | None
    revokedAt: str | None
    key: str | msgspec.UnsetType = msgspec.UNSET


class ApiKeyList(msgspec.Struct, kw_only=True):
    data: list[ApiKeyOut]


class WorkspaceCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    plan: PlanName = "self-hosted"


class PlanLimitsOut(msgspec.Struct, kw_only=True):
    """A workspace's plan figures; null is unlimited."""

    jobsPerMonth: int | None
    requestsPerMinute: int | None
    retentionDays: int


class WorkspaceOut(msgspec.Struct, kw_only=True):
    """A workspace; `apiKey` (its first admin key) only in the response that created it."""

    id: str
    name: str
    plan: str
    createdAt: str
    limits: PlanLimitsOut
    apiKey: ApiKeyOut | msgspec.UnsetType = msgspec.UNSET


class WorkspaceList(msgspec.Struct, kw_only=True):
    data: list[WorkspaceOut]


class ErrorDetail(msgspec.Struct, kw_only=True):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(msgspec.Struct, kw_only=True):
    error: ErrorDetail


# Decoding ------------------------------------------------------------------


@lru_cache(maxsize=1024)
def snake_case(name: str) -> str:
    """`retryAttempts` → `retry_attempts`; snake_case names pass through."""
    return _CAMEL.sub("_", name).lower()


def fold_keys(obj: dict[str, Any], nested: tuple[str, ...] = ()) -> dict[str, Any]:
    """The object with camelCase keys renamed to snake_case; both spellings of one field is an error."""
    folded: dict[str, Any] = {}
    for key, value in obj.items():
        name = snake_case(key)
        if name in folded:
            raise ValidationError(f"field '{name}' is given twice ('{key}')", field=name)
        if name in nested and isinstance(value, dict):
            value = fold_keys(value, nested)
        elif name in nested and isinstance(value, list):
            value = [fold_keys(item, nested) if isinstance(item, dict) else item for item in value]
        folded[name] = value
    return folded


def nests_deeper_than(data: bytes, limit: int) -> bool:
    """Whether the JSON text `data` nests objects and arrays more than `limit` levels deep.

    Decoding deep JSON recurses (and ~1,000 levels overflow the stack), so this reads the
    brackets with whole-buffer byte operations instead: cheap enough for every request body.
    """
    if len(data) <= 2 * limit:
        return False  # too short to be that deep: most single enqueues stop here
    if b"\\" in data:  # escaped backslashes, then escaped quotes: every quote left starts or ends a string
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = data.translate(None, _NOT_STRUCTURE)
    if len(structure) - structure.count(b'"') <= 2 * limit:
        return False  # too few brackets, wherever they are
    structure = structure.replace(b'""', b"")
    if b'"' in structure:  # strings holding brackets: drop what lies between their quotes
        structure = b"".join(structure.split(b'"')[::2])
    parens = structure.translate(_AS_PARENS)
    for _ in range(limit):
        parens = parens.replace(b"()", b"")  # one pass removes every innermost level
        if not parens:
            return False
    return bool(parens)


def _depth_limit(struct: type[Any]) -> int:
    """How deep a body of `struct` may nest: a payload's levels plus those of the object around it."""
    return MAX_PAYLOAD_DEPTH + (3 if struct is BatchCreate else 1)  # a batch: {"jobs": [{"payload": …}]}


def decode_request(body: bytes, struct: type[T], nested: tuple[str, ...] = ()) -> T:
    """Decode and validate a JSON request body into `struct`, or raise ValidationError."""
    if not body.strip():
        body = b"{}"
    if nests_deeper_than(body, _depth_limit(struct)):
        raise ValidationError(
            f"JSON nested too deeply: a payload may nest at most {MAX_PAYLOAD_DEPTH} levels of objects and arrays",
            field="body", limit=MAX_PAYLOAD_DEPTH,
        )
    try:
        # Fast path: a body already in snake_case decodes straight into the Struct.
        return msgspec.json.decode(body, type=struct)
    except msgspec.ValidationError:
        pass  # camelCase or a real error; msgspec may stop at a bad field before reaching bad JSON
    except msgspec.DecodeError as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}", field="body") from exc
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}", field="body") from exc
    return convert_request(raw, struct, nested)


def convert_request(raw: Any, struct: type[T], nested: tuple[str, ...] = ()) -> T:
    """Validate an already-decoded JSON value into `struct`."""
    if not isinstance(raw, dict):
        raise ValidationError("request body must be a JSON object", field="body")
    try:
        return msgspec.convert(fold_keys(raw, nested), struct)
    except msgspec.ValidationError as exc:
        raise ValidationError(str(exc), field=_error_field(str(exc))) from exc


def _error_field(message: str) -> str | None:
    unknown = re.search(r"unknown field `([^`]+)`", message)
    missing = re.search(r"missing required field `([^`]+)`", message)
    path = re.search(r"at `\$\.?([^`]*)`", message)
    parts = [m.group(1) for m in (path,) if m and m.group(1)]
    leaf = unknown or missing
    if leaf:
        parts.append(leaf.group(1))
    return ".".join(parts) or None


# Schedules -------------------------------------------------------------------


class ScheduleCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /v1/schedules`; `queue_name` and `job_data` are the reference SDK's names for `queue` and `payload`."""

    queue: str | None = None
    queue_name: str | None = None
    name: str | None = None
    cron: str | None = None
    timezone: str | None = None
    payload: Any = msgspec.UNSET
    job_data: Any = msgspec.UNSET
    enabled: bool = True


class ScheduleUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`PATCH /v1/schedules/:id`: only the fields given change."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    cron: str | None | msgspec.UnsetType = msgspec.UNSET
    timezone: str | None | msgspec.UnsetType = msgspec.UNSET
    payload: Any = msgspec.UNSET
    job_data: Any = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class SchedulePreview(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    cron: str | None = None
    timezone: str | None = None
    start: str | None = msgspec.field(default=None, name="from")
    count: int = 5


class ScheduleRunOut(msgspec.Struct, kw_only=True):
    id: str
    schedule_id: str
    scheduled_for: str
    fired_at: str | None
    job_id: str | None
    manual: bool
    callback_status: str | None
    error: str | None


class ScheduleOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    external_id: str
    name: str
    queue: str
    cron: str
    timezone: str
    payload: msgspec.Raw
    enabled: bool
    next_fire_at: str | None
    last_fired_at: str | None
    created_at: str
    updated_at: str
    description: str
    runs: list[ScheduleRunOut] | None = None


# Webhooks, alerts, secrets --------------------------------------------------------


class WebhookCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str
    event_types: list[str]


class WebhookUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str | None = None
    event_types: list[str] | None = None
    enabled: bool | None = None


class AlertsUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: str | None = None
    slack_webhook_url: str | None = None


class SecretCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    value: str


class SecretRotate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    value: str


class SchedulePage(msgspec.Struct, kw_only=True):
    data: list[ScheduleOut]
    nextCursor: str | None


class ScheduleRunPage(msgspec.Struct, kw_only=True):
    runs: list[ScheduleRunOut]
    nextCursor: str | None


class SchedulePreviewOut(msgspec.Struct, kw_only=True):
    next: list[str]
    description: str


class FiredNow(msgspec.Struct, kw_only=True):
    jobId: str
    runId: str


# Approvals and guardrails -------------------------------------------------------


class ApprovalReject(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: str | None = None


class GuardrailUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`PATCH /v1/guardrails`: each field given replaces the stored one (a DNC list is replaced whole)."""

    dnc_emails: list[str] | None = None
    dnc_domains: list[str] | None = None
    competitor_domains: list[str] | None = None
    pii_redaction_enabled: bool | None = None
    pii_mode: Literal["redact", "block"] | None = None
    pii_types: list[str] | None = None
    brand_tone_judge_enabled: bool | None = None
    brand_tone_rubric: str | None = None
    brand_tone_threshold: float | None = None


class DncAppend(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /v1/guardrails/dnc`: entries added to the lists (known ones are no-ops)."""

    emails: list[str] | None = None
    domains: list[str] | None = None


# Durable workflows -------------------------------------------------------------

EVENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,127}$"


class FunctionCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    serve_url: str
    trigger_type: Literal["event", "cron"] = "event"
    trigger_event: str | None = None
    cron: str | None = None
    timezone: str | None = None
    retries: int = 3
    concurrency: int | None = None
    hooks: list[str] | None = None


class EventSend(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    data: Any = msgspec.field(default_factory=dict)
    id: str | None = None
    ts: int | None = None
    idempotency_key: str | None = None


class SignalComplete(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    data: Any = msgspec.UNSET
    run_id: str | None = None


class FunctionOut(msgspec.Struct, kw_only=True):
    id: str
    serve_url: str
    trigger_type: str
    trigger_event: str | None
    cron: str | None
    timezone: str | None
    retries: int
    concurrency: int | None
    hooks: list[str]
    createdAt: str
    updatedAt: str


class EventOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    name: str
    data: Any
    ts: int


class RunError(msgspec.Struct, kw_only=True):
    name: str
    message: str


class StepOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    type: str
    status: str
    attempts: int
    startedAt: str | None
    endedAt: str | None
    wakeAt: str | None
    output: Any
    error: RunError | None
    childRunId: str | None
    signal: str | None
    event: str | None


class RunOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    functionId: str
    status: str
    event: EventOut
    attempt: int
    output: Any
    error: RunError | None
    parentRunId: str | None
    createdAt: str
    startedAt: str | None
    endedAt: str | None
    replayOf: str | None = None
    childRunIds: list[str] | None = None
    steps: list[StepOut] | None = None
    hookErrors: list[Any] | None = None
