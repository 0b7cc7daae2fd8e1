"""The fast paths give exactly what the straightforward ones give: a batch scanned as one joined text
against each payload scanned alone, and the detectors against their first, plain implementations."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from rotor_lite.guardrails import JoinedPayloads, PiiScanner, find_emails, joinable
from rotor_lite.guardrails.pii import _PATTERNS, is_card_number
from rotor_lite.services import guardrail_stages
from rotor_lite.services.guardrail_stages import (
    Policy,
    screen_batch,
    screen_each,
    screen_payloads,
)
from rotor_lite.store.guardrails import ConfigRow

# Reference detectors: the first implementations, one `@` and one candidate region at a time ---------

_LOCAL = re.compile(r"[A-Za-z0-9._%+'-]{1,64}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_CANDIDATE = re.compile(r"[0-9][0-9 ().-]{5,}[0-9]", re.ASCII)


def reference_emails(text: str) -> Iterator[tuple[int, int, str]]:
    at = text.find("@")
    while at != -1:
        local = _LOCAL.match(text[max(0, at - 64):at][::-1])
        domain = _DOMAIN.match(text, at + 1)
        start = at - local.end() if local else at
        while start < at and text[start] == ".":
            start += 1
        tld = domain.group().rsplit(".", 1)[-1] if domain else ""
        if domain is None or start == at or len(tld) < 2 or not tld.isalpha():
            at = text.find("@", at + 1)
            continue
        yield start, domain.end(), text[start:domain.end()]
        at = text.find("@", domain.end())


def reference_spans(text: str) -> list[tuple[int, int, str]]:
    # the kinds in their first order: SSNs, then cards, then phone numbers
    digits = re.compile("|".join(f"(?P<{k}>{_PATTERNS[k]})" for k in ("ssn", "card", "phone")), re.ASCII)
    found = [(s, e, "email") for s, e, _ in reference_emails(text)]
    for region in _CANDIDATE.finditer(text):
        for m in digits.finditer(text, max(0, region.start() - 1), min(len(text), region.end() + 2)):
            if m.lastgroup != "card" or is_card_number(m.group()):
                found.append((m.start(), m.end(), m.lastgroup or ""))
    found.sort(key=lambda span: (span[0], span[0] - span[1]))
    kept: list[tuple[int, int, str]] = []
    for span in found:
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    return kept


# A varied corpus ---------------------------------------------------------------------------------

FRAGMENTS = [
    "bob@example.com", "Bob.Smith@Example.COM", "x@mail.bounced.io", "alice@example.com", "a.b+tag@sub.example.org.",
    "...lead@dots.io", "a@b.c", "a@b.com@c.org", "a@b.c1@d.org", "'555-867-5309@x.com", "@handle", "x@localhost",
    "555-867-5309", "(555) 867-5309", "+1 (555) 867-5309", "1-555-867-5309", "555.867.5309", "+442079460958",
    "+15558675309", "a+15558675309", "123-45-6789", "123 45 6789", "000-12-3456", "123-00-4567", "4111 1111 1111 1111",
    "4111-1111-1111-1111", "4111111111111111", "4111111111111112", "3782 822463 10005", "5555555555554444",
    "ORD-2024-000123", "94105-1234", "2024-01-15", "12/31/2024", "v2.3.1", "10.0.19041.1288", "192.168.100.254",
    "1700000000000", "www.rivalcrm.com", "notrivalcrm.com", "rivalcrm.com.au", "rivalcrm.com.", "x@rivalcrm.com",
    "café", "naïve—dash", "\u212a@example.com", "\u0130stanbul@example.com", "line\nbreak", 'say "hi"', "back\\slash",
    "tab\there", "\u00e9@\u00e9.com", "415-555-0123.", "(415)555-0123", "5558675309", " ", "  ", ".", "-", "(", ")",
]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(FRAGMENTS + [" ", " and ", ", ", "x"]) for _ in range(rng.randint(0, 6)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if depth < 2 and kind < 0.25:
        return {_text(rng) if rng.random() < 0.3 else f"k{i}": _value(rng, depth + 1) for i in range(rng.randint(0, 3))}
    if depth < 2 and kind < 0.4:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind < 0.5:
        return rng.choice([4111111111111111, 4111111111111112, 5558675309, 0, -12, 2.5, True, None])
    return _text(rng)


def corpus(seed: int, size: int) -> list[bytes]:
    rng = random.Random(seed)
    return [msgspec.json.encode(_value(rng)) for _ in range(size)]


# Tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_detectors_match_their_reference_implementations(seed: int) -> None:
    rng = random.Random(seed)
    scanner = PiiScanner()
    for _ in range(400):
        text = _text(rng) + _text(rng)
        assert list(find_emails(text)) == list(reference_emails(text)), text
        assert scanner.spans(text) == reference_spans(text), text


SHAPES = [(3, 3, 4), (3, 2, 4), (4, 4, 4, 4), (4, 6, 5), (1, 3, 3, 4), (16,), (11,), (2, 3, 4), (4, 4, 4, 4, 2)]
CARDS = ["4111111111111111", "5555555555554444", "378282246310005", "4012888888881881", "6011111111111117"]


def _digits_and_separators(rng: random.Random) -> str:
    """Digit groups shaped like phone numbers, SSNs and cards, with chosen and stray separators."""
    shape = rng.choice(SHAPES)
    digits = rng.choice(CARDS) if rng.random() < 0.3 else "".join(rng.choice("2345678901") for _ in range(sum(shape)))
    groups, at = [], 0
    for n in shape:
        groups.append(digits[at:at + n])
        at += n
    if rng.random() < 0.2:
        groups[rng.randrange(len(groups))] += str(rng.randrange(10))
    seps = [rng.choice([" ", "-", ".", ") ", "", "x"]) if rng.random() < 0.2 else rng.choice([" ", "-"]) for _ in groups]
    text = "".join(g + sep for g, sep in zip(groups, seps))[:-1]
    return rng.choice(["", "", "", "+", "+1 ", "1-", "(", "1 (", "a", ".", " "]) + text + rng.choice(["", "", "x", ".5", "-"])


def test_digit_patterns_find_what_they_did_in_their_first_order() -> None:
    rng = random.Random(5)
    scanner = PiiScanner()
    texts = [_digits_and_separators(rng) for _ in range(20_000)]
    assert sum(bool(scanner.spans(t)) for t in texts) > 800  # enough of them are PII, of each kind
    for text in texts:
        assert scanner.spans(text) == reference_spans(text), text


def _policy(**config: Any) -> Policy:
    return Policy(ConfigRow(workspace_id="ws", id="grc_x", **config), has_dnc=True)


def _probe(kind: str, values: Any) -> set[str]:
    listed = {"emails": {"alice@example.com", "bob@example.com"}, "domains": {"bounced.io", "example.org"}}
    return {v for v in values if v in listed[kind]}


POLICIES = {
    "redact": {"pii_enabled": True, "competitor_domains": ("rivalcrm.com",)},
    "block": {"pii_enabled": True, "pii_mode": "block"},
    "some kinds": {"pii_enabled": True, "pii_types": ("phone", "card")},
    "dnc only": {},
    "hold": {"pii_enabled": True, "brand_tone_enabled": True, "brand_tone_rubric": "calm"},
}


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("seed", range(4))
def test_a_joined_batch_screens_as_each_payload_alone(name: str, seed: int) -> None:
    policy = _policy(**POLICIES[name])
    payloads = corpus(seed, 300)
    assert any(joinable(p) for p in payloads) and not all(joinable(p) for p in payloads)
    assert screen_batch(policy, payloads, _probe) == screen_each(policy, payloads, _probe)
    joined_only = [p for p in payloads if joinable(p)]  # the fully joined path, not the mixed one
    assert JoinedPayloads.of(joined_only) is not None
    assert screen_batch(policy, joined_only, _probe) == screen_each(policy, joined_only, _probe)


@pytest.mark.parametrize("chunk_bytes", [1, 200, 2_000])
def test_a_batch_in_many_chunks_screens_the_same(chunk_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = _policy(**POLICIES["redact"])
    payloads = corpus(9, 300)
    expected = screen_each(policy, payloads, _probe)
    monkeypatch.setattr(guardrail_stages, "_CHUNK_BYTES", chunk_bytes)
    assert len(guardrail_stages._chunks(payloads)) > 1
    assert screen_batch(policy, payloads, _probe) == expected


def test_what_cannot_be_joined() -> None:
    assert joinable(b'{"a":"caf\xc3\xa9 x@y.com"}') and joinable(b"5558675309")
    assert not joinable(b'{"a":"x\\ny"}')  # an escape: scanned alone, escapes blanked
    assert not joinable("{\"a\":\"\u212a@x.com\"}".encode())  # lowercases to an ASCII letter
    assert not joinable("{\"a\":\"\u0130x\"}".encode())  # lowercases to two characters
    assert not joinable(b'{"a":"\xff"}')  # not UTF-8
    assert JoinedPayloads.of([b'{"a":1}', b'{"a":"x\\ny"}']) is None


def test_redaction_in_a_joined_batch_keeps_each_payload_valid_json() -> None:
    payloads = [msgspec.json.encode(v) for v in (
        {"card": 4111111111111111, "to": "Sam@Example.com"}, [4111111111111111, "4111 1111 1111 1111"], {"n": 1},
        "call 555-867-5309", {"to": "Bob@Example.com"},
    )]
    verdicts = screen_payloads(_policy(pii_enabled=True), payloads, _probe)
    assert [msgspec.json.decode(v.payload) for v in verdicts[:4]] == [
        {"card": "[REDACTED-CARD]", "to": "[REDACTED-EMAIL]"}, ["[REDACTED-CARD]", "[REDACTED-CARD]"], {"n": 1},
        "call [REDACTED-PHONE]",
    ]
    assert verdicts[2].payload == payloads[2]
    assert verdicts[4].blocked_by == "dnc" and verdicts[4].payload is payloads[4]  # blocked jobs keep theirs
