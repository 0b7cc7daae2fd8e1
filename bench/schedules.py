"""Benchmark of the scheduler: tick lateness with many active schedules, and no tick lost or doubled.

    python bench/schedules.py [--schedules 10000] [--minutes 2] [--synchronous FULL|NORMAL]

Starts its own `rotor-lite serve` (temp data dir) and an HTTP receiver on 127.0.0.1, then creates
`--schedules` schedules through the API, each firing once a minute at its own second
(`S * * * * *`, S = i mod 60: about 167 ticks every second for 10,000), plus one per-second
schedule (`* * * * * *`) whose queue delivers to the receiver. After `--minutes` of ticking it
stops the server and reads the run table:

- lateness: `fired_at - scheduled_for` of every tick in the window (fired_at is taken inside the
  transaction that writes the run and its job);
- loss and doubling: every expected tick of every schedule has exactly one run with a job, and
  every job of the per-second schedule reached the receiver exactly once.

Stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

KEY = "rt_ws_bench_key_00000000000000000000000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Receiver:
    """Counts deliveries per `x-rotor-job-id`."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        seen, lock = self.seen, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    seen[self.headers.get("x-rotor-job-id", "")] += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/tick"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


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
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the server did not start")


async def create_schedules(url: str, count: int, receiver_url: str) -> tuple[str, float]:
    """The load schedules and the per-second one; returns the latter's id and the creation rate."""
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        await http.post("/v1/queues", json={"name": "load"})
        await http.post("/v1/queues", json={"name": "every-second", "callback_url": receiver_url, "concurrency": 4})
        pending = iter(range(count))
        started = time.perf_counter()

        async def worker() -> None:
            for i in pending:
                body = {"queue": "load", "name": f"load-{i}", "cron": f"{i % 60} * * * * *", "timezone": "UTC",
                        "payload": {"n": i}}
                response = await http.post("/v1/schedules", json=body)
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(32)))
        rate = count / (time.perf_counter() - started)
        second = await http.post("/v1/schedules", json={
            "queue": "every-second", "name": "every-second", "cron": "* * * * * *", "timezone": "UTC",
        })
        second.raise_for_status()
        return str(second.json()["id"]), rate


def analyse(db_path: Path, per_second_id: str, start_ms: int, end_ms: int, delivered: Counter[str]) -> dict[str, object]:
    """Figures from the run table of the stopped server."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    rows = conn.execute(
        "SELECT schedule_id, scheduled_for, fired_at, job_id FROM schedule_run WHERE manual = 0"
        " AND scheduled_for > ? AND scheduled_for <= ?", (start_ms, end_ms),
    ).fetchall()
    schedules = conn.execute("SELECT id, cron FROM schedule").fetchall()
    conn.close()
    lateness = [fired - due for _, due, fired, job in rows if job is not None]
    seconds = (end_ms - start_ms) // 1000
    expected = seconds  # the per-second schedule
    for _, cron in schedules:
        if cron != "* * * * * *":
            second = int(cron.split()[0])
            expected += sum(1 for s in range(start_ms // 1000 + 1, end_ms // 1000 + 1) if s % 60 == second)
    ticks = Counter((sid, due) for sid, due, _, _ in rows)
    per_second = sorted(due for sid, due, _, job in rows if sid == per_second_id and job is not None)
    per_second_jobs = [job for sid, _, _, job in rows if sid == per_second_id and job is not None]
    return {
        "ticks": len(rows), "expected": expected, "without_job": sum(1 for r in rows if r[3] is None),
        "doubled": sum(1 for n in ticks.values() if n > 1), "lateness": lateness,
        "per_second_expected": seconds, "per_second_fired": len(per_second),
        "per_second_gaps": sum(1 for a, b in zip(per_second, per_second[1:]) if b - a != 1000),
        "per_second_delivered_once": sum(1 for job in per_second_jobs if delivered[job] == 1),
        "per_second_delivered_twice": sum(1 for job in per_second_jobs if delivered[job] > 1),
    }


def report(args: argparse.Namespace, figures: dict[str, object], rate: float) -> None:
    lateness = figures["lateness"]
    assert isinstance(lateness, list)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, synchronous={args.synchronous}")
    print(f"schedules: {args.schedules} load (each once a minute, spread over the seconds) + 1 per-second; "
          f"created at {rate:,.0f}/s over HTTP")
    print(f"window: {args.minutes} min, {figures['ticks']:,} ticks recorded of {figures['expected']:,} expected, "
          f"{figures['without_job']} without a job, {figures['doubled']} doubled")
    print(f"tick lateness (fired_at - scheduled_for): p50 {pct(lateness, 0.5):.0f} ms, p99 {pct(lateness, 0.99):.0f} ms, "
          f"max {max(lateness, default=math.nan):.0f} ms")
    print(f"per-second schedule: {figures['per_second_fired']} of {figures['per_second_expected']} seconds fired, "
          f"{figures['per_second_gaps']} gaps; {figures['per_second_delivered_once']} delivered exactly once, "
          f"{figures['per_second_delivered_twice']} more than once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=10_000, help="load schedules (default 10000)")
    parser.add_argument("--minutes", type=float, default=2, help="measured window (default 2; the issue's run is 10)")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"], help="SQLite durability")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="rotor-bench-schedules-"))
    receiver = Receiver()
    proc, url = start_server(data_dir / "data", args.synchronous)
    try:
        per_second_id, rate = asyncio.run(create_schedules(url, args.schedules, receiver.url))
        start_ms = (int(time.time()) + 5) * 1000  # a few seconds to settle after the creation burst
        end_ms = start_ms + int(args.minutes * 60_000)
        time.sleep(max(0.0, end_ms / 1000 + 3 - time.time()))
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        report(args, analyse(data_dir / "data" / "rotor.db", per_second_id, start_ms, end_ms, receiver.seen), rate)
    finally:
        if proc.poll() is None:
            proc.kill()
        receiver.close()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
