"""Master-key rotation: every ciphertext at rest re-encrypted under a new key, in one transaction.

Covers queue callback secrets, webhook signing secrets (current and previous), failure-alert
Slack URLs, vault values, and the key-check value the server verifies at start.
"""

from __future__ import annotations


from rotor_lite.crypto import KEY_CHECK_PLAINTEXT, Vault
from rotor_lite.errors import ConfigError
from rotor_lite.services import audit
from rotor_lite.services.workflow_state import decrypt_keys, encrypt_keys
from rotor_lite.store import functions as function_store
from rotor_lite.store import queues as queue_store
from rotor_lite.store import secrets as secret_store
from rotor_lite.store import webhooks as webhook_store
from rotor_lite.store import workspaces as ws_store
from rotor_lite.store.contract import Conn

KEY_CHECK = "master_key_check"  # the meta row engine/runtime.py checks at start


def rotate_master_key(conn: Conn, old: Vault, new: Vault, now: int) -> dict[str, int]:
    """Re-encrypt everything under `new`; returns how many values of each kind. Raises ConfigError if `old` is wrong."""
    check = ws_store.get_meta(conn, KEY_CHECK)
    if check is not None and not old.matches(check):
        raise ConfigError("the current master key does not match this data directory; nothing was changed")
    counts = {
        "callback_secrets": _queues(conn, old, new), "webhook_secrets": _webhooks(conn, old, new),
        "alert_urls": _alerts(conn, old, new), "secrets": _secrets(conn, old, new),
        "signing_keys": _signing_keys(conn, old, new),
    }
    ws_store.set_meta(conn, KEY_CHECK, new.encrypt(KEY_CHECK_PLAINTEXT))
    workspaces = ws_store.workspace_ids(conn)
    audit.record(conn, *(
        audit.audit_event(ws, "master_key.rotated", actor=audit.SYSTEM, now=now, metadata=counts, ip=None)
        for ws in workspaces
    ))
    return counts


def _reencrypt(blob: bytes, old: Vault, new: Vault, context: bytes) -> bytes:
    return new.encrypt(old.decrypt(blob, context), context)


def _queues(conn: Conn, old: Vault, new: Vault) -> int:
    rows = [row for row in queue_store.all_queues(conn) if row.secret_blob is not None]
    for row in rows:
        assert row.secret_blob is not None
        blob = _reencrypt(row.secret_blob, old, new, b"callback_secret")
        queue_store.set_callback_secret_blob(conn, row.queue.rowid, blob)
    return len(rows)


def _signing_keys(conn: Conn, old: Vault, new: Vault) -> int:
    rows = function_store.all_signing_keys(conn)
    for workspace_id, row in rows.items():
        function_store.set_signing_key(conn, workspace_id, encrypt_keys(new, decrypt_keys(old, row)), 0)
    return len(rows)


def _webhooks(conn: Conn, old: Vault, new: Vault) -> int:
    hooks = webhook_store.all_webhooks(conn)
    for hook in hooks:
        context = f"webhook:{hook.id}".encode()
        previous = None if hook.previous_secret is None else _reencrypt(hook.previous_secret, old, new, context)
        webhook_store.set_secret_ciphertexts(conn, hook.id, _reencrypt(hook.secret, old, new, context), previous)
    return len(hooks)


def _alerts(conn: Conn, old: Vault, new: Vault) -> int:
    rows = webhook_store.all_alert_ciphertexts(conn)
    for workspace_id, blob in rows:
        context = b"alerts:slack_url:" + workspace_id.encode()
        webhook_store.set_alert_ciphertext(conn, workspace_id, _reencrypt(blob, old, new, context))
    return len(rows)


def _secrets(conn: Conn, old: Vault, new: Vault) -> int:
    rows = secret_store.all_ciphertexts(conn)
    for workspace_id, name, blob in rows:
        context = f"secret:{workspace_id}:{name}".encode()
        secret_store.set_ciphertext(conn, workspace_id, name, _reencrypt(blob, old, new, context))
    return len(rows)
