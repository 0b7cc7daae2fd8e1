"""`rotor guardrails ...`: the workspace's content policy, its DNC lists (bulk import too) and block statistics."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import IO, Any

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output, format_count
from rotor_lite.guardrails.text import normalize_domain, normalize_email

__all__ = ["guardrails", "read_dnc_entries"]

DEFAULT_CHUNK = 10_000
_HEADER_NAMES = {"email": "emails", "email_address": "emails", "emailaddress": "emails", "domain": "domains"}


@click.group("guardrails")
def guardrails() -> None:
    """Show and change the guardrails every job passes before it is dispatched."""


@guardrails.command("get")
@client_command
def get_config(session: Session, /) -> None:
    """Show the guardrail config."""
    with session.client() as rotor:
        config = rotor.guardrails.get()
    session.output.emit(config, render_config)


def _split(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    return None if value is None else [item.strip() for item in value.split(",") if item.strip()]


@guardrails.command("update")
@click.option("--dnc-emails", callback=_split, metavar="A,B", help="Replace the DNC email list (comma-separated).")
@click.option("--dnc-domains", callback=_split, metavar="A,B", help="Replace the DNC domain list.")
@click.option("--competitor-domains", callback=_split, metavar="A,B", help="Replace the competitor domains.")
@click.option("--pii/--no-pii", "pii_redaction_enabled", default=None, help="Turn PII detection on or off.")
@click.option("--pii-mode", type=click.Choice(["redact", "block"]), help="Redact PII, or block the job.")
@click.option("--pii-types", callback=_split, metavar="KINDS", help="PII kinds: email,phone,ssn,card.")
@click.option("--brand-tone/--no-brand-tone", "brand_tone_judge_enabled", default=None, help="Turn the LLM judge on or off.")
@click.option("--rubric", "brand_tone_rubric", help="What acceptable tone looks like (plain text).")
@click.option("--threshold", "brand_tone_threshold", type=click.FloatRange(0, 1), help="Lowest passing score (0..1).")
@client_command
def update_config(session: Session, /, **fields: Any) -> None:
    """Change the given settings (a DNC list given replaces the whole list)."""
    given = {key: value for key, value in fields.items() if value is not None}
    if not given:
        raise click.UsageError("nothing to update: give at least one option")
    with session.client() as rotor:
        config = rotor.guardrails.update(**given)
    session.output.emit(config, render_config)


@guardrails.group("dnc")
def dnc() -> None:
    """Add, remove and bulk-import do-not-contact entries."""


@dnc.command("add")
@click.argument("entries", nargs=-1)
@click.option("--email", "emails", multiple=True, help="An email address; repeat for several.")
@click.option("--domain", "domains", multiple=True, help="A domain; repeat for several.")
@client_command
def add(session: Session, /, *, entries: tuple[str, ...], emails: tuple[str, ...], domains: tuple[str, ...]) -> None:
    """Add ENTRIES (addresses with an @ are emails, the rest domains) to the DNC lists."""
    all_emails = [*emails, *(e for e in entries if "@" in e)]
    all_domains = [*domains, *(e for e in entries if "@" not in e)]
    if not all_emails and not all_domains:
        raise click.UsageError("give at least one email or domain")
    with session.client() as rotor:
        result = rotor.guardrails.append_dnc(emails=all_emails or None, domains=all_domains or None, minimal=True)
    session.output.emit(result, _render_added)


@dnc.command("remove")
@click.argument("entry")
@client_command
def remove(session: Session, /, *, entry: str) -> None:
    """Remove one email address or domain from the DNC lists."""
    with session.client() as rotor:
        if "@" in entry:
            rotor.guardrails.remove_dnc_email(entry)
        else:
            rotor.guardrails.remove_dnc_domain(entry)
    session.output.emit({"removed": entry}, lambda out, _: out.line(f"Removed {entry} from the DNC list."))


@dnc.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8", errors="replace", lazy=True))
@click.option("--chunk-size", type=click.IntRange(1, 100_000), default=DEFAULT_CHUNK, show_default=True,
              help="Entries sent per request.")
@click.option("--kind", type=click.Choice(["auto", "emails", "domains"]), default="auto", show_default=True,
              help="What the entries are (auto: an @ makes an email).")
@client_command
def import_file(session: Session, /, *, file: IO[str], chunk_size: int, kind: str) -> None:
    """Stream FILE (CSV, or one entry per line; - for stdin) into the DNC lists, a chunk at a time."""
    totals = {"read": 0, "skipped": 0, "emails": 0, "domains": 0}
    with session.client() as rotor:
        for emails, domains, skipped in _chunks(read_dnc_entries(file, kind), chunk_size):
            result = rotor.guardrails.append_dnc(emails=emails or None, domains=domains or None, minimal=True)
            added = result.get("added", {}) if isinstance(result, dict) else {}
            totals["read"] += len(emails) + len(domains) + skipped
            totals["skipped"] += skipped
            totals["emails"] += int(added.get("emails", 0))
            totals["domains"] += int(added.get("domains", 0))
    session.output.emit(totals, _render_import)


def read_dnc_entries(file: IO[str], kind: str = "auto") -> Iterator[tuple[str, str | None]]:
    """(kind, normalized entry) for each entry of a CSV or one-per-line file; entry None when invalid."""
    first = file.readline()
    if not first:
        return
    rest = _prepend(first, file)
    if "," in first or first.count(";") or "\t" in first:
        yield from _csv_entries(rest, kind)
        return
    for line in rest:
        text = line.strip()
        if text and not text.startswith("#") and text.lower() not in _HEADER_NAMES:
            yield _classify(text, kind)


def _prepend(first: str, file: Iterable[str]) -> Iterator[str]:
    yield first
    yield from file


def _csv_entries(lines: Iterator[str], kind: str) -> Iterator[tuple[str, str | None]]:
    sample = next(lines)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(_prepend(sample, lines), dialect)
    header = next(reader, [])
    columns = {i: _HEADER_NAMES[c.strip().lower()] for i, c in enumerate(header) if c.strip().lower() in _HEADER_NAMES}
    rows: Iterator[list[str]] = reader if columns else _chain_row(header, reader)
    for row in rows:
        cells = [(i, cell.strip()) for i, cell in enumerate(row) if cell.strip()]
        for i, cell in cells:
            if not columns:
                yield _classify(cell, kind)
            elif i in columns:
                yield _classify(cell, columns[i])


def _chain_row(first: list[str], rows: Iterator[list[str]]) -> Iterator[list[str]]:
    yield first
    yield from rows


def _classify(text: str, kind: str) -> tuple[str, str | None]:
    if kind == "emails" or (kind == "auto" and "@" in text):
        return "emails", normalize_email(text)
    return "domains", normalize_domain(text)


def _chunks(entries: Iterator[tuple[str, str | None]], size: int) -> Iterator[tuple[list[str], list[str], int]]:
    emails: list[str] = []
    domains: list[str] = []
    skipped = 0
    for kind, entry in entries:
        if entry is None:
            skipped += 1
            continue
        (emails if kind == "emails" else domains).append(entry)
        if len(emails) + len(domains) >= size:
            yield emails, domains, skipped
            emails, domains, skipped = [], [], 0
    if emails or domains or skipped:
        yield emails, domains, skipped


@guardrails.command("stats")
@click.option("--days", type=click.IntRange(1, 366), help="Days back, today included (default 30).")
@client_command
def stats(session: Session, /, *, days: int | None) -> None:
    """Blocked jobs per stage and day."""
    with session.client() as rotor:
        result = rotor.guardrails.stats(days=days)
    session.output.emit(result, render_stats)


def render_config(output: Output, config: dict[str, Any]) -> None:
    """The config as fields: lists as counts, the stages' settings."""
    pii = "off"
    if config.get("piiRedactionEnabled"):
        pii = f"{config.get('piiMode')} ({', '.join(config.get('piiTypes') or [])})"
    judge = "off"
    if config.get("brandToneJudgeEnabled"):
        judge = f"on, threshold {config.get('brandToneThreshold')}"
    output.fields([
        ("ID", config.get("id")),
        ("DNC emails", format_count(config.get("dncEmailsCount", len(config.get("dncEmails") or [])))),
        ("DNC domains", format_count(config.get("dncDomainsCount", len(config.get("dncDomains") or [])))),
        ("Competitor domains", ", ".join(config.get("competitorDomains") or []) or None),
        ("PII", pii),
        ("Brand tone judge", judge),
        ("Rubric", config.get("brandToneRubric") or None),
        ("Updated", config.get("updatedAt")),
    ])


def render_stats(output: Output, result: dict[str, Any]) -> None:
    """Totals per stage, then one row per day with blocks."""
    by_stage = result.get("byStage") or {}
    output.line(f"Blocked {format_count(result.get('total', 0))} job(s) from {result.get('from')} to {result.get('to')}.")
    stages = ["dnc", "competitor", "pii", "brand_tone"]
    rows = [[d.get("day"), *(d.get(s, 0) for s in stages), d.get("total", 0)] for d in result.get("byDay") or [] if d.get("total")]
    rows.append(["total", *(by_stage.get(s, 0) for s in stages), result.get("total", 0)])
    output.table(["DAY", "DNC", "COMPETITOR", "PII", "BRAND TONE", "TOTAL"], rows)


def _render_added(output: Output, result: dict[str, Any]) -> None:
    added = result.get("added") or {}
    output.line(f"Added {added.get('emails', 0)} email(s) and {added.get('domains', 0)} domain(s) to the DNC lists.")


def _render_import(output: Output, totals: dict[str, int]) -> None:
    output.line(
        f"Read {format_count(totals['read'])} entries: added {format_count(totals['emails'])} email(s) and "
        f"{format_count(totals['domains'])} domain(s); {format_count(totals['skipped'])} invalid line(s) skipped."
    )

