"""What every benchmark shares: starting and stopping processes, wrk, the HTTP client, percentiles.

Every process a benchmark starts is registered on a `Processes` stack and stopped when the
script ends, however it ends. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
KEY = "rt_ws_bench_key_00000000000000000000000"
PAYLOAD = {"contactId": "cid_123", "campaignId": "camp_456", "step": 1}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(
    url: str, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    """Poll `url` until it answers; fail early when `proc` exits (showing the end of `log`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode} before {url} came up\n{_tail(log)}")
        try:
            urllib.request.urlopen(url, timeout=0.5).read()
            return
        except urllib.error.HTTPError:
            return  # it answered, which is all we wait for
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up within {timeout:.0f}s\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""


def pct(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> str:
    """One line naming the machine, for the results tables."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{time.strftime('%Y-%m-%d %H:%M')} · {os.cpu_count()} cores · {cpu} · Linux {platform.release()} · "
            f"Python {platform.python_version()} · load average {load}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process itself (not of its children), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


# Processes ---------------------------------------------------------------------------


class Processes:
    """Processes a benchmark started; `stop_all()` (or leaving the `with`) ends each of them by pid."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Processes:
        signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(list(args), **kwargs)
        self._started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc in self._started:
            self._started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._started)):
            self.stop(proc, timeout=10)


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@dataclass
class Server:
    """A running `rotor-lite serve`."""

    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path


def start_server(procs: Processes, data_dir: Path, synchronous: str = "FULL", **env: str) -> Server:
    """`rotor-lite serve` on a free port with `data_dir`, the bench key and private callbacks allowed."""
    port = free_port()
    full_env = {
        **os.environ, "ROTOR_AUTH_BOOTSTRAP_API_KEY": KEY, "ROTOR_CALLBACKS_ALLOW_PRIVATE_NETWORKS": "true",
        "ROTOR_STORAGE_SYNCHRONOUS": synchronous, **env,
    }
    log = data_dir.parent / f"server-{port}.log"
    with open(log, "wb") as out:
        proc = procs.start(
            [sys.executable, "-m", "rotor_lite", "serve", "--port", str(port), "--data-dir", str(data_dir),
             "--log-level", "warning"],
            env=full_env, cwd=data_dir.parent, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", proc=proc, log=log)
    return Server(proc, url, data_dir)


def start_receiver(procs: Processes) -> str:
    """The Node receiver (`receiver.js`) on a free port; returns its base URL."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is required for the receiver (so that the receiver is not the bottleneck)")
    port = free_port()
    proc = procs.start([node, str(HERE / "receiver.js"), str(port)])
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/reset", proc=proc)
    return url


def receiver_get(url: str, path: str) -> dict[str, Any]:
    """GET a receiver control path (`/stats`, `/arrivals`, `/reset`, `/secret?value=`)."""
    with urllib.request.urlopen(url + path, timeout=30) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


# wrk -----------------------------------------------------------------------------------


@dataclass
class WrkResult:
    """What wrk measured: requests/s, latency quantiles in ms, and failures."""

    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    requests: int

    def latency(self) -> str:
        return f"p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms"

    def failures(self) -> str:
        bad = self.non_2xx + self.socket_errors
        return "" if not bad else f" ({self.non_2xx} non-2xx, {self.socket_errors} socket errors)"


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, script: str, connections: int, seconds: int, **env: str) -> WrkResult:
    """One wrk run with `bench/<script>` (KEY and QUEUE reach it through the environment)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is required for HTTP load: apt-get install wrk")
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency", "-s", str(HERE / script),
         url],
        env={**os.environ, "KEY": KEY, **env}, capture_output=True, text=True, check=True,
    ).stdout
    return WrkResult(
        rps=float(_grab(r"Requests/sec:\s+([\d.]+)", out, "0")),
        p50_ms=_ms(_grab(r"(?m)^\s*50%\s+(\S+)", out, "0us")), p99_ms=_ms(_grab(r"(?m)^\s*99%\s+(\S+)", out, "0us")),
        non_2xx=int(_grab(r"Non-2xx or 3xx responses: (\d+)", out, "0")),
        socket_errors=sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out)),
        requests=int(_grab(r"(\d+) requests in", out, "0")),
    )


def _grab(pattern: str, text: str, default: str) -> str:
    match = re.search(pattern, text)
    return match.group(1) if match else default


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


# The API ------------------------------------------------------------------------------------


@dataclass
class Api:
    """A small aiohttp client for the rotor-lite API with the bench key."""

    session: aiohttp.ClientSession
    url: str
    headers: dict[str, str] = field(
        default_factory=lambda: {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    )

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        async with self.session.request(method, self.url + path, data=data, headers=self.headers) as resp:
            text = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {text[:300]!r}")
            return json.loads(text) if text else None

    async def text(self, path: str) -> str:
        """GET `path` and return the body as text (for `/metrics`)."""
        async with self.session.get(self.url + path, headers=self.headers) as resp:
            body = await resp.text()
            if resp.status >= 300:
                raise RuntimeError(f"GET {path}: {resp.status} {body[:300]!r}")
            return body

    async def create_queue(self, name: str, **fields: Any) -> dict[str, Any]:
        return await self.call("POST", "/v1/queues", {"name": name, **fields})  # type: ignore[no-any-return]

    async def enqueue_backlog(self, queue: str, total: int, batch: int = 1000) -> None:
        """`total` jobs with the bench payload, in batches of `batch`."""
        for start in range(0, total, batch):
            body = json.dumps({"jobs": [{"payload": PAYLOAD}] * min(batch, total - start)}).encode()
            await self.call("POST", f"/v1/queues/{queue}/jobs/batch", body)

    async def stats(self, queue: str) -> dict[str, int]:
        return await self.call("GET", f"/v1/queues/{queue}/stats")  # type: ignore[no-any-return]

    async def wait_completed(self, queue: str, total: int, timeout: float = 900, every: float = 0.02) -> None:
        """Poll the queue's stats until `total` jobs are completed."""
        deadline = time.monotonic() + timeout
        while True:
            stats = await self.stats(queue)
            if stats["completed"] >= total:
                return
            if stats["failed"]:
                raise RuntimeError(f"{queue}: jobs failed: {stats}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{queue}: not completed within {timeout:.0f}s: {stats}")
            await asyncio.sleep(every)


async def receiver_stats(session: aiohttp.ClientSession, receiver_url: str, path: str = "/stats") -> dict[str, Any]:
    async with session.get(receiver_url + path) as resp:
        return await resp.json()  # type: ignore[no-any-return]


async def wait_delivered_and_completed(api: Api, receiver_url: str, queue: str, total: int) -> None:
    """Wait until the receiver has seen `total` POSTs (cheap to poll), then until the queue shows them completed."""
    deadline = time.monotonic() + 900
    while (await receiver_stats(api.session, receiver_url))["count"] < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{queue}: the receiver did not see {total} deliveries in time")
        await asyncio.sleep(0.02)
    await api.wait_completed(queue, total, every=0.005)


async def probe_latency(api: Api, receiver_url: str, queue: str, samples: int, interval: float = 0.02) -> list[float]:
    """Enqueue one job every `interval` s into `queue` (whose callback is the receiver's `/lat…` path);
    returns each job's milliseconds from sending the enqueue request to the callback's arrival."""
    sent: dict[str, float] = {}
    for _ in range(samples):
        t0 = time.time() * 1000
        job = await api.call("POST", f"/v1/queues/{queue}/jobs", {"payload": PAYLOAD})
        sent[job["id"]] = t0
        await asyncio.sleep(interval)
    deadline = time.monotonic() + 60
    while True:
        arrivals = (await receiver_stats(api.session, receiver_url, "/arrivals"))["arrivals"]
        if all(job_id in arrivals for job_id in sent) or time.monotonic() > deadline:
            return [arrivals[job_id] - t0 for job_id, t0 in sent.items() if job_id in arrivals]
        await asyncio.sleep(0.05)


async def steady_load(api: Api, queue: str, rate: float, stop: asyncio.Event, tick: float = 0.1) -> int:
    """Enqueue about `rate` jobs/s into `queue` (a batch every `tick` s) until `stop` is set; returns jobs sent."""
    per_tick = max(1, round(rate * tick))
    body = json.dumps({"jobs": [{"payload": PAYLOAD}] * per_tick}).encode()
    sent, next_at = 0, time.monotonic()
    while not stop.is_set():
        await api.call("POST", f"/v1/queues/{queue}/jobs/batch", body)
        sent += per_tick
        next_at += tick
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return sent


class Throughput(NamedTuple):
    rate: float  # deliveries/s
    enqueue_s: float
    main_cpu_us: float | None  # the server's own process, per delivery (its delivery helpers not included)


async def rotor_throughput(
    api: Api, receiver: str, queue: str, jobs: int, concurrency: int, pid: int | None = None
) -> Throughput:
    """`jobs` jobs batch-enqueued into a paused queue, which is then resumed; deliveries/s counts from
    the resume to the last job completed, and so does the CPU time of process `pid` (the server's).

    The receiver checks every signature against the queue's secret; a bad one stops the benchmark.
    """
    created = await api.create_queue(queue, concurrency=concurrency, callback_url=receiver + "/cb")
    receiver_get(receiver, "/secret?value=" + urllib.parse.quote(created["callback_secret"]))
    await api.call("POST", f"/v1/queues/{queue}/pause")
    enqueue_started = time.perf_counter()
    await api.enqueue_backlog(queue, jobs)
    enqueue_seconds = time.perf_counter() - enqueue_started
    receiver_get(receiver, "/reset")
    started, cpu_before = time.perf_counter(), cpu_seconds(pid) if pid else 0.0
    await api.call("POST", f"/v1/queues/{queue}/resume")
    await wait_delivered_and_completed(api, receiver, queue, jobs)
    elapsed = time.perf_counter() - started
    cpu_us = (cpu_seconds(pid) - cpu_before) / jobs * 1e6 if pid else None
    seen = await receiver_stats(api.session, receiver)
    if seen["bad"] or seen["verified"] < jobs:
        raise SystemExit(f"signature check failed at the receiver: {seen}")
    return Throughput(jobs / elapsed, enqueue_seconds, cpu_us)


def client_session(limit: int = 64) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit))


# Ceilings ---------------------------------------------------------------------------------------


async def aiohttp_ceiling(url: str, total: int, concurrency: int) -> float:
    """Requests/s of aiohttp's client POSTing the bench payload to `url` with `concurrency` requests in flight."""
    body = json.dumps(PAYLOAD, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "x-rotor-job-id": "job_ceiling"}
    remaining = iter(range(total))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            for _ in remaining:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    resp.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - started)


def run_event_loop(coro: Any) -> Any:
    """Run `coro` on uvloop when installed (the server uses it too), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
