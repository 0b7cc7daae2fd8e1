"""Guardrails: the workspace config and DNC lists, block statistics, and `GuardrailAdmission`,
the `core.admission` that puts every new job through the stages (then the approval gate).

Order for every new job (API, batch, schedule): guardrails → approval (if the queue requires it)
→ dispatch. A manual retry of a blocked job runs the guardrails again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from rotor_lite.clock import iso_from_ms
from rotor_lite.errors import InvalidState, NotFound, ValidationError
from rotor_lite.guardrails import PII_KINDS, normalize_domain, normalize_email
from rotor_lite.ids import new_id
from rotor_lite.models import Job, JobState, Principal, Queue
from rotor_lite.schemas import DncAppend, GuardrailUpdate
from rotor_lite.services import approvals
from rotor_lite.services.core import Core
from rotor_lite.services.guardrail_stages import STAGES, Policy, Screened, screen_batch
from rotor_lite.services.paging import decode_text_cursor, encode_text_cursor
from rotor_lite.store import guardrails as store
from rotor_lite.store import jobs as job_store
from rotor_lite.store.guardrails import ConfigRow, DncKind, PolicyReader, Screening
from rotor_lite.store.contract import Conn

LIST_CAP = 10_000  # entries of each DNC list shown inline by GET /v1/guardrails; the rest is paged
MAX_DNC_REPLACE = 1_000_000
MAX_DNC_APPEND = 100_000
MAX_COMPETITORS = 10_000
MAX_RUBRIC = 10_000
MAX_STATS_DAYS = 366
_PLAIN_STATES = frozenset({JobState.WAITING, JobState.DELAYED})  # states that need nothing on insert


class PolicyCache:
    """Compiled policies per workspace, loaded through a read-only connection on the event loop thread."""

    def __init__(self, reader: PolicyReader, default_threshold: float) -> None:
        self._reader = reader
        self._default_threshold = default_threshold
        self._policies: dict[str, Policy] = {}

    def get(self, workspace_id: str) -> Policy:
        policy = self._policies.get(workspace_id)
        if policy is None:
            config = self._reader.config(workspace_id) or default_config(workspace_id, self._default_threshold)
            policy = self._policies[workspace_id] = Policy(config, self._reader.has_dnc(workspace_id))
        return policy

    def invalidate(self, workspace_id: str) -> None:
        self._policies.pop(workspace_id, None)

    def invalidate_all(self) -> None:
        self._policies.clear()

    def probe(self, workspace_id: str) -> Callable[[DncKind, Sequence[str]], set[str]]:
        return lambda kind, values: self._reader.dnc_hits(kind, workspace_id, values)


def default_config(workspace_id: str, threshold: float) -> ConfigRow:
    """The config of a workspace that never set one: every stage off."""
    return ConfigRow(workspace_id=workspace_id, id="", brand_tone_threshold=threshold)


def _policies(core: Core) -> PolicyCache:
    admission = core.admission
    if not isinstance(admission, GuardrailAdmission):
        raise RuntimeError("guardrails are not installed on this core")
    return admission.policies


def day_of(now_ms: int) -> str:
    """The UTC calendar day of a moment, `2026-05-20`."""
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


# Admission -----------------------------------------------------------------------------------


class GuardrailAdmission:
    """`core.admission`: screens new jobs, blocks or redacts them, holds them for the brand-tone
    judge, and opens approvals for queues that require one."""

    def __init__(self, core: Core, policies: PolicyCache, on_screening: Callable[[], None]) -> None:
        self.core = core
        self.policies = policies
        self._on_screening = on_screening

    async def screen(self, queue: Queue, jobs: list[Job]) -> list[Job]:
        """The jobs as they should be stored: blocked, redacted or held for the judge."""
        policy = self.policies.get(queue.workspace_id)
        if policy.inactive:
            return jobs
        _apply(jobs, screen_batch(policy, [job.payload for job in jobs], self.policies.probe(queue.workspace_id)))
        return jobs

    def on_insert(self, conn: Conn, queue: Queue, jobs: list[Job]) -> None:
        """In the inserting transaction: record blocks, open approvals, wake the judge."""
        if {job.state for job in jobs} <= _PLAIN_STATES:  # the common case, in one pass over a batch
            return
        pending, screening = [], False
        for job in jobs:
            if job.state == JobState.BLOCKED:
                self._block(conn, queue, job)
            elif job.state == JobState.PENDING_APPROVAL:
                pending.append(job)
            elif job.state == JobState.SCREENING:
                screening = True
        if pending:
            approvals.open_approvals(self.core, conn, queue, pending, pending[0].created_at)
        if screening:
            self._on_screening()

    def _block(self, conn: Conn, queue: Queue, job: Job) -> None:
        now = job.finished_at or job.created_at
        store.mark_blocked(conn, queue.rowid, job.id, job.blocked_by or "", job.block_reason or "", now)
        record_block(self.core, conn, queue, job.id, job.payload, job.blocked_by or "", job.block_reason or "", now)

    async def retry(self, queue: Queue, job_id: str, actor: str) -> Job | None:
        """A blocked job is screened again; a rejected one is refused; others are left to the caller."""
        row = await job_store.get_job(self.core.db, queue.rowid, job_id)
        if row is None:
            return None
        job = job_store.job_from_row(row, queue.name)
        if job.state == JobState.FAILED and job.fail_reason == "rejected":
            raise InvalidState("job", "failed (rejected)", "retry")
        if job.state != JobState.BLOCKED:
            return None
        return await self._readmit(queue, job)

    async def _readmit(self, queue: Queue, job: Job) -> Job:
        now = self.core.clock.now_ms()
        state = JobState.PENDING_APPROVAL if queue.approval_required else JobState.WAITING
        candidate = msgspec.structs.replace(
            job, state=state, attempts=0, run_at=now, created_at=now, started_at=None, finished_at=None,
            fail_reason=None, blocked_by=None, block_reason=None, approval_id=None,
        )
        [candidate] = await self.screen(queue, [candidate])

        def write(conn: Conn) -> Job:
            if not store.readmit_blocked(conn, queue.rowid, job.id, candidate.state, candidate.payload, now):
                raise InvalidState("job", "changed meanwhile", "retry")
            self.on_insert(conn, queue, [candidate])
            return candidate

        readmitted = await self.core.db.write(write)
        readmitted.created_at = job.created_at
        self.core.on_jobs_ready()
        return readmitted

    def on_cancel(self, conn: Conn, job: Job, actor: str) -> None:
        """A cancelled job's pending approval is closed."""
        approvals.close_for_cancelled_job(self.core, conn, job, actor, self.core.clock.now_ms())


def _apply(jobs: list[Job], screened: Screened) -> None:
    """The jobs take their payloads as stored; blocked ones are blocked, the others held if asked."""
    for job, payload in zip(jobs, screened.stored):
        job.payload = payload
    if screened.hold:
        for job in jobs:
            job.state = JobState.SCREENING
    for i, (stage, reason) in screened.blocked.items():
        job = jobs[i]
        job.state, job.blocked_by, job.block_reason = JobState.BLOCKED, stage, reason
        job.finished_at = job.created_at


def record_block(
    core: Core, conn: Conn, queue: Queue, job_id: str, payload: bytes, stage: str, reason: str, now: int
) -> None:
    """Count a blocked job and emit `guardrail.blocked` (the event sink also audits it)."""
    store.count_block(conn, queue.workspace_id, day_of(now), stage)
    core.events.emit(conn, queue.workspace_id, "guardrail.blocked", {
        "jobId": job_id, "queueName": queue.name, "blockedBy": stage, "reason": reason, "payload": msgspec.Raw(payload),
    })


def finish_screening(core: Core, conn: Conn, item: Screening, block_reason: str | None, now: int) -> bool:
    """The brand-tone verdict of a held job: blocked, or on to its approval or to waiting.

    False when the job left `screening` meanwhile (cancelled, queue deleted)."""
    queue = core.queues.by_rowid(item.queue_id)
    if queue is None:
        return False
    if block_reason is not None:
        if not store.block_screened(conn, item.rowid, "brand_tone", block_reason, now):
            return False
        record_block(core, conn, queue, item.id, item.payload, "brand_tone", block_reason, now)
        return True
    if not store.release_screened(conn, item.rowid, now, to_approval=queue.approval_required):
        return False
    if queue.approval_required:
        row = job_store.job_row(conn, queue.rowid, item.id)
        if row is not None:
            approvals.open_approvals(core, conn, queue, [job_store.job_from_row(row, queue.name)], now)
    return True


# Config ------------------------------------------------------------------------------------------


async def current_config(core: Core, workspace_id: str) -> ConfigRow:
    """The workspace's config row, created (every stage off) on first use."""
    config = _policies(core).get(workspace_id).config
    if config.id:
        return config
    created = await core.db.write(lambda conn: _ensure_config(core, conn, workspace_id))
    _policies(core).invalidate(workspace_id)
    return created


def _ensure_config(core: Core, conn: Conn, workspace_id: str) -> ConfigRow:
    config = store.config_row(conn, workspace_id)
    if config is None:
        now = core.clock.now_ms()
        config = msgspec.structs.replace(
            default_config(workspace_id, core.settings.guardrails.brand_tone.threshold),
            id=new_id("grc", now), updated_at=now,
        )
        store.save_config(conn, config)
    return config


async def get_config(core: Core, principal: Principal) -> dict[str, Any]:
    """`GET /v1/guardrails`."""
    return await config_out(core, await current_config(core, principal.workspace_id))


async def config_out(core: Core, config: ConfigRow) -> dict[str, Any]:
    """The API shape; each DNC list inline up to `LIST_CAP` entries, with its full count."""
    lists: dict[str, Any] = {}
    kinds: tuple[tuple[DncKind, str], ...] = (("emails", "dncEmails"), ("domains", "dncDomains"))
    for kind, key in kinds:
        entries = await store.dnc_page(core.db, kind, config.workspace_id, None, LIST_CAP + 1)
        count = len(entries) if len(entries) <= LIST_CAP else await store.dnc_count(core.db, kind, config.workspace_id)
        lists[key], lists[f"{key}Count"] = entries[:LIST_CAP], count
    return {
        "id": config.id, "dncEmails": lists["dncEmails"], "dncDomains": lists["dncDomains"],
        "competitorDomains": list(config.competitor_domains), "piiRedactionEnabled": config.pii_enabled,
        "piiMode": config.pii_mode, "piiTypes": list(config.pii_types), "brandToneJudgeEnabled": config.brand_tone_enabled,
        "brandToneRubric": config.brand_tone_rubric, "brandToneThreshold": config.brand_tone_threshold,
        "updatedAt": iso_from_ms(config.updated_at), "dncEmailsCount": lists["dncEmailsCount"],
        "dncDomainsCount": lists["dncDomainsCount"],
    }


async def update_config(core: Core, principal: Principal, spec: GuardrailUpdate) -> dict[str, Any]:
    """`PATCH /v1/guardrails`: replace the fields given; DNC lists given are replaced whole."""
    emails = _emails(spec.dnc_emails, "dncEmails", MAX_DNC_REPLACE)
    domains = _domains(spec.dnc_domains, "dncDomains", MAX_DNC_REPLACE)
    competitors = _domains(spec.competitor_domains, "competitorDomains", MAX_COMPETITORS)
    current = await current_config(core, principal.workspace_id)
    now = core.clock.now_ms()
    updated = _merged(current, spec, competitors, now)

    def write(conn: Conn) -> None:
        store.save_config(conn, updated)
        if emails is not None:
            store.replace_dnc(conn, "emails", principal.workspace_id, emails)
        if domains is not None:
            store.replace_dnc(conn, "domains", principal.workspace_id, domains)
        approvals.record_audit(
            conn, principal.workspace_id, "guardrail.updated", actor=principal.key_id, now=now,
            resource_type="guardrail", resource_id=updated.id, metadata={"fields": _given_fields(spec)},
        )

    await core.db.write(write)
    _policies(core).invalidate(principal.workspace_id)
    return await config_out(core, updated)


def _merged(current: ConfigRow, spec: GuardrailUpdate, competitors: list[str] | None, now: int) -> ConfigRow:
    changes: dict[str, Any] = {"updated_at": now}
    if competitors is not None:
        changes["competitor_domains"] = tuple(competitors)
    if spec.pii_types is not None:
        changes["pii_types"] = tuple(_pii_types(spec.pii_types))
    simple = {
        "pii_enabled": spec.pii_redaction_enabled, "pii_mode": spec.pii_mode,
        "brand_tone_enabled": spec.brand_tone_judge_enabled, "brand_tone_rubric": spec.brand_tone_rubric,
        "brand_tone_threshold": spec.brand_tone_threshold,
    }
    changes.update({key: value for key, value in simple.items() if value is not None})
    merged = msgspec.structs.replace(current, **changes)
    _check_judge(merged)
    return merged


def _check_judge(config: ConfigRow) -> None:
    if not 0 <= config.brand_tone_threshold <= 1:
        raise ValidationError("brandToneThreshold must be between 0 and 1", field="brandToneThreshold")
    if len(config.brand_tone_rubric) > MAX_RUBRIC:
        raise ValidationError(f"brandToneRubric must be at most {MAX_RUBRIC} characters", field="brandToneRubric")
    if config.brand_tone_enabled and not config.brand_tone_rubric.strip():
        raise ValidationError("brandToneRubric is required to enable the brand tone judge", field="brandToneRubric")


def _given_fields(spec: GuardrailUpdate) -> list[str]:
    return [name for name in spec.__struct_fields__ if getattr(spec, name) is not None]


def _pii_types(values: list[str]) -> list[str]:
    unknown = [v for v in values if v not in PII_KINDS]
    if unknown:
        raise ValidationError(f"unknown piiTypes {unknown}; use {', '.join(PII_KINDS)}", field="piiTypes")
    return list(dict.fromkeys(values))


def _emails(values: list[str] | None, field: str, limit: int) -> list[str] | None:
    return _entries(values, field, limit, normalize_email, "an email address")


def _domains(values: list[str] | None, field: str, limit: int) -> list[str] | None:
    return _entries(values, field, limit, normalize_domain, "a domain name")


def _entries(
    values: list[str] | None, field: str, limit: int, normalize: Callable[[str], str | None], what: str
) -> list[str] | None:
    if values is None:
        return None
    if len(values) > limit:
        raise ValidationError(f"{field} holds at most {limit} entries per request", field=field, limit=limit)
    normalized = []
    for i, value in enumerate(values):
        entry = normalize(value) if isinstance(value, str) else None
        if entry is None:
            raise ValidationError(f"{field}[{i}] is not {what}: {value!r}", field=f"{field}[{i}]")
        normalized.append(entry)
    return list(dict.fromkeys(normalized))


# DNC lists ---------------------------------------------------------------------------------------


async def append_dnc(core: Core, principal: Principal, spec: DncAppend) -> dict[str, int]:
    """`POST /v1/guardrails/dnc`: add entries; returns how many were new per list."""
    emails = _emails(spec.emails, "emails", MAX_DNC_APPEND) or []
    domains = _domains(spec.domains, "domains", MAX_DNC_APPEND) or []
    if len(emails) + len(domains) > MAX_DNC_APPEND:
        raise ValidationError(f"at most {MAX_DNC_APPEND} entries per request", field="emails", limit=MAX_DNC_APPEND)
    if not emails and not domains:
        raise ValidationError("give emails or domains to add", field="emails")
    await current_config(core, principal.workspace_id)
    now = core.clock.now_ms()

    def write(conn: Conn) -> dict[str, int]:
        added = {
            "emails": store.append_dnc(conn, "emails", principal.workspace_id, emails),
            "domains": store.append_dnc(conn, "domains", principal.workspace_id, domains),
        }
        approvals.record_audit(
            conn, principal.workspace_id, "guardrail.dnc_added", actor=principal.key_id, now=now,
            resource_type="guardrail", resource_id=None, metadata=added,
        )
        return added

    added = await core.db.write(write)
    _policies(core).invalidate(principal.workspace_id)
    return added


async def remove_dnc(core: Core, principal: Principal, kind: DncKind, value: str) -> None:
    """Remove one email or domain; 404 when it is not on the list."""
    entry = normalize_email(value) if kind == "emails" else normalize_domain(value)
    now = core.clock.now_ms()

    def write(conn: Conn) -> None:
        if entry is None or not store.remove_dnc(conn, kind, principal.workspace_id, entry):
            raise NotFound(f"'{value}' is not on the DNC {kind} list", {"kind": kind})
        approvals.record_audit(
            conn, principal.workspace_id, "guardrail.dnc_removed", actor=principal.key_id, now=now,
            resource_type="guardrail", resource_id=entry, metadata={"kind": kind},
        )

    await core.db.write(write)
    _policies(core).invalidate(principal.workspace_id)


async def list_dnc(
    core: Core, principal: Principal, kind: DncKind, *, limit: int, cursor: str | None
) -> tuple[list[str], str | None]:
    """One page of a DNC list in order (the full list, beyond GET /v1/guardrails' inline part)."""
    entries = await store.dnc_page(core.db, kind, principal.workspace_id, decode_text_cursor(cursor), limit + 1)
    next_cursor = encode_text_cursor(entries[limit - 1]) if len(entries) > limit else None
    return entries[:limit], next_cursor


# Statistics --------------------------------------------------------------------------------------


async def block_stats(core: Core, principal: Principal, days: int | None) -> dict[str, Any]:
    """Blocked jobs per stage and UTC day over the last `days` days (default 30), today included."""
    days = 30 if days is None else days
    if not 1 <= days <= MAX_STATS_DAYS:
        raise ValidationError(f"days must be between 1 and {MAX_STATS_DAYS}", field="days")
    today = datetime.fromtimestamp(core.clock.now_ms() / 1000, tz=UTC).date()
    span = [(today - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
    counts = await store.block_counts(core.db, principal.workspace_id, span[0], span[-1])
    by_day = {day: dict.fromkeys(STAGES, 0) for day in span}
    for day, stage, blocked in counts:
        if day in by_day and stage in by_day[day]:
            by_day[day][stage] += blocked
    by_stage = {stage: sum(row[stage] for row in by_day.values()) for stage in STAGES}
    return {
        "from": span[0], "to": span[-1], "total": sum(by_stage.values()), "byStage": by_stage,
        "byDay": [{"day": day, **row, "total": sum(row.values())} for day, row in by_day.items()],
    }
