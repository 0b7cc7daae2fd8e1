"""Webhook endpoint rows and the per-workspace failure-alert settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from rotor_lite.store.contract import upsert
from rotor_lite.store.db import Database
from rotor_lite.store.contract import Conn

_COLUMNS = (
    "id, workspace_id, url, event_types, secret, previous_secret, previous_expires_at, enabled, disabled_at,"
    " failing_since, created_at, updated_at"
)


class WebhookRow(msgspec.Struct, kw_only=True):
    """An endpoint as stored: its signing secrets are still encrypted."""

    id: str
    workspace_id: str
    url: str
    event_types: list[str]
    secret: bytes
    previous_secret: bytes | None = None
    previous_expires_at: int | None = None
    enabled: bool = True
    disabled_at: int | None = None
    failing_since: int | None = None
    created_at: int
    updated_at: int


def _from_row(row: Sequence[Any]) -> WebhookRow:
    return WebhookRow(
        id=row[0], workspace_id=row[1], url=row[2], event_types=msgspec.json.decode(row[3]), secret=bytes(row[4]),
        previous_secret=None if row[5] is None else bytes(row[5]), previous_expires_at=row[6],
        enabled=bool(row[7]), disabled_at=row[8], failing_since=row[9], created_at=row[10], updated_at=row[11],
    )


def insert(conn: Conn, hook: WebhookRow) -> None:
    conn.execute(
        f"INSERT INTO webhook ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            hook.id, hook.workspace_id, hook.url, msgspec.json.encode(hook.event_types).decode(), hook.secret,
            hook.previous_secret, hook.previous_expires_at, int(hook.enabled), hook.disabled_at, hook.failing_since,
            hook.created_at, hook.updated_at,
        ),
    )


def update(conn: Conn, hook: WebhookRow) -> None:
    """Write back every mutable column of `hook`."""
    conn.execute(
        "UPDATE webhook SET url = ?, event_types = ?, secret = ?, previous_secret = ?, previous_expires_at = ?,"
        " enabled = ?, disabled_at = ?, failing_since = ?, updated_at = ? WHERE id = ?",
        (
            hook.url, msgspec.json.encode(hook.event_types).decode(), hook.secret, hook.previous_secret,
            hook.previous_expires_at, int(hook.enabled), hook.disabled_at, hook.failing_since, hook.updated_at,
            hook.id,
        ),
    )


def delete(conn: Conn, webhook_id: str) -> None:
    """Delete the endpoint and every delivery to it (pending ones are never sent)."""
    conn.execute("DELETE FROM delivery WHERE webhook_id = ?", (webhook_id,))
    conn.execute("DELETE FROM webhook WHERE id = ?", (webhook_id,))


def get(conn: Conn, workspace_id: str, webhook_id: str) -> WebhookRow | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM webhook WHERE id = ? AND workspace_id = ?", (webhook_id, workspace_id)
    ).fetchone()
    return None if row is None else _from_row(row)


def by_id(conn: Conn, webhook_id: str) -> WebhookRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM webhook WHERE id = ?", (webhook_id,)).fetchone()
    return None if row is None else _from_row(row)


def of_workspace(conn: Conn, workspace_id: str) -> list[WebhookRow]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM webhook WHERE workspace_id = ? ORDER BY id", (workspace_id,))
    return [_from_row(row) for row in rows]


def count(conn: Conn, workspace_id: str) -> int:
    return int(conn.execute("SELECT count(*) FROM webhook WHERE workspace_id = ?", (workspace_id,)).fetchone()[0])


def all_webhooks(conn: Conn) -> list[WebhookRow]:
    return [_from_row(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM webhook ORDER BY id")]


async def list_webhooks(db: Database, workspace_id: str) -> list[WebhookRow]:
    rows = await db.fetchall(f"SELECT {_COLUMNS} FROM webhook WHERE workspace_id = ? ORDER BY id", (workspace_id,))
    return [_from_row(row) for row in rows]


async def fetch(db: Database, workspace_id: str, webhook_id: str) -> WebhookRow | None:
    row = await db.fetchone(
        f"SELECT {_COLUMNS} FROM webhook WHERE id = ? AND workspace_id = ?", (webhook_id, workspace_id)
    )
    return None if row is None else _from_row(row)


def set_failure_state(
    conn: Conn, webhook_id: str, *, failing_since: int | None, disabled_at: int | None
) -> None:
    """Record that the endpoint fails since `failing_since` (None: it answered), or disable it."""
    if disabled_at is not None:
        conn.execute(
            "UPDATE webhook SET enabled = 0, disabled_at = ?, failing_since = ? WHERE id = ?",
            (disabled_at, failing_since, webhook_id),
        )
    else:
        conn.execute("UPDATE webhook SET failing_since = ? WHERE id = ?", (failing_since, webhook_id))


# Failure alerts -------------------------------------------------------------------


class AlertRow(msgspec.Struct, kw_only=True, frozen=True):
    """A workspace's alert destinations; the Slack URL (a credential) is encrypted."""

    workspace_id: str
    email: str | None
    slack_url: bytes | None
    updated_at: int


def get_alerts(conn: Conn, workspace_id: str) -> AlertRow | None:
    row = conn.execute(
        "SELECT workspace_id, email, slack_url, updated_at FROM alert_config WHERE workspace_id = ?", (workspace_id,)
    ).fetchone()
    return None if row is None else AlertRow(
        workspace_id=row[0], email=row[1], slack_url=None if row[2] is None else bytes(row[2]), updated_at=row[3]
    )


async def fetch_alerts(db: Database, workspace_id: str) -> AlertRow | None:
    row = await db.fetchone(
        "SELECT workspace_id, email, slack_url, updated_at FROM alert_config WHERE workspace_id = ?", (workspace_id,)
    )
    return None if row is None else AlertRow(
        workspace_id=row[0], email=row[1], slack_url=None if row[2] is None else bytes(row[2]), updated_at=row[3]
    )


def alert_workspaces(conn: Conn) -> list[str]:
    return [row[0] for row in conn.execute("SELECT workspace_id FROM alert_config")]


def put_alerts(conn: Conn, alerts: AlertRow) -> None:
    conn.execute(
        upsert("alert_config", ("workspace_id", "email", "slack_url", "updated_at"), ("workspace_id",)),
        (alerts.workspace_id, alerts.email, alerts.slack_url, alerts.updated_at),
    )


def all_alert_ciphertexts(conn: Conn) -> list[tuple[str, bytes]]:
    rows = conn.execute("SELECT workspace_id, slack_url FROM alert_config WHERE slack_url IS NOT NULL")
    return [(row[0], bytes(row[1])) for row in rows]


def set_alert_ciphertext(conn: Conn, workspace_id: str, slack_url: bytes) -> None:
    conn.execute("UPDATE alert_config SET slack_url = ? WHERE workspace_id = ?", (slack_url, workspace_id))


def set_secret_ciphertexts(conn: Conn, webhook_id: str, secret: bytes, previous: bytes | None) -> None:
    conn.execute("UPDATE webhook SET secret = ?, previous_secret = ? WHERE id = ?", (secret, previous, webhook_id))


async def fetch_by_id(db: Database, webhook_id: str) -> WebhookRow | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM webhook WHERE id = ?", (webhook_id,))
    return None if row is None else _from_row(row)
