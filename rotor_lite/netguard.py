"""Which callback destinations are allowed: the SSRF guard's address classes and URL rules."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from rotor_lite.errors import ValidationError

# Cloud metadata endpoints that are not covered by the private/link-local classes.
_METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address; loopback, private, link-local, metadata and the like are not."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def check_callback_url(url: str, *, allow_private: bool, field: str = "callback_url") -> str:
    """Validate a callback URL's form (scheme, host, literal address); returns it unchanged."""
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
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("callback URL must be an absolute http(s) URL", field=field)
    if parts.scheme == "http" and not allow_private:
        raise ValidationError(
            "callback URL must use https:// (http:// is allowed only when callbacks.allow_private_networks is on)",
            field=field,
        )
    if parts.username or parts.password:
        raise ValidationError("callback URL must not carry credentials", field=field)
    host = parts.hostname
    if _is_legacy_ipv4(host):
        raise ValidationError("callback URL host is not a canonical IP address", field=field, host=host)
    if not allow_private and (_is_literal(host) and not is_public_address(host) or host == "localhost"):
        raise ValidationError(
            "callback URL points to a private, loopback or link-local address", field=field, host=host
        )


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
