"""Deadlines on incoming connections: silent ones and slow request heads (slowloris) are closed."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ServerProcess

TIMEOUT_S = 0.3
TRICKLE_S = 0.05


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("connections") / "data"
    ms = f"{int(TIMEOUT_S * 1000)}ms"
    started = ServerProcess(data_dir=data_dir, env={"ROTOR_SERVER_HEADER_TIMEOUT": ms, "ROTOR_SERVER_KEEP_ALIVE_TIMEOUT": ms})
    yield started.start()
    started.kill()


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """Whether the server closes the connection within `wait` seconds (an answer is read and skipped)."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        if select.select([sock], [], [], left)[0]:
            try:
                if sock.recv(65536) == b"":
                    return True
            except ConnectionResetError:
                return True
    return False


def seconds_until_closed(sock: socket.socket, unit: bytes, limit: float = 5.0) -> float:
    """Send `unit` every TRICKLE_S seconds until the server closes the connection; how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            sock.sendall(unit)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
        if closed_by_server(sock, TRICKLE_S):
            return time.monotonic() - started
    raise AssertionError(f"still open after {limit}s")


def get(path: str = "/healthz") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: rotor\r\n\r\n".encode()


@pytest.mark.parametrize(("start", "unit"), [(b"GET /healthz HTTP/1.1\r\nX-Slow: ", b"x"), (b"", b"\r\n")],
                         ids=["header-bytes", "blank-lines"])
def test_a_request_head_trickled_byte_by_byte_is_cut_off(server: ServerProcess, start: bytes, unit: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(start)
        took = seconds_until_closed(sock, unit)

    assert TIMEOUT_S - TRICKLE_S <= took < TIMEOUT_S + 1.0


def test_a_connection_that_never_sends_is_closed(server: ServerProcess) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        assert closed_by_server(sock, 3.0)
    assert time.monotonic() - started >= TIMEOUT_S - 0.05


def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(server: ServerProcess) -> None:
    with connect(server) as sock:
        for _ in range(4):  # requests closer together than the timeout keep it open
            sock.sendall(get())
            assert b"200 OK" in sock.recv(65536)
            assert not closed_by_server(sock, TIMEOUT_S / 2)
        started = time.monotonic()
        assert closed_by_server(sock, 3.0)
    assert time.monotonic() - started >= TIMEOUT_S / 2 - 0.05


def test_a_head_sent_in_pieces_within_the_deadline_is_served(server: ServerProcess) -> None:
    request = get()
    with connect(server) as sock:
        for piece in (request[:10], request[10:20], request[20:]):
            sock.sendall(piece)
            time.sleep(TIMEOUT_S / 4)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")


def test_a_body_slower_than_the_head_deadline_is_not_cut_off(server: ServerProcess) -> None:
    body = b'{"name": "slow-body"}'
    head = (f"POST /v1/queues HTTP/1.1\r\nHost: rotor\r\nAuthorization: Bearer {server.api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with connect(server) as sock:
        sock.sendall(head)
        for piece in (body[:5], body[5:10], body[10:]):
            time.sleep(TIMEOUT_S / 2)  # the whole body takes longer than the head may
            sock.sendall(piece)
        assert sock.recv(65536).startswith(b"HTTP/1.1 201 Created")
