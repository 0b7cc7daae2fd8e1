"""The guardrail pipeline over payloads: `dnc` → `competitor` → `pii` → (hold for) `brand_tone`.

Each stage short-circuits. The first three are synchronous and cheap (microseconds for a small
payload); the brand-tone stage only marks the job to be held for the judge, which runs off the
request path (`engine/judge.py`). DNC entries are probed once per batch, through `DncProbe`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import msgspec

from rotor_lite.guardrails import (
    CompetitorMatcher,
    JoinedPayloads,
    PiiScanner,
    domain_suffixes,
    email_variants,
    find_emails,
    joinable,
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
    """One verdict per payload, in order.

    The payloads that can be are scanned as one text (`JoinedPayloads`); the others one at a time."""
    if policy.inactive or not policy.needs_scan:
        return [Verdict(payload=p, hold=policy.hold) for p in payloads]
    batch = JoinedPayloads.of(payloads)
    found, scans = (find_joined(policy, batch), {}) if batch is not None else _find_mixed(policy, payloads)
    dnc = dnc_reasons(found.emails, probe) if policy.has_dnc else {}
    verdicts = [Verdict(payload=p, hold=policy.hold) for p in payloads]
    for i in dnc.keys() | found.competitors.keys() | found.pii.keys() | scans.keys():
        scan = scans.get(i)
        if scan is None:
            verdicts[i] = _verdict(policy, payloads[i], dnc.get(i), found.competitors.get(i), found.pii.get(i))
        else:
            verdicts[i] = _screen_one(policy, payloads[i], scan, dnc.get(i))
    return verdicts


class Findings:
    """What the content stages found in a batch, by payload index; a payload without a finding is absent."""

    def __init__(self) -> None:
        self.emails: dict[int, list[str]] = {}
        self.competitors: dict[int, str] = {}
        self.pii: dict[int, tuple[bytes, set[str]]] = {}

    def moved(self, indices: Sequence[int]) -> Findings:
        """The findings of a sub-batch, indexed as in the whole batch (`indices[i]` for its payload i)."""
        moved = Findings()
        moved.emails = {indices[i]: found for i, found in self.emails.items()}
        moved.competitors = {indices[i]: found for i, found in self.competitors.items()}
        moved.pii = {indices[i]: found for i, found in self.pii.items()}
        return moved


def find_joined(policy: Policy, batch: JoinedPayloads) -> Findings:
    """The findings of every stage in a joined batch, each detector run once over the whole of it."""
    found = Findings()
    wants_emails = policy.has_dnc or (policy.pii is not None and "email" in policy.pii.kinds)
    emails = list(find_emails(batch.scan)) if wants_emails and "@" in batch.scan else []
    if policy.has_dnc:
        for start, _, address in emails:
            found.emails.setdefault(batch.owner(start), []).append(address)
    for start, domain in policy.competitors.matches(batch.scan):
        found.competitors.setdefault(batch.owner(start), domain)
    if policy.pii is not None:
        found.pii = policy.pii.redact_joined(batch, emails)
    return found


def _find_mixed(policy: Policy, payloads: Sequence[bytes]) -> tuple[Findings, dict[int, str]]:
    """The joinable payloads' findings, and the scan texts of the others, which `_screen_one` screens."""
    joined = [i for i, p in enumerate(payloads) if joinable(p)]
    batch = JoinedPayloads.of([payloads[i] for i in joined]) if joined else None
    found = find_joined(policy, batch).moved(joined) if batch is not None else Findings()
    alone = set(range(len(payloads))).difference(joined)
    scans = {i: scan_text(payloads[i]) for i in sorted(alone)}
    if policy.has_dnc:
        found.emails.update({i: emails_in(scan) for i, scan in scans.items() if "@" in scan})
    return found, scans


def screen_each(policy: Policy, payloads: Sequence[bytes], probe: DncProbe) -> list[Verdict]:
    """The same verdicts as `screen_payloads`, each payload scanned on its own: the reference path."""
    if policy.inactive or not policy.needs_scan:
        return [Verdict(payload=p, hold=policy.hold) for p in payloads]
    scans = [scan_text(p) for p in payloads]
    emails = {i: emails_in(scan) for i, scan in enumerate(scans) if "@" in scan}
    dnc = dnc_reasons(emails, probe) if policy.has_dnc else {}
    return [_screen_one(policy, p, scan, dnc.get(i)) for i, (p, scan) in enumerate(zip(payloads, scans))]


def _screen_one(policy: Policy, payload: bytes, scan: str, dnc_reason: str | None) -> Verdict:
    """The stages over one payload, in order, each run only when the ones before let the payload through."""
    competitor = policy.competitors.first_match(scan) if dnc_reason is None else None
    pii = None
    if policy.pii is not None and dnc_reason is None and competitor is None:
        redacted, kinds = policy.pii.redact_payload(payload, scan)
        pii = (redacted, kinds) if kinds else None
    return _verdict(policy, payload, dnc_reason, competitor, pii)


def _verdict(
    policy: Policy, payload: bytes, dnc_reason: str | None, competitor: str | None, pii: tuple[bytes, set[str]] | None
) -> Verdict:
    if dnc_reason is not None:
        return Verdict(payload=payload, blocked_by="dnc", reason=dnc_reason)
    if competitor is not None:
        return Verdict(payload=payload, blocked_by="competitor", reason=f"Payload references competitor domain {competitor}")
    if pii is not None:
        redacted, kinds = pii
        if policy.config.pii_mode == "block":
            return Verdict(payload=payload, blocked_by="pii", reason=f"Payload contains PII: {', '.join(sorted(kinds))}")
        payload = redacted
    return Verdict(payload=payload, hold=policy.hold)


def emails_in(scan: str) -> list[str]:
    """The email addresses in a scan text, in order."""
    return [address for _, _, address in find_emails(scan)]


def dnc_reasons(emails: Mapping[int, list[str]], probe: DncProbe) -> dict[int, str]:
    """Why the addresses of each payload (by index) hit the DNC lists, for those that did; one probe per list."""
    addresses = {address for found in emails.values() for address in found}
    if not addresses:
        return {}
    wanted_emails, wanted_domains = _wanted(addresses)
    email_hits = probe("emails", wanted_emails)
    domain_hits = probe("domains", wanted_domains)
    if not email_hits and not domain_hits:
        return {}
    checks = {address: _lookups(address) for address in addresses}
    reasons = {i: _dnc_reason(found, checks, email_hits, domain_hits) for i, found in emails.items()}
    return {i: reason for i, reason in reasons.items() if reason is not None}


def _wanted(addresses: set[str]) -> tuple[list[str], list[str]]:
    """Every address and domain to look up for these addresses, each once."""
    domains = {address.partition("@")[2] for address in addresses}
    if all(domain.count(".") == 1 for domain in domains):  # the usual `name@example.com`: nothing to cut
        return list(addresses), list(domains)
    lookups = [_lookups(address) for address in addresses]
    return list({v for variants, _ in lookups for v in variants}), list({d for _, more in lookups for d in more})


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
