"""The guardrail pipeline over payloads: `dnc` → `competitor` → `pii` → (hold for) `brand_tone`.

Each stage short-circuits. The first three are synchronous and cheap (microseconds for a small
payload); the brand-tone stage only marks the job to be held for the judge, which runs off the
request path (`engine/judge.py`). DNC entries are probed once per batch, through `DncProbe`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from rotor_lite.guardrails import (
    CompetitorMatcher,
    PiiScanner,
    domain_suffixes,
    email_variants,
    find_emails,
    scan_text,
)
from rotor_lite.store.guardrails import ConfigRow, DncKind

STAGES = ("dnc", "competitor", "pii", "brand_tone")
DncProbe = Callable[[DncKind, Sequence[str]], set[str]]
DNC_EMAIL_REASON = "Email address matched DNC list"


class Policy:
    """A workspace's guardrails compiled for screening: matchers built once per config change."""

    def __init__(self, config: ConfigRow, has_dnc: bool) -> None:
        self.config = config
        self.has_dnc = has_dnc
        self.competitors = CompetitorMatcher(config.competitor_domains)
        self.pii = PiiScanner(config.pii_types) if config.pii_enabled else None
        self.hold = config.brand_tone_enabled
        self.needs_scan = has_dnc or bool(self.competitors) or self.pii is not None
        self.inactive = not (self.needs_scan or self.hold)


class Verdict(msgspec.Struct, kw_only=True, frozen=True):
    """What the synchronous stages decided for one payload (`payload` is redacted when PII was)."""

    payload: bytes
    blocked_by: str | None = None
    reason: str | None = None
    hold: bool = False


def screen_payloads(policy: Policy, payloads: Sequence[bytes], probe: DncProbe) -> list[Verdict]:
    """One verdict per payload, in order."""
    if policy.inactive:
        return [Verdict(payload=p) for p in payloads]
    scans = [scan_text(p) for p in payloads] if policy.needs_scan else [""] * len(payloads)
    dnc = dnc_reasons(scans, probe) if policy.has_dnc else [None] * len(payloads)
    return [_screen_one(policy, p, scan, reason) for p, scan, reason in zip(payloads, scans, dnc)]


def _screen_one(policy: Policy, payload: bytes, scan: str, dnc_reason: str | None) -> Verdict:
    if dnc_reason is not None:
        return Verdict(payload=payload, blocked_by="dnc", reason=dnc_reason)
    competitor = policy.competitors.first_match(scan)
    if competitor is not None:
        return Verdict(payload=payload, blocked_by="competitor", reason=f"Payload references competitor domain {competitor}")
    if policy.pii is not None:
        redacted, kinds = policy.pii.redact_payload(payload, scan)
        if kinds and policy.config.pii_mode == "block":
            return Verdict(payload=payload, blocked_by="pii", reason=f"Payload contains PII: {', '.join(sorted(kinds))}")
        payload = redacted
    return Verdict(payload=payload, hold=policy.hold)


def dnc_reasons(scans: Sequence[str], probe: DncProbe) -> list[str | None]:
    """Per scan text: why its email addresses hit the DNC lists, or None; one probe per list for all."""
    found = [[address for _, _, address in find_emails(scan)] if "@" in scan else [] for scan in scans]
    checks = {address: _lookups(address) for emails in found for address in emails}
    if not checks:
        return [None] * len(scans)
    email_hits = probe("emails", list({v for variants, _ in checks.values() for v in variants}))
    domain_hits = probe("domains", list({d for _, domains in checks.values() for d in domains}))
    if not email_hits and not domain_hits:
        return [None] * len(scans)
    return [_dnc_reason(emails, checks, email_hits, domain_hits) for emails in found]


def _lookups(address: str) -> tuple[list[str], list[str]]:
    """The addresses and the domains (two labels at least, as listed ones have) to look up for one address."""
    domain = address.partition("@")[2]
    if domain.count(".") == 1:  # the usual `name@example.com`: nothing to cut
        return [address], [domain]
    variants = email_variants(address)
    return variants, list(dict.fromkeys(d for v in variants for d in domain_suffixes(v.partition("@")[2]) if "." in d))


def _dnc_reason(
    emails: list[str], checks: dict[str, tuple[list[str], list[str]]], email_hits: set[str], domain_hits: set[str],
) -> str | None:
    for address in emails:
        variants, domains = checks[address]
        if any(v in email_hits for v in variants):
            return DNC_EMAIL_REASON
        hit = next((d for d in domains if d in domain_hits), None)
        if hit is not None:
            return f"Email domain matched DNC list: {hit}"
    return None
