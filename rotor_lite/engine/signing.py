"""The callback signature: `v1,` + base64(HMAC-SHA256(secret, "<job id>.<timestamp>.<body>"))."""

from __future__ import annotations

import base64
import hashlib
import hmac


def sign_callback(secret: str, job_id: str, timestamp: int, body: bytes) -> str:
    """The `x-rotor-signature` value for exactly these body bytes."""
    message = f"{job_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
