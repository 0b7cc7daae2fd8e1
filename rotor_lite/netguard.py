"""Which callback destinations are allowed: the SSRF guard's address classes and URL rules.

A URL is judged by the host the HTTP client (aiohttp, through yarl) will connect to, after its
IDNA/UTS-46 normalisation: `https://127。0。0。1/` is `127.0.0.1` to the client, so it is to the guard.
The connect-time guard (engine.outbound) checks every address actually connected to as well.
"""

from __future__ import annotations

import ipaddress
import socket

from yarl import URL

from rotor_lite.errors import ValidationError

# Cloud metadata endpoints that are not covered by the private/link-local classes.
_METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
# IPv6 ranges that tunnel or translate to an IPv4 address the guard cannot vouch for (whatever
# `is_global` says about them in this Python's tables).
_IPV4_CARRIERS = tuple(
    ipaddress.IPv6Network(net)
    for net in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "2001::/32", "fec0::/10")
)  # IPv4-compatible, IPv4-translated, NAT64 (well-known and local-use), Teredo; and deprecated site-local


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address; loopback, private, link-local, metadata and the like are not.

    An IPv4-mapped or 6to4 address is judged by the IPv4 address it leads to.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _IPV4_CARRIERS):
            return False
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    if ip in _METADATA:
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def check_callback_url(url: str, *, allow_private: bool, field: str = "callback_url") -> str:
    """Validate a callback URL (scheme, host as the HTTP client normalises it, literal address); returns it unchanged."""
    if (url, allow_private) in _accepted:  # every delivery checks its URL again: remember the good ones
        return url
    _check(url, allow_private, field)
    if len(_accepted) < 10_000:
        _accepted.add((url, allow_private))
    return url


_accepted: set[tuple[str, bool]] = set()


def _check(url: str, allow_private: bool, field: str) -> None:
    if len(url) > 2048:
        raise ValidationError("callback URL is longer than 2048 characters", field=field)
    parts = _parsed(url, field)
    if parts.scheme not in ("http", "https") or not parts.raw_host:
        raise ValidationError("callback URL must be an absolute http(s) URL", field=field)
    if parts.scheme == "http" and not allow_private:
        raise ValidationError(
            "callback URL must use https:// (http:// is allowed only when callbacks.allow_private_networks is on)",
            field=field,
        )
    if parts.raw_user or parts.raw_password:
        raise ValidationError("callback URL must not carry credentials", field=field)
    host = parts.raw_host.rstrip(".")  # `localhost.` and `127.0.0.1.` lead where their dotless forms do
    if _is_legacy_ipv4(host):
        raise ValidationError("callback URL host is not a canonical IP address", field=field, host=host)
    if not allow_private and (_is_literal(host) and not is_public_address(host) or host == "localhost"):
        raise ValidationError(
            "callback URL points to a private, loopback or link-local address", field=field, host=host
        )


def _parsed(url: str, field: str) -> URL:
    """The URL as aiohttp will parse it: yarl, with the host IDNA-normalised (`raw_host`) as it is connected to."""
    try:
        return URL(url)
    except ValueError as exc:  # includes the host failing IDNA (idna's errors are UnicodeErrors)
        raise ValidationError(f"callback URL is not a valid URL: {exc}", field=field) from exc


def _is_legacy_ipv4(host: str) -> bool:
    """Forms like `127.1`, `2130706433` or `0x7f.1` that resolvers map onto an address."""
    if _is_literal(host):
        return False
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
