"""The pure detectors: email extraction, domain suffixes, competitor boundaries, PII and its look-alikes."""

from __future__ import annotations

import msgspec
import pytest

from rotor_lite.guardrails import (
    CompetitorMatcher,
    PiiScanner,
    domain_suffixes,
    email_variants,
    find_emails,
    normalize_domain,
    normalize_email,
    scan_text,
)
from rotor_lite.guardrails.pii import is_card_number, luhn_ok


def test_scan_text_lowercases_and_blanks_json_escapes() -> None:
    payload = msgspec.json.encode({"body": "Hi\nALICE@Example.com\t\"quoted\" caf\u00e9"})
    text = scan_text(payload)
    assert "alice@example.com" in text and "\\n" not in text and "café" in text
    assert [a for _, _, a in find_emails(text)] == ["alice@example.com"]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("mail bob@example.com now", ["bob@example.com"]),
        ("a@b.co, c.d+tag@sub.example.org.", ["a@b.co", "c.d+tag@sub.example.org"]),
        ("...lead@dots.io", ["lead@dots.io"]),
        ("twitter @handle and x@localhost", []),
        ("user@ example.com", []),
    ],
)
def test_find_emails(text: str, found: list[str]) -> None:
    assert [address for _, _, address in find_emails(text)] == found


def test_variants_suffixes_and_normalizers() -> None:
    assert email_variants("a@x.com.the") == ["a@x.com.the", "a@x.com"]
    assert domain_suffixes("a.b.example.com") == ["a.b.example.com", "b.example.com", "example.com", "com"]
    assert normalize_email(" Alice@Example.COM ") == "alice@example.com"
    assert normalize_email("not-an-email") is None and normalize_email("a@localhost") is None
    assert normalize_domain("RivalCRM.com.") == "rivalcrm.com"
    assert normalize_domain("no spaces.com") is None and normalize_domain("localhost") is None


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("see www.rivalcrm.com now", "rivalcrm.com"), ("x@rivalcrm.com", "rivalcrm.com"),
        ("https://rivalcrm.com/pricing", "rivalcrm.com"), ("ends with rivalcrm.com.", "rivalcrm.com"),
        ('"rivalcrm.com"', "rivalcrm.com"), ("notrivalcrm.com", None), ("rivalcrm.com.au", None),
        ("rivalcrm.community", None), ("my_rivalcrm.com", None), ("rivalcrm-com", None),
    ],
)
def test_competitor_domains_match_on_boundaries(text: str, hit: str | None) -> None:
    assert CompetitorMatcher(["rivalcrm.com", "crm.com", "othertool.io"]).first_match(text) == hit


def test_an_empty_competitor_list_matches_nothing() -> None:
    matcher = CompetitorMatcher([])
    assert not matcher and matcher.first_match("rivalcrm.com") is None


PII = [
    ("call 555-867-5309 today", "phone"), ("(555) 867-5309", "phone"), ("+1 (555) 867-5309", "phone"),
    ("1-555-867-5309", "phone"), ("555.867.5309", "phone"), ("E.164 +442079460958", "phone"),
    ("ssn 123-45-6789", "ssn"), ("ssn 123 45 6789", "ssn"),
    ("visa 4111 1111 1111 1111", "card"), ("4111-1111-1111-1111", "card"), ("4111111111111111", "card"),
    ("amex 3782 822463 10005", "card"), ("mc 5555555555554444", "card"),
    ("reach Bob.Smith@Example.COM", "email"),
]
LOOK_ALIKES = [
    "order 1234567890123", "order #ORD-5558675309", "invoice 5558675309", "zip 94105", "zip+4 94105-1234",
    "date 2024-01-15", "date 12/31/2024", "at 2024-01-15T10:00:00Z", "version 1.2.3", "build 10.0.19041.1288",
    "ip 192.168.100.254", "ts 1700000000000", "card-like 4111111111111112", "ssn 000-12-3456", "ssn 666-12-3456",
    "ssn 900-12-3456", "ssn 123-00-4567", "ssn 123-45-0000", "price $1,234,567.89", "phone 055-867-5309",
    "handle @sarah", "uuid 123e4567-e89b-12d3-a456-426614174000",
]


@pytest.mark.parametrize(("text", "kind"), PII)
def test_pii_is_found(text: str, kind: str) -> None:
    assert [span[2] for span in PiiScanner().spans(text)] == [kind]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_are_not_pii(text: str) -> None:
    assert PiiScanner().spans(text) == []


def test_luhn_and_card_prefixes() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert is_card_number("4111 1111 1111 1111") and not is_card_number("1111111111111117")  # no network starts with 1


def test_redaction_walks_the_payload_and_respects_the_kinds() -> None:
    payload = msgspec.json.encode({
        "to": "sarah@acme.io", "notes": ["SSN 219-09-9999", {"card": 4111111111111111, "n": 42}],
        "sarah@acme.io": "key", "order": "ORD-2024-000123", "phone": "+1 415 555 0123",
    })
    redacted, kinds = PiiScanner().redact_payload(payload, scan_text(payload))
    assert kinds == {"email", "ssn", "card", "phone"}
    assert msgspec.json.decode(redacted) == {
        "to": "[REDACTED-EMAIL]", "notes": ["SSN [REDACTED-SSN]", {"card": "[REDACTED-CARD]", "n": 42}],
        "[REDACTED-EMAIL]": "key", "order": "ORD-2024-000123", "phone": "[REDACTED-PHONE]",
    }
    only_ssn, kinds = PiiScanner(["ssn"]).redact_payload(payload, scan_text(payload))
    assert kinds == {"ssn"} and b"sarah@acme.io" in only_ssn


def test_clean_payloads_are_returned_untouched() -> None:
    payload = msgspec.json.encode({"contactId": "cid_123", "campaignId": "camp_456"})
    scanner = PiiScanner()
    assert not scanner.might_contain(scan_text(payload))
    assert scanner.redact_payload(payload, scan_text(payload)) == (payload, set())
