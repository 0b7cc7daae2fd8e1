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
    JoinedPayloads,
    PiiScanner,
    domain_suffixes,
    email_variants,
    find_emails,
    joinable,
    redact_joined,
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

    Payloads that can be are scanned together as one text (`JoinedPayloads`), the others one by one."""
    if policy.inactive or not policy.needs_scan:
        return [Verdict(payload=p, hold=policy.hold) for p in payloads]
    batch = JoinedPayloads.of(payloads)
    if batch is None:
        return _screen(policy, payloads, probe, [i for i, p in enumerate(payloads) if joinable(p)])
    found = find_joined(policy, batch, payloads)
    return _verdicts(policy, payloads, found, found.dnc(probe) if policy.has_dnc else {})


def screen_each(policy: Policy, payloads: Sequence[bytes], probe: DncProbe) -> list[Verdict]:
    """The verdicts of `screen_payloads`, each payload scanned on its own: the reference path."""
    if policy.inactive or not policy.needs_scan:
        return [Verdict(payload=p, hold=policy.hold) for p in payloads]
    return _screen(policy, payloads, probe, [])


class Findings:
    """What the stages found in a batch: payloads as they would be stored, the email addresses,
    and by index of payload (those with a finding only) its competitor domain and, in block mode, PII kinds.

    Addresses are kept as found: in joined payloads as (start, end, address) in the joined scan text,
    whose `owner` is the index of the payload holding an offset; in the others by index of payload."""

    def __init__(self, stored: list[bytes]) -> None:
        self.stored = stored
        self.email_spans: list[tuple[int, int, str]] = []
        self.owner: Callable[[int], int] = lambda offset: -1
        self.emails: dict[int, list[str]] = {}
        self.competitors: dict[int, str] = {}
        self.pii_kinds: dict[int, set[str]] = {}

    def moved(self, indices: Sequence[int], payloads: Sequence[bytes]) -> Findings:
        """These findings of a sub-batch within `payloads`, where `indices[i]` is its payload i."""
        moved = Findings(list(payloads))
        for i, stored in zip(indices, self.stored):
            moved.stored[i] = stored
        moved.email_spans, owner = self.email_spans, self.owner
        moved.owner = lambda offset: indices[owner(offset)]
        moved.emails = {indices[i]: found for i, found in self.emails.items()}
        moved.competitors = {indices[i]: found for i, found in self.competitors.items()}
        moved.pii_kinds = {indices[i]: found for i, found in self.pii_kinds.items()}
        return moved

    def dnc(self, probe: DncProbe) -> dict[int, str]:
        """Why the addresses of each payload (by index) hit the DNC lists, for those that did."""
        addresses = {address for _, _, address in self.email_spans}.union(*self.emails.values())
        reasons = dnc_reasons(addresses, probe)
        if not reasons:
            return {}
        by_payload: dict[int, str] = {}
        for start, _, address in self.email_spans:  # in order: a payload's first address that hit
            if address in reasons:
                by_payload.setdefault(self.owner(start), reasons[address])
        for i, found in self.emails.items():
            reason = next((reasons[address] for address in found if address in reasons), None)
            if reason is not None:
                by_payload[i] = reason
        return by_payload


def find_joined(policy: Policy, batch: JoinedPayloads, payloads: Sequence[bytes]) -> Findings:
    """The findings of every stage in a joined batch, each detector run once over the whole of it."""
    found = Findings(list(payloads))
    wants_emails = policy.has_dnc or (policy.pii is not None and "email" in policy.pii.kinds)
    emails = list(find_emails(batch.scan)) if wants_emails and "@" in batch.scan else []
    if policy.has_dnc:
        found.email_spans, found.owner = emails, batch.owner
    for start, domain in policy.competitors.matches(batch.scan):
        found.competitors.setdefault(batch.owner(start), domain)
    spans = policy.pii.joined_spans(batch, emails) if policy.pii is not None else []
    if spans and policy.config.pii_mode == "block":
        for start, _, kind in spans:
            found.pii_kinds.setdefault(batch.owner(start), set()).add(kind)
    elif spans:
        found.stored = redact_joined(batch, spans)
    return found


def _screen(policy: Policy, payloads: Sequence[bytes], probe: DncProbe, joined: list[int]) -> list[Verdict]:
    """The payloads at `joined` scanned as one text, the others one by one, with one DNC probe for all."""
    some = [payloads[i] for i in joined]
    batch = JoinedPayloads.of(some) if some else None
    found = find_joined(policy, batch, some).moved(joined, payloads) if batch is not None else Findings(list(payloads))
    alone = set(range(len(payloads))).difference(joined)
    scans = {i: scan_text(payloads[i]) for i in sorted(alone)}
    if policy.has_dnc:
        found.emails.update({i: emails_in(scan) for i, scan in scans.items() if "@" in scan})
    dnc = found.dnc(probe) if policy.has_dnc else {}
    for i, scan in scans.items():
        if i not in dnc:  # each stage runs only when the ones before let the payload through
            _find_alone(policy, payloads[i], scan, i, found)
    return _verdicts(policy, payloads, found, dnc)


def _find_alone(policy: Policy, payload: bytes, scan: str, index: int, found: Findings) -> None:
    competitor = policy.competitors.first_match(scan)
    if competitor is not None:
        found.competitors[index] = competitor
    elif policy.pii is not None:
        redacted, kinds = policy.pii.redact_payload(payload, scan)
        if kinds and policy.config.pii_mode == "block":
            found.pii_kinds[index] = kinds
        found.stored[index] = redacted


def _verdicts(policy: Policy, payloads: Sequence[bytes], found: Findings, dnc: dict[int, str]) -> list[Verdict]:
    verdicts = [Verdict(payload=p, hold=policy.hold) for p in found.stored]
    for i in dnc.keys() | found.competitors.keys() | found.pii_kinds.keys():
        verdicts[i] = _blocked(payloads[i], dnc.get(i), found.competitors.get(i), found.pii_kinds.get(i))
    return verdicts


def _blocked(payload: bytes, dnc_reason: str | None, competitor: str | None, pii_kinds: set[str] | None) -> Verdict:
    """The verdict of the first stage that blocks the payload (a blocked payload is kept as it came)."""
    if dnc_reason is not None:
        return Verdict(payload=payload, blocked_by="dnc", reason=dnc_reason)
    if competitor is not None:
        return Verdict(payload=payload, blocked_by="competitor", reason=f"Payload references competitor domain {competitor}")
    return Verdict(payload=payload, blocked_by="pii", reason=f"Payload contains PII: {', '.join(sorted(pii_kinds or ()))}")


def emails_in(scan: str) -> list[str]:
    """The email addresses in a scan text, in order."""
    return [address for _, _, address in find_emails(scan)]


def dnc_reasons(addresses: set[str], probe: DncProbe) -> dict[str, str]:
    """Why each of these addresses hits the DNC lists, for those that do; one probe per list for all."""
    if not addresses:
        return {}
    wanted_emails, wanted_domains = _wanted(addresses)
    email_hits = probe("emails", wanted_emails)
    domain_hits = probe("domains", wanted_domains)
    if not email_hits and not domain_hits:
        return {}
    reasons = {address: _dnc_reason(address, email_hits, domain_hits) for address in addresses}
    return {address: reason for address, reason in reasons.items() if reason is not None}


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


def _dnc_reason(address: str, email_hits: set[str], domain_hits: set[str]) -> str | None:
    variants, domains = _lookups(address)
    if any(v in email_hits for v in variants):
        return DNC_EMAIL_REASON
    hit = next((d for d in domains if d in domain_hits), None)
    return None if hit is None else f"Email domain matched DNC list: {hit}"
