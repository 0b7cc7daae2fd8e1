"""The one way the server opens outbound HTTP sessions (callbacks, webhooks, Slack alerts).

Unless private networks are allowed, every socket such a session connects is checked first: the
address actually connected to, whether it came from DNS or was written in the URL as a literal,
must be public. URL validation (netguard) refuses bad destinations early with a clear message;
this check holds even where a parser or resolver disagrees with it (DNS rebinding included).
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.connector import NEEDS_CLEANUP_CLOSED

from rotor_lite.netguard import is_public_address

if TYPE_CHECKING:
    from aiohappyeyeballs import AddrInfoType

__all__ = ["BlockedAddress", "describe_client_error", "guarded_session"]


class BlockedAddress(OSError):
    """A destination led to an address the SSRF guard refuses."""

    def __init__(self, address: str) -> None:
        super().__init__(errno.EACCES, f"{address} is not a public address")


def guarded_session(*, allow_private: bool, limit: int, limit_per_host: int = 0) -> aiohttp.ClientSession:
    """A client session whose connections reach public addresses only (any address when `allow_private`).

    No cookie jar: one session serves every workspace, and a cookie one endpoint sets must not
    ride along on later requests to that host. No proxy from the environment (`trust_env` is off).
    """
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=limit_per_host, ttl_dns_cache=10, enable_cleanup_closed=NEEDS_CLEANUP_CLOSED,
        socket_factory=None if allow_private else _public_address_socket,
    )
    return aiohttp.ClientSession(
        connector=connector, skip_auto_headers=("Accept-Encoding",), cookie_jar=aiohttp.DummyCookieJar(),
    )


def _public_address_socket(addr_info: AddrInfoType) -> socket.socket:
    """The socket for one connection attempt, refused before it exists when the address is not public."""
    family, kind, proto, _, sockaddr = addr_info
    if not is_public_address(sockaddr[0]):
        raise BlockedAddress(sockaddr[0])
    return socket.socket(family=family, type=kind, proto=proto)


def describe_client_error(exc: OSError | aiohttp.ClientError) -> str:
    """A one-line reason for a failed request; a refused address is named as such."""
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, BlockedAddress):
        return f"refused to connect to {exc.host}: {exc.os_error.strerror} (callbacks.allow_private_networks is off)"
    return str(exc) or type(exc).__name__
