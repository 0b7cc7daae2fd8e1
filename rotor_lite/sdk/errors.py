"""Errors raised by the rotor-lite SDK.

```
RotorError                      transport failures, missing API key, anything not from the API
├── RotorSignatureError         a webhook delivery whose signature does not verify (Webhook.verify)
├── RotorAPIError               a non-2xx response: .status .code .message .details .retry_after
│   ├── RotorUnauthorized           401 UNAUTHORIZED
│   ├── RotorNotFound               404 NOT_FOUND
│   ├── RotorConflict               409 CONFLICT (name taken, wrong state)
│   ├── RotorIdempotencyConflict    409 IDEMPOTENCY_CONFLICT (strict enqueue of a known job id)
│   ├── RotorQuotaExceeded          402 QUOTA_EXCEEDED
│   ├── RotorValidationError        422 VALIDATION_ERROR
│   └── RotorRateLimited            429 RATE_LIMITED
└── WorkflowError               a step (in on_failure: the run) failed for good: .name .message
    ├── StepError                   a step.run callable failed; .name is the original exception's
    ├── WorkflowFailedError         step.invoke: the child run failed
    ├── WorkflowTimeoutError        step.invoke: the child did not finish in time (it keeps running)
    ├── WorkflowCancelledError      step.invoke: the child run was cancelled
    └── SignalTimeoutError          step.wait_for_signal: no signal within the timeout

NonRetriableError               raise it in a workflow function (or a step) to fail without retries
```
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = [
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
    "SignalTimeoutError",
    "StepError",
    "NonRetriableError",
    "WorkflowCancelledError",
    "WorkflowError",
    "WorkflowFailedError",
    "WorkflowTimeoutError",
    "error_from_response",
    "workflow_error",
]


class RotorError(Exception):
    """Root of every SDK error; raised as-is for failures that never reached the API."""


class RotorSignatureError(RotorError):
    """A webhook delivery failed verification: bad or missing signature, stale timestamp, malformed body."""


class RotorAPIError(RotorError):
    """The API answered with a non-2xx status and (usually) its error envelope."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"[{code}] {message} (HTTP {status})")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after = retry_after


class RotorUnauthorized(RotorAPIError):
    """The API key is missing, unknown, revoked or expired (401)."""


class RotorNotFound(RotorAPIError):
    """The resource does not exist, or belongs to another workspace (404)."""


class RotorConflict(RotorAPIError):
    """The request conflicts with the resource's current state (409 CONFLICT)."""


class RotorIdempotencyConflict(RotorAPIError):
    """A strict enqueue reused a job id that already exists (409 IDEMPOTENCY_CONFLICT)."""


class RotorQuotaExceeded(RotorAPIError):
    """The workspace's monthly job quota is used up (402); `details` has used, limit, plan."""


class RotorValidationError(RotorAPIError):
    """The request was rejected as invalid (422); `details` often names the field."""


class RotorRateLimited(RotorAPIError):
    """Too many requests (429); wait `retry_after` seconds before trying again."""


class WorkflowError(RotorError):
    """A failure rotor-lite saved for a step (or a run): `.name` and `.message` as they were recorded."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        self.name = name or type(self).__name__
        self.message = message
        super().__init__(message if self.name == type(self).__name__ else f"{self.name}: {message}")


class StepError(WorkflowError):
    """A `step.run` callable failed for good; `.name` and `.message` are the original exception's."""


class WorkflowFailedError(WorkflowError):
    """`step.invoke`: the child run failed."""


class WorkflowTimeoutError(WorkflowError):
    """`step.invoke`: the child run did not finish within the timeout; the child keeps running."""


class WorkflowCancelledError(WorkflowError):
    """`step.invoke`: the child run was cancelled."""


class SignalTimeoutError(WorkflowError):
    """`step.wait_for_signal`: no signal arrived within the timeout."""


class NonRetriableError(Exception):
    """Raise it in a workflow function (or a step's callable) to fail at once, without retries."""


_WORKFLOW_ERRORS: dict[str, type[WorkflowError]] = {
    cls.__name__: cls
    for cls in (StepError, WorkflowFailedError, WorkflowTimeoutError, WorkflowCancelledError, SignalTimeoutError)
}


def workflow_error(name: str, message: str, *, default: type[WorkflowError] = StepError) -> WorkflowError:
    """The exception for a saved `{name, message}`: the class of that name, else `default` carrying the name."""
    known = _WORKFLOW_ERRORS.get(name)
    return known(message) if known is not None else default(message, name=name)


_ERRORS_BY_CODE: dict[str, type[RotorAPIError]] = {
    "UNAUTHORIZED": RotorUnauthorized,
    "NOT_FOUND": RotorNotFound,
    "CONFLICT": RotorConflict,
    "IDEMPOTENCY_CONFLICT": RotorIdempotencyConflict,
    "QUOTA_EXCEEDED": RotorQuotaExceeded,
    "VALIDATION_ERROR": RotorValidationError,
    "RATE_LIMITED": RotorRateLimited,
}


def error_from_response(status: int, content: bytes, headers: Mapping[str, str], *, reason: str = "") -> RotorAPIError:
    """Build the typed error for a non-2xx response from its status, body and headers."""
    envelope = _error_envelope(content)
    retry_after = parse_retry_after(headers.get("retry-after"))
    if envelope is None:
        code = "INTERNAL" if status >= 500 else f"HTTP_{status}"
        message = _text_snippet(content) or reason or f"HTTP {status}"
        return RotorAPIError(status=status, code=code, message=message, retry_after=retry_after)
    code = str(envelope.get("code") or ("INTERNAL" if status >= 500 else f"HTTP_{status}"))
    cls = _ERRORS_BY_CODE.get(code, RotorAPIError)
    return cls(
        status=status,
        code=code,
        message=str(envelope.get("message") or reason or code),
        details=_as_details(envelope.get("details")),
        retry_after=retry_after,
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _error_envelope(content: bytes) -> dict[str, Any] | None:
    try:
        body = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _as_details(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _text_snippet(content: bytes, limit: int = 200) -> str:
    text = content.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "…"
