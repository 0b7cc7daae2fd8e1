"""The same delivery workload run by BullMQ (on Redis) and by rotor-lite, in one run; prints the ratio.

    python bench/compare.py [--jobs 20000] [--concurrency 64] [--rounds 1] [--synchronous FULL|NORMAL]
                            [--redis-fsync everysec|always|no] [--processes auto,0,1,2,4]

Workload: `--jobs` jobs with the same payload, all enqueued first (BullMQ: `addBulk`, 1,000 per call;
rotor-lite: batch enqueue into a paused queue), then delivered with `--concurrency` requests in
flight to the same Node receiver, signed the same way and verified by the receiver, and completed.
The figure is the time from all-enqueued to all-completed, as deliveries/s.

Starts everything itself on 127.0.0.1 and stops it: a redis-server from Debian's packages (installed
with apt-get when missing and running as root) on a free port with a temp dir and AOF persistence
(`appendfsync` = `--redis-fsync`), bullmq + ioredis from the npm registry installed into
`bench/.work/` (ignored by git), the Node receiver and one `rotor-lite serve` per value of
`--processes` (its `[delivery] processes`), each run in every round right after BullMQ's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from _common import (
    HERE,
    WORK,
    Api,
    Processes,
    Server,
    Throughput,
    client_session,
    free_port,
    machine,
    receiver_get,
    rotor_throughput,
    run_event_loop,
    start_receiver,
    start_server,
)

NPM_PACKAGES = ("bullmq@6", "ioredis@5")
BULLMQ_SECRET = "rcs_bench_bullmq_secret"


def ensure_redis() -> str:
    """The redis-server binary, installed from Debian's packages when missing (root only)."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("redis-server is missing: apt-get install -y redis-server")
    print("installing redis-server from Debian's packages …", flush=True)
    install = ["apt-get", "install", "-y", "-qq", "redis-server"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(install, check=True, capture_output=True)
    return shutil.which("redis-server") or "/usr/bin/redis-server"


def ensure_bullmq() -> Path:
    """bench/.work/node_modules with bullmq and ioredis, installed with npm on first use."""
    modules = WORK / "node_modules"
    if not ((modules / "bullmq").is_dir() and (modules / "ioredis").is_dir()):
        print(f"installing {' '.join(NPM_PACKAGES)} into {WORK} …", flush=True)
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(WORK), "--no-audit", "--no-fund", "--loglevel=error", *NPM_PACKAGES],
            check=True,
        )
    return modules


def start_redis(procs: Processes, binary: str, workdir: Path, fsync: str) -> int:
    """A private redis-server on a free loopback port, persisting to `workdir`; returns its port."""
    port = free_port()
    procs.start([
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "",
        "--appendonly", "yes", "--appendfsync", fsync, "--daemonize", "no", "--protected-mode", "yes",
        "--maxmemory-policy", "noeviction", "--logfile", "",
    ])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not come up")


def run_bullmq(modules: Path, redis_port: int, receiver: str, jobs: int, concurrency: int) -> dict[str, float]:
    """One BullMQ run (bullmq_worker.js); the receiver checks every signature."""
    receiver_get(receiver, f"/secret?value={BULLMQ_SECRET}")
    receiver_get(receiver, "/reset")
    out = subprocess.run(
        ["node", str(HERE / "bullmq_worker.js"), str(redis_port), receiver + "/cb", str(jobs), str(concurrency),
         BULLMQ_SECRET],
        env={**os.environ, "NODE_PATH": str(modules)}, capture_output=True, text=True, timeout=900,
    )
    if out.returncode != 0:
        raise SystemExit(f"the BullMQ worker failed: {out.stderr[-2000:]}")
    seen = receiver_get(receiver, "/stats")
    if seen["bad"] or seen["verified"] < jobs:
        raise SystemExit(f"BullMQ deliveries failed the signature check: {seen}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def run_rotor(server: Server, receiver: str, queue: str, jobs: int, concurrency: int) -> Throughput:
    async with client_session() as session:
        return await rotor_throughput(Api(session, server.url), receiver, queue, jobs, concurrency, server.proc.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per run (default 20000)")
    parser.add_argument("--concurrency", type=int, default=64, help="deliveries in flight, both sides (default 64)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate BullMQ and rotor-lite this many times")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--redis-fsync", default="everysec", choices=["everysec", "always", "no"])
    parser.add_argument("--processes", default="auto", help="rotor-lite's [delivery] processes, comma-separated "
                        "values each with a server of its own (default auto)")
    args = parser.parse_args()
    redis_binary, modules = ensure_redis(), ensure_bullmq()
    print(f"BullMQ vs rotor-lite — {machine()}", flush=True)
    with Processes() as procs, tempfile.TemporaryDirectory() as tmp:
        redis_port = start_redis(procs, redis_binary, Path(tmp), args.redis_fsync)
        receiver = start_receiver(procs)
        servers = {
            processes: start_server(procs, Path(tmp) / f"data-{processes}", args.synchronous,
                                    ROTOR_DELIVERY_PROCESSES=processes)
            for processes in args.processes.split(",")
        }
        print("\n| round | BullMQ deliveries/s (enqueue s) | rotor-lite processes | rotor-lite deliveries/s (enqueue s) "
              "| server process CPU per delivery | rotor-lite / BullMQ |")
        print("|---|---|---|---|---|---|")
        for n in range(1, args.rounds + 1):
            bull = run_bullmq(modules, redis_port, receiver, args.jobs, args.concurrency)
            for processes, server in servers.items():
                rate, enqueue_s, cpu_us = run_event_loop(
                    run_rotor(server, receiver, f"cmp{n}", args.jobs, args.concurrency))
                print(f"| {n} | {bull['rate']:,.0f} ({bull['enqueue_s']:.2f}) | {processes} | {rate:,.0f} ({enqueue_s:.2f}) "
                      f"| {cpu_us:.0f} µs | {rate / bull['rate']:.2f}× |", flush=True)
    print(f"\n{args.jobs:,} jobs, concurrency {args.concurrency}; rotor-lite synchronous={args.synchronous}, "
          f"Redis AOF appendfsync={args.redis_fsync}")


if __name__ == "__main__":
    main()
