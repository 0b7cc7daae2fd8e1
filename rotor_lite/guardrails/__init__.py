"""Pure content detectors of the guardrail stages: no I/O, no state beyond what they are built from.

- `batch`: a batch of payloads joined into one text, so each detector passes over a batch once.
- `text`: the scan text of a serialized payload, email addresses in text, domain names and their suffixes.
- `competitor`: domain-boundary matching of many domains at once (an Aho-Corasick automaton).
- `pii`: emails, phone numbers, SSNs and card numbers (Luhn) in a payload; detection and redaction.
"""

from __future__ import annotations

from rotor_lite.guardrails.batch import JoinedPayloads, joinable
from rotor_lite.guardrails.competitor import CompetitorMatcher
from rotor_lite.guardrails.pii import PII_KINDS, PiiScanner, redact_joined
from rotor_lite.guardrails.text import (
    domain_suffixes,
    email_variants,
    find_emails,
    normalize_domain,
    normalize_email,
    scan_text,
)

__all__ = [
    "PII_KINDS",
    "CompetitorMatcher",
    "JoinedPayloads",
    "PiiScanner",
    "domain_suffixes",
    "email_variants",
    "find_emails",
    "joinable",
    "normalize_domain",
    "normalize_email",
    "redact_joined",
    "scan_text",
]
