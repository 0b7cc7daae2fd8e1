"""Durable workflows: steps/s beside DBOS Transact, server CPU per step, step latency, 100,000 waiting runs.

    python bench/workflows.py [--parts throughput,waiting] [--runs 10000] [--sleep-ms 1000]
                              [--dbos-runs 2000] [--dbos-mode sync|async|both] [--jobs 10000]
                              [--latency-runs 200] [--waiting 100000] [--probes 50] [--wake-spread 0]
                              [--wake-margin 15] [--connections 64] [--synchronous FULL|NORMAL]

Starts everything itself on 127.0.0.1 and stops it: a `rotor-lite serve` on a temp data dir, the
workflow app `wf_app.py` in its own process (`rotor-lite workflows serve wf_app:app`, uvicorn), the
Node receiver for the callback jobs, and DBOS Transact (installed from PyPI into
`bench/.work/dbos-venv/` on first use, ignored by git) on SQLite in a temp dir.

throughput part:
- `--runs` runs of `three-steps` (step.run, step.sleep 1 s, step.run), triggered by as many
  `POST /v1/events` sent with `--connections` in flight: completed steps/s from the first event sent
  to the last run completed. Beside it DBOS Transact running the same workflow (a step,
  `DBOS.sleep(1)`, a step) on SQLite, `--dbos-runs` launched at once with `DBOS.start_workflow`
  (a thread each) and with `DBOS.start_workflow_async`: completed workflows/s and steps/s.
- server CPU per completed step (utime+stime of the rotor-lite process from /proc over that
  window, every thread), beside the server CPU per completed callback job: `--jobs` jobs to the
  Node receiver, once enqueued one per request (as the runs are triggered, same connections) and
  once batch-enqueued into a paused queue then resumed (as `deliver.py` does).
- idle step-to-step latency: `--latency-runs` runs of `chain` (three step.run in a row) one at a
  time, the time between one step's callable and the next one's (both timed in the app); and runs
  of `three-steps` with a 100 ms sleep one at a time: a step's end to its sleep being recorded, and
  the sleep's recorded end (wake-up) to the next step running.

waiting part (a fresh server and app):
- `--waiting` runs sleeping or waiting at once: half wait for `bench.contact` with a `match`
  pinning their own contact id, half sleep until a common wake time (`--wake-spread` seconds >
  0 spreads the wake times evenly over that window instead). The wake time is set from the rate at
  which the waiters were set up, plus `--wake-margin` seconds. Reports how long the setup took,
  the server's RSS with every run asleep or waiting, and the sleepers' wake-up lateness: the step's
  recorded end (`ended_at`, read from the database file) minus its wake time.
- then, before the wake time, `--probes` times: one `bench.contact` event against all the
  waiting runs, exactly one of which matches: the POST's response time (the resumed step is
  committed before the answer) and the time until that run's next step ran in the app.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

import wf_app
from _common import (
    HERE,
    KEY,
    PAYLOAD,
    WORK,
    Api,
    Processes,
    Server,
    client_session,
    free_port,
    machine,
    pct,
    receiver_get,
    rotor_throughput,
    rss_kb,
    run_event_loop,
    start_receiver,
    start_server,
    wait_delivered_and_completed,
    wait_http,
)

DBOS_VENV = WORK / "dbos-venv"
DBOS_PACKAGE = "dbos"
STEPS_PER_RUN = 3
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
_COMPLETED = re.compile(r'^rotor_runs_finished_total\{[^}]*status="completed"[^}]*\} ([\d.e+]+)$', re.M)


# Processes ----------------------------------------------------------------------------------


@dataclass
class Stack:
    """A server and the workflow app registered with it."""

    server: Server
    app: subprocess.Popen[bytes]

    @property
    def db_path(self) -> Path:
        return self.server.data_dir / "rotor.db"


def start_stack(procs: Processes, root: Path, synchronous: str) -> Stack:
    root.mkdir(parents=True)
    server = start_server(procs, root / "data", synchronous)
    signing_key = api_request(server.url, "/v1/functions/signing-key")["signingKey"]
    port = free_port()
    log = root / f"app-{port}.log"
    with open(log, "wb") as out:
        app = procs.start(
            [sys.executable, "-m", "rotor_lite", "workflows", "serve", "wf_app:app", "--port", str(port),
             "--log-level", "warning"],
            cwd=HERE, env={**os.environ, "ROTOR_SIGNING_KEY": signing_key}, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    wait_http(url, proc=app, log=log)
    for fn in wf_app.FUNCTIONS:
        api_request(server.url, "/v1/functions", fn.registration(url))
    return Stack(server, app)


def api_request(url: str, path: str, body: Any = None) -> Any:
    """One blocking API call (set-up only): GET, or POST when given a body."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers=HEADERS, method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def query(db_path: Path, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """A read of the server's database file (read-only, beside the running server: WAL allows it)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def statuses(db_path: Path, function_id: str) -> dict[str, int]:
    rows = query(db_path, "SELECT status, count(*) FROM run WHERE function_id = ? GROUP BY status", (function_id,))
    return {status: count for status, count in rows}


def ms_of(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


# The client ----------------------------------------------------------------------------------


async def post_all(
    session: aiohttp.ClientSession, url: str, bodies: Iterable[bytes], connections: int, expect: int = 202
) -> list[Any]:
    """POST every body to `url` with `connections` requests in flight; the decoded answers, in order."""
    answers: list[Any] = []
    numbered = iter(enumerate(bodies))

    async def worker() -> None:
        for index, body in numbered:
            async with session.post(url, data=body, headers=HEADERS) as resp:
                text = await resp.read()
                if resp.status != expect:
                    raise RuntimeError(f"POST {url}: {resp.status} {text[:300]!r}")
                answers.append((index, text))

    await asyncio.gather(*(worker() for _ in range(connections)))
    answers.sort(key=lambda pair: pair[0])
    return [json.loads(text) for _, text in answers]


def event_bodies(name: str, datas: Iterable[Any]) -> Iterable[bytes]:
    return (json.dumps({"name": name, "data": data}, separators=(",", ":")).encode() for data in datas)


async def completed_runs(api: Api) -> int:
    async with api.session.get(api.url + "/metrics", headers=api.headers) as resp:
        text = (await resp.read()).decode()
    return int(sum(float(value) for value in _COMPLETED.findall(text)))


async def wait_runs_completed(api: Api, total: int, timeout: float = 1800, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while (done := await completed_runs(api)) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {total} runs completed within {timeout:.0f}s")
        await asyncio.sleep(every)


async def run_alone(api: Api, name: str, data: Any) -> tuple[float, dict[str, Any]]:
    """Send one event, wait for its run to complete; (send time in epoch s, the run with its steps)."""
    sent = time.time()
    run_id = (await api.call("POST", "/v1/events", {"name": name, "data": data}))["runIds"][0]
    return sent, await completed_run(api, run_id)


async def completed_run(api: Api, run_id: str, every: float = 0.01) -> dict[str, Any]:
    """`GET /v1/runs/:id` every `every` s until the run completed (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        await asyncio.sleep(every)
        run: dict[str, Any] = await api.call("GET", f"/v1/runs/{run_id}")
        if run["status"] == "completed":
            return run
        if run["status"] in ("failed", "cancelled") or time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} did not complete: {run}")


# Throughput part ------------------------------------------------------------------------------


@dataclass
class Latency:
    run_to_run: list[float]
    run_to_sleep: list[float]
    wake_to_run: list[float]
    event_to_first: list[float]


async def idle_latency(api: Api, runs: int) -> Latency:
    found = Latency([], [], [], [])
    for _ in range(runs):
        sent, run = await run_alone(api, "bench.chain", {})
        times = run["output"]
        found.run_to_run += [(times[1] - times[0]) * 1000, (times[2] - times[1]) * 1000]
        found.event_to_first.append((times[0] - sent) * 1000)
    for _ in range(max(1, runs // 4)):
        _, run = await run_alone(api, "bench.three", {"sleepMs": 100})
        first, second = run["output"]
        pause = next(step for step in run["steps"] if step["name"] == "pause")
        found.run_to_sleep.append(ms_of(pause["startedAt"]) - first * 1000)
        found.wake_to_run.append(second * 1000 - ms_of(pause["endedAt"]))
    return found


@dataclass
class Completed:
    """`runs` runs of the 3-step workflow completed in `seconds`."""

    runs: int
    seconds: float

    @property
    def steps_per_s(self) -> float:
        return self.runs * STEPS_PER_RUN / self.seconds


@dataclass
class Throughput(Completed):
    send_seconds: float
    server_cpu: float
    app_cpu: float


async def workflow_throughput(api: Api, stack: Stack, runs: int, sleep_ms: int, connections: int) -> Throughput:
    base = await completed_runs(api)
    server_cpu, app_cpu = cpu_seconds(stack.server.proc.pid), cpu_seconds(stack.app.pid)
    started = time.perf_counter()
    await post_all(api.session, api.url + "/v1/events", event_bodies("bench.three", ({"sleepMs": sleep_ms} for _ in range(runs))), connections)
    sent = time.perf_counter() - started
    await wait_runs_completed(api, base + runs)
    seconds = time.perf_counter() - started
    return Throughput(
        runs, seconds, sent, cpu_seconds(stack.server.proc.pid) - server_cpu, cpu_seconds(stack.app.pid) - app_cpu,
    )


@dataclass
class JobCost:
    jobs: int
    seconds: float
    server_cpu: float


async def jobs_enqueued_singly(api: Api, receiver: str, pid: int, jobs: int, connections: int) -> JobCost:
    """`jobs` callback jobs, one `POST /v1/queues/:name/jobs` each; enqueued to all completed."""
    created = await api.create_queue("single", concurrency=64, callback_url=receiver + "/cb")
    receiver_get(receiver, "/secret?value=" + created["callback_secret"])
    receiver_get(receiver, "/reset")
    body = json.dumps({"payload": PAYLOAD}).encode()
    cpu, started = cpu_seconds(pid), time.perf_counter()
    await post_all(api.session, api.url + "/v1/queues/single/jobs", (body for _ in range(jobs)), connections, expect=201)
    await wait_delivered_and_completed(api, receiver, "single", jobs)  # cheap polls: the receiver's count first
    seen = receiver_get(receiver, "/stats")
    if seen["bad"] or seen["verified"] < jobs:
        raise SystemExit(f"signature check failed at the receiver: {seen}")
    return JobCost(jobs, time.perf_counter() - started, cpu_seconds(pid) - cpu)


async def jobs_batch_enqueued(api: Api, receiver: str, pid: int, jobs: int) -> JobCost:
    """`jobs` callback jobs batch-enqueued (1,000 per request) into a paused queue, then delivered."""
    cpu, started = cpu_seconds(pid), time.perf_counter()
    await rotor_throughput(api, receiver, "batch", jobs, 64)
    return JobCost(jobs, time.perf_counter() - started, cpu_seconds(pid) - cpu)


def ensure_dbos() -> Path:
    """The Python of bench/.work/dbos-venv, with `dbos` installed from PyPI on first use."""
    python = DBOS_VENV / "bin" / "python"
    if not python.exists() or subprocess.run([python, "-c", "import dbos"], capture_output=True).returncode != 0:
        print(f"installing {DBOS_PACKAGE} into {DBOS_VENV} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DBOS_VENV)], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", DBOS_PACKAGE], check=True)
    return python


@dataclass
class DbosResult(Completed):
    mode: str
    launch_seconds: float
    sequential_ms: float


def run_dbos(python: Path, runs: int, sleep_ms: int, mode: str) -> DbosResult:
    version = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('dbos'))"],
                             capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [python, str(HERE / "dbos_workflows.py"), str(Path(tmp) / "dbos.sqlite"), str(runs), str(sleep_ms / 1000), mode],
            capture_output=True, text=True, timeout=3600, cwd=tmp,
        )
    if out.returncode != 0:
        raise SystemExit(f"DBOS {version} failed: {out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return DbosResult(figures["runs"], figures["seconds"], f"{mode} (dbos {version})", figures["launch_s"], figures["sequential_ms"])


async def throughput_part(args: argparse.Namespace, stack: Stack, receiver: str) -> dict[str, Any]:
    async with client_session(limit=args.connections) as session:
        api = Api(session, stack.server.url)
        for _ in range(20):  # warm-up: connections, caches
            await run_alone(api, "bench.chain", {})
        latency = await idle_latency(api, args.latency_runs)
        flow = await workflow_throughput(api, stack, args.runs, args.sleep_ms, args.connections)
        single = await jobs_enqueued_singly(api, receiver, stack.server.proc.pid, args.jobs, args.connections)
        batch = await jobs_batch_enqueued(api, receiver, stack.server.proc.pid, args.jobs)
    return {"latency": latency, "flow": flow, "single": single, "batch": batch}


def print_throughput(args: argparse.Namespace, found: dict[str, Any], dbos: list[DbosResult]) -> None:
    flow: Throughput = found["flow"]
    single: JobCost = found["single"]
    batch: JobCost = found["batch"]
    lat: Latency = found["latency"]
    per_step = flow.server_cpu / (flow.runs * STEPS_PER_RUN) * 1e6
    per_single = single.server_cpu / single.jobs * 1e6
    per_batch = batch.server_cpu / batch.jobs * 1e6
    print("\n| figure | rotor-lite | reference (same run) | ratio | target |\n|---|---|---|---|---|")
    best = max(dbos, key=lambda d: d.steps_per_s) if dbos else None
    for d in dbos:
        ratio = f"{flow.steps_per_s / d.steps_per_s:.1f}×" if d is best else ""
        print(f"| completed steps/s | | DBOS {d.mode}, {d.runs:,} at once: {d.steps_per_s:,.0f} steps/s "
              f"({d.runs / d.seconds:,.1f} workflows/s, {d.seconds:.1f} s, launched in {d.launch_seconds:.1f} s; "
              f"one alone {d.sequential_ms:.1f} ms) | {ratio} | |")
    print(f"| completed steps/s ({flow.runs:,} runs × 3 steps, sleep {args.sleep_ms} ms, {args.connections} conn.) | "
          f"{flow.steps_per_s:,.0f} steps/s ({flow.runs / flow.seconds:,.0f} runs/s, {flow.seconds:.1f} s; "
          f"events sent in {flow.send_seconds:.1f} s) | {'DBOS best above' if best else '—'} | "
          f"{f'{flow.steps_per_s / best.steps_per_s:.1f}×' if best else '—'} | ≥ 10× DBOS |")
    print(f"| server CPU per completed step | {per_step:,.0f} µs ({flow.server_cpu:.1f} s; the app: "
          f"{flow.app_cpu / (flow.runs * STEPS_PER_RUN) * 1e6:,.0f} µs/step) | per callback job, enqueued one per request: "
          f"{per_single:,.0f} µs ({single.jobs / single.seconds:,.0f} jobs/s) | {per_step / per_single:.2f}× | ≤ 2× |")
    print(f"| | | per callback job, batch-enqueued then delivered: {per_batch:,.0f} µs "
          f"({batch.jobs / batch.seconds:,.0f} jobs/s) | {per_step / per_batch:.2f}× | |")
    print(f"| idle step→step, run → run ({len(lat.run_to_run)} gaps) | p50 {pct(lat.run_to_run, .5):.1f} ms, "
          f"p99 {pct(lat.run_to_run, .99):.1f} ms | | | p50 < 5 ms |")
    print(f"| idle step→step, run → sleep recorded ({len(lat.run_to_sleep)}) | p50 {pct(lat.run_to_sleep, .5):.1f} ms, "
          f"p99 {pct(lat.run_to_sleep, .99):.1f} ms | | | p50 < 5 ms |")
    print(f"| idle step→step, sleep's end → run ({len(lat.wake_to_run)}) | p50 {pct(lat.wake_to_run, .5):.1f} ms, "
          f"p99 {pct(lat.wake_to_run, .99):.1f} ms | | | p50 < 5 ms |")
    print(f"| idle event sent → first step runs ({len(lat.event_to_first)}) | p50 {pct(lat.event_to_first, .5):.1f} ms, "
          f"p99 {pct(lat.event_to_first, .99):.1f} ms | | | |")


# Waiting part ---------------------------------------------------------------------------------


async def set_up(
    api: Api, db_path: Path, function_id: str, name: str, datas: list[Any], connections: int, settled: str
) -> tuple[list[str], float]:
    """Trigger one run per data, wait until every one is `settled`; (run ids, seconds)."""
    started = time.perf_counter()
    answers = await post_all(api.session, api.url + "/v1/events", event_bodies(name, datas), connections)
    while statuses(db_path, function_id).get(settled, 0) < len(datas):
        await asyncio.sleep(0.2)
    return [answer["runIds"][0] for answer in answers], time.perf_counter() - started


async def probe_resumes(
    api: Api, waiter_ids: list[str], probes: int, deadline_ms: float
) -> tuple[list[float], list[float], list[float]]:
    """One matching event at a time; ms from sending the POST to: its response, the waiting step's recorded
    end (`endedAt`, whole ms), the run's next step running in the app."""
    responses, sent_at, probed = [], [], []
    step = max(1, len(waiter_ids) // probes)
    for index in range(0, len(waiter_ids), step)[:probes]:
        if time.time() * 1000 > deadline_ms:
            break
        body = {"name": wf_app.CONTACT_EVENT, "data": {"contactId": f"c{index}"}}
        sent, started = time.time(), time.perf_counter()
        answer = await api.call("POST", "/v1/events", body)
        responses.append((time.perf_counter() - started) * 1000)
        if answer["resumed"] != 1:
            raise RuntimeError(f"the event for c{index} resumed {answer['resumed']} runs")
        sent_at.append(sent)
        probed.append(waiter_ids[index])
        await asyncio.sleep(0.05)
    recorded, resumed = [], []
    for run_id, sent in zip(probed, sent_at, strict=True):
        run = await completed_run(api, run_id)
        wait = next(step for step in run["steps"] if step["name"] == "wait")
        recorded.append(ms_of(wait["endedAt"]) - sent * 1000)
        resumed.append((run["output"] - sent) * 1000)
    return responses, recorded, resumed


async def waiting_part(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    pid = stack.server.proc.pid
    n_wait = args.waiting // 2
    n_sleep = args.waiting - n_wait
    found: dict[str, Any] = {"rss_idle": rss_kb(pid)[0]}
    async with client_session(limit=args.connections) as session:
        api = Api(session, stack.server.url)
        waiter_ids, wait_s = await set_up(
            api, stack.db_path, "waiter", "bench.wait", [{"contactId": f"c{i}"} for i in range(n_wait)],
            args.connections, "waiting",
        )
        spread_ms = args.wake_spread * 1000
        wake_at = int(time.time() * 1000 + n_sleep / (n_wait / wait_s) * 1500 + args.wake_margin * 1000)
        wakes = [wake_at + int(i * spread_ms / n_sleep) for i in range(n_sleep)]
        _, sleep_s = await set_up(
            api, stack.db_path, "sleeper", "bench.sleep", [{"wakeAt": w} for w in wakes], args.connections, "sleeping",
        )
        asleep_before_wake = time.time() * 1000 < wake_at
        found.update(
            n_wait=n_wait, n_sleep=n_sleep, wait_s=wait_s, sleep_s=sleep_s, asleep_before_wake=asleep_before_wake,
            rss_all=rss_kb(pid), statuses={**statuses(stack.db_path, "waiter"), **statuses(stack.db_path, "sleeper")},
            margin_s=(wake_at - time.time() * 1000) / 1000,
        )
        base = await completed_runs(api)
        found["responses"], found["recorded"], found["resumed"] = await probe_resumes(
            api, waiter_ids, args.probes, wake_at - 1000
        )
        base += len(found["responses"])
        found["probed_before_wake"] = time.time() * 1000 < wake_at
        await asyncio.sleep(max(0.0, wake_at / 1000 - time.time()))
        cpu = cpu_seconds(pid)
        await wait_runs_completed(api, base + n_sleep, every=0.1)
        found["drain_s"] = time.time() - (wake_at + spread_ms) / 1000
        found["wake_cpu"] = cpu_seconds(pid) - cpu
    rows = query(
        stack.db_path,
        "SELECT s.ended_at - json_extract(CAST(r.event_data AS TEXT), '$.wakeAt') FROM run_step s"
        " JOIN run r ON r.rowid = s.run_rowid WHERE r.function_id = 'sleeper' AND s.key = 'nap:1'",
    )
    found["lateness"] = [float(row[0]) for row in rows]
    found["rss_end"] = rss_kb(pid)
    return found


def print_waiting(args: argparse.Namespace, found: dict[str, Any]) -> None:
    n = found["n_wait"] + found["n_sleep"]
    late, resp, resumed = found["lateness"], found["responses"], found["resumed"]
    rss_now, hwm = found["rss_all"]
    wake = "a common wake time" if not args.wake_spread else f"wake times spread over {args.wake_spread:g} s"
    print("\n| figure | rotor-lite | target |\n|---|---|---|")
    print(f"| setup: {found['n_wait']:,} runs waiting for an event, then {found['n_sleep']:,} sleeping "
          f"({args.connections} conn.) | {found['wait_s']:.1f} s + {found['sleep_s']:.1f} s = "
          f"{found['wait_s'] + found['sleep_s']:.1f} s ({n / (found['wait_s'] + found['sleep_s']):,.0f} runs/s); "
          f"statuses then: {found['statuses']}; {found['margin_s']:.1f} s left before the wake | |")
    print(f"| server RSS: idle / with {n:,} runs asleep or waiting (peak so far) / after the wake (peak) | "
          f"{found['rss_idle'] / 1024:.0f} / {rss_now / 1024:.0f} ({hwm / 1024:.0f}) / "
          f"{found['rss_end'][0] / 1024:.0f} ({found['rss_end'][1] / 1024:.0f}) MB | < 300 MB |")
    print(f"| wake-up lateness, {len(late):,} sleepers, {wake} | p50 {pct(late, .5):,.0f} ms, p99 {pct(late, .99):,.0f} ms, "
          f"max {max(late, default=float('nan')):,.0f} ms; all completed {found['drain_s']:.1f} s after the last wake time "
          f"(server CPU {found['wake_cpu']:.1f} s) | p50 < 50 ms |")
    print(f"| one event among {n - 1:,} waiting runs, 1 matches: POST /v1/events response ({len(resp)} events) | "
          f"p50 {pct(resp, .5):.1f} ms, p99 {pct(resp, .99):.1f} ms | < 20 ms |")
    recorded = found["recorded"]
    print(f"| the same: POST sent → the waiting step's recorded end (`endedAt`, whole ms) | p50 {pct(recorded, .5):.1f} ms, "
          f"p99 {pct(recorded, .99):.1f} ms | < 20 ms |")
    print(f"| the same: POST sent → the resumed run's next step runs in the app | p50 {pct(resumed, .5):.1f} ms, "
          f"p99 {pct(resumed, .99):.1f} ms | |")
    if not found["asleep_before_wake"] or not found["probed_before_wake"]:
        print("\nWARNING: the setup or the probes ran past the wake time; raise --wake-margin.")


# Main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="throughput,waiting", help="throughput, waiting or both (default)")
    parser.add_argument("--runs", type=int, default=10000, help="runs of the 3-step workflow (default 10000)")
    parser.add_argument("--sleep-ms", type=int, default=1000, help="the workflow's sleep, both sides (default 1000)")
    parser.add_argument("--dbos-runs", type=int, default=2000, help="DBOS workflows launched at once; 0 skips DBOS")
    parser.add_argument("--dbos-mode", default="both", choices=["sync", "async", "both"])
    parser.add_argument("--jobs", type=int, default=10000, help="callback jobs for the CPU per job (default 10000)")
    parser.add_argument("--latency-runs", type=int, default=200, help="runs one at a time for the latency (default 200)")
    parser.add_argument("--waiting", type=int, default=100000, help="runs asleep or waiting at once (default 100000)")
    parser.add_argument("--probes", type=int, default=50, help="single-match events against the waiting runs")
    parser.add_argument("--wake-spread", type=float, default=0.0, help="spread the wake times over N s (default 0)")
    parser.add_argument("--wake-margin", type=float, default=15.0, help="seconds between setup and wake (default 15)")
    parser.add_argument("--connections", type=int, default=64, help="the client's requests in flight (default 64)")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print(f"rotor-lite durable workflows benchmark — synchronous={args.synchronous} — {machine()}", flush=True)
    dbos: list[DbosResult] = []
    if "throughput" in parts and args.dbos_runs:
        python = ensure_dbos()
        for mode in (["sync", "async"] if args.dbos_mode == "both" else [args.dbos_mode]):
            dbos.append(run_dbos(python, args.dbos_runs, args.sleep_ms, mode))
            print(f"DBOS {mode}: {dbos[-1].steps_per_s:,.0f} steps/s", flush=True)
    with Processes() as procs, tempfile.TemporaryDirectory() as tmp:
        if "throughput" in parts:
            receiver = start_receiver(procs)
            stack = start_stack(procs, Path(tmp) / "throughput", args.synchronous)
            found = run_event_loop(throughput_part(args, stack, receiver))
            print_throughput(args, found, dbos)
            procs.stop_all()
        if "waiting" in parts:
            print(f"\nwaiting part — {machine()}", flush=True)
            stack = start_stack(procs, Path(tmp) / "waiting", args.synchronous)
            print_waiting(args, run_event_loop(waiting_part(args, stack)))


if __name__ == "__main__":
    main()
