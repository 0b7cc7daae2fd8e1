"""A batch of payloads as one text, so each detector makes one pass over the batch instead of one per payload.

The payloads are joined with newlines. A serialized payload without escapes holds no newline, and no
detector pattern matches one or treats it differently from the end of the text, so every match lies
within one payload and is the match that payload alone would give, at the same offset from its start.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate

# The only characters whose lowercase changes length (İ) or is ASCII (the Kelvin sign): with neither
# present, a payload's scan text lines up character for character with its text and finds the same emails.
_CASE_TRAPS = ("\u0130", "\u212a")
_CASE_TRAP_BYTES = tuple(trap.encode() for trap in _CASE_TRAPS)


def joinable(payload: bytes) -> bool:
    """True when the payload can be scanned as part of a joined batch (`JoinedPayloads`)."""
    if b"\\" in payload or b"\n" in payload:
        return False
    if payload.isascii():
        return True
    if any(trap in payload for trap in _CASE_TRAP_BYTES):
        return False
    try:
        payload.decode()
    except UnicodeDecodeError:
        return False
    return True


class JoinedPayloads:
    """Payloads joined by newlines: their `text`, its lowercase `scan`, and which payload owns an offset."""

    def __init__(self, text: str, lengths: Iterable[int]) -> None:
        self.text = text
        self.scan = text.lower()
        # where each payload starts, and one past the end; `n + 1` for the newline after each
        self.starts = list(accumulate(map((1).__add__, lengths), initial=0))

    @classmethod
    def of(cls, payloads: Sequence[bytes]) -> JoinedPayloads | None:
        """The joined batch, or None when some payload is not `joinable` (checked for all at once first)."""
        joined = b"\n".join(payloads)
        if b"\\" in joined or joined.count(b"\n") != len(payloads) - 1:
            return None
        if joined.isascii():
            return cls(joined.decode("ascii"), map(len, payloads))
        if not all(joinable(p) for p in payloads):
            return None
        texts = [p.decode() for p in payloads]
        return cls("\n".join(texts), map(len, texts))

    def owner(self, offset: int) -> int:
        """The index of the payload that holds `offset`."""
        return bisect_right(self.starts, offset) - 1

    def owner_start(self, offset: int) -> int:
        """Where the payload that holds `offset` starts."""
        return self.starts[self.owner(offset)]
