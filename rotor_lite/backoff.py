"""How long a failed job waits before its next attempt."""

from __future__ import annotations

import random
from collections.abc import Callable
from email.utils import parsedate_to_datetime

from rotor_lite.models import BackoffType

MAX_BACKOFF_MS = 7 * 86_400_000
MAX_RETRY_AFTER_MS = 86_400_000
JITTER = 0.10


def backoff_ms(kind: BackoffType, delay_ms: int, attempt: int, rand: Callable[[], float] = random.random) -> int:
    """Delay after failed attempt `attempt` (1-based): exponential `delay × 2^(attempt-1)` or fixed
    `delay`, plus up to 10 % jitter, never less than the delay itself."""
    if kind == BackoffType.EXPONENTIAL:
        base = delay_ms * (1 << min(max(attempt - 1, 0), 40))
    else:
        base = delay_ms
    base = min(base, MAX_BACKOFF_MS)
    return base + int(base * JITTER * rand())


def parse_retry_after(value: str | None, now_ms: int) -> int | None:
    """A `Retry-After` header (seconds or an HTTP date) as a delay in ms, capped at a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = int(value) * 1000
    else:
        try:
            delay = int(parsedate_to_datetime(value).timestamp() * 1000) - now_ms
        except (TypeError, ValueError, IndexError):
            return None
    return max(0, min(delay, MAX_RETRY_AFTER_MS))
