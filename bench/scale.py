"""Cost of the hot statements and of the count reads as the jobs table grows: 1,000, 1,000,000 and
10,000,000 rows; server RSS.

    python bench/scale.py [--max-rows 10000000] [--synchronous FULL|NORMAL]

One data dir per size is made by a real `rotor-lite serve` (so the schema is the migrations' own),
then its jobs table is filled with plain SQL, in the shape a busy server leaves it: the first 1,000
rows are waiting (the backlog claims take from), then per 100 jobs about 97 completed, 1 failed,
1 waiting, and 1 in 1,000 delayed into the future, all finished within the retention window (so a
prune pass finds nothing to delete); the per-queue counters are then rebuilt from the table as
`rotor-lite admin recount` does. On each database, with no server running (claims and inserts
taking turns across the sizes, so a busy moment of a shared machine hits every size alike):

- claim: the dispatcher's claim transaction (promote due jobs, lease up to 64 waiting jobs, find
  the next delayed one), rolled back so every run claims the same rows; median and p99 of 300;
- enqueue: the store's insert of 1,000 jobs in one committed transaction, and of 1 job per commit
  (the fsync dominates the latter), medians (the rows are deleted afterwards);
- prune: one retention pass over the workspace that finds nothing to delete (the sweeper runs it
  every `retention.sweep_interval` inside the writer's transaction);
- full count: the per-state count of the queue's jobs, which the counts were read with before the
  counters (and what `rotor-lite admin recount` pays once).

Then a real server is started on each data dir: start-up time, its VmRSS right after start, batch
enqueues over HTTP every 100 ms for 5 s (p50 and max: the sweeper's first prune pass runs 1 s after
start, inside the writer). With all the servers up, the reads of counts take turns across the sizes:
`GET /v1/queues/:name/stats`, `GET /metrics` and `GET /v1/queues` (p50 and p99 of 300 each); then
VmRSS / VmHWM from /proc/<pid>/status. 10M rows take a few minutes to build and about 2 GB of disk in
the temp dir; `--max-rows` leaves out the larger sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from _common import (
    PAYLOAD,
    Api,
    Processes,
    client_session,
    machine,
    pct,
    rss_kb,
    run_event_loop,
    Server,
    start_server,
)

SIZES = (1_000, 1_000_000, 10_000_000)
FILL_CHUNK = 500_000
RETENTION_MS = 7 * 86_400_000
READS = ("stats", "metrics", "queues")
READ_SAMPLES = 300


@dataclass
class Figures:
    rows: int
    claim_us: tuple[float, float]
    batch_ms: float
    single_ms: float
    prune_ms: float
    full_count_ms: float
    start_s: float = 0.0
    http_batch_ms: tuple[float, float] = (0.0, 0.0)
    reads_ms: dict[str, tuple[float, float]] = field(default_factory=dict)  # READS → (p50, p99)
    rss_start_mb: float = 0.0
    rss_mb: tuple[float, float] = (0.0, 0.0)


def fill(conn: Any, queue_rowid: int, workspace_id: str, start: int, end: int, now: int) -> None:
    """Rows `start`..`end`-1 of the synthetic table, in chunks (a huge single transaction bloats the WAL)."""
    payload = msgspec.json.encode(PAYLOAD)
    base = now - 6 * 86_400_000  # a day inside the retention window
    for lo in range(start, end, FILL_CHUNK):
        hi = min(end, lo + FILL_CHUNK)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "WITH RECURSIVE seq(x) AS (SELECT :lo UNION ALL SELECT x + 1 FROM seq WHERE x + 1 < :hi)"
            " INSERT INTO job (id, queue_id, workspace_id, state, payload, attempts, max_attempts, run_at,"
            " created_at, started_at, finished_at, result)"
            " SELECT printf('job_%012x%020x', :base + x / 1000, x), :q, :ws, s,"
            " :payload, CASE WHEN s IN ('completed', 'failed') THEN 1 ELSE 0 END, 3,"
            " CASE s WHEN 'delayed' THEN :now + 86400000 ELSE :base + x / 1000 END, :base + x / 1000,"
            " CASE WHEN s IN ('completed', 'failed') THEN :base + x / 1000 END,"
            " CASE WHEN s IN ('completed', 'failed') THEN :base + x / 1000 + 5 END,"
            " CASE s WHEN 'completed' THEN x'7b226f6b223a747275657d' END"
            " FROM (SELECT x, CASE WHEN x < 1000 OR x % 100 = 0 THEN 'waiting' WHEN x % 1000 = 7 THEN 'delayed'"
            " WHEN x % 100 = 1 THEN 'failed' ELSE 'completed' END AS s FROM seq)",
            {"lo": lo, "hi": hi, "base": base, "q": queue_rowid, "ws": workspace_id, "payload": payload, "now": now},
        )
        conn.execute("COMMIT")


def recount(conn: Any) -> None:
    """The counters of the rows `fill` wrote behind the store's back, as `rotor-lite admin recount` rebuilds them."""
    from rotor_lite.store import counts

    conn.execute("BEGIN IMMEDIATE")
    counts.recount(conn)
    conn.execute("COMMIT")


def timed(fn: Callable[[], Any], runs: int, warmup: int = 5) -> list[float]:
    """Seconds per call of `fn`, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


class StoreBench:
    """The hot statements of the store on one data dir's database (server stopped)."""

    def __init__(self, data_dir: Path, synchronous: str, queue_rowid: int, workspace_id: str) -> None:
        from rotor_lite.store.db import connect

        self.conn = connect(data_dir / "rotor.db", synchronous)
        self.queue_rowid, self.workspace_id = queue_rowid, workspace_id
        self.last_rowid = self.conn.execute("SELECT max(rowid) FROM job").fetchone()[0]
        self.payload = msgspec.json.encode(PAYLOAD)

    def claim(self) -> None:
        """The dispatcher's claim transaction, rolled back so that every run claims the same rows."""
        from rotor_lite.store import jobs as job_store

        now = int(time.time() * 1000)
        self.conn.execute("BEGIN IMMEDIATE")
        job_store.promote_due(self.conn, now)
        claimed = job_store.acquire_jobs(self.conn, queue_rowid=self.queue_rowid, workspace_id=self.workspace_id,
                                         limit=64, owner="bench", lease_ms=60_000, now=now, key_recheck_ms=10_000,
                                         key_ttl_ms=300_000)
        job_store.next_delayed_at(self.conn)
        self.conn.execute("ROLLBACK")
        assert len(claimed) == 64, len(claimed)

    def insert(self, count: int) -> None:
        """The store's insert of `count` new jobs, committed."""
        from rotor_lite.ids import new_id, new_ids
        from rotor_lite.models import Job, JobState
        from rotor_lite.store import jobs as job_store

        now = int(time.time() * 1000)
        ids = new_ids("job", now, count) if count > 1 else [new_id("job", now)]
        jobs = [Job(rowid=0, id=i, queue_id=self.queue_rowid, queue_name="scale", workspace_id=self.workspace_id,
                    state=JobState.WAITING, payload=self.payload, tags=[], concurrency_key=None, priority=0,
                    attempts=0, max_attempts=3, run_at=now, created_at=now) for i in ids]
        self.conn.execute("BEGIN IMMEDIATE")
        job_store.insert_jobs(self.conn, self.queue_rowid, jobs)
        self.conn.execute("COMMIT")

    def prune(self) -> None:
        from rotor_lite.store import jobs as job_store

        self.conn.execute("BEGIN IMMEDIATE")
        job_store.prune_finished(self.conn, self.workspace_id, int(time.time() * 1000) - RETENTION_MS)
        self.conn.execute("ROLLBACK")

    def full_count(self) -> None:
        self.conn.execute("SELECT state, count(*) FROM job WHERE queue_id = ? GROUP BY state",
                          (self.queue_rowid,)).fetchall()

    def close(self) -> None:
        """Delete what the measurements inserted (with their counts), so the table holds what its size says."""
        from rotor_lite.store import counts

        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("DELETE FROM job WHERE rowid > ?", (self.last_rowid,))
        counts.recount(self.conn)
        self.conn.execute("COMMIT")
        self.conn.close()


def interleaved(benches: dict[int, Callable[[], Any]], runs: int, rounds: int) -> dict[int, list[float]]:
    """Samples of each size's `fn`, the sizes taking turns (so a busy moment of the machine hits them alike)."""
    samples: dict[int, list[float]] = {size: [] for size in benches}
    for _ in range(rounds):
        for size, fn in benches.items():
            samples[size] += timed(fn, runs, warmup=2)
    return samples


def measure_stores(stores: dict[int, StoreBench]) -> dict[int, Figures]:
    """Every store figure at every size; claims and inserts interleaved across sizes."""
    claims = interleaved({n: b.claim for n, b in stores.items()}, 30, 10)
    batches = interleaved({n: functools.partial(b.insert, 1000) for n, b in stores.items()}, 2, 5)
    singles = interleaved({n: functools.partial(b.insert, 1) for n, b in stores.items()}, 10, 5)
    return {
        n: Figures(
            rows=n, claim_us=(statistics.median(claims[n]) * 1e6, pct(claims[n], 0.99) * 1e6),
            batch_ms=statistics.median(batches[n]) * 1000, single_ms=statistics.median(singles[n]) * 1000,
            prune_ms=statistics.median(timed(b.prune, 3, 1)) * 1000,
            full_count_ms=statistics.median(timed(b.full_count, 3, 1)) * 1000,
        )
        for n, b in stores.items()
    }


async def exercise_server(url: str, queue: str) -> list[float]:
    """HTTP batch enqueue times in ms (1,000 jobs, every 100 ms for 5 s: the first prune pass runs 1 s after start)."""
    async with client_session() as session:
        api = Api(session, url)
        batch = []
        started = time.perf_counter()
        while time.perf_counter() - started < 5:
            t0 = time.perf_counter()
            await api.enqueue_backlog(queue, 1000)
            batch.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.1)
        return batch


async def read_counts(urls: dict[int, str], queue: str) -> dict[int, dict[str, list[float]]]:
    """Milliseconds per call of each count read on each server, the servers taking turns."""
    paths = {"stats": f"/v1/queues/{queue}/stats", "metrics": "/metrics", "queues": "/v1/queues"}
    samples: dict[int, dict[str, list[float]]] = {size: {read: [] for read in READS} for size in urls}
    async with client_session() as session:
        apis = {size: Api(session, url) for size, url in urls.items()}
        for round_ in range(READ_SAMPLES + 10):
            for size, api in apis.items():
                for read in READS:
                    t0 = time.perf_counter()
                    await api.text(paths[read])
                    if round_ >= 10:  # the first rounds warm up connections and caches
                        samples[size][read].append((time.perf_counter() - t0) * 1000)
    return samples


def measure_servers(procs: Processes, made: dict[int, Path], synchronous: str, results: dict[int, Figures]) -> None:
    servers: dict[int, Server] = {}
    for size, data_dir in made.items():
        started = time.perf_counter()
        servers[size] = start_server(procs, data_dir, synchronous)
        results[size].start_s = time.perf_counter() - started
        results[size].rss_start_mb = rss_kb(servers[size].proc.pid)[0] / 1024
    for size, server in servers.items():
        batch = run_event_loop(exercise_server(server.url, "scale"))
        results[size].http_batch_ms = (statistics.median(batch), max(batch))
    reads = run_event_loop(read_counts({size: server.url for size, server in servers.items()}, "scale"))
    for size, server in servers.items():
        results[size].reads_ms = {read: (statistics.median(v), pct(v, 0.99)) for read, v in reads[size].items()}
        rss, hwm = rss_kb(server.proc.pid)
        results[size].rss_mb = (rss / 1024, hwm / 1024)
        procs.stop(server.proc)


async def _create_queue(url: str) -> None:
    async with client_session() as session:
        await Api(session, url).create_queue("scale")  # no callback_url: nothing gets delivered


def prepare(procs: Processes, data_dir: Path, synchronous: str) -> tuple[int, str]:
    """A data dir made by a real server, with queue `scale`; returns the queue's rowid and workspace."""
    server = start_server(procs, data_dir, synchronous)
    run_event_loop(_create_queue(server.url))
    procs.stop(server.proc)
    from rotor_lite.store.db import connect

    conn = connect(data_dir / "rotor.db", synchronous)
    rowid, workspace = conn.execute("SELECT rowid, workspace_id FROM queue WHERE name = 'scale'").fetchone()
    conn.close()
    return rowid, workspace


def print_table(results: list[Figures]) -> None:
    base = results[0]
    print("\n| jobs in table | claim (64 jobs) p50 / p99 | vs 1k | store insert 1,000 / 1 (with commit) "
          "| prune pass (nothing due) | full count (before the counters) | server start "
          "| HTTP batch enqueue p50 / max | RSS at start / after work (peak) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in results:
        print(f"| {f.rows:,} | {f.claim_us[0]:,.0f} / {f.claim_us[1]:,.0f} µs "
              f"| {f.claim_us[0] / base.claim_us[0]:.2f}× | {f.batch_ms:.1f} / {f.single_ms:.2f} ms "
              f"| {f.prune_ms:,.1f} ms | {f.full_count_ms:,.1f} ms | {f.start_s:.1f} s "
              f"| {f.http_batch_ms[0]:.0f} / {f.http_batch_ms[1]:,.0f} ms "
              f"| {f.rss_start_mb:.0f} / {f.rss_mb[0]:.0f} ({f.rss_mb[1]:.0f}) MB |")
    print(f"\nCount reads over HTTP, p50 / p99 of {READ_SAMPLES} (the sizes taking turns), and p50 against 1k:\n")
    print("| jobs in table | GET /v1/queues/:name/stats | vs 1k | GET /metrics | vs 1k | GET /v1/queues | vs 1k |")
    print("|---|---|---|---|---|---|---|")
    for f in results:
        cells = [f"{f.reads_ms[r][0]:.2f} / {f.reads_ms[r][1]:.2f} ms | {f.reads_ms[r][0] / base.reads_ms[r][0]:.2f}×"
                 for r in READS]
        print(f"| {f.rows:,} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-rows", type=int, default=10_000_000, help="largest table size (default 10,000,000)")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    args = parser.parse_args()
    from rotor_lite.store.db import connect

    print(f"rotor-lite scale benchmark — synchronous={args.synchronous} — {machine()}", flush=True)
    with Processes() as procs, tempfile.TemporaryDirectory() as tmp:
        made: dict[int, tuple[Path, int, str]] = {}
        for size in [s for s in SIZES if s <= args.max_rows]:
            data_dir = Path(tmp) / f"data-{size}"
            queue_rowid, workspace = prepare(procs, data_dir, args.synchronous)
            conn = connect(data_dir / "rotor.db", args.synchronous)
            started = time.perf_counter()
            fill(conn, queue_rowid, workspace, 0, size, int(time.time() * 1000))
            built = time.perf_counter()
            recount(conn)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            print(f"built a table of {size:,} rows in {built - started:.1f} s, counted it in "
                  f"{time.perf_counter() - built:.1f} s", flush=True)
            made[size] = (data_dir, queue_rowid, workspace)
        stores = {n: StoreBench(d, args.synchronous, q, ws) for n, (d, q, ws) in made.items()}
        results = measure_stores(stores)
        for store in stores.values():
            store.close()
        measure_servers(procs, {size: data_dir for size, (data_dir, _, _) in made.items()}, args.synchronous, results)
    print_table(list(results.values()))


if __name__ == "__main__":
    main()
