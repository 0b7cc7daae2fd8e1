"""Soak: a steady delivery load at half the measured peak; memory and latency sampled every 30 s.

    python bench/soak.py [--minutes 30] [--rate JOBS_PER_S] [--concurrency 64] [--synchronous FULL|NORMAL]
                         [--processes auto|0|N]

Without `--rate`, the peak is measured first (10,000 jobs, as in `deliver.py`) and the load is half
of it. The load goes to queue `soak` (batches every 100 ms); queue `probe` gets one job every 200 ms
whose enqueue→callback latency is measured. Every window prints the server's VmRSS, the deliveries/s
completed, the backlog and the latency p50/p99 (with `[delivery] processes` above 0, VmRSS is the sum over
the server and its delivery helpers, and the helpers' share is shown too); the end says whether memory stayed flat over the
second half (the first fills SQLite's page cache up to its cap) and latency stayed flat.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    Api,
    Processes,
    client_session,
    machine,
    pct,
    probe_latency,
    rotor_throughput,
    rss_kb,
    run_event_loop,
    start_receiver,
    start_server,
    steady_load,
)

WINDOW_S = 30.0
PROBE_EVERY_S = 0.2
FLAT = 0.10  # memory: at most 10 % growth over the second half of the run
LATENCY_FLAT = 2.0  # latency p50: the second half's within 2× of the first half's (latency is noisy)


@dataclass
class Sample:
    minute: float
    rss_mb: float  # the server and its delivery helpers
    helpers_mb: float
    rate: float
    backlog: int
    p50: float
    p99: float


async def window(
    api: Api, receiver: str, pid: int, started: float, last: tuple[float, int]
) -> tuple[Sample, tuple[float, int]]:
    """One window of probes, then the server's memory, throughput and backlog."""
    lat = await probe_latency(api, receiver, "probe", int(WINDOW_S / PROBE_EVERY_S), PROBE_EVERY_S)
    stats = await api.stats("soak")
    now = time.perf_counter()
    rate = (stats["completed"] - last[1]) / (now - last[0])
    helpers = sum(rss_kb(child)[0] for child in children_of(pid)) / 1024
    sample = Sample((now - started) / 60, rss_kb(pid)[0] / 1024 + helpers, helpers, rate,
                    stats["waiting"] + stats["active"], pct(lat, 0.5), pct(lat, 0.99))
    return sample, (now, stats["completed"])


def children_of(pid: int) -> list[int]:
    """The server's child processes (its delivery helpers)."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def verdict(samples: list[Sample]) -> str:
    """Flat memory: no more than 10 % growth over the second half (the first half fills SQLite's page
    cache up to its cap). Flat latency: the second half's median p50 within 2× of the first half's."""
    half = len(samples) // 2
    base, end = samples[max(0, half - 1)], samples[-1]
    memory = (end.rss_mb - base.rss_mb) / base.rss_mb
    first = statistics.median(s.p50 for s in samples[1:half]) if half > 1 else samples[0].p50
    second = statistics.median(s.p50 for s in samples[half:])
    latency = second / first if first else float("nan")
    return (f"memory {base.rss_mb:.0f} MB at minute {base.minute:.1f} → {end.rss_mb:.0f} MB at the end "
            f"({memory:+.0%}: {'flat' if abs(memory) <= FLAT else 'NOT flat'}); latency p50 {first:.1f} ms in "
            f"the first half, {second:.1f} ms in the second ({latency:.2f}×: "
            f"{'flat' if latency <= LATENCY_FLAT else 'NOT flat'})")


async def soak(args: argparse.Namespace, receiver: str, url: str, pid: int) -> list[Sample]:
    async with client_session() as session:
        api = Api(session, url)
        rate = args.rate
        if rate is None:
            peak, _, _ = await rotor_throughput(api, receiver, "peak", 10_000, args.concurrency)
            rate = peak / 2
            print(f"peak {peak:,.0f} deliveries/s; soaking at {rate:,.0f}/s for {args.minutes} min", flush=True)
        await api.create_queue("soak", concurrency=args.concurrency, callback_url=receiver + "/cb")
        await api.create_queue("probe", concurrency=8, callback_url=receiver + "/lat")
        stop = asyncio.Event()
        producer = asyncio.create_task(steady_load(api, "soak", rate, stop))
        started = last_at = time.perf_counter()
        last, samples = (last_at, 0), []
        print("| minute | VmRSS MB (helpers') | deliveries/s | backlog | latency p50 / p99 ms |", flush=True)
        print("|---|---|---|---|---|", flush=True)
        while time.perf_counter() - started < args.minutes * 60:
            sample, last = await window(api, receiver, pid, started, last)
            samples.append(sample)
            print(f"| {sample.minute:.1f} | {sample.rss_mb:.0f} ({sample.helpers_mb:.0f}) | {sample.rate:,.0f} | {sample.backlog:,} | "
                  f"{sample.p50:.1f} / {sample.p99:.1f} |", flush=True)
        stop.set()
        await producer
        return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30, help="how long to soak (default 30)")
    parser.add_argument("--rate", type=float, help="jobs/s to enqueue (default: half the measured peak)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--processes", default="auto", help="the server's [delivery] processes (default auto)")
    args = parser.parse_args()
    print(f"rotor-lite soak — synchronous={args.synchronous}, processes={args.processes} — {machine()}", flush=True)
    with Processes() as procs, tempfile.TemporaryDirectory() as tmp:
        receiver = start_receiver(procs)
        server = start_server(procs, Path(tmp) / "data", args.synchronous, ROTOR_DELIVERY_PROCESSES=args.processes)
        samples = run_event_loop(soak(args, receiver, server.url, server.proc.pid))
    print("\n" + verdict(samples))


if __name__ == "__main__":
    main()
