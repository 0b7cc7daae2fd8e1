"""PII in payloads: emails, phone numbers (US formats and E.164), SSNs and card numbers.

Look-alikes are not PII: bare digit runs (order ids), ZIP codes, dates, version strings,
impossible SSNs (area 000, 666, 900-999; group 00; serial 0000) and numbers failing Luhn.
Strings are scanned where they hold digits; JSON numbers count only as card numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any

import msgspec

from rotor_lite.guardrails.batch import JoinedPayloads
from rotor_lite.guardrails.text import find_emails

PII_KINDS = ("email", "phone", "ssn", "card")
PLACEHOLDERS = {kind: f"[REDACTED-{kind.upper()}]" for kind in PII_KINDS}

# A stretch of digits and separators long enough to be a phone, SSN or card: the cheap first pass.
_CANDIDATE = re.compile(r"[0-9][0-9 ().-]{5,}[0-9]", re.ASCII)
# The same pass over ASCII text with its digits translated to `0` and other characters but separators to
# `x`: a pattern starting with one literal character skips ahead at memchr speed, one with a class does not.
_DIGITS_TO_ZERO = str.maketrans({chr(c): "0" if chr(c).isdigit() else chr(c) if chr(c) in " ().-" else "x" for c in range(128)})
_CANDIDATE_TRANSLATED = re.compile(r"0[0 ().-]{5,}0")
_END = r"(?![\w-]|\.[0-9])"
# One alternative per kind. At any one position at most one can match (the digit groups of an SSN or
# a card never fit a phone number's, nor each other's), so their order is only for speed: phones first.
_PATTERNS = {
    "phone": (
        r"(?<![\w+.-])(?:\+?1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}" + _END
        + r"|(?<![\w+])\+[1-9][0-9]{7,14}" + _END
    ),
    "ssn": r"(?<![\w.-])(?!000|666|9)[0-9]{3}(?P<s1>[- ])(?!00)[0-9]{2}(?P=s1)(?!0000)[0-9]{4}" + _END,
    "card": (
        r"(?<![\w.-])(?:[0-9]{13,19}|[0-9]{4}(?P<c1>[ -])[0-9]{4}(?P=c1)[0-9]{4}(?P=c1)[0-9]{4}(?:(?P=c1)[0-9]{1,3})?"
        r"|[0-9]{4}(?P<c2>[ -])[0-9]{6}(?P=c2)[0-9]{4,5})" + _END
    ),
}
_SHORTEST = 9  # characters in the shortest match (`+` and 8 digits): a shorter stretch is not searched
Span = tuple[int, int, str]


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if i % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def is_card_number(text: str) -> bool:
    """13 to 19 digits (separators ignored) with a card network's first digit, passing Luhn."""
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


class PiiScanner:
    """Detects (and redacts) the chosen kinds of PII in strings and serialized payloads."""

    def __init__(self, kinds: Iterable[str] = PII_KINDS) -> None:
        self.kinds = frozenset(kinds)
        self._digit_kinds = [kind for kind in _PATTERNS if kind in self.kinds]
        self._digits = re.compile("|".join(f"(?P<{k}>{_PATTERNS[k]})" for k in self._digit_kinds), re.ASCII)

    def might_contain(self, scan: str) -> bool:
        """A cheap pre-check on a payload's scan text: False means there is certainly no PII."""
        if "email" in self.kinds and "@" in scan:
            return True
        return bool(self._digit_kinds) and _CANDIDATE.search(scan) is not None

    def spans(self, text: str) -> list[Span]:
        """Non-overlapping (start, end, kind) of the PII in `text`, in order."""
        found: list[Span] = []
        if "email" in self.kinds and "@" in text:
            found += [(start, end, "email") for start, end, _ in find_emails(text)]
        found += self.digit_spans(text)
        return without_overlaps(found)

    def digit_spans(self, text: str) -> list[Span]:
        """The phone numbers, SSNs and card numbers in `text`, in order."""
        if not self._digit_kinds:
            return []
        regions = _CANDIDATE_TRANSLATED if text.isascii() else _CANDIDATE
        found: list[Span] = []
        search = self._digits.search
        for region in regions.finditer(text.translate(_DIGITS_TO_ZERO) if text.isascii() else text):
            # one character of margin each side for `+` and `(`, and so the look-arounds see real neighbours
            # (`search` reads a start before 0 or an end past the text as the text's bounds)
            start, end = region.start() - 1, region.end() + 2
            while end - start >= _SHORTEST and (match := search(text, start, end)) is not None:
                kind = match.lastgroup or ""
                start = match.end()
                if kind != "card" or is_card_number(match.group()):
                    found.append((match.start(), start, kind))
        return found

    def redact_text(self, text: str, found: set[str]) -> str:
        """`text` with each PII replaced by its placeholder; adds the kinds seen to `found`."""
        spans = self.spans(text)
        if not spans:
            return text
        parts, last = [], 0
        for start, end, kind in spans:
            parts += [text[last:start], PLACEHOLDERS[kind]]
            found.add(kind)
            last = end
        parts.append(text[last:])
        return "".join(parts)

    def redact_payload(self, payload: bytes, scan: str) -> tuple[bytes, set[str]]:
        """The payload with its PII replaced, and the kinds replaced (empty: the payload is unchanged)."""
        found: set[str] = set()
        if not self.might_contain(scan):
            return payload, found
        text = payload.decode()
        if "\\" not in text:
            return self._redact_serialized(text, payload, found)
        value = self._redact_value(msgspec.json.decode(payload), found)
        return (msgspec.json.encode(value), found) if found else (payload, found)

    def _redact_serialized(self, text: str, payload: bytes, found: set[str]) -> tuple[bytes, set[str]]:
        spans = self.spans(text)
        if not spans:
            return payload, found
        found.update(kind for _, _, kind in spans)
        return redact_serialized(text, spans, lambda _: 0).encode(), found

    def joined_spans(self, batch: JoinedPayloads, emails: list[Span]) -> list[Span]:
        """The PII in a joined batch, as `spans` finds it in each of its payloads.

        `emails` are the email addresses in the batch's scan text, as `find_emails` gives them."""
        found = [(start, end, "email") for start, end, _ in emails] if "email" in self.kinds else []
        # no match crosses a newline, so over the whole batch this keeps what each payload alone would
        return without_overlaps(found + self.digit_spans(batch.text))

    def detect_payload(self, payload: bytes, scan: str) -> set[str]:
        """The kinds of PII in the payload."""
        return self.redact_payload(payload, scan)[1]

    def _redact_value(self, value: Any, found: set[str]) -> Any:
        if isinstance(value, str):
            return self.redact_text(value, found)
        if isinstance(value, dict):
            return {self.redact_text(k, found): self._redact_value(v, found) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact_value(item, found) for item in value]
        if type(value) is int and "card" in self.kinds and is_card_number(str(value)):
            found.add("card")
            return PLACEHOLDERS["card"]
        return value


def redact_joined(batch: JoinedPayloads, spans: list[Span]) -> list[bytes]:
    """Each payload of the batch with `spans` (its `joined_spans`) replaced by their placeholders."""
    return redact_serialized(batch.text, spans, batch.owner_start).encode().split(b"\n")


def redact_serialized(text: str, spans: list[Span], payload_start: Callable[[int], int]) -> str:
    """`text`, serialized payloads without escapes, with each of `spans` (in order, not overlapping)
    replaced by its placeholder; `payload_start(offset)` is where the payload holding `offset` starts."""
    # Without escapes, no match can cross a JSON token (none holds a quote): each lies in a string,
    # or — a card only — is a whole number token, which becomes a quoted placeholder.
    parts, last = [], 0
    for start, end, kind in spans:
        placeholder = PLACEHOLDERS[kind]
        if kind == "card" and text.count('"', payload_start(start), start) % 2 == 0:
            placeholder = f'"{placeholder}"'
        parts += [text[last:start], placeholder]
        last = end
    parts.append(text[last:])
    return "".join(parts)


def without_overlaps(spans: list[Span]) -> list[Span]:
    """The spans in order, each dropped that overlaps one kept before it (the earlier, then longer, wins)."""
    spans.sort(key=itemgetter(0))  # stable: spans starting together stay in the order found
    kept: list[Span] = []
    for span in spans:
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
        elif span[0] == kept[-1][0] and span[1] > kept[-1][1]:
            kept[-1] = span  # the longer of two starting together
    return kept
