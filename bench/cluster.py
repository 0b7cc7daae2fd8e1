"""Several `rotor-lite serve` nodes on one PostgreSQL, beside the SQLite single node and BullMQ.

    python bench/cluster.py [--parts enqueue,deliver,claim10m,failover] [--nodes 1,2,3] [--jobs 20000]
                            [--concurrency 64] [--claim-rows 10000000] [--failover-rounds 3] [--quick]
                            [--json PATH]

Starts everything itself on 127.0.0.1 and stops it: a throwaway PostgreSQL cluster (tests/pg_cluster.py:
Debian's binaries, fsync off — the figures are about CPU, not disks), the Node receiver, BullMQ on a private
redis-server (bench/compare.py's runner), and the nodes. Every node of a PostgreSQL run shares one fresh
database (same `ROTOR_STORAGE_URL` and `ROTOR_SECURITY_MASTER_KEY`), with a data dir and a port of its own.

- enqueue: `--jobs` jobs batch-enqueued (1,000 per request, `--inflight` requests in flight per node, dealt
  round-robin to the nodes) into a pull queue nobody pulls (nothing but the writes): batch enqueue jobs/s.
- deliver, end to end: the same again into a callback queue (concurrency `--concurrency`, signed, verified by
  the receiver) while the nodes deliver; from the first request until the last job is completed: jobs/s.
  BullMQ (compare.py's worker script: addBulk, then a Worker with the same concurrency): its jobs over
  enqueue + delivery time. The queues are made on node 0 before the other nodes start, so the figures do
  not depend on how fast a node learns of a queue made on another one.
- CPU per job: user+sys from /proc/<pid>/stat during each phase, per node (the node, its delivery helpers,
  and their exited children), for PostgreSQL (the postmaster and every backend), and for this script
  (the load generator); BullMQ: redis-server and the Node worker.
- claim10m: one node on a database whose job table holds `--claim-rows` finished jobs (bulk-loaded with
  generate_series, then VACUUM ANALYZE) in the measured queue, beside one on an empty database:
  enqueue→callback latency (one job every 20 ms) and deliveries/s of a backlog; the ratio 10M/empty.
- failover: 3 nodes, a schedule firing every second (`* * * * * *`); the cron leader (from
  `GET /v1/status`: `cluster.cronLeader`) is killed with SIGKILL; the time until a tick fires again
  (the first schedule run with `fired_at` after the kill), and which node leads then.

Prints Markdown tables and writes every figure as JSON (`--json`, default bench/.work/cluster.json).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import resource
import signal
import sys
import tempfile
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from datetime import datetime
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from _common import (
    PAYLOAD,
    WORK,
    Api,
    Processes,
    Server,
    client_session,
    machine,
    pct,
    probe_latency,
    receiver_get,
    receiver_stats,
    run_event_loop,
    start_receiver,
    start_server,
)
from compare import ensure_bullmq, ensure_redis, run_bullmq, start_redis
from soak import children_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pg_cluster import PgCluster  # noqa: E402 - the tests' throwaway cluster, from the repository root

MASTER_KEY = base64.b64encode(b"rotor-lite cluster bench key 32b").decode()
BATCH = 1000
PARTS = ("enqueue", "deliver", "claim10m", "failover")
T = TypeVar("T")


# CPU ---------------------------------------------------------------------------------------------------


def tree_cpu_seconds(pid: int) -> float:
    """User+sys CPU of a process, of its children that exited (cutime/cstime) and of its live descendants.

    For the postmaster this covers every backend, those that ended included; for a node, its delivery helpers.
    A process that is gone counts 0 (a killed node)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        children = children_of(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    own = sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
    return own + sum(tree_cpu_seconds(child) for child in children)


def self_cpu_seconds() -> float:
    """This script's CPU (the load generator and the pollers)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def postmaster_pid(pg: PgCluster) -> int:
    return int((pg.data / "postmaster.pid").read_text().split()[0])


def pid_by_cmdline(fragment: str) -> int | None:
    """The pid of the process whose command line (or the title it set) holds `fragment`."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if fragment in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    return int(entry.name)
            except OSError:
                continue
    return None


@dataclass
class CpuMeter:
    """CPU seconds of named process trees (and of this script) between `start()` and `per_job()`."""

    pids: dict[str, int]
    before: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        return {**{name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}, "client": self_cpu_seconds()}

    def start(self) -> None:
        self.before = self._now()

    def per_job(self, jobs: int) -> dict[str, float]:
        """µs of CPU per job for each tree since `start()`."""
        after = self._now()
        return {name: round((after[name] - self.before[name]) / jobs * 1e6, 1) for name in after}


# PostgreSQL nodes ------------------------------------------------------------------------------------


def start_nodes(procs: Processes, tmp: Path, dsn: str, count: int, tag: str, first: int = 0) -> list[Server]:
    """`count` nodes on database `dsn`, one after the other (the first one migrates)."""
    return [start_server(procs, node_dir(tmp, f"{tag}-node{i}"), ROTOR_STORAGE_URL=dsn,
                         ROTOR_SECURITY_MASTER_KEY=MASTER_KEY)
            for i in range(first, first + count)]


def node_dir(tmp: Path, name: str) -> Path:
    """`tmp/<name>/data`; the node's log goes beside it into `tmp/<name>/`."""
    (tmp / name).mkdir()
    return tmp / name / "data"


def stop_nodes(procs: Processes, nodes: list[Server]) -> None:
    for node in nodes:
        procs.stop(node.proc)


def node_cpu_pids(nodes: list[Server], pg: PgCluster | None) -> dict[str, int]:
    pids = {f"node{i}": node.proc.pid for i, node in enumerate(nodes)}
    if pg is not None:
        pids["postgres"] = postmaster_pid(pg)
    return pids


# Enqueue and deliver ------------------------------------------------------------------------------------


@dataclass
class Run:
    system: str  # "PostgreSQL", "SQLite", "BullMQ"
    nodes: int
    jobs: int
    enqueue_rate: float = 0.0
    deliver_rate: float | None = None
    enqueue_cpu_us: dict[str, float] = field(default_factory=dict)  # tree -> µs per job
    deliver_cpu_us: dict[str, float] = field(default_factory=dict)
    per_node_delivered: list[int] = field(default_factory=list)
    note: str = ""


async def enqueue_round_robin(apis: list[Api], queue: str, jobs: int, inflight: int) -> None:
    """`jobs` jobs in batches of 1,000, `inflight` requests in flight per node, batches dealt to the nodes in turn."""
    body = json.dumps({"jobs": [{"payload": PAYLOAD}] * BATCH}).encode()
    sizes = [min(BATCH, jobs - start) for start in range(0, jobs, BATCH)]
    targets = iter(zip(itertools.cycle(apis), sizes))

    async def sender() -> None:
        for api, size in targets:
            data = body if size == BATCH else json.dumps({"jobs": [{"payload": PAYLOAD}] * size}).encode()
            await api.call("POST", f"/v1/queues/{queue}/jobs/batch", data)

    await asyncio.gather(*(sender() for _ in range(inflight * len(apis))))


async def wait_all_completed(api: Api, receiver: str, queue: str, total: int, baseline: int = 0,
                             stall_s: float = 30) -> None:
    """The receiver saw `total` POSTs, then the queue's stats show `baseline + total` completed; fails when no
    callback arrives for `stall_s` seconds (jobs stuck, e.g. on a node that does not dispatch them)."""
    deadline = time.monotonic() + 900
    seen, progress_at = 0, time.monotonic()
    while seen < total:
        now_seen = (await receiver_stats(api.session, receiver))["count"]
        if now_seen > seen:
            seen, progress_at = now_seen, time.monotonic()
        elif time.monotonic() - progress_at > stall_s:
            raise RuntimeError(f"{queue}: no callback for {stall_s:.0f} s at {seen} of {total}: {await api.stats(queue)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{queue}: the receiver did not see {total} deliveries in time")
        await asyncio.sleep(0.02)
    while True:
        stats = await api.stats(queue)
        if stats["completed"] >= baseline + total:
            return
        if stats["failed"] or time.monotonic() > deadline:
            raise RuntimeError(f"{queue}: {stats} (waiting for {baseline + total} completed)")
        await asyncio.sleep(0.005)


async def create_queues(url: str, receiver: str, concurrency: int) -> str:
    """Queue `enq`, a pull queue with no worker (so the enqueue phase only writes, and no node can deliver it),
    and `bench`, delivering to the receiver; bench's secret."""
    async with client_session() as session:
        api = Api(session, url)
        await api.create_queue("enq", concurrency=concurrency)
        created = await api.create_queue("bench", concurrency=concurrency, callback_url=receiver + "/cb")
        return str(created["callback_secret"])


async def rotor_run(run: Run, nodes: list[Server], pg: PgCluster | None, receiver: str, secret: str,
                    args: argparse.Namespace, deliver: bool) -> Run:
    """Batch enqueue into the pull queue; then, when `deliver`, end to end: the same jobs batch-enqueued into
    the delivering queue, from the first request until the last job is completed."""
    meter = CpuMeter(node_cpu_pids(nodes, pg))
    async with client_session(limit=args.inflight * len(nodes) + 8) as session:
        apis = [Api(session, node.url) for node in nodes]
        meter.start()
        started = time.perf_counter()
        await enqueue_round_robin(apis, "enq", run.jobs, args.inflight)
        run.enqueue_rate = run.jobs / (time.perf_counter() - started)
        run.enqueue_cpu_us = meter.per_job(run.jobs)
        if not deliver:
            return run
        receiver_get(receiver, "/secret?value=" + urllib.parse.quote(secret))
        receiver_get(receiver, "/reset")
        delivered_before = [await delivered_by(api, "bench") for api in apis]
        meter.start()
        started = time.perf_counter()
        await enqueue_round_robin(apis, "bench", run.jobs, args.inflight)
        await wait_all_completed(apis[0], receiver, "bench", run.jobs)
        run.deliver_rate = run.jobs / (time.perf_counter() - started)
        run.deliver_cpu_us = meter.per_job(run.jobs)
        run.per_node_delivered = [await delivered_by(api, "bench") - before
                                  for api, before in zip(apis, delivered_before)]
        seen = await receiver_stats(session, receiver)
        if seen["bad"] or seen["verified"] < run.jobs:
            raise SystemExit(f"signature check failed at the receiver: {seen}")
    return run


async def delivered_by(api: Api, queue: str) -> int:
    """Deliveries of `queue` this node made, whatever their outcome (its `rotor_deliveries_total` in /metrics)."""
    text = await api.text("/metrics")
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("rotor_deliveries_total{") and f'queue="{queue}"' in line))


def bullmq_run(modules: Path, redis_port: int, receiver: str, jobs: int, concurrency: int) -> Run:
    """compare.py's BullMQ runner, with the CPU of redis-server and of the Node worker (a child of this script)."""
    redis = pid_by_cmdline(f"127.0.0.1:{redis_port}")  # redis-server retitles itself "redis-server host:port"
    before_redis = tree_cpu_seconds(redis) if redis else 0.0
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = run_bullmq(modules, redis_port, receiver, jobs, concurrency)
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_s = (after_children.ru_utime - before_children.ru_utime) + (after_children.ru_stime - before_children.ru_stime)
    redis_s = (tree_cpu_seconds(redis) - before_redis) if redis else float("nan")
    # One figure for both phases (the worker script does both and reports only their times): shown as delivery's.
    cpu = {"redis": round(redis_s / jobs * 1e6, 1), "bullmq worker": round(worker_s / jobs * 1e6, 1)}
    end_to_end = jobs / (figures["enqueue_s"] + figures["deliver_s"])
    return Run("BullMQ", 1, jobs, jobs / figures["enqueue_s"], end_to_end, {}, cpu,
               note=f"addBulk, then the worker: {figures['rate']:,.0f} deliveries/s from the worker's start")


def start_cluster(procs: Processes, tmp: Path, dsn: str | None, count: int, tag: str,
                  setup: Callable[[str], Awaitable[T]]) -> tuple[list[Server], T]:
    """Node 0 (on SQLite when `dsn` is None), `setup` run against it, then the other nodes on the same database.

    The other nodes start after the setup, so that they load its queues at their start and the figures do not
    depend on how fast a node learns of a queue made on another one."""
    first = start_server(procs, node_dir(tmp, f"{tag}-node0"),
                         **({} if dsn is None else {"ROTOR_STORAGE_URL": dsn, "ROTOR_SECURITY_MASTER_KEY": MASTER_KEY}))
    made = run_event_loop(setup(first.url))
    rest = [] if dsn is None else start_nodes(procs, tmp, dsn, count - 1, tag, first=1)
    return [first, *rest], made


def throughput_runs(args: argparse.Namespace, procs: Processes, tmp: Path, pg: PgCluster, receiver: str) -> list[Run]:
    deliver = "deliver" in args.parts
    runs: list[Run] = []
    for round_no in range(1, args.rounds + 1):
        if deliver:
            modules, redis_binary = ensure_bullmq(), ensure_redis()
            redis_port = start_redis(procs, redis_binary, tmp, "everysec")
            runs.append(show(bullmq_run(modules, redis_port, receiver, args.jobs, args.concurrency)))
        configs = [("SQLite", None, 1)] + [("PostgreSQL", f"nodes{n}_r{round_no}", n) for n in args.nodes]
        for system, database, count in configs:
            dsn = None if database is None else pg.create_database(database)
            nodes, secret = start_cluster(procs, tmp, dsn, count, f"{system}{count}-{round_no}",
                                          lambda url: create_queues(url, receiver, args.concurrency))
            try:
                runs.append(show(run_event_loop(rotor_run(Run(system, count, args.jobs), nodes,
                                                          None if dsn is None else pg, receiver, secret, args,
                                                          deliver))))
            except (RuntimeError, SystemExit) as error:
                print(f"{system}, {count} node(s): FAILED: {error}\n{log_tail(nodes)}", flush=True)
                runs.append(Run(system, count, args.jobs, note=f"failed: {error}"[:300]))
            finally:
                stop_nodes(procs, nodes)
    return runs


def log_tail(nodes: list[Server], lines: int = 6) -> str:
    out: list[str] = []
    for node in nodes:
        for log in node.data_dir.parent.glob("server-*.log"):
            out += log.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(out)


def show(run: Run) -> Run:
    print(f"  {run.system} × {run.nodes}: enqueue {run.enqueue_rate:,.0f} jobs/s, "
          f"deliver {run.deliver_rate or 0:,.0f}/s", flush=True)
    return run


def cpu_cell(cpu: dict[str, float]) -> str:
    """`node0 12 + node1 11 · postgres 20 · client 3` µs."""
    if not cpu:
        return "–"
    nodes = [f"{v:.0f}" for k, v in cpu.items() if k.startswith("node")]
    rest = [f"{k} {v:.0f}" for k, v in cpu.items() if not k.startswith("node")]
    head = [f"nodes {' + '.join(nodes)} = {sum(v for k, v in cpu.items() if k.startswith('node')):.0f}"] if nodes else []
    return " · ".join(head + rest) + " µs"


def print_runs(runs: list[Run]) -> None:
    print("\n| system | nodes | batch enqueue jobs/s | CPU per enqueued job | end-to-end jobs/s "
          "| CPU per job end to end | deliveries per node | note |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        if run.note.startswith("failed"):
            print(f"| {run.system} | {run.nodes} | failed | | | | {run.note[:120]} |")
            continue
        rate = f"{run.deliver_rate:,.0f}" if run.deliver_rate else "–"
        spread = " / ".join(str(n) for n in run.per_node_delivered) if run.per_node_delivered else "–"
        print(f"| {run.system} | {run.nodes} | {run.enqueue_rate:,.0f} | {cpu_cell(run.enqueue_cpu_us)} | {rate} "
              f"| {cpu_cell(run.deliver_cpu_us)} | {spread} | {run.note} |")


# Claim cost at 10M rows ----------------------------------------------------------------------------------


@dataclass
class ClaimFigures:
    rows: int
    load_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    deliver_rate: float
    deliver_cpu_us: dict[str, float]


async def bulk_load_finished(dsn: str, queue: str, rows: int) -> float:
    """`rows` finished jobs (97 % completed, 3 % failed, finished a day ago: inside retention) in `queue`,
    straight into the job table in 1M-row statements, the queue's counters raised to match; then VACUUM ANALYZE
    as autovacuum would. Returns the seconds it took."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT rowid, workspace_id FROM queue WHERE name = $1", queue)
        assert row is not None, queue
        queue_rowid, workspace = row
        base = int(time.time() * 1000) - 86_400_000
        payload = json.dumps(PAYLOAD).encode()
        for lo in range(0, rows, 1_000_000):
            hi = min(rows, lo + 1_000_000)
            await conn.execute(
                "INSERT INTO job (id, queue_id, workspace_id, state, payload, attempts, max_attempts, run_at,"
                " created_at, started_at, finished_at, result)"
                " SELECT 'job_' || lpad(to_hex($3 + x / 1000), 12, '0') || lpad(to_hex(x), 20, '0'), $4, $5,"
                " CASE WHEN x % 100 < 3 THEN 'failed' ELSE 'completed' END, $6, 1, 3, $3 + x / 1000, $3 + x / 1000,"
                " $3 + x / 1000, $3 + x / 1000 + 5, CASE WHEN x % 100 >= 3 THEN '\\x7b226f6b223a747275657d'::bytea END"
                " FROM generate_series($1::bigint, $2::bigint - 1) AS x",
                lo, hi, base, queue_rowid, workspace, payload)
        await conn.execute(
            "INSERT INTO queue_count (queue_id, state, n) SELECT $1, state, count(*) FROM job WHERE queue_id = $1"
            " AND state IN ('completed', 'failed') GROUP BY state"
            " ON CONFLICT (queue_id, state) DO UPDATE SET n = excluded.n", queue_rowid)
        await conn.execute("VACUUM ANALYZE job")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def claim_measure(node: Server, dsn: str, pg: PgCluster, receiver: str, rows: int,
                        args: argparse.Namespace) -> ClaimFigures:
    async with client_session() as session:
        api = Api(session, node.url)
        created = await api.create_queue("claim", concurrency=args.concurrency, callback_url=receiver + "/lat")
        receiver_get(receiver, "/secret?value=" + urllib.parse.quote(created["callback_secret"]))
        load_s = await bulk_load_finished(dsn, "claim", rows) if rows else 0.0
        receiver_get(receiver, "/reset")
        lat = await probe_latency(api, receiver, "claim", args.samples)
        baseline = (await api.stats("claim"))["completed"]
        await api.call("POST", "/v1/queues/claim/pause")
        await enqueue_round_robin([api], "claim", args.claim_jobs, args.inflight)
        receiver_get(receiver, "/reset")
        meter = CpuMeter(node_cpu_pids([node], pg))
        meter.start()
        started = time.perf_counter()
        await api.call("POST", "/v1/queues/claim/resume")
        await wait_all_completed(api, receiver, "claim", args.claim_jobs, baseline)
        rate = args.claim_jobs / (time.perf_counter() - started)
        return ClaimFigures(rows, round(load_s, 1), round(pct(lat, 0.5), 2), round(pct(lat, 0.99), 2), round(rate),
                            meter.per_job(args.claim_jobs))


def claim_runs(args: argparse.Namespace, procs: Processes, tmp: Path, pg: PgCluster, receiver: str) -> list[ClaimFigures]:
    out: list[ClaimFigures] = []
    for rows in (0, args.claim_rows):
        dsn = pg.create_database(f"claim_{rows}")
        [node] = start_nodes(procs, tmp, dsn, 1, f"claim{rows}")
        try:
            figures = run_event_loop(claim_measure(node, dsn, pg, receiver, rows, args))
        except (RuntimeError, SystemExit) as error:
            print(f"claim10m with {rows:,} rows: FAILED: {error}\n{log_tail([node])}", flush=True)
            return out
        finally:
            procs.stop(node.proc)
        print(f"  {rows:,} finished rows: latency p50 {figures.latency_p50_ms} ms, {figures.deliver_rate:,}/s "
              f"(load {figures.load_s} s)", flush=True)
        out.append(figures)
    return out


def print_claims(claims: list[ClaimFigures]) -> None:
    empty = claims[0]
    print("\n| finished jobs in the table | enqueue→callback p50 / p99 | deliveries/s | CPU per delivery "
          "| latency vs empty | deliveries/s vs empty |")
    print("|---|---|---|---|---|---|")
    for c in claims:
        print(f"| {c.rows:,} | {c.latency_p50_ms:.2f} / {c.latency_p99_ms:.2f} ms | {c.deliver_rate:,} "
              f"| {cpu_cell(c.deliver_cpu_us)} | {c.latency_p50_ms / empty.latency_p50_ms:.2f}× "
              f"| {c.deliver_rate / empty.deliver_rate:.2f}× |")


# Failover ----------------------------------------------------------------------------------------------------


@dataclass
class Failover:
    leader_known: bool
    ticks_per_s_before: float  # runs per second while all nodes are up (above 1: ticks fired twice)
    failover_s: float | None = None  # kill -> first tick fired after it
    tick_gap_s: float | None = None  # last tick before the kill -> first after it
    first_tick_late_ms: float | None = None  # that tick's fired_at - scheduled_for (a caught-up tick?)
    killed: str | None = None  # the leader killed, "node<i>" (node0 made the schedule and started first)
    new_leader: str | None = None
    note: str = ""


def epoch_ms(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000


async def cluster_status(api: Api) -> dict[str, Any] | None:
    """`cluster` of GET /v1/status: {"node", "cronLeader": {"node", "leaseExpiresAt"}}; None where absent."""
    status: dict[str, Any] = await api.call("GET", "/v1/status")
    return status.get("cluster")


async def runs_of(api: Api, schedule: str) -> list[dict[str, Any]]:
    return (await api.call("GET", f"/v1/schedules/{schedule}/runs?limit=100"))["runs"]  # type: ignore[no-any-return]


async def find_leader(apis: list[Api], timeout: float = 15) -> int | None:
    """Index of the node leading the cron (its own node id is the leader's), None when no node says."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, api in enumerate(apis):
            cluster = await cluster_status(api)
            if cluster is None:
                return None  # this build has no cron leadership
            leader = cluster.get("cronLeader")
            if leader and leader.get("node") == cluster.get("node"):
                return i
        await asyncio.sleep(0.1)
    return None


async def create_ticking(url: str, receiver: str) -> str:
    """Queue `tick` and a schedule firing into it every second (6 fields: seconds first); the schedule's id."""
    async with client_session() as session:
        api = Api(session, url)
        await api.create_queue("tick", concurrency=4, callback_url=receiver + "/lat")
        schedule = await api.call("POST", "/v1/schedules", {
            "queue": "tick", "name": "every-second", "cron": "* * * * * *", "timezone": "UTC"})
        return str(schedule["id"])


async def failover_once(nodes: list[Server], schedule: str, watch_s: float) -> Failover:
    """Ticks for `watch_s` with every node up, then SIGKILL to the cron leader; time until a tick fires again."""
    async with client_session() as session:
        apis = [Api(session, node.url) for node in nodes]
        await asyncio.sleep(watch_s)
        fired = [epoch_ms(r["fired_at"]) for r in await runs_of(apis[0], schedule) if r.get("fired_at")]
        span = (max(fired) - min(fired)) / 1000 if len(fired) > 1 else 0.0
        ticks_per_s = (len(fired) - 1) / span if span else 0.0
        if not fired:
            return Failover(False, 0.0, note=f"no tick fired in {watch_s:.0f} s with 3 nodes up (see the nodes' logs)")
        leader = await find_leader(apis)
        if leader is None:
            return Failover(False, round(ticks_per_s, 2), note="pending: GET /v1/status names no cron leader "
                            "(cron leadership is not in this build)")
        last_before = max(fired)
        killed_at = time.time() * 1000
        nodes[leader].proc.send_signal(signal.SIGKILL)
        survivors = [api for i, api in enumerate(apis) if i != leader]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = [r for r in await runs_of(survivors[0], schedule)
                     if r.get("fired_at") and epoch_ms(r["fired_at"]) > killed_at]
            if after:
                first = min(after, key=lambda r: epoch_ms(r["fired_at"]))
                fired_ms = epoch_ms(first["fired_at"])
                new = await find_leader(survivors, timeout=5)
                names = [f"node{i}" for i in range(len(apis)) if i != leader]
                return Failover(True, round(ticks_per_s, 2), round((fired_ms - killed_at) / 1000, 2),
                                round((fired_ms - last_before) / 1000, 2),
                                round(fired_ms - epoch_ms(first["scheduled_for"])), f"node{leader}",
                                None if new is None else names[new])
            await asyncio.sleep(0.05)
        return Failover(True, round(ticks_per_s, 2), note="no tick within 60 s of the kill")


def failover_runs(args: argparse.Namespace, procs: Processes, tmp: Path, pg: PgCluster, receiver: str) -> list[Failover]:
    out: list[Failover] = []
    for round_no in range(1, args.failover_rounds + 1):
        dsn = pg.create_database(f"failover_{round_no}")
        nodes, schedule = start_cluster(procs, tmp, dsn, 3, f"failover{round_no}",
                                        lambda url: create_ticking(url, receiver))
        try:
            result = run_event_loop(failover_once(nodes, schedule, args.watch))
        except (RuntimeError, SystemExit) as error:
            result = Failover(False, 0.0, note=f"failed: {error}"[:300])
        stop_nodes(procs, nodes)
        print(f"  failover round {round_no}: {result}", flush=True)
        if not result.leader_known:
            print(log_tail(nodes), flush=True)
        out.append(result)
        if not result.leader_known:
            break  # one round shows it
    return out


def print_failovers(results: list[Failover]) -> None:
    print("\n| round | ticks/s with 3 nodes up | kill → next tick | last tick before → first after "
          "| first tick's lateness | leader killed → new leader | note |")
    print("|---|---|---|---|---|---|---|")
    for n, r in enumerate(results, 1):
        cells = [f"{r.failover_s} s" if r.failover_s is not None else "–",
                 f"{r.tick_gap_s} s" if r.tick_gap_s is not None else "–",
                 f"{r.first_tick_late_ms:.0f} ms" if r.first_tick_late_ms is not None else "–"]
        print(f"| {n} | {r.ticks_per_s_before} | {' | '.join(cells)} | {r.killed or '–'} → {r.new_leader or '–'} "
              f"| {r.note} |")


# Main ----------------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    parser.add_argument("--nodes", default="1,2,3", help="node counts on PostgreSQL (default 1,2,3)")
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per enqueue/deliver run (default 20000)")
    parser.add_argument("--concurrency", type=int, default=64, help="the queue's concurrency (default 64)")
    parser.add_argument("--inflight", type=int, default=4, help="batch requests in flight per node (default 4)")
    parser.add_argument("--rounds", type=int, default=1, help="enqueue/deliver rounds (default 1)")
    parser.add_argument("--claim-rows", type=int, default=10_000_000, help="finished jobs for claim10m")
    parser.add_argument("--claim-jobs", type=int, default=5000, help="backlog delivered in claim10m (default 5000)")
    parser.add_argument("--samples", type=int, default=200, help="latency probes in claim10m (default 200)")
    parser.add_argument("--failover-rounds", type=int, default=3)
    parser.add_argument("--watch", type=float, default=4.0, help="seconds of ticks before the kill (default 4)")
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run (< 2 min)")
    parser.add_argument("--json", default=str(WORK / "cluster.json"), help="where the figures go (- = stdout)")
    args = parser.parse_args()
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    args.nodes = [int(n) for n in args.nodes.split(",")]
    if args.quick:
        args.jobs, args.claim_rows, args.claim_jobs = min(args.jobs, 3000), min(args.claim_rows, 200_000), 1000
        args.samples, args.failover_rounds, args.watch = 50, 1, 3.0
    return args


def main() -> None:
    args = parse_args()
    header = f"rotor-lite cluster bench — {machine()}"
    print(header, flush=True)
    results: dict[str, Any] = {"machine": header, "args": {k: v for k, v in vars(args).items()}}
    with Processes() as procs, tempfile.TemporaryDirectory() as tmp_name, PgCluster() as pg:
        tmp = Path(tmp_name)
        receiver = start_receiver(procs)
        if {"enqueue", "deliver"} & set(args.parts):
            runs = throughput_runs(args, procs, tmp, pg, receiver)
            results["throughput"] = [asdict(r) for r in runs]
            print_runs(runs)
        if "claim10m" in args.parts:
            claims = claim_runs(args, procs, tmp, pg, receiver)
            results["claim"] = [asdict(c) for c in claims]
            if len(claims) == 2:
                print_claims(claims)
        if "failover" in args.parts:
            failovers = failover_runs(args, procs, tmp, pg, receiver)
            results["failover"] = [asdict(f) for f in failovers]
            print_failovers(failovers)
    print(f"\n{args.jobs:,} jobs per run, batches of {BATCH:,}, {args.inflight} in flight per node, queue concurrency "
          f"{args.concurrency}; PostgreSQL {pg.bin_dir.parent.name} with fsync off; CPU in µs per job (user+sys); "
          "BullMQ's CPU covers both phases (its worker script does both) and is shown as delivery's")
    document = json.dumps(results, indent=2)
    if args.json == "-":
        print(document)
    else:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(document + "\n")
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
