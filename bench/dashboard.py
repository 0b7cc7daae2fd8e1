"""Server time of every dashboard page with 1,000 and 1,000,000 jobs in the database (target: p95 < 100 ms).

    python bench/dashboard.py [--sizes 1000,1000000] [--samples 60]

For each size, a real `rotor-lite serve` makes the data dir and, over the API, what the other pages show:
a queue `scale` (no callback: nothing is delivered), a queue `held` with 500 jobs awaiting approval, a
schedule with 100 fires of history, a webhook with 100 failing test deliveries, 20 secrets, 200 workflow
runs (a step, three in parallel with an invoked child, then a wait for a signal, where they stay), and the
audit events all of that leaves. Then, with the server stopped, the jobs table is filled with plain SQL
as bench/scale.py fills it (mostly completed, 1 % failed, a waiting backlog), every 100th job tagged
`campaign:q2`, and the counters rebuilt. The servers of all sizes then run side by side; a browser-like
client signs in to each and requests every page in turns (the sizes alternating, so a busy moment of the
machine hits them alike): 3 warm-up requests, then `--samples` each. The figure is the server's own
`Server-Timing: app;dur=…` header: from the dashboard's routing to the response's first byte, the
template rendered (the client's wall time, network included, is shown beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from _common import KEY, Processes, Server, free_port, machine, pct, start_server
from scale import fill, recount

SIZES = (1_000, 1_000_000)
TARGET_MS = 100.0


def workflow_functions() -> tuple[Any, Any]:
    """Two functions like a real app's: one a step, the other parallel steps and an invoke, then a wait for a signal."""
    from rotor_lite.sdk import create_function
    from rotor_lite.sdk.workflows import Context, Step

    @create_function(id="bench-score", trigger={"event": "bench.score"}, retries=0)
    async def score(ctx: Context, step: Step) -> Any:
        return await step.run("score", lambda: len(ctx.event.data["name"]))

    @create_function(id="bench-onboard", trigger={"event": "bench.contact"}, retries=0)
    async def onboard(ctx: Context, step: Step) -> Any:
        contact = await step.run("fetch", lambda: {"name": ctx.event.data["name"]})
        await asyncio.gather(
            step.run("enrich-email", lambda: {"ok": True}), step.run("enrich-phone", lambda: {"ok": True}),
            step.invoke("score", workflow="bench-score", data=contact, timeout="1m"),
        )
        return await step.wait_for_signal("approve", signal=f"approve-{ctx.run_id}", timeout="6h")

    return score, onboard


def serve_in_thread(app: Any) -> str:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}/"


def populate(url: str) -> dict[str, str]:
    """Everything but the jobs table's bulk, over the API; returns ids the page list needs."""
    from rotor_lite.sdk import serve_workflow

    score, onboard = workflow_functions()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as api:
        for body in ({"name": "scale"}, {"name": "held", "approval_required": True}):
            api.post("/v1/queues", json=body).raise_for_status()
        held = {"jobs": [{"payload": {"n": n}} for n in range(500)]}
        api.post("/v1/queues/held/jobs/batch", json=held).raise_for_status()
        daily = {"queue": "scale", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}
        schedule = api.post("/v1/schedules", json=daily).json()
        for _ in range(100):
            api.post(f"/v1/schedules/{schedule['id']}/fire-now").raise_for_status()
        hook = api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "eventTypes": ["job.failed"]}).json()
        for _ in range(100):
            api.post(f"/v1/webhooks/{hook['id']}/test").raise_for_status()
        for n in range(20):
            api.post("/v1/secrets", json={"name": f"SECRET_{n}", "value": f"value-{n}"}).raise_for_status()
        signing_key = api.get("/v1/functions/signing-key").json()["signingKey"]
        serve_url = serve_in_thread(serve_workflow(functions=[score, onboard], signing_key=signing_key))
        for fn in (score, onboard):
            api.post("/v1/functions", json=fn.registration(serve_url)).raise_for_status()
        runs = [api.post("/v1/events", json={"name": "bench.contact", "data": {"name": f"c{n}"}}).json()["runIds"][0]
                for n in range(200)]
        deadline = time.monotonic() + 120
        while api.get(f"/v1/runs/{runs[-1]}").json()["status"] != "waiting":
            if time.monotonic() > deadline:
                raise SystemExit("the workflow runs did not reach their wait")
            time.sleep(0.1)
    return {"schedule": schedule["id"], "webhook": hook["id"], "run": runs[len(runs) // 2]}


def fill_jobs(data_dir: Path, size: int) -> None:
    """`size` jobs in queue `scale` as scale.py makes them, every 100th tagged `campaign:q2`, counters rebuilt."""
    from rotor_lite.store.db import connect

    conn = connect(data_dir / "rotor.db", "FULL")
    queue_rowid, workspace = conn.execute("SELECT rowid, workspace_id FROM queue WHERE name = 'scale'").fetchone()
    start = conn.execute("SELECT count(*) FROM job WHERE queue_id = ?", (queue_rowid,)).fetchone()[0]
    fill(conn, queue_rowid, workspace, start, size, int(time.time() * 1000))
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE job SET tags = '[\"campaign:q2\"]' WHERE queue_id = ? AND rowid % 100 = 0", (queue_rowid,))
    conn.execute("INSERT OR IGNORE INTO job_tag (queue_id, tag, job_rowid) SELECT queue_id, 'campaign:q2', rowid"
                 " FROM job WHERE queue_id = ? AND rowid % 100 = 0", (queue_rowid,))
    conn.execute("COMMIT")
    recount(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def sign_in(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60, follow_redirects=False)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/dashboard/login").text)
    assert token, "no sign-in form"
    answer = client.post("/dashboard/login", data={"csrf": token.group(1), "api_key": KEY})
    assert answer.status_code == 303, answer.text
    return client


def pages(client: httpx.Client, ids: dict[str, str]) -> dict[str, str]:
    """Every page, by the name the table shows; ids found through the dashboard itself where it lists them."""
    queue = client.get("/dashboard/queues/scale").text
    job = re.search(r'href="/dashboard/queues/scale/jobs/([^"]+)"', queue)
    assert job, "no job listed"
    return {
        "overview": "/dashboard", "queue": "/dashboard/queues/scale",
        "queue, failed": "/dashboard/queues/scale?state=failed", "queue, tag": "/dashboard/queues/scale?tag=campaign:q2",
        # few of the tagged jobs are failed: the store walks the failed jobs instead of every tagged one
        "queue, tag + state": "/dashboard/queues/scale?tag=campaign:q2&state=failed",
        "job": f"/dashboard/queues/scale/jobs/{job.group(1)}",
        "DLQ": "/dashboard/dlq", "approvals": "/dashboard/approvals", "runs": "/dashboard/runs",
        "run (graph)": f"/dashboard/runs/{ids['run']}", "schedules": "/dashboard/schedules",
        "schedule": f"/dashboard/schedules/{ids['schedule']}", "webhooks": "/dashboard/webhooks",
        "webhook log": f"/dashboard/webhooks/{ids['webhook']}", "secrets": "/dashboard/settings/secrets",
        "guardrails": "/dashboard/guardrails", "API keys": "/dashboard/api-keys",
        "notifications": "/dashboard/settings/notifications", "audit": "/dashboard/audit",
        "audit, filtered": "/dashboard/audit?event_type=schedule.fired",
    }


Samples = dict[int, dict[str, tuple[list[float], list[float]]]]  # size → page → (server ms, client ms)


def measure(clients: dict[int, httpx.Client], paths: dict[int, dict[str, str]], samples: int) -> Samples:
    """(server ms, client ms) samples of each page on each size, the sizes taking turns."""
    found: Samples = {size: {} for size in clients}
    names = list(next(iter(paths.values())))
    for round_ in range(samples + 3):
        for name in names:
            for size, client in clients.items():
                started = time.perf_counter()
                answer = client.get(paths[size][name])
                wall = (time.perf_counter() - started) * 1000
                assert answer.status_code == 200, (name, answer.status_code, answer.text[:300])
                server = float(answer.headers["server-timing"].split("dur=")[1])
                if round_ >= 3:
                    got = found[size].setdefault(name, ([], []))
                    got[0].append(server)
                    got[1].append(wall)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="jobs in the table, comma-separated")
    parser.add_argument("--samples", type=int, default=60, help="requests per page and size after warm-up")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"rotor-lite dashboard benchmark — {machine()}", flush=True)
    with Processes() as procs, tempfile.TemporaryDirectory() as tmp:
        servers: dict[int, Server] = {}
        ids: dict[int, dict[str, str]] = {}
        for size in sizes:
            data_dir = Path(tmp) / f"data-{size}"
            server = start_server(procs, data_dir)
            ids[size] = populate(server.url)
            procs.stop(server.proc)
            started = time.perf_counter()
            fill_jobs(data_dir, size)
            print(f"{size:,} jobs: filled in {time.perf_counter() - started:.1f} s", flush=True)
            servers[size] = start_server(procs, data_dir)
        clients = {size: sign_in(server.url) for size, server in servers.items()}
        paths = {size: pages(client, ids[size]) for size, client in clients.items()}
        found = measure(clients, paths, args.samples)
    print_table(sizes, found, args.samples)


def print_table(sizes: list[int], found: Samples, samples: int) -> None:
    print(f"\nServer time per page (Server-Timing), p50 / p95 / max of {samples}, ms;"
          " client wall time p95 in brackets:\n")
    print("| page | " + " | ".join(f"{size:,} jobs" for size in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    worst = 0.0
    for name in found[sizes[0]]:
        cells = []
        for size in sizes:
            server, wall = found[size][name]
            p95 = pct(server, 0.95)
            worst = max(worst, p95)
            cells.append(f"{statistics.median(server):.1f} / {p95:.1f} / {max(server):.1f} ({pct(wall, 0.95):.1f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    verdict = "every page under" if worst < TARGET_MS else "NOT every page under"
    print(f"\nWorst p95: {worst:.1f} ms — {verdict} the {TARGET_MS:.0f} ms target.")


if __name__ == "__main__":
    main()
