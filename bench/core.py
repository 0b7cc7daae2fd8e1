"""A quick look at every hot path at once (the detailed benchmarks are enqueue, deliver, compare, scale).

    python bench/core.py [--synchronous FULL|NORMAL] [--jobs 20000] [--quick]

Batch and single enqueue under wrk, end-to-end deliveries/s to the Node receiver, idle
enqueue→callback latency, and the claim cost with 1,000 vs 1,000,000 finished jobs in the table.
No ceilings here: `enqueue.py` and `deliver.py` print each figure beside its ceiling.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import (
    Api,
    Processes,
    client_session,
    machine,
    pct,
    probe_latency,
    rotor_throughput,
    run_event_loop,
    run_wrk,
    start_receiver,
    start_server,
)


def bench_claim_cost(finished: int) -> float:
    """Median µs of one claim of 10 jobs with `finished` completed jobs in the table (direct on the store)."""
    from rotor_lite.store import jobs as job_store
    from rotor_lite.store.db import connect, migrate

    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "claim.db", "NORMAL")
        migrate(conn)
        conn.execute("BEGIN")
        rows = ((f"job_{i:032x}", "completed" if i < finished else "waiting") for i in range(finished + 1000))
        conn.executemany("INSERT INTO job (id, queue_id, workspace_id, state, payload, max_attempts, run_at,"
                         " created_at)"
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


async def deliveries(url: str, receiver: str, jobs: int, samples: int) -> tuple[float, list[float]]:
    async with client_session() as session:
        api = Api(session, url)
        rate, _, _ = await rotor_throughput(api, receiver, "e2e", jobs, 128)
        await api.create_queue("latency", concurrency=8, callback_url=receiver + "/lat")
        return rate, await probe_latency(api, receiver, "latency", samples)


async def make_queues(url: str) -> None:
    async with client_session() as session:
        await Api(session, url).create_queue("bulk")
        await Api(session, url).create_queue("single")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs for the end-to-end figure")
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    args = parser.parse_args()
    seconds = 3 if args.quick else 10
    print(f"rotor-lite core benchmark — synchronous={args.synchronous} — {machine()}")
    with Processes() as procs, tempfile.TemporaryDirectory() as tmp:
        server = start_server(procs, Path(tmp) / "data", args.synchronous)
        receiver = start_receiver(procs)
        run_event_loop(make_queues(server.url))
        batch = run_wrk(server.url, "batch.lua", 4, seconds, QUEUE="bulk")
        print(f"batch enqueue (wrk, 1,000/request, 4 conn.): {batch.rps * 1000:,.0f} jobs/s, "
              f"{batch.latency()}{batch.failures()}")
        single = run_wrk(server.url, "enqueue.lua", 32, seconds, QUEUE="single")
        print(f"single enqueue (wrk, 32 connections):        {single.rps:,.0f} jobs/s, "
              f"{single.latency()}{single.failures()}")
        jobs, samples = (5000, 50) if args.quick else (args.jobs, 200)
        rate, lat = run_event_loop(deliveries(server.url, receiver, jobs, samples))
        print(f"end to end (signed, completed, conc. 128):   {rate:,.0f} deliveries/s")
        print(f"enqueue→callback latency, idle:              p50 {pct(lat, .5):.1f} ms, p99 {pct(lat, .99):.1f} ms")
    large = 100_000 if args.quick else 1_000_000
    small, big = bench_claim_cost(1_000), bench_claim_cost(large)
    print(f"claim of 10 jobs: {small:.0f} µs with 1,000 finished jobs, {big:.0f} µs with {large:,} "
          f"({big / small:.2f}×)")


if __name__ == "__main__":
    main()
