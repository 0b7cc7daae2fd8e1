"""The HTTP server under the app: uvicorn with httptools, its socket, and deadlines on idle and slow clients.

uvicorn bounds nothing a client does before its request head is complete: its keep-alive timer is
armed only after a response and any byte cancels it, so a client that connects and stays silent,
or sends its request head a byte at a time (slowloris), holds the connection as long as it likes.
`_DeadlineProtocol` closes both: a silent connection after `server.keep_alive_timeout`, a request
head not complete `server.header_timeout` after its first byte.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rotor_lite.config import ServerSettings
from rotor_lite.errors import ConfigError

__all__ = ["BACKLOG", "listening_socket", "uvicorn_config"]

BACKLOG = 4096


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, taken before anything else starts (so a busy port costs nothing)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)  # bind alone succeeds beside another socket that is bound but not listening yet
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} is in use") from exc
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def uvicorn_config(app: Any, server: ServerSettings, *, log_level: str) -> uvicorn.Config:
    """How `rotor-lite serve` runs uvicorn: httptools, no access log (the app logs requests), the limits of [server]."""
    return uvicorn.Config(
        app, log_level=log_level, log_config=None, access_log=False, loop="auto", lifespan="on",
        http=_deadline_protocol(server.ms("header_timeout") / 1000),
        # uvicorn annotates an int, but only hands it to loop.call_later, which takes float seconds
        timeout_keep_alive=server.ms("keep_alive_timeout") / 1000,  # type: ignore[arg-type]
        limit_concurrency=server.max_connections or None,
        timeout_graceful_shutdown=int(server.ms("drain_timeout") / 1000) or 1, backlog=BACKLOG,
        # X-Forwarded-For is believed only from the configured proxies; none by default (uvicorn's default
        # trusts 127.0.0.1, so any local caller could choose the address the audit log records).
        proxy_headers=bool(server.forwarded_allow_ips), forwarded_allow_ips=server.forwarded_allow_ips,
    )


def _deadline_protocol(header_timeout: float) -> type[HttpToolsProtocol]:
    return type("DeadlineProtocol", (_DeadlineProtocol,), {"header_timeout": header_timeout})


class _DeadlineProtocol(HttpToolsProtocol):
    """httptools' protocol that closes silent connections and request heads that arrive too slowly."""

    header_timeout = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    _head_pending = False  # bytes of a request head came in and the head is not complete yet
    _reading_request = False  # from a request head's end to its body's end: bytes then are the body

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn's idle timer, which it arms only after a first response
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        # Any byte outside a request starts a head, blank lines before a request line (no message yet) too.
        self._head_pending = self._head_pending or not self._reading_request
        super().data_received(data)
        # Armed only for a head still incomplete after this chunk: a head that came whole costs no timer.
        if self._head_pending and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self.timeout_keep_alive_handler)

    def on_message_begin(self) -> None:
        self._head_pending = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_pending, self._reading_request = False, True
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_request = False
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
