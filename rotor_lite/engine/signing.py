"""The signatures rotor-lite sends: callbacks' `v1,` + base64(HMAC-SHA256(secret, "<id>.<timestamp>.<body>")),
and Standard Webhooks' for webhook deliveries."""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import lru_cache

from standardwebhooks.webhooks import Webhook


def sign_callback(secret: str, job_id: str, timestamp: int, body: bytes) -> str:
    """The `x-rotor-signature` value for exactly these body bytes."""
    mac = _keyed(secret).copy()
    mac.update(f"{job_id}.{timestamp}.".encode())
    mac.update(body)
    return "v1," + binascii.b2a_base64(mac.digest(), newline=False).decode()


@lru_cache(maxsize=1024)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC already keyed with `secret`: copying it costs a third of keying a new one on every delivery."""
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def sign_webhook(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one Standard Webhooks `v1,` signature per secret, space-separated."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    text = body.decode()
    return " ".join(Webhook(secret).sign(message_id, moment, text) for secret in secrets)
