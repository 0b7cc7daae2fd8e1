"""Enqueue over HTTP, each figure beside its ceiling measured in the same run.

    python bench/enqueue.py [--seconds 10] [--synchronous FULL|NORMAL|both] [--connections 1,32,128]

Single-job enqueue (`POST /v1/queues/:name/jobs`) under wrk at 1, 32 and 128 connections, and
batch enqueue (1,000 jobs per request, 4 connections). Ceilings, measured right before each figure:
- a bare Litestar app (`bare_app.py`) decoding the same body with msgspec and answering 201,
  under the same wrk load;
- for batch enqueue also SQLite itself: the same rows inserted 1,000 per transaction into a
  temp file built by rotor-lite's migrations (same indexes), same WAL and `synchronous` setting.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from _common import (
    HERE,
    PAYLOAD,
    Api,
    Processes,
    client_session,
    free_port,
    machine,
    run_event_loop,
    run_wrk,
    start_server,
    wait_http,
)

BATCH = 1000
BATCH_CONNECTIONS = 4


@dataclass
class Row:
    figure: str
    rotor: str
    ceiling: str
    ratio: float


def sqlite_ceiling(synchronous: str, seconds: float) -> float:
    """Rows/s inserting the enqueue rows 1,000 per transaction, with the schema's indexes and this durability."""
    from rotor_lite.ids import new_ids
    from rotor_lite.store.db import connect, migrate

    payload = msgspec.json.encode(PAYLOAD)
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "ceiling.db", synchronous)
        migrate(conn)
        rows = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            now = int(time.time() * 1000)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO job (id, queue_id, workspace_id, state, payload, tags, concurrency_key, priority,"
                " max_attempts, run_at, created_at) VALUES (?, 1, 'ws_bench', 'waiting', ?, NULL, NULL, 0, 3, ?, ?)",
                [(job_id, payload, now, now) for job_id in new_ids("job", now, BATCH)],
            )
            conn.execute("COMMIT")
            rows += BATCH
        elapsed = time.perf_counter() - started
        conn.close()
    return rows / elapsed


def start_bare_app(procs: Processes) -> str:
    port = free_port()
    proc = procs.start([sys.executable, str(HERE / "bare_app.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/", proc=proc)
    return url


def _single(rotor_url: str, bare_url: str, connections: int, seconds: int) -> Row:
    bare = run_wrk(bare_url, "enqueue.lua", connections, seconds, QUEUE="single")
    mine = run_wrk(rotor_url, "enqueue.lua", connections, seconds, QUEUE="single")
    return Row(
        f"single enqueue, {connections} conn.",
        f"{mine.rps:,.0f} jobs/s, {mine.latency()}{mine.failures()}",
        f"bare Litestar {bare.rps:,.0f} req/s, {bare.latency()}",
        mine.rps / bare.rps,
    )


def _batch(rotor_url: str, bare_url: str, synchronous: str, seconds: int) -> Row:
    rows_per_s = sqlite_ceiling(synchronous, min(seconds, 5))
    bare = run_wrk(bare_url, "batch.lua", BATCH_CONNECTIONS, seconds, QUEUE="bulk")
    mine = run_wrk(rotor_url, "batch.lua", BATCH_CONNECTIONS, seconds, QUEUE="bulk")
    return Row(
        f"batch enqueue ({BATCH:,}/request, {BATCH_CONNECTIONS} conn.)",
        f"{mine.rps * BATCH:,.0f} jobs/s ({mine.rps:,.1f} req/s), {mine.latency()}{mine.failures()}",
        f"SQLite {rows_per_s:,.0f} rows/s; bare Litestar {bare.rps * BATCH:,.0f} jobs/s",
        mine.rps * BATCH / rows_per_s,
    )


async def _make_queues(url: str) -> None:
    async with client_session() as session:
        api = Api(session, url)
        await api.create_queue("single")
        await api.create_queue("bulk")


def measure(procs: Processes, bare_url: str, synchronous: str, args: argparse.Namespace) -> list[Row]:
    """Every figure for one `synchronous` setting, on a fresh server and data dir."""
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(procs, Path(tmp) / "data", synchronous)
        run_event_loop(_make_queues(server.url))
        rows = [_single(server.url, bare_url, c, args.seconds) for c in args.connections]
        rows.append(_batch(server.url, bare_url, synchronous, args.seconds))
        procs.stop(server.proc)
    return rows


def print_table(synchronous: str, rows: list[Row]) -> None:
    print(f"\nsynchronous={synchronous}\n")
    print("| figure | rotor-lite | ceiling (same run) | ratio |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row.figure} | {row.rotor} | {row.ceiling} | {row.ratio:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run (default 10)")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "both"])
    parser.add_argument("--connections", default="1,32,128", type=lambda s: [int(x) for x in s.split(",")],
                        help="wrk connections for single enqueue (default 1,32,128)")
    args = parser.parse_args()
    print(f"rotor-lite enqueue benchmark — {machine()}", flush=True)
    settings = ["FULL", "NORMAL"] if args.synchronous == "both" else [args.synchronous]
    with Processes() as procs:
        bare_url = start_bare_app(procs)
        for synchronous in settings:
            print_table(synchronous, measure(procs, bare_url, synchronous, args))


if __name__ == "__main__":
    main()
