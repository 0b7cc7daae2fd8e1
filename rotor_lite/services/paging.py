"""Opaque list cursors shared by every paged resource: the row id to continue after."""

from __future__ import annotations

import base64

from rotor_lite.errors import ValidationError


def encode_cursor(rowid: int) -> str:
    """The cursor that resumes a list after (or before) row `rowid`."""
    return base64.urlsafe_b64encode(f"r{rowid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The row id in a cursor, None for no cursor; a malformed one is a 422."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith("r") and text[1:].isdigit():
            return int(text[1:])
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text that b64decode refuses
        pass
    raise ValidationError("invalid cursor", field="cursor")


def encode_text_cursor(value: str) -> str:
    """The cursor that resumes a list ordered by text after `value` (a DNC entry, a signal)."""
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_text_cursor(cursor: str | None) -> str | None:
    """The text in a cursor, None for no cursor; a malformed one is a 422."""
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError as exc:  # binascii.Error, UnicodeDecodeError, and non-ASCII text that b64decode refuses
        raise ValidationError("invalid cursor", field="cursor") from exc
