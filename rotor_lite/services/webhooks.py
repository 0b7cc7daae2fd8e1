"""Webhook endpoints: create, list, get, update, delete, test, rotate-secret, the delivery log, redeliver.

Also the two rules the delivery task applies: how an event fans out into deliveries, and what an
attempt's outcome does (next attempt per `[webhooks] retry_schedule`, or failed; an endpoint
failing every delivery for `disable_after` is disabled).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from typing import Any

import msgspec

from rotor_lite import __version__
from rotor_lite.clock import iso_from_ms
from rotor_lite.errors import Conflict, NotFound, ValidationError, WebhookNotFound
from rotor_lite.ids import is_valid_id, new_id
from rotor_lite.models import Principal
from rotor_lite.netguard import check_callback_url
from rotor_lite.schemas import WebhookCreate, WebhookUpdate
from rotor_lite.services import alerts, audit
from rotor_lite.services.core import Core
from rotor_lite.services.events import ALERT_EVENTS, EVENT_TYPES, OutboxSink
from rotor_lite.services.paging import decode_cursor, encode_cursor
from rotor_lite.store import outbox as outbox_store
from rotor_lite.store import webhooks as webhook_store
from rotor_lite.store.outbox import FAILED, PENDING, SUCCEEDED, DeliveryRow, OutboxEvent
from rotor_lite.store.webhooks import WebhookRow
from rotor_lite.store.contract import Conn

MAX_WEBHOOKS = 100
TEST_MESSAGE = "This is a test event from Rotor."
USER_AGENT = f"rotor-lite-webhooks/{__version__}"


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (the Standard Webhooks format)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _context(webhook_id: str) -> bytes:
    return f"webhook:{webhook_id}".encode()


def webhook_out(row: WebhookRow, secret: str | None = None) -> dict[str, Any]:
    """The API shape of an endpoint; `secret` only in the responses that mint one."""
    out: dict[str, Any] = {
        "id": row.id, "url": row.url, "eventTypes": row.event_types, "enabled": row.enabled,
        "disabledAt": iso_from_ms(row.disabled_at), "createdAt": iso_from_ms(row.created_at),
        "updatedAt": iso_from_ms(row.updated_at),
    }
    if secret is not None:
        out["secret"] = secret
    return out


def delivery_out(row: DeliveryRow) -> dict[str, Any]:
    """The API shape of one delivery in an endpoint's log."""
    return {
        "id": row.id, "webhookId": row.webhook_id, "eventType": row.event_type, "status": row.status,
        "attempts": row.attempts, "responseStatus": row.response_status, "lastError": row.last_error,
        "nextAttemptAt": iso_from_ms(row.next_attempt_at) if row.status == PENDING else None,
        "lastAttemptAt": iso_from_ms(row.last_attempt_at), "createdAt": iso_from_ms(row.created_at),
    }


def _check_event_types(event_types: list[str]) -> list[str]:
    if not event_types:
        raise ValidationError("eventTypes must list at least one event type", field="eventTypes")
    unknown = [t for t in event_types if t not in EVENT_TYPES]
    if unknown:
        raise ValidationError(
            f"unknown event type '{unknown[0]}'; known: {', '.join(EVENT_TYPES)}", field="eventTypes"
        )
    return list(dict.fromkeys(event_types))


def _check_url(core: Core, url: str) -> str:
    return check_callback_url(url, allow_private=core.settings.callbacks.allow_private_networks, field="url")


def _sink(core: Core) -> OutboxSink | None:
    return core.events if isinstance(core.events, OutboxSink) else None


def _refresh(core: Core, conn: Conn, workspace_id: str) -> None:
    sink = _sink(core)
    if sink is not None:
        sink.refresh(conn, workspace_id)


async def create_webhook(core: Core, principal: Principal, spec: WebhookCreate) -> tuple[WebhookRow, str]:
    """A new endpoint and its signing secret (returned this once)."""
    workspace_id = principal.workspace_id
    now = core.clock.now_ms()
    hook_id = new_id("wh", now)
    secret = new_secret()
    row = WebhookRow(
        id=hook_id, workspace_id=workspace_id, url=_check_url(core, spec.url),
        event_types=_check_event_types(spec.event_types), secret=core.vault.encrypt(secret, _context(hook_id)),
        created_at=now, updated_at=now,
    )

    def insert(conn: Conn) -> None:
        if webhook_store.count(conn, workspace_id) >= MAX_WEBHOOKS:
            raise ValidationError(f"a workspace holds at most {MAX_WEBHOOKS} webhook endpoints", field="url")
        webhook_store.insert(conn, row)
        _refresh(core, conn, workspace_id)

    await core.db.write(insert)
    return row, secret


async def list_webhooks(core: Core, principal: Principal) -> list[WebhookRow]:
    """The workspace's endpoints, oldest first."""
    return await webhook_store.list_webhooks(core.db, principal.workspace_id)


async def get_webhook(core: Core, principal: Principal, webhook_id: str) -> WebhookRow:
    """One endpoint; another workspace's is a 404."""
    row = await webhook_store.fetch(core.db, principal.workspace_id, webhook_id)
    if row is None:
        raise WebhookNotFound(webhook_id)
    return row


def _locked(conn: Conn, principal: Principal, webhook_id: str) -> WebhookRow:
    row = webhook_store.get(conn, principal.workspace_id, webhook_id)
    if row is None:
        raise WebhookNotFound(webhook_id)
    return row


async def update_webhook(core: Core, principal: Principal, webhook_id: str, spec: WebhookUpdate) -> WebhookRow:
    """Change url or eventTypes; any update re-enables a disabled endpoint unless `enabled: false`."""
    url = None if spec.url is None else _check_url(core, spec.url)
    event_types = None if spec.event_types is None else _check_event_types(spec.event_types)
    now = core.clock.now_ms()

    def update(conn: Conn) -> WebhookRow:
        row = _locked(conn, principal, webhook_id)
        row.url = url or row.url
        row.event_types = event_types or row.event_types
        row.enabled = spec.enabled is not False
        row.disabled_at = None if row.enabled else (row.disabled_at or now)
        row.failing_since = None
        row.updated_at = now
        webhook_store.update(conn, row)
        _refresh(core, conn, row.workspace_id)
        return row

    row = await core.db.write(update)
    _wake(core)
    return row


async def delete_webhook(core: Core, principal: Principal, webhook_id: str) -> None:
    """Delete the endpoint; its pending deliveries are never sent."""

    def delete(conn: Conn) -> None:
        row = _locked(conn, principal, webhook_id)
        webhook_store.delete(conn, row.id)
        _refresh(core, conn, row.workspace_id)

    await core.db.write(delete)


async def rotate_secret(core: Core, principal: Principal, webhook_id: str) -> tuple[WebhookRow, str]:
    """A new signing secret; the old one keeps signing (a second `v1,` entry) for `previous_secret_ttl`."""
    now = core.clock.now_ms()
    secret = new_secret()
    ttl = core.settings.webhooks.ms("previous_secret_ttl")

    def rotate(conn: Conn) -> WebhookRow:
        row = _locked(conn, principal, webhook_id)
        row.previous_secret, row.previous_expires_at = row.secret, now + ttl
        row.secret = core.vault.encrypt(secret, _context(row.id))
        row.updated_at = now
        webhook_store.update(conn, row)
        _refresh(core, conn, row.workspace_id)
        return row

    return await core.db.write(rotate), secret


async def send_test(core: Core, principal: Principal, webhook_id: str) -> DeliveryRow:
    """Queue a `webhook.test` event for this endpoint only (whatever it subscribes to)."""
    now = core.clock.now_ms()
    data = {"message": TEST_MESSAGE, "timestamp": iso_from_ms(now)}

    def write(conn: Conn) -> DeliveryRow:
        row = _locked(conn, principal, webhook_id)
        if not row.enabled:
            raise Conflict("the webhook is disabled; update it to enable it again", {"webhookId": row.id})
        event = OutboxEvent(
            id=new_id("evt", now), workspace_id=row.workspace_id, event_type="webhook.test",
            data=msgspec.json.encode(data), target=row.id, created_at=now,
        )
        [delivery] = _webhook_deliveries(core, event, [row], now)
        outbox_store.insert_deliveries(conn, [delivery])
        return delivery

    delivery = await core.db.write(write)
    _wake(core)
    return delivery


async def list_deliveries(
    core: Core, principal: Principal, webhook_id: str, *, status: str | None, limit: int, cursor: str | None
) -> tuple[list[DeliveryRow], str | None]:
    """The endpoint's delivery log, newest first."""
    if status is not None and status not in (PENDING, SUCCEEDED, FAILED):
        raise ValidationError("status must be pending, succeeded or failed", field="status")
    hook = await get_webhook(core, principal, webhook_id)
    rows = await outbox_store.list_for_webhook(
        core.db, hook.id, status=status, before_rowid=decode_cursor(cursor), limit=limit + 1
    )
    next_cursor = encode_cursor(rows[limit - 1].rowid) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def redeliver(core: Core, principal: Principal, webhook_id: str, message_id: str) -> DeliveryRow:
    """Send a delivery again now, with the same message id and body and a fresh retry schedule."""
    now = core.clock.now_ms()

    def write(conn: Conn) -> DeliveryRow:
        hook = _locked(conn, principal, webhook_id)
        row = outbox_store.redeliver(conn, hook.id, message_id, now) if is_valid_id(message_id, "msg") else None
        if row is None:
            raise NotFound(f"delivery '{message_id}' not found", {"messageId": message_id})
        return row

    row = await core.db.write(write)
    _wake(core)
    return row


def _wake(core: Core) -> None:
    sink = _sink(core)
    if sink is not None:
        sink.notify()


# What the delivery task applies ---------------------------------------------------------


def fan_out(core: Core, conn: Conn, events: Sequence[OutboxEvent], now: int) -> list[DeliveryRow]:
    """One delivery per (event, enabled endpoint subscribed to it), plus failure alerts; in the caller's transaction."""
    hooks: dict[str, list[WebhookRow]] = {}
    rows: list[DeliveryRow] = []
    for event in events:
        if event.workspace_id not in hooks:
            hooks[event.workspace_id] = [h for h in webhook_store.of_workspace(conn, event.workspace_id) if h.enabled]
        listeners = [h for h in hooks[event.workspace_id] if event.event_type in h.event_types]
        rows += _webhook_deliveries(core, event, listeners, now)
        if event.event_type in ALERT_EVENTS:
            rows += alerts.alert_deliveries(conn, event, now, first_delay_ms(core))
    outbox_store.insert_deliveries(conn, rows)
    return rows


def first_delay_ms(core: Core) -> int:
    return core.settings.webhooks.retry_delays_ms()[0]


def _webhook_deliveries(core: Core, event: OutboxEvent, hooks: Sequence[WebhookRow], now: int) -> list[DeliveryRow]:
    rows = []
    for hook in hooks:
        message_id = new_id("msg", now)
        body = msgspec.json.encode({
            "id": message_id, "type": event.event_type, "event": event.event_type,
            "timestamp": iso_from_ms(event.created_at), "webhookId": hook.id, "data": msgspec.Raw(event.data),
        })
        rows.append(DeliveryRow(
            id=message_id, workspace_id=event.workspace_id, channel="webhook", webhook_id=hook.id,
            event_type=event.event_type, body=body, next_attempt_at=now + first_delay_ms(core), created_at=now,
        ))
    return rows


def signing_secrets(core: Core, hook: WebhookRow, now: int) -> list[str]:
    """The current secret, then the previous one while it is still honoured."""
    found = [core.vault.decrypt_text(hook.secret, _context(hook.id))]
    if hook.previous_secret is not None and (hook.previous_expires_at or 0) > now:
        found.append(core.vault.decrypt_text(hook.previous_secret, _context(hook.id)))
    return found


def webhook_headers(message_id: str, timestamp: int) -> dict[str, str]:
    """Standard Webhooks headers, in both spellings, but the signature (made where the bytes are sent)."""
    return {
        "Content-Type": "application/json", "User-Agent": USER_AGENT,
        "webhook-id": message_id, "webhook-timestamp": str(timestamp),
        "Rotor-Webhook-Id": message_id, "Rotor-Webhook-Timestamp": str(timestamp),
    }


def record_outcome(
    core: Core, conn: Conn, delivery: DeliveryRow, *, ok: bool, status: int | None, error: str | None,
    now: int, give_up: bool = False,
) -> bool:
    """Apply one attempt's outcome: done, retry later, or failed; track the endpoint's failing streak."""
    delays = core.settings.webhooks.retry_delays_ms()
    previous = delivery.attempts
    delivery.attempts += 1
    delivery.last_attempt_at, delivery.response_status, delivery.last_error = now, status, error
    if ok:
        delivery.status, delivery.next_attempt_at = SUCCEEDED, None
    elif delivery.attempts < len(delays) and not give_up:
        delivery.next_attempt_at = now + delays[delivery.attempts]
    else:
        delivery.status, delivery.next_attempt_at = FAILED, None
    if not outbox_store.record_attempt(conn, delivery, previous):
        return False
    if delivery.webhook_id is not None:
        _track_endpoint(core, conn, delivery.webhook_id, ok, now)
    return True


def _track_endpoint(core: Core, conn: Conn, webhook_id: str, ok: bool, now: int) -> None:
    hook = webhook_store.by_id(conn, webhook_id)
    if hook is None:
        return
    if ok:
        if hook.failing_since is not None:
            webhook_store.set_failure_state(conn, hook.id, failing_since=None, disabled_at=None)
        return
    since = hook.failing_since if hook.failing_since is not None else now
    if hook.enabled and now - since >= core.settings.webhooks.ms("disable_after"):
        webhook_store.set_failure_state(conn, hook.id, failing_since=since, disabled_at=now)
        audit.record(conn, audit.audit_event(
            hook.workspace_id, "webhook.disabled", actor=audit.SYSTEM, now=now, resource_type="webhook",
            resource_id=hook.id, metadata={"failingSince": iso_from_ms(since)},
        ))
        _refresh(core, conn, hook.workspace_id)
    elif hook.failing_since is None:
        webhook_store.set_failure_state(conn, hook.id, failing_since=now, disabled_at=None)
