"""Pull workers beside callbacks, and the cost of a fair claim.

    python bench/workers.py [--jobs 20000] [--concurrency 64] [--samples 200] [--claim-jobs 1000000] [--quick]

- jobs/s completed by 1 and by 4 `rotor worker` processes (a no-op processor, the queue's concurrency
  `--concurrency` shared between them), beside the callback figure of the same run (the Node receiver,
  same concurrency): `--jobs` jobs enqueued into a paused queue, then resumed; time until the last one
  is completed (its state committed).
- lease-to-complete latency: a completed job's `finishedAt - startedAt` (its lease, the worker's round
  trip and the commit of its completion), p50/p99 over the last 500 jobs of each run; a callback job's
  is its delivery.
- enqueue→worker latency: one job every 20 ms into an idle pull queue whose one worker long-polls;
  from sending the enqueue request to the processor starting.
- claim cost: the median µs of one claim (1, 10 and 100 jobs) on the store, with `--claim-jobs` waiting
  jobs in a plain queue and as many in a fair queue over 10,000 keys (one hot key holds 90 % of them):
  fairness on vs off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import (
    HERE, KEY, Api, Processes, client_session, machine, pct, rotor_throughput, run_event_loop, start_receiver,
    start_server,
)


def start_workers(procs: Processes, url: str, queue: str, count: int, concurrency: int, processor: str,
                  **env: str) -> list[Any]:
    return [
        procs.start(
            [sys.executable, "-m", "rotor_lite", "worker", f"worker_app:{processor}", "--queue", queue,
             "--concurrency", str(concurrency), "--log-level", "warning"],
            env={**os.environ, "ROTOR_API_KEY": KEY, "ROTOR_API_URL": url, **env}, cwd=HERE,
        )
        for _ in range(count)
    ]


async def pulled_throughput(api: Api, procs: Processes, queue: str, jobs: int, workers: int, concurrency: int) -> float:
    """Jobs/s completed by `workers` worker processes sharing the queue's `concurrency`."""
    await api.create_queue(queue, concurrency=concurrency)
    await api.call("POST", f"/v1/queues/{queue}/pause")
    await api.enqueue_backlog(queue, jobs)
    started_workers = start_workers(procs, api.url, queue, workers, max(1, concurrency // workers), "noop")
    await asyncio.sleep(2)  # the workers start (Python, imports) and wait in their long polls
    started = time.perf_counter()
    await api.call("POST", f"/v1/queues/{queue}/resume")
    await api.wait_completed(queue, jobs, every=0.005)
    elapsed = time.perf_counter() - started
    for proc in started_workers:
        procs.stop(proc)
    return jobs / elapsed


async def lease_to_complete(api: Api, queue: str) -> list[float]:
    """finishedAt - startedAt of the queue's last 500 completed jobs, in ms."""
    page = await api.call("GET", f"/v1/queues/{queue}/jobs?state=completed&limit=500")
    return [_ms(job["finishedAt"]) - _ms(job["startedAt"]) for job in page["data"]]


async def enqueue_to_worker(api: Api, procs: Processes, samples: int, stamps: Path) -> list[float]:
    await api.create_queue("pull-latency", concurrency=8)
    [worker] = start_workers(procs, api.url, "pull-latency", 1, 8, "stamp", BENCH_STAMPS=str(stamps))
    await asyncio.sleep(2)
    sent: dict[str, float] = {}
    for _ in range(samples):
        t0 = time.time() * 1000
        job = await api.call("POST", "/v1/queues/pull-latency/jobs", {"payload": {"n": 1}})
        sent[job["id"]] = t0
        await asyncio.sleep(0.02)
    await api.wait_completed("pull-latency", samples)
    procs.stop(worker)
    arrived = dict(line.split() for line in stamps.read_text().splitlines())
    return [float(arrived[job_id]) - t0 for job_id, t0 in sent.items() if job_id in arrived]


def _ms(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000


# The claim --------------------------------------------------------------------------------------------


def claim_costs(jobs: int, keys: int = 10_000, repeats: int = 300) -> dict[str, dict[int, float]]:
    """Median µs of a claim of 1, 10 and 100 jobs, plain and fair, with `jobs` waiting jobs in each queue."""
    from rotor_lite.models import BackoffType, Queue, QueueState
    from rotor_lite.services.fairness import Turns
    from rotor_lite.store import jobs as job_store
    from rotor_lite.store.db import connect, migrate

    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "claim.db", "NORMAL")
        migrate(conn)
        conn.execute("BEGIN")
        hot = jobs * 9 // 10
        conn.executemany(
            "INSERT INTO job (id, queue_id, workspace_id, state, payload, max_attempts, run_at, created_at, group_key)"
            " VALUES (?, ?, 'ws_x', 'waiting', x'7b226e223a317d', 3, ?, ?, ?)",
            ((f"job_{queue}_{i:030x}", queue, i, i, None if queue == 1 else "hot" if i < hot else f"k{i % keys:05d}")
             for queue in (1, 2) for i in range(jobs)),
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        fair_queue = Queue(
            rowid=2, workspace_id="ws_x", name="fair", concurrency=100, max_attempts=3,
            backoff_type=BackoffType.EXPONENTIAL, backoff_delay_ms=0, callback_url=None, callback_headers={},
            callback_secret=None, approval_required=False, timeout_ms=30_000, state=QueueState.ACTIVE, created_at=0,
            updated_at=0, fairness_key="payload.tenant",
        )
        turns = Turns()
        costs: dict[str, dict[int, float]] = {"off": {}, "on": {}}
        for limit in (1, 10, 100):
            costs["off"][limit] = _median_claim(conn, repeats, lambda: job_store.acquire_jobs(
                conn, queue_rowid=1, workspace_id="ws_x", limit=limit, owner="b", lease_ms=1000, now=1,
                key_recheck_ms=1, key_ttl_ms=1))
            costs["on"][limit] = _median_claim(conn, repeats, lambda: job_store.acquire_jobs(
                conn, queue_rowid=2, workspace_id="ws_x", limit=limit, owner="b", lease_ms=1000, now=1,
                key_recheck_ms=1, key_ttl_ms=1, turns=turns.for_claim(fair_queue, 1)))
        conn.close()
        return costs


def _median_claim(conn: Any, repeats: int, claim: Callable[[], list[Any]]) -> float:
    """Each claim runs in its own transaction, rolled back: every claim sees the same table."""
    timings = []
    for _ in range(repeats):
        conn.execute("BEGIN IMMEDIATE")
        started = time.perf_counter()
        assert claim()
        timings.append((time.perf_counter() - started) * 1e6)
        conn.execute("ROLLBACK")
    return statistics.median(timings)


# Main ---------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, procs: Processes, url: str, receiver: str, tmp: Path) -> None:
    async with client_session() as session:
        api = Api(session, url)
        callback, _, _ = await rotor_throughput(api, receiver, "callback", args.jobs, args.concurrency)
        callback_lat = await lease_to_complete(api, "callback")
        one = await pulled_throughput(api, procs, "pull-1", args.jobs, 1, args.concurrency)
        one_lat = await lease_to_complete(api, "pull-1")
        four = await pulled_throughput(api, procs, "pull-4", args.jobs, 4, args.concurrency)
        four_lat = await lease_to_complete(api, "pull-4")
        idle = await enqueue_to_worker(api, procs, args.samples, tmp / "stamps.txt")
    print(f"\n| figure ({args.jobs:,} jobs, concurrency {args.concurrency}) | jobs/s completed | "
          "lease-to-complete p50 / p99 |\n|---|---|---|")
    for name, rate, lat in (("callbacks (Node receiver, signed)", callback, callback_lat),
                            ("1 worker process", one, one_lat), ("4 worker processes", four, four_lat)):
        print(f"| {name} | {rate:,.0f} | {pct(lat, .5):.1f} / {pct(lat, .99):.1f} ms |")
    print(f"\nenqueue→worker, idle worker long-polling: p50 {pct(idle, .5):.1f} ms, p99 {pct(idle, .99):.1f} ms "
          f"({len(idle)} samples)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--claim-jobs", type=int, default=1_000_000, help="waiting jobs per queue for the claim cost")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.samples, args.claim_jobs = 3000, 50, 100_000
    print(f"rotor-lite pull-worker benchmark — synchronous={args.synchronous} — {machine()}", flush=True)
    with Processes() as procs, tempfile.TemporaryDirectory() as tmp:
        receiver = start_receiver(procs)
        server = start_server(procs, Path(tmp) / "data", args.synchronous)
        run_event_loop(run(args, procs, server.url, receiver, Path(tmp)))
    costs = claim_costs(args.claim_jobs)
    print(f"\n| claim of | fairness off | fairness on (10,000 keys) | on / off |\n|---|---|---|---|")
    for limit in (1, 10, 100):
        off, on = costs["off"][limit], costs["on"][limit]
        print(f"| {limit} job{'s' if limit > 1 else ''} ({args.claim_jobs:,} waiting) | {off:.0f} µs | {on:.0f} µs | "
              f"{on / off:.2f}× |")


if __name__ == "__main__":
    main()
