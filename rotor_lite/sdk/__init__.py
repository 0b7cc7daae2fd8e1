"""Python SDK for rotor-lite: `Rotor` / `AsyncRotor` clients, typed errors, callback signature helpers,
durable workflows (`create_function`, `serve_workflow`), and `RotorWorker` for pull queues.

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
    NonRetriableError,
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
    SignalTimeoutError,
    StepError,
    WorkflowCancelledError,
    WorkflowError,
    WorkflowFailedError,
    WorkflowTimeoutError,
)
from rotor_lite.sdk.signing import parse_idempotency_key, sign_rotor_payload, verify_rotor_signature
from rotor_lite.sdk.webhooks import Webhook
from rotor_lite.sdk.worker import RotorWorker
from rotor_lite.sdk.workflows import create_function, serve_workflow

__all__ = [
    "AsyncRotor",
    "NonRetriableError",
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
    "RotorWorker",
    "SignalTimeoutError",
    "StepError",
    "WorkflowCancelledError",
    "WorkflowError",
    "WorkflowFailedError",
    "WorkflowTimeoutError",
    "create_function",
    "parse_idempotency_key",
    "sign_rotor_payload",
    "serve_workflow",
    "verify_rotor_signature",
    "Webhook",
]
