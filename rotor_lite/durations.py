"""Durations as the API and the config write them: integer seconds or "500ms", "30s", "5m", "2h", "7d"."""

from __future__ import annotations

import re

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration_ms(value: object) -> int:
    """Milliseconds for a duration; raises ValueError on anything else."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("duration must not be negative")
        return value * 1000
    if isinstance(value, float) and value >= 0:
        return int(value * 1000)
    if isinstance(value, str):
        if value.strip().isdigit():
            return int(value) * 1000
        match = _PATTERN.match(value)
        if match:
            return int(float(match.group(1)) * _UNITS_MS[match.group(2)])
    raise ValueError(f"invalid duration {value!r}: use seconds or a string like '500ms', '30s', '5m', '2h', '7d'")


def format_duration_ms(ms: int) -> str:
    """The shortest exact spelling of a duration: 1000 → "1s", 90000 → "90s", 1500 → "1500ms"."""
    for unit in ("d", "h", "m", "s"):
        if ms and ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"
