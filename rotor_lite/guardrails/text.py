"""Text helpers shared by the stages: the scan text of a payload, email addresses, domain names."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator

# A JSON escape inside a serialized string (`\n`, `\"`, `\u00e9`): a boundary, never part of an address.
_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|.)")
_LOCAL_CHAR_SET = string.ascii_letters + string.digits + "._%+'-"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_AT_DOMAIN = re.compile(rf"@{_LABEL}(?:\.({_LABEL}))+")
_DOMAIN_FULL = re.compile(rf"{_LABEL}(?:\.{_LABEL})+", re.ASCII)
_LOCAL_FULL = re.compile(r"[A-Za-z0-9._%+'-]{1,64}", re.ASCII)
MAX_EMAIL, MAX_DOMAIN = 254, 253


def scan_text(payload: bytes) -> str:
    """The serialized payload lowercased, with JSON escapes blanked out so they bound words."""
    text = payload.decode("utf-8", "replace").lower()
    if "\\" in text:
        text = _ESCAPE.sub(" ", text)
    return text


def find_emails(text: str) -> Iterator[tuple[int, int, str]]:
    """Each email address in `text` as (start, end, address), found from its `@`."""
    for match in _AT_DOMAIN.finditer(text):  # every `@` followed by a domain: none holds another `@`
        at, end = match.span()
        # the local part: the run of its characters that ends at the `@`, 64 at most
        before = text[at - 64 if at > 64 else 0:at]
        start = at - len(before) + len(before.rstrip(_LOCAL_CHAR_SET))
        while text[start] == ".":  # stops at the `@` at the latest
            start += 1
        tld = match.group(1)  # the last label
        if start < at and len(tld) >= 2 and tld.isalpha():
            yield start, end, text[start:end]


def _top_level_ok(domain: str) -> bool:
    tld = domain.rsplit(".", 1)[-1]
    return len(tld) >= 2 and tld.isalpha()


def email_variants(address: str) -> list[str]:
    """The address, and the same address with trailing labels cut (`a@x.com.the` → `a@x.com`)."""
    local, _, domain = address.partition("@")
    labels = domain.split(".")
    return [f"{local}@{'.'.join(labels[:n])}" for n in range(len(labels), 1, -1)]


def domain_suffixes(domain: str) -> list[str]:
    """The domain and every parent of it: `a.b.example.com` → itself, `b.example.com`, `example.com`, `com`."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def normalize_email(value: str) -> str | None:
    """The address lowercased and trimmed, or None when it is not an email address."""
    address = value.strip().lower()
    local, at, domain = address.partition("@")
    if not at or len(address) > MAX_EMAIL or not _LOCAL_FULL.fullmatch(local) or not _domain_ok(domain):
        return None
    return address


def normalize_domain(value: str) -> str | None:
    """The domain lowercased, trimmed and without a trailing dot, or None when it is not a domain name."""
    domain = value.strip().lower().rstrip(".")
    return domain if _domain_ok(domain) else None


def _domain_ok(domain: str) -> bool:
    return len(domain) <= MAX_DOMAIN and bool(_DOMAIN_FULL.fullmatch(domain)) and _top_level_ok(domain)
