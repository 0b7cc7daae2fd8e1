"""Failure alerts: one Slack and/or email destination per workspace, sent on a job's terminal failure.

The Slack incoming-webhook URL is a credential: it is stored encrypted. Messages are built at
send time from the `job.failed` event data kept in the delivery row.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec

from rotor_lite.clock import iso_from_ms
from rotor_lite.config import Settings
from rotor_lite.errors import ValidationError
from rotor_lite.ids import new_id
from rotor_lite.models import Principal, Role
from rotor_lite.netguard import check_callback_url
from rotor_lite.schemas import AlertsUpdate
from rotor_lite.services import secrets
from rotor_lite.services.core import Core
from rotor_lite.store import webhooks as webhook_store
from rotor_lite.store.outbox import DeliveryRow, OutboxEvent
from rotor_lite.store.webhooks import AlertRow
from rotor_lite.store.contract import Conn

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTEXT = b"alerts:slack_url"


def _context(workspace_id: str) -> bytes:
    return _CONTEXT + b":" + workspace_id.encode()


def alerts_out(core: Core, principal: Principal, row: AlertRow | None) -> dict[str, Any]:
    """`{email, slackWebhookUrl, updatedAt, smtpConfigured}`; the Slack URL is a credential: only an admin
    sees it whole, other roles a hint of it."""
    slack = None
    if row is not None and row.slack_url is not None:
        slack = core.vault.decrypt_text(row.slack_url, _context(row.workspace_id))
        slack = slack if principal.role is Role.ADMIN else _url_hint(slack)
    return {
        "email": row.email if row else None, "slackWebhookUrl": slack,
        "updatedAt": iso_from_ms(row.updated_at) if row else None,
        "smtpConfigured": bool(core.settings.alerts.smtp.host),
    }


def _url_hint(url: str) -> str:
    """Origin and first path segment, then a hint of the rest (where the secret is), as secrets are shown."""
    parts = urlsplit(url)
    first, _, rest = parts.path.lstrip("/").partition("/")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/{first}/{secrets.hint(rest)}"


async def get_alerts(core: Core, principal: Principal) -> AlertRow | None:
    """The workspace's alert destinations (None when never set)."""
    return await webhook_store.fetch_alerts(core.db, principal.workspace_id)


async def put_alerts(core: Core, principal: Principal, spec: AlertsUpdate) -> AlertRow:
    """Replace both destinations (a field left out or null turns that channel off)."""
    workspace_id = principal.workspace_id
    email = _check_email(spec.email)
    slack = _check_slack_url(core.settings, spec.slack_webhook_url)
    row = AlertRow(
        workspace_id=workspace_id, email=email,
        slack_url=None if slack is None else core.vault.encrypt(slack, _context(workspace_id)),
        updated_at=core.clock.now_ms(),
    )

    def write(conn: Conn) -> None:
        webhook_store.put_alerts(conn, row)
        refresh = getattr(core.events, "refresh", None)
        if refresh is not None:
            refresh(conn, workspace_id)

    await core.db.write(write)
    return row


def _check_email(email: str | None) -> str | None:
    if not email:
        return None
    if len(email) > 254 or not _EMAIL.match(email) or "\n" in email or "\r" in email:
        raise ValidationError("email is not a valid address", field="email")
    return email


def _check_slack_url(settings: Settings, url: str | None) -> str | None:
    if not url:
        return None
    prefixes = settings.alerts.slack_url_prefixes
    assert isinstance(prefixes, list)
    if url.endswith(secrets.HINT_END):
        raise ValidationError("slackWebhookUrl is a stored URL's hint: send the whole URL", field="slackWebhookUrl")
    # The prefixes may let in any host: the SSRF guard applies as to every outbound URL.
    check_callback_url(url, allow_private=settings.callbacks.allow_private_networks, field="slackWebhookUrl")
    if not any(url.startswith(prefix) for prefix in prefixes):
        raise ValidationError(
            f"slackWebhookUrl must start with {' or '.join(prefixes)}", field="slackWebhookUrl"
        )
    return url


def alert_deliveries(conn: Conn, event: OutboxEvent, now: int, delay_ms: int) -> list[DeliveryRow]:
    """One delivery per configured channel for a `job.failed` or `run.failed` event (in the fan-out transaction)."""
    config = webhook_store.get_alerts(conn, event.workspace_id)
    if config is None:
        return []
    channels = [name for name, on in (("slack", config.slack_url), ("email", config.email)) if on]
    return [
        DeliveryRow(
            id=new_id("msg", now), workspace_id=event.workspace_id, channel=channel, webhook_id=None,
            event_type=event.event_type, body=event.data, next_attempt_at=now + delay_ms, created_at=now,
        )
        for channel in channels
    ]


def slack_url(core: Core, row: AlertRow) -> str | None:
    return None if row.slack_url is None else core.vault.decrypt_text(row.slack_url, _context(row.workspace_id))


def job_link(settings: Settings, queue: str, job_id: str) -> str:
    """The dashboard page of the job."""
    return f"{_dashboard(settings)}/queues/{quote(queue, safe='')}/jobs/{quote(job_id, safe='')}"


def alert_link(settings: Settings, data: dict[str, Any]) -> str:
    """The dashboard page of the failed job or run an alert is about."""
    if "runId" in data:
        return f"{_dashboard(settings)}/runs/{quote(str(data['runId']), safe='')}"
    return job_link(settings, str(data.get("queueName")), str(data.get("jobId")))


def _dashboard(settings: Settings) -> str:
    base = settings.alerts.dashboard_url or f"http://{settings.server.host}:{settings.server.port}/dashboard"
    return base.rstrip("/")


class _Facts(msgspec.Struct, kw_only=True):
    """What an alert says, for a failed job or a failed run."""

    headline: str
    subject: str
    lines: str
    intro: str


def _facts(data: dict[str, Any]) -> _Facts:
    if "runId" in data:
        function, run_id = str(data.get("functionId")), str(data.get("runId"))
        error = data.get("error")
        error = error if isinstance(error, dict) else {}
        reason = f"{error.get('name', 'Error')}: {error.get('message', '')}"
        return _Facts(
            headline=f"Run failed in `{function}`", subject=f"Run failed: {run_id} of function {function}",
            lines=f"Reason: {reason}\nRun ID: {run_id}\nFunction: {function}",
            intro=f"A workflow run failed after its retries.\n\nFunction: {function}\nRun ID: {run_id}\nReason: {reason}\n"
            f"Failed at: {data.get('endedAt')}",
        )
    queue, job_id, reason = str(data.get("queueName")), str(data.get("jobId")), str(data.get("failReason"))
    return _Facts(
        headline=f"Job failed in `{queue}`", subject=f"Job failed: {job_id} in queue {queue}",
        lines=f"Reason: {reason}\nJob ID: {job_id}\nQueue: {queue}",
        intro=f"A job failed after its last attempt.\n\nQueue: {queue}\nJob ID: {job_id}\nReason: {reason}\n"
        f"Attempts: {data.get('attempts')}\nFailed at: {data.get('failedAt')}",
    )


def slack_message(data: dict[str, Any], link: str) -> dict[str, Any]:
    """A Block Kit card in the reference docs' format, with a plain-text fallback."""
    facts = _facts(data)
    return {
        "text": f"❌ {facts.headline}\n{facts.lines}\n{link}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"❌ *{facts.headline}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": facts.lines}},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "View run →"}, "url": link},
            ]},
        ],
    }


def email_message(settings: Settings, to: str, data: dict[str, Any], link: str) -> EmailMessage:
    """Subject `Job failed: <job id> in queue <queue>` (or `Run failed: …`); the body has the facts and the link."""
    facts = _facts(data)
    message = EmailMessage()
    message["From"] = settings.alerts.smtp.from_address
    message["To"] = to
    message["Subject"] = facts.subject
    message.set_content(f"{facts.intro}\n\nView run: {link}\n")
    return message
