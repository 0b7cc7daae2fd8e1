"""Injected time: every component asks a Clock, so tests can control it."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in milliseconds since the epoch."""

    def now_ms(self) -> int: ...


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


def iso_from_ms(ms: int | None) -> str | None:
    """Format epoch milliseconds as ISO 8601 UTC with milliseconds and a `Z`."""
    return None if ms is None else iso(ms)


@lru_cache(maxsize=4096)  # a batch's jobs share their timestamps
def iso(ms: int) -> str:
    """`iso_from_ms` for a timestamp that is never None."""
    secs, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{millis:03d}Z"
