"""Real parts for the tests: a `rotor-lite serve` subprocess, an HTTP receiver and a connection counter on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import uvicorn
from aiohttp import web
from click.testing import CliRunner

from rotor_lite.cli import main
from rotor_lite.store import counts
from tests.pg_cluster import in_thread


def api_routes(prefix: str = "/v1/") -> list[tuple[str, str]]:
    """Every (method, path template) the app serves under `prefix`, path parameters written `{name}`."""
    from rotor_lite.api.app import create_app  # the server's modules only for the tests that ask
    from rotor_lite.config import load_settings

    with warnings.catch_warnings():  # Litestar deprecation notices about handler signatures, not about routes
        warnings.simplefilter("ignore")
        app = create_app(load_settings(env={}))
    found = {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
        for route in app.routes for handler in getattr(route, "route_handlers", [])
        for method in handler.http_methods if method not in ("HEAD", "OPTIONS")
    }
    return sorted(route for route in found if route[1].startswith(prefix))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


FAST_ENV = {
    "ROTOR_CALLBACKS_ALLOW_PRIVATE_NETWORKS": "true",
    "ROTOR_DISPATCH_CONCURRENCY_KEY_RECHECK": "100ms",
    "ROTOR_DISPATCH_LEASE": "2s",
    "ROTOR_DISPATCH_POLL_INTERVAL": "200ms",
    "ROTOR_SERVER_DRAIN_TIMEOUT": "5s",
    "ROTOR_WORKFLOWS_RETRY_DELAY": "50ms",
    "ROTOR_WORKFLOWS_POLL_INTERVAL": "200ms",
    "ROTOR_WORKFLOWS_LEASE": "2s",
    "ROTOR_WORKFLOWS_CALL_TIMEOUT": "10s",
}


# Set by tests/conftest.py under `--backend postgres`: makes a fresh database and returns its URL.
database_for: Callable[[], str] | None = None
_storage_urls: dict[Path, str] = {}  # data directory → the PostgreSQL database its servers use


def storage_url_of(data_dir: Path) -> str | None:
    """The PostgreSQL database of the servers started on `data_dir` (None: they keep SQLite in it)."""
    return _storage_urls.get(data_dir.resolve())


def storage_env(data_dir: Path, storage_url: str | None) -> dict[str, str]:
    """Under PostgreSQL: the database for a server, the one its data directory had before if any (a restart)."""
    url = storage_url or storage_url_of(data_dir) or (database_for() if database_for is not None else None)
    if url is None:
        return {}
    _storage_urls[data_dir.resolve()] = url
    return {"ROTOR_STORAGE_URL": url}


@dataclass
class ServerProcess:
    """A `rotor-lite serve` subprocess on a free port with its own data directory.

    Under `--backend postgres` each data directory gets its own database; servers given one `storage_url`
    share it (several nodes: give them the same ROTOR_SECURITY_MASTER_KEY too). `sqlite=True` keeps this server
    on SQLite in its data directory whatever the run's backend (an installation to move to PostgreSQL).
    """

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    storage_url: str | None = None
    port: int = field(default_factory=free_port)
    api_key: str = "rt_ws_test_bootstrap_key_0000000000000000"
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    log_level: str = "warning"
    sqlite: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        storage = {"ROTOR_STORAGE_URL": ""} if self.sqlite else storage_env(self.data_dir, self.storage_url)
        env = {**os.environ, **FAST_ENV, "ROTOR_AUTH_BOOTSTRAP_API_KEY": self.api_key, **storage, **self.env}
        self.log_path = self.data_dir.parent / f"server-{self.port}-{time.monotonic_ns()}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child writes to it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rotor_lite", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--log-level", self.log_level],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.data_dir.parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill(self, *, check_counts: bool = True) -> None:
        """kill -9: no shutdown, no flush; then the job counters must still equal a full count."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        if check_counts:
            assert_counts_match(self.data_dir)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        assert_counts_match(self.data_dir)
        return code

    def client(self, api_key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {api_key or self.api_key}"}, timeout=30)


# counts.drift in SQL that both backends run (no rowid, no json_each), without the queue's name
_PORTABLE_DRIFT = (
    "SELECT queue_id, state, sum(kept) AS kept, sum(actual) AS actual FROM ("
    " SELECT queue_id, state, n AS kept, 0 AS actual FROM queue_count"
    " UNION ALL SELECT queue_id, state, 0, count(*) FROM job GROUP BY queue_id, state"
    ") AS c GROUP BY queue_id, state HAVING sum(kept) <> sum(actual) ORDER BY queue_id, state"
)


def cluster_nodes(parent: Path, url: str, count: int = 3, names: tuple[str, ...] = (), **env: str) -> list[ServerProcess]:
    """`count` nodes (not started) sharing the database `url` and one master key, a data directory each
    under `parent` (`node0`, … or `names`); `env` is given to all of them."""
    shared = {"ROTOR_SECURITY_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(), **env}
    names = names or tuple(f"node{i}" for i in range(count))
    return [ServerProcess(data_dir=parent / name, storage_url=url, env=shared) for name in names]


def assert_counts_match(data_dir: Path) -> None:
    """The per-queue state counters of a stopped server's database equal a full count of its jobs table."""
    url = storage_url_of(data_dir)
    if url is not None:
        from tests.pg_cluster import fetch, run_sync

        drift = [(queue, state, int(kept), int(actual)) for queue, state, kept, actual in run_sync(fetch(url, _PORTABLE_DRIFT))]
        assert not drift, f"job counters drifted from the jobs table in {url}: (queue, state, kept, actual) {drift}"
        return
    path = data_dir / "rotor.db"
    if not path.exists():
        return
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        drift = counts.drift(conn)
    finally:
        conn.close()
    assert not drift, f"job counters drifted from the jobs table in {path}: {drift}"


def db_execute(data_dir: Path, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
    """Run one statement (SQLite dialect, `?` parameters) on the database of the servers of `data_dir`,
    whichever backend the run uses, committed at once; its rows (index or name access)."""
    url = storage_url_of(data_dir)
    if url is not None:
        from rotor_lite.store.pg import PgConnection

        def on_postgres() -> list[Any]:
            conn = PgConnection.open(url)
            try:
                return list(conn.execute(sql, params).fetchall())
            finally:
                conn.close()

        return in_thread(on_postgres)  # a test may run inside an event loop; PgConnection drives its own
    conn = sqlite3.connect(data_dir / "rotor.db", timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def offline(data_dir: Path, *args: str) -> dict[str, Any]:
    """Run an offline admin command (`keys create …`, `workspaces create …`) on a data directory: its JSON."""
    runner = CliRunner(env=storage_env(data_dir, None))  # its database, made now when no server made it yet
    result = in_thread(  # a test may run inside an event loop; the command's PgConnection drives its own
        lambda: runner.invoke(main, [*args, "--data-dir", str(data_dir), "--json"], catch_exceptions=False))
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.output)
    return parsed


@dataclass
class Reply:
    """A scripted answer; with `chunk` the body is streamed that many bytes at a time, `chunk_delay` apart,
    and with `endless` its chunks repeat until the client hangs up."""

    status: int = 200
    body: bytes = b'{"ok":true}'
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    chunk: int = 0
    chunk_delay: float = 0.0
    endless: bool = False


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered_at: float | None = None  # when the handler returned its reply (None while it has not)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def job_id(self) -> str:
        return self.headers.get("x-rotor-job-id", "")


class Receiver:
    """An HTTP server in its own thread that records every request and answers as scripted.

    `script(path, replies)` queues replies for a path; unscripted requests get 200 after
    `default_delay`. It tracks requests in flight per path and per `x-rotor-job-id`.
    `on_request(received, number)` runs in the handler before it replies (`number` counts from 1).
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[Received] = []
        self.default_delay = 0.0
        self._scripts: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.active_keys: dict[str, set[str]] = {}
        self.key_of: Callable[[Received], str | None] = lambda r: None
        self.key_overlaps = 0
        self.on_request: Callable[[Received, int], None] | None = None
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str = "/cb") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts.setdefault(path, []).extend(replies)

    def for_path(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def __enter__(self) -> Receiver:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port, backlog=1024).start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        got = Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body, time.time())
        key = self.key_of(got)
        with self._lock:
            self.requests.append(got)
            path = request.path
            self.in_flight[path] = self.in_flight.get(path, 0) + 1
            self.max_in_flight[path] = max(self.max_in_flight.get(path, 0), self.in_flight[path])
            if key is not None:
                holders = self.active_keys.setdefault(key, set())
                if holders:
                    self.key_overlaps += 1
                holders.add(got.headers.get("x-rotor-job-id", ""))
            queued = self._scripts.get(path)
            reply = queued.pop(0) if queued else Reply(delay=self.default_delay)
            number = len(self.requests)
        try:
            if self.on_request is not None:
                self.on_request(got, number)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.chunk:
                return await self._stream(request, reply)
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers, content_type="application/json")
        finally:
            got.answered_at = time.time()
            with self._lock:
                self.in_flight[path] -= 1
                if key is not None:
                    self.active_keys[key].discard(got.headers.get("x-rotor-job-id", ""))

    @staticmethod
    async def _stream(request: web.Request, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(status=reply.status, headers={"Content-Type": "application/json", **reply.headers})
        await response.prepare(request)
        chunks = [reply.body[i : i + reply.chunk] for i in range(0, len(reply.body), reply.chunk)]
        try:
            while True:
                for piece in chunks:
                    await response.write(piece)
                    await asyncio.sleep(reply.chunk_delay)
                if not reply.endless:
                    break
            await response.write_eof()
        except ConnectionError:
            pass  # the client stopped reading: expected for an endless body
        return response


class ConnectionCounter:
    """A bare TCP listener on 127.0.0.1 that counts the connections it accepts (TLS or not)."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    def run() -> None:
        with suppress(SystemExit):  # uvicorn exits when the app's startup fails
            server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive())
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class KillDuringDelivery:
    """kill -9 a server from inside the receiver's handler of a chosen request, before it is answered.

    So every kill lands while at least that delivery is in flight. `restart()` waits for the killed
    server's last requests to arrive, then starts the next server: each request the receiver holds
    is thereby known to come from one server generation, split at `marks`.
    """

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.marks: list[int] = []  # receiver.requests before each restart
        self.killed_at: list[float] = []
        self._target: tuple[ServerProcess, int] | None = None
        self._killed = threading.Event()
        self._last_killed: ServerProcess | None = None
        receiver.on_request = self._on_request

    def kill_at(self, server: ServerProcess, number: int) -> None:
        """Kill `server` in the handler of the receiver's `number`-th request."""
        self._killed.clear()
        self._target = (server, number)

    def restart(self, make: Callable[[], ServerProcess], timeout: float = 60) -> ServerProcess:
        assert self._killed.wait(timeout), "the kill never came: too few deliveries"
        assert self._last_killed is not None
        assert_counts_match(self._last_killed.data_dir)  # here: an assertion in the receiver's handler would be lost
        count = -1
        while count != len(self.receiver.requests):  # quiet for 100 ms: nothing of the dead server left
            count = len(self.receiver.requests)
            time.sleep(0.1)
        self.marks.append(count)
        return make()

    def _on_request(self, got: Received, number: int) -> None:
        if self._target is not None and number >= self._target[1]:
            server, self._target = self._target[0], None
            server.kill(check_counts=False)  # blocks this handler (and the receiver) until the process is gone
            self._last_killed = server
            self.killed_at.append(time.time())
            self._killed.set()

    def per_kill(self) -> list[tuple[set[str], set[str]]]:
        """For each kill: the jobs in flight when it landed, and the jobs it made the receiver get again.

        In flight: delivered by the killed server and not answered before it died. Got again: delivered
        by the killed server and again by a later one. A job delivered twice by one server is an error.
        """
        requests = list(self.receiver.requests)
        bounds = [0, *self.marks, len(requests)]
        generations = [requests[start:end] for start, end in zip(bounds, bounds[1:])]
        for generation in generations:
            ids = [got.job_id for got in generation]
            assert len(ids) == len(set(ids)), "a job was delivered twice by one server, with no kill between"
        result = []
        for k, (killed, killed_at) in enumerate(zip(generations, self.killed_at)):
            later = {got.job_id for generation in generations[k + 1:] for got in generation}
            in_flight = {got.job_id for got in killed if got.answered_at is None or got.answered_at >= killed_at}
            result.append((in_flight, {got.job_id for got in killed} & later))
        return result
