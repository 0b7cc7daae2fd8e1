"""Benchmark of the core hot paths: enqueue (batch and single), end-to-end delivery, latency, claim cost.

    python bench/core.py [--synchronous FULL|NORMAL] [--jobs 20000] [--quick]

Starts its own `rotor-lite serve` (temp data dir) and a Node receiver on 127.0.0.1,
needs `wrk` for the single-enqueue figure (skipped with a note when missing), and
stops everything it started. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
KEY = "rt_ws_bench_key_00000000000000000000000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, synchronous: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "ROTOR_AUTH_BOOTSTRAP_API_KEY": KEY, "ROTOR_CALLBACKS_ALLOW_PRIVATE_NETWORKS": "true",
           "ROTOR_STORAGE_SYNCHRONOUS": synchronous}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotor_lite", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz")
    return proc, url


def start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is required for the receiver (it must not be the bottleneck)")
    proc = subprocess.Popen([node, str(HERE / "receiver.js"), str(port)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/reset")
    return proc, url


def wait_http(url: str, timeout: float = 20) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=0.5)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Api:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        async with self.session.request(method, self.url + path, data=data, headers=self.headers) as resp:
            text = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {text[:200]!r}")
            return json.loads(text) if text else None


def run_wrk(url: str, script: str, queue: str, connections: int, seconds: int) -> dict[str, str] | None:
    """wrk's requests/s, p50, p99 and non-2xx count, or None when wrk is missing."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    out = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(HERE / script), url],
        env={**os.environ, "KEY": KEY, "QUEUE": queue}, capture_output=True, text=True, check=True,
    ).stdout
    found = {
        "rps": re.search(r"Requests/sec:\s+([\d.]+)", out), "p50": re.search(r"50%\s+(\S+)", out),
        "p99": re.search(r"99%\s+(\S+)", out), "errors": re.search(r"Non-2xx or 3xx responses: (\d+)", out),
    }
    return {name: match.group(1) if match else "0" for name, match in found.items()}


def bench_batch_enqueue(url: str, seconds: int) -> str:
    result = run_wrk(url, "batch.lua", "bulk", 4, seconds)
    if result is None:
        return "skipped (wrk not installed: apt-get install wrk)"
    return (f"{float(result['rps']) * 1000:,.0f} jobs/s ({float(result['rps']):,.1f} requests/s, p50 {result['p50']}, "
            f"p99 {result['p99']}, non-2xx {result['errors']})")


def bench_single_enqueue(url: str, seconds: int) -> str:
    result = run_wrk(url, "enqueue.lua", "single", 32, seconds)
    if result is None:
        return "skipped (wrk not installed: apt-get install wrk)"
    return f"{float(result['rps']):,.0f} requests/s, p50 {result['p50']}, p99 {result['p99']}, non-2xx {result['errors']}"


async def wait_completed(api: Api, queue: str, total: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = await api.call("GET", f"/v1/queues/{queue}/stats")
        if stats["completed"] >= total:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{queue}: not completed in time: {stats}")


async def bench_end_to_end(api: Api, receiver: str, jobs: int, concurrency: int = 128) -> float:
    await api.call("POST", "/v1/queues", {"name": "e2e", "concurrency": concurrency, "callback_url": receiver + "/cb"})
    await api.call("POST", "/v1/queues/e2e/pause")
    body = json.dumps({"jobs": [{"payload": {"contactId": f"cid_{i}"}} for i in range(1000)]}).encode()
    for _ in range(jobs // 1000):
        await api.call("POST", "/v1/queues/e2e/jobs/batch", body)
    started = time.perf_counter()
    await api.call("POST", "/v1/queues/e2e/resume")
    await wait_completed(api, "e2e", jobs)
    return jobs / (time.perf_counter() - started)


async def bench_latency(api: Api, receiver: str, samples: int) -> list[float]:
    await api.call("POST", "/v1/queues", {"name": "latency", "concurrency": 8, "callback_url": receiver + "/lat"})
    sent: dict[str, float] = {}
    for _ in range(samples):
        t0 = time.time() * 1000
        job = await api.call("POST", "/v1/queues/latency/jobs", {"payload": {"ping": True}})
        sent[job["id"]] = t0
        await asyncio.sleep(0.02)
    await wait_completed(api, "latency", samples)
    async with api.session.get(receiver + "/arrivals") as resp:
        arrivals = (await resp.json())["arrivals"]
    return [arrivals[job_id] - t0 for job_id, t0 in sent.items() if job_id in arrivals]


def bench_claim_cost(finished: int) -> float:
    """Median µs of one claim of 10 jobs with `finished` completed jobs in the table (direct on the store)."""
    from rotor_lite.store import jobs as job_store
    from rotor_lite.store.db import connect, migrate

    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "claim.db", "NORMAL")
        migrate(conn)
        conn.execute("INSERT INTO workspace (id, name, created_at) VALUES ('ws_x', 'x', 0)")
        conn.execute("INSERT INTO queue (rowid, workspace_id, name, concurrency, max_attempts, backoff_type,"
                     " backoff_delay_ms, timeout_ms, created_at, updated_at) VALUES (1, 'ws_x', 'q', 10, 3, 'fixed', 0, 1000, 0, 0)")
        conn.execute("BEGIN")
        rows = ((f"job_{i:032x}", "completed" if i < finished else "waiting") for i in range(finished + 1000))
        conn.executemany("INSERT INTO job (id, queue_id, workspace_id, state, payload, max_attempts, run_at, created_at)"
                         " VALUES (?, 1, 'ws_x', ?, x'7b7d', 3, 0, 0)", rows)
        conn.execute("COMMIT")
        timings = []
        for _ in range(200):
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            claimed = job_store.acquire_jobs(conn, queue_rowid=1, workspace_id="ws_x", limit=10, owner="b",
                                             lease_ms=1000, now=1, key_recheck_ms=1, key_ttl_ms=1)
            timings.append((time.perf_counter() - started) * 1e6)
            conn.execute("ROLLBACK")
            assert len(claimed) == 10
        conn.close()
        return statistics.median(timings)


async def run(args: argparse.Namespace) -> None:
    print(f"rotor-lite core benchmark — synchronous={args.synchronous}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_server(Path(tmp) / "data", args.synchronous)
        receiver, rurl = start_receiver()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                api = Api(session, url)
                await api.call("POST", "/v1/queues", {"name": "bulk"})
                await api.call("POST", "/v1/queues", {"name": "single"})
                print(f"batch enqueue (wrk, 1,000/request, 4 conn.): {bench_batch_enqueue(url, 3 if args.quick else 10)}")
                print(f"single enqueue (wrk, 32 connections):        {bench_single_enqueue(url, 3 if args.quick else 10)}")
                rate = await bench_end_to_end(api, rurl, 5000 if args.quick else args.jobs)
                print(f"end to end (signed, completed, conc. 128):   {rate:,.0f} deliveries/s")
                lat = await bench_latency(api, rurl, 50 if args.quick else 200)
                print(f"enqueue→callback latency, idle:              p50 {pct(lat, .5):.1f} ms, p99 {pct(lat, .99):.1f} ms")
        finally:
            server.terminate()
            receiver.terminate()
            server.wait(30)
    small, large = bench_claim_cost(1_000), bench_claim_cost(100_000 if args.quick else 1_000_000)
    print(f"claim of 10 jobs: {small:.0f} µs with 1,000 finished jobs, {large:.0f} µs with "
          f"{'100,000' if args.quick else '1,000,000'} ({large / small:.2f}×)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs for the end-to-end figure")
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
