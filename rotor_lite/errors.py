"""The errors rotor-lite raises; the API maps each to its envelope and status.

    RotorError (code, status, message, details)
    ├── Unauthorized            401 UNAUTHORIZED
    │   └── KeyRefused          (a missing, unknown, revoked or expired key; what it traces to, for the audit)
    ├── Forbidden               403 FORBIDDEN
    ├── NotFound                404 NOT_FOUND
    │   ├── QueueNotFound
    │   ├── JobNotFound
    │   ├── WebhookNotFound
    │   ├── SecretNotFound
    │   ├── WorkspaceNotFound
    │   └── ApiKeyNotFound
    ├── Conflict                409 CONFLICT
    │   └── InvalidState        (the job or queue is in the wrong state)
    ├── IdempotencyConflict     409 IDEMPOTENCY_CONFLICT
    ├── Gone                    410 GONE (a signal already resolved or timed out)
    ├── PayloadTooLarge         413 PAYLOAD_TOO_LARGE
    ├── ValidationError         422 VALIDATION_ERROR (details.field names the field)
    ├── QuotaExceeded           402 QUOTA_EXCEEDED
    ├── RateLimited             429 RATE_LIMITED (retry_after seconds)
    ├── Unavailable             503 UNAVAILABLE (storage cannot write)
    └── ConfigError             not an HTTP error: stops the server at start
"""

from __future__ import annotations

from typing import Any


class RotorError(Exception):
    """Root of every rotor-lite error."""

    code = "INTERNAL"
    status = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class Unauthorized(RotorError):
    code, status = "UNAUTHORIZED", 401


class KeyRefused(Unauthorized):
    """`reason` (missing, invalid, revoked, expired) and the workspaces the key traces to are for the audit
    log only; the response's message says which of the four it is, nothing more."""

    def __init__(
        self, message: str, reason: str, *, key_id: str | None = None, key_prefix: str | None = None,
        workspace_ids: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.reason, self.key_id, self.key_prefix, self.workspace_ids = reason, key_id, key_prefix, workspace_ids


class Forbidden(RotorError):
    code, status = "FORBIDDEN", 403


class NotFound(RotorError):
    code, status = "NOT_FOUND", 404


class QueueNotFound(NotFound):
    def __init__(self, queue: str) -> None:
        super().__init__(f"queue '{queue}' not found", {"queue": queue})


class JobNotFound(NotFound):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job '{job_id}' not found", {"jobId": job_id})


class WorkspaceNotFound(NotFound):
    def __init__(self, workspace: str) -> None:
        super().__init__(f"workspace '{workspace}' not found", {"workspace": workspace})


class ApiKeyNotFound(NotFound):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key '{key_id}' not found", {"keyId": key_id})


class WebhookNotFound(NotFound):
    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"webhook '{webhook_id}' not found", {"webhookId": webhook_id})


class SecretNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"secret '{name}' not found", {"name": name})


class Conflict(RotorError):
    code, status = "CONFLICT", 409


class InvalidState(Conflict):
    def __init__(self, what: str, state: str, action: str) -> None:
        super().__init__(f"cannot {action} a {what} in state '{state}'", {"state": state})


class IdempotencyConflict(RotorError):
    code, status = "IDEMPOTENCY_CONFLICT", 409

    def __init__(self, job_id: str) -> None:
        super().__init__(f"a job with id '{job_id}' already exists", {"jobId": job_id})


class Gone(RotorError):
    code, status = "GONE", 410


class PayloadTooLarge(RotorError):
    code, status = "PAYLOAD_TOO_LARGE", 413


class ValidationError(RotorError):
    code, status = "VALIDATION_ERROR", 422

    def __init__(self, message: str, field: str | None = None, **details: Any) -> None:
        if field is not None:
            details = {"field": field, **details}
        super().__init__(message, details)


class QuotaExceeded(RotorError):
    code, status = "QUOTA_EXCEEDED", 402

    def __init__(self, used: int, limit: int, plan: str = "self-hosted") -> None:
        super().__init__(
            "Monthly job quota exceeded for this workspace",
            {"used": used, "limit": limit, "plan": plan},
        )


class RateLimited(RotorError):
    code, status = "RATE_LIMITED", 429

    def __init__(self, retry_after: int, limit: int, reset_at: int, message: str = "rate limit exceeded") -> None:
        super().__init__(message, {"retryAfter": retry_after, "limit": limit})
        self.retry_after = retry_after
        self.limit = limit
        self.reset_at = reset_at


class Unavailable(RotorError):
    code, status = "UNAVAILABLE", 503


class ConfigError(RotorError):
    """A bad configuration file or value; the message names the key."""
