"""The transport-neutral description of one API call, and the helpers that shape its parts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

__all__ = ["APIRequest", "compact", "duration", "path", "timestamp"]


@dataclass(frozen=True, slots=True)
class APIRequest:
    """What to send: built by the resources, executed by the sync or async client."""

    method: str
    path: str
    json: Any = None
    params: Mapping[str, Any] | None = None
    raw: bool = False  # return the response text instead of decoding JSON (CSV exports)


def path(template: str, *segments: str) -> str:
    """`template` with each `{}` filled by a fully percent-encoded segment (ids may hold `:` or `/`)."""
    return template.format(*(quote(str(segment), safe="") for segment in segments))


def compact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` without the entries whose value is None (None means "not given")."""
    return {key: value for key, value in fields.items() if value is not None}


def timestamp(value: datetime | str | None) -> str | None:
    """An ISO 8601 UTC timestamp for a datetime (naive ones are taken as UTC); strings pass through."""
    if value is None or isinstance(value, str):
        return value
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def duration(value: int | str | timedelta | None) -> int | str | None:
    """A duration as the API takes it: integer seconds or a string like "30s"; timedeltas converted."""
    if not isinstance(value, timedelta):
        return value
    milliseconds = round(value.total_seconds() * 1000)
    return milliseconds // 1000 if milliseconds % 1000 == 0 else f"{milliseconds}ms"
