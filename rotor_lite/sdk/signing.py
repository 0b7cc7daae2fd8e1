"""Callback signatures and the Idempotency-Key header, for code that receives Rotor callbacks.

A callback carries `x-rotor-job-id`, `x-rotor-timestamp` and `x-rotor-signature:
v1,<base64(HMAC-SHA256(secret, "<job id>.<timestamp>.<body>"))>`; the body is the exact bytes sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["parse_idempotency_key", "sign_rotor_payload", "verify_rotor_signature"]

_SCHEME = "v1,"
_TIMESTAMP = re.compile(r"[0-9]+")
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_IDEMPOTENCY_KEY_LENGTH = 256


class _HeaderLookup(Protocol):
    def get(self, key: str, /) -> Any: ...


def sign_rotor_payload(body: str | bytes, secret: str, *, id: str, timestamp: int | str) -> str:
    """The `x-rotor-signature` value (`v1,<base64>`) Rotor sends for this body, job id and timestamp."""
    signed = f"{id}.{timestamp}.".encode() + _as_bytes(body)
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return _SCHEME + base64.b64encode(digest).decode("ascii")


def verify_rotor_signature(
    body: str | bytes,
    signature: str,
    secret: str,
    *,
    id: str,
    timestamp: int | str,
    max_age_seconds: float | None = 300,
    now: float | None = None,
) -> bool:
    """True when `signature` is a valid, fresh Rotor signature of `body`.

    `signature` may hold several space-separated `v1,...` entries (as during a secret rotation);
    any one matching is enough. Pass the raw request body: re-serialized JSON will not match.
    A timestamp more than `max_age_seconds` away from `now` (default: the current time) is refused.
    """
    ts = str(timestamp).strip() if timestamp is not None else ""
    if not (body is not None and signature and secret and id and _TIMESTAMP.fullmatch(ts)):
        return False
    current = time.time() if now is None else now
    if max_age_seconds is not None and abs(current - int(ts)) > max_age_seconds:
        return False
    try:
        expected = sign_rotor_payload(body, secret, id=id, timestamp=ts)
    except UnicodeEncodeError:
        return False
    candidates = [part for part in signature.split() if part.startswith(_SCHEME)]
    # compare against every entry so the timing does not reveal which one matched
    return any([hmac.compare_digest(expected.encode(), part.encode()) for part in candidates])


def parse_idempotency_key(headers: Mapping[str, Any] | _HeaderLookup) -> str | None:
    """The `Idempotency-Key` header's value, stripped, or None when it is absent or blank.

    Accepts a dict, `httpx.Headers`, or any object with `.get` (and optionally `.items`);
    the header name is matched case-insensitively. Raises ValueError past 256 characters.
    """
    value = _header_value(headers, IDEMPOTENCY_HEADER)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value is None:
        return None
    key = str(value).strip()
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValueError(f"Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    return key or None


def _header_value(headers: Any, name: str) -> Any:
    items = getattr(headers, "items", None)
    if callable(items):
        for key, value in items():
            key_text = key.decode("latin-1") if isinstance(key, bytes) else str(key)
            if key_text.lower() == name:
                return value
        return None
    for candidate in (name, "Idempotency-Key", name.upper()):
        value = headers.get(candidate)
        if value is not None:
            return value
    return None


def _as_bytes(body: str | bytes) -> bytes:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    return body.encode("utf-8")
