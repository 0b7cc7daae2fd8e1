"""Webhooks (delivery log, redeliver, send test), secrets (write-only values), guardrails (lists, stats per
stage), API keys (create with a role, rotate, revoke) and Settings → Notifications (failure alerts)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from litestar import Request, get, post
from litestar.response import Redirect, Template

from rotor_lite.api.controllers.alerts import get_alerts, put_alerts
from rotor_lite.api.controllers.api_keys import ApiKeyController
from rotor_lite.api.controllers.guardrails import GuardrailController
from rotor_lite.api.controllers.secrets import SecretController
from rotor_lite.api.controllers.webhooks import WebhookController
from rotor_lite.api.dashboard.access import act, allowed_all, mirror, session_of
from rotor_lite.api.dashboard.render import PAGE_SIZE, page
from rotor_lite.api.http import core_of
from rotor_lite.models import Principal, Role
from rotor_lite.schemas import AlertsUpdate, ApiKeyCreate, ApiKeyOut, ApiKeyRotate, DncAppend, convert_request
from rotor_lite.services import alerts, api_keys, guardrails, secrets, webhooks

WEBHOOKS, SECRETS, GUARDRAILS = "/dashboard/webhooks", "/dashboard/settings/secrets", "/dashboard/guardrails"
KEYS, NOTIFICATIONS = "/dashboard/api-keys", "/dashboard/settings/notifications"


# Webhooks ------------------------------------------------------------------------------------------


def webhook_url(webhook_id: str) -> str:
    return f"{WEBHOOKS}/{quote(webhook_id, safe='')}"


@get("/webhooks", opt=mirror(WebhookController.list_webhooks))
async def webhooks_page(request: Request[Any, Any, Any], principal: Principal) -> Template:
    rows = await webhooks.list_webhooks(core_of(request), principal)
    return page(request, principal, "webhooks.html", webhooks=[webhooks.webhook_out(row) for row in rows])


@get("/webhooks/{webhook_id:str}", opt=mirror(WebhookController.list_deliveries))
async def webhook_page(
    request: Request[Any, Any, Any], principal: Principal, webhook_id: str, status: str | None = None,
    cursor: str | None = None,
) -> Template:
    """An endpoint and its delivery log, newest first."""
    core = core_of(request)
    hook = await webhooks.get_webhook(core, principal, webhook_id)
    rows, next_cursor = await webhooks.list_deliveries(core, principal, webhook_id, status=status or None, limit=PAGE_SIZE,
                                                       cursor=cursor)
    return page(
        request, principal, "webhook.html", webhook=webhooks.webhook_out(hook), status=status or "",
        deliveries=[webhooks.delivery_out(row) for row in rows],
        more=urlencode({"status": status or "", "cursor": next_cursor}) if next_cursor else None,
        can=allowed_all(principal, test=send_test, redeliver=redeliver),
    )


@post("/webhooks/{webhook_id:str}/test", opt=mirror(WebhookController.test_webhook))
async def send_test(request: Request[Any, Any, Any], principal: Principal, webhook_id: str) -> Redirect:
    work = webhooks.send_test(core_of(request), principal, webhook_id)
    return await act(request, principal, webhook_url(webhook_id), work, lambda row: f"test event queued ({row.id})")


@post("/webhooks/{webhook_id:str}/deliveries/{message_id:str}/redeliver", opt=mirror(WebhookController.redeliver))
async def redeliver(request: Request[Any, Any, Any], principal: Principal, webhook_id: str, message_id: str) -> Redirect:
    work = webhooks.redeliver(core_of(request), principal, webhook_id, message_id)
    return await act(request, principal, webhook_url(webhook_id), work, lambda row: f"{row.id} sent again")


# Secrets -------------------------------------------------------------------------------------------


@get("/settings/secrets", opt=mirror(SecretController.list_secrets))
async def secrets_page(request: Request[Any, Any, Any], principal: Principal) -> Template:
    """Names and hints; values go in and never come out."""
    rows = await secrets.list_secrets(core_of(request), principal)
    return page(request, principal, "secrets.html", secrets=[secrets.secret_out(row) for row in rows],
                can=allowed_all(principal, create=create_secret, rotate=rotate_secret, delete=delete_secret))


@post("/settings/secrets", opt=mirror(SecretController.create_secret))
async def create_secret(request: Request[Any, Any, Any], principal: Principal) -> Redirect:
    form = await request.form()
    name, value = str(form.get("name") or "").strip(), str(form.get("value") or "")
    work = secrets.create_secret(core_of(request), principal, name, value)
    return await act(request, principal, SECRETS, work, lambda row: f"secret {row.name} created")


@post("/settings/secrets/{name:str}/rotate", opt=mirror(SecretController.rotate_secret))
async def rotate_secret(request: Request[Any, Any, Any], principal: Principal, name: str) -> Redirect:
    value = str((await request.form()).get("value") or "")
    work = secrets.rotate_secret(core_of(request), principal, name, value)
    return await act(request, principal, SECRETS, work, lambda row: f"secret {row.name} rotated")


@post("/settings/secrets/{name:str}/delete", opt=mirror(SecretController.delete_secret))
async def delete_secret(request: Request[Any, Any, Any], principal: Principal, name: str) -> Redirect:
    work = secrets.delete_secret(core_of(request), principal, name)
    return await act(request, principal, SECRETS, work, lambda _: f"secret {name} deleted")


# Guardrails ----------------------------------------------------------------------------------------


@get("/guardrails", opt=mirror(GuardrailController.get_config))
async def guardrails_page(
    request: Request[Any, Any, Any], principal: Principal, emails: str | None = None, domains: str | None = None,
) -> Template:
    """The settings, blocked jobs per stage over 30 days, and the do-not-contact lists a page at a time."""
    core = core_of(request)
    config = await guardrails.current_config(core, principal.workspace_id)
    email_page, next_emails = await guardrails.list_dnc(core, principal, "emails", limit=PAGE_SIZE, cursor=emails)
    domain_page, next_domains = await guardrails.list_dnc(core, principal, "domains", limit=PAGE_SIZE, cursor=domains)
    return page(
        request, principal, "guardrails.html", config=config, stats=await guardrails.block_stats(core, principal, 30),
        emails=email_page, domains=domain_page,
        more_emails=urlencode({"emails": next_emails, "domains": domains or ""}) if next_emails else None,
        more_domains=urlencode({"domains": next_domains, "emails": emails or ""}) if next_domains else None,
        can=allowed_all(principal, add=add_dnc, remove_email=remove_email, remove_domain=remove_domain),
    )


@post("/guardrails/dnc", opt=mirror(GuardrailController.append_dnc))
async def add_dnc(request: Request[Any, Any, Any], principal: Principal) -> Redirect:
    form = await request.form()
    spec = DncAppend(emails=_lines(form.get("emails")), domains=_lines(form.get("domains")))
    work = guardrails.append_dnc(core_of(request), principal, spec)
    return await act(request, principal, GUARDRAILS, work, lambda added: f"added {sum(added.values())} entries")


@post("/guardrails/dnc/emails/{email:str}/remove", opt=mirror(GuardrailController.remove_email))
async def remove_email(request: Request[Any, Any, Any], principal: Principal, email: str) -> Redirect:
    work = guardrails.remove_dnc(core_of(request), principal, "emails", email)
    return await act(request, principal, GUARDRAILS, work, lambda _: f"{email} removed")


@post("/guardrails/dnc/domains/{domain:str}/remove", opt=mirror(GuardrailController.remove_domain))
async def remove_domain(request: Request[Any, Any, Any], principal: Principal, domain: str) -> Redirect:
    work = guardrails.remove_dnc(core_of(request), principal, "domains", domain)
    return await act(request, principal, GUARDRAILS, work, lambda _: f"{domain} removed")


def _lines(text: Any) -> list[str] | None:
    found = [line.strip() for line in str(text or "").replace(",", "\n").splitlines() if line.strip()]
    return found or None


# API keys ------------------------------------------------------------------------------------------


@get("/api-keys", opt=mirror(ApiKeyController.list_keys))
async def keys_page(request: Request[Any, Any, Any], principal: Principal) -> Template:
    """The workspace's keys (never their material); create one with a role, rotate, revoke."""
    keys = await api_keys.list_keys(core_of(request), principal)
    roles = [role.value for role in reversed(Role) if principal.role.covers(role)]
    return page(request, principal, "api_keys.html", keys=keys, roles=roles, own_key=principal.key_id,
                can=allowed_all(principal, create=create_key, rotate=rotate_key, revoke=revoke_key))


@post("/api-keys", opt=mirror(ApiKeyController.create_key))
async def create_key(request: Request[Any, Any, Any], principal: Principal) -> Redirect:
    form = await request.form()
    fields = {"label": form.get("label") or "", "role": form.get("role") or "viewer"}
    days = str(form.get("expires_in_days") or "").strip()
    if days:  # left out: the default expiry (90 days, never after the creator's key)
        fields["expires_in_days"] = int(days) if days.isdigit() else days
    work = _create_key(request, principal, fields)
    return await act(request, principal, KEYS, work, lambda key: _shown_once(request, key.label, key.key))


async def _create_key(request: Request[Any, Any, Any], principal: Principal, fields: dict[str, Any]) -> ApiKeyOut:
    return await api_keys.create_key(core_of(request), principal, convert_request(fields, ApiKeyCreate))


@post("/api-keys/{key_id:str}/rotate", opt=mirror(ApiKeyController.rotate_key))
async def rotate_key(request: Request[Any, Any, Any], principal: Principal, key_id: str) -> Redirect:
    grace = str((await request.form()).get("grace_seconds") or "3600").strip()
    work = _rotate_key(request, principal, key_id, {"grace_seconds": _number(grace)})
    return await act(request, principal, KEYS, work, lambda key: _shown_once(request, key.label, key.key))


async def _rotate_key(
    request: Request[Any, Any, Any], principal: Principal, key_id: str, fields: dict[str, Any],
) -> ApiKeyOut:
    spec = convert_request(fields, ApiKeyRotate)
    return await api_keys.rotate_key(core_of(request), principal, key_id, spec.grace_seconds)


def _number(text: str) -> float | str:
    """A form field's number, or its text for the validation to refuse."""
    try:
        return float(text)
    except ValueError:
        return text


@post("/api-keys/{key_id:str}/revoke", opt=mirror(ApiKeyController.revoke_key))
async def revoke_key(request: Request[Any, Any, Any], principal: Principal, key_id: str) -> Redirect:
    work = api_keys.revoke_key(core_of(request), principal, key_id)
    return await act(request, principal, KEYS, work, lambda _: f"key {key_id} revoked")


def _shown_once(request: Request[Any, Any, Any], label: str, key: Any) -> str:
    """The new key, in a notice of its own that is shown once (only its hash is kept)."""
    session_of(request).flash("key", str(key))
    return f"key '{label}' created: copy it now, it is not shown again"


# Settings → Notifications --------------------------------------------------------------------------


@get("/settings/notifications", opt=mirror(get_alerts))
async def notifications_page(request: Request[Any, Any, Any], principal: Principal) -> Template:
    """Where terminal job failures are reported: an email address and a Slack incoming webhook."""
    core = core_of(request)
    shown = alerts.alerts_out(core, principal, await alerts.get_alerts(core, principal))
    return page(request, principal, "notifications.html", alerts=shown, can=allowed_all(principal, save=save_alerts))


@post("/settings/notifications", opt=mirror(put_alerts))
async def save_alerts(request: Request[Any, Any, Any], principal: Principal) -> Redirect:
    """Set both destinations; an empty Slack field keeps the stored URL unless "remove" is ticked."""
    form = await request.form()
    work = _save_alerts(request, principal, str(form.get("email") or "").strip(), str(form.get("slack") or "").strip(),
                        remove_slack=form.get("remove_slack") == "yes")
    return await act(request, principal, NOTIFICATIONS, work, lambda _: "notifications saved")


async def _save_alerts(
    request: Request[Any, Any, Any], principal: Principal, email: str, slack: str, *, remove_slack: bool
) -> Any:
    core = core_of(request)
    if not slack and not remove_slack:
        current = await alerts.get_alerts(core, principal)
        slack = (alerts.slack_url(core, current) if current is not None else None) or ""
    return await alerts.put_alerts(core, principal, AlertsUpdate(email=email or None, slack_webhook_url=slack or None))


