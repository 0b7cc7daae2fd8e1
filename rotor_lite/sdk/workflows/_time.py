"""Durations and instants as the step primitives take them, in the milliseconds the protocol speaks.

The server has its own parser (rotor_lite.durations); the SDK may not import server code, so it
keeps this one, which accepts the same spellings.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["Duration", "Instant", "duration_ms", "epoch_ms"]

Duration = int | float | str | timedelta
Instant = datetime | str | int | float

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SPELLED = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")


def duration_ms(value: Duration, *, what: str = "duration") -> int:
    """Milliseconds for seconds (int/float), a timedelta, or a string like "500ms", "30s", "5m", "2h", "7d"."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | timedelta):
        raise TypeError(f"{what} must be seconds, a timedelta or a string like '30s', not {type(value).__name__}")
    if isinstance(value, timedelta):
        ms = round(value.total_seconds() * 1000)
    elif isinstance(value, str):
        ms = _spelled_ms(value.strip(), what)
    else:
        ms = round(value * 1000)
    if ms < 0:
        raise ValueError(f"{what} must not be negative")
    return ms


def epoch_ms(value: Instant, *, what: str = "time") -> int:
    """Unix milliseconds for a datetime (naive means UTC), an ISO 8601 string, or epoch milliseconds."""
    if isinstance(value, bool) or not isinstance(value, datetime | str | int | float):
        raise TypeError(f"{what} must be a datetime, an ISO 8601 string or epoch milliseconds")
    if isinstance(value, int | float):
        return round(value)
    moment = value if isinstance(value, datetime) else _parse_iso(value, what)
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return round(aware.timestamp() * 1000)


def _spelled_ms(text: str, what: str) -> int:
    if text.isdigit():
        return int(text) * 1000
    match = _SPELLED.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid {what} {text!r}: use seconds or a string like '500ms', '30s', '5m', '2h', '7d'")
    return round(float(match.group(1)) * _UNIT_MS[match.group(2)])


def _parse_iso(text: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid {what} {text!r}: not an ISO 8601 timestamp") from None
