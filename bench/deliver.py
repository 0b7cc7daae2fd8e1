"""End-to-end delivery: jobs enqueued, POSTed signed to a Node receiver, completed; beside its ceiling.

    python bench/deliver.py [--jobs 20000] [--concurrency 64] [--samples 200] [--synchronous FULL|NORMAL]
                            [--processes auto|N]

- throughput: `--jobs` jobs enqueued into a paused queue, then resumed; time until the last one is
  completed (its state committed), as deliveries/s. The receiver verifies every signature.
- latency: enqueue-request-sent to callback-arrived, p50/p99, one job every 20 ms into an idle
  queue, then again while another queue runs a steady load at half the measured throughput.
- ceiling: aiohttp's client POSTing the same payload to the same receiver at `--concurrency`
  requests in flight, measured in the same run.
- main-process CPU per delivery: the server process's own user + system time (/proc/<pid>/stat,
  its delivery helpers not included) over the throughput run, divided by the jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from _common import (
    Api,
    Processes,
    aiohttp_ceiling,
    client_session,
    machine,
    pct,
    probe_latency,
    rotor_throughput,
    run_event_loop,
    start_receiver,
    start_server,
    steady_load,
)


async def latency_under_load(
    api: Api, receiver: str, rate: float, samples: int, concurrency: int
) -> tuple[list[float], float]:
    """Latency samples while queue `load` gets `rate` jobs/s; returns them and the delivery rate achieved."""
    await api.create_queue("load", concurrency=concurrency, callback_url=receiver + "/cb")
    await api.create_queue("lat-load", concurrency=8, callback_url=receiver + "/lat-load")
    stop = asyncio.Event()
    producer = asyncio.create_task(steady_load(api, "load", rate, stop))
    await asyncio.sleep(1)  # let the load settle
    before, started = (await api.stats("load"))["completed"], time.perf_counter()
    lat = await probe_latency(api, receiver, "lat-load", samples)
    achieved = ((await api.stats("load"))["completed"] - before) / (time.perf_counter() - started)
    stop.set()
    await producer
    return lat, achieved


async def run(args: argparse.Namespace, receiver: str, url: str, pid: int) -> None:
    ceiling = await aiohttp_ceiling(receiver + "/cb", args.jobs, args.concurrency)
    async with client_session() as session:
        api = Api(session, url)
        rate, _, cpu_us = await rotor_throughput(api, receiver, "e2e", args.jobs, args.concurrency, pid)
        await api.create_queue("lat", concurrency=8, callback_url=receiver + "/lat")
        idle = await probe_latency(api, receiver, "lat", args.samples)
        loaded, achieved = await latency_under_load(api, receiver, rate / 2, args.samples, args.concurrency)
    print("\n| figure | rotor-lite | ceiling (same run) | ratio |\n|---|---|---|---|")
    print(f"| deliveries/s ({args.jobs:,} jobs, concurrency {args.concurrency}, signed, completed) | {rate:,.0f} | "
          f"aiohttp client {ceiling:,.0f} req/s | {rate / ceiling:.2f}× |")
    print(f"| server process CPU per delivery ([delivery] processes = {args.processes}) | {cpu_us:.0f} µs | | |")
    print(f"| enqueue→callback, idle | p50 {pct(idle, .5):.1f} ms, p99 {pct(idle, .99):.1f} ms | | |")
    print(f"| enqueue→callback, under load ({achieved:,.0f} deliveries/s on another queue) | "
          f"p50 {pct(loaded, .5):.1f} ms, p99 {pct(loaded, .99):.1f} ms | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20000, help="jobs for the throughput figure (default 20000)")
    parser.add_argument("--concurrency", type=int, default=64, help="queue concurrency = ceiling's requests in flight")
    parser.add_argument("--samples", type=int, default=200, help="latency samples, idle and under load (default 200)")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--processes", default="auto", help="the server's [delivery] processes (default auto)")
    args = parser.parse_args()
    print(f"rotor-lite delivery benchmark — synchronous={args.synchronous}, processes={args.processes} — {machine()}",
          flush=True)
    with Processes() as procs, tempfile.TemporaryDirectory() as tmp:
        receiver = start_receiver(procs)
        server = start_server(procs, Path(tmp) / "data", args.synchronous, ROTOR_DELIVERY_PROCESSES=args.processes)
        run_event_loop(run(args, receiver, server.url, server.proc.pid))


if __name__ == "__main__":
    main()
