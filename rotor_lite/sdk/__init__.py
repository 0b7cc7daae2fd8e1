"""Python SDK for rotor-lite: `Rotor` / `AsyncRotor` clients, typed errors, callback signature helpers.

It imports nothing from the server side of rotor_lite, only the standard library, httpx, msgspec and
standardwebhooks (webhook verification).

    from rotor_lite.sdk import Rotor

    with Rotor() as rotor:  # ROTOR_API_KEY, ROTOR_API_URL
        rotor.queues.create("outreach", concurrency=5, callback_url="https://example.com/hook")
        job = rotor.jobs.enqueue("outreach", {"contactId": "cid_123"}, job_id="outreach:cid_123")
"""

from __future__ import annotations

from rotor_lite.sdk._client import AsyncRotor, Rotor
from rotor_lite.sdk.errors import (
    RotorAPIError,
    RotorConflict,
    RotorError,
    RotorIdempotencyConflict,
    RotorNotFound,
    RotorQuotaExceeded,
    RotorRateLimited,
    RotorSignatureError,
    RotorUnauthorized,
    RotorValidationError,
)
from rotor_lite.sdk.signing import parse_idempotency_key, sign_rotor_payload, verify_rotor_signature
from rotor_lite.sdk.webhooks import Webhook

__all__ = [
    "AsyncRotor",
    "Rotor",
    "RotorAPIError",
    "RotorConflict",
    "RotorError",
    "RotorIdempotencyConflict",
    "RotorNotFound",
    "RotorQuotaExceeded",
    "RotorRateLimited",
    "RotorSignatureError",
    "RotorUnauthorized",
    "RotorValidationError",
    "parse_idempotency_key",
    "sign_rotor_payload",
    "verify_rotor_signature",
    "Webhook",
]
