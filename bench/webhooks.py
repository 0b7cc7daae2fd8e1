"""Benchmark: a webhook endpoint that is down does not slow job delivery, and gets everything once back.

    python bench/webhooks.py [--jobs 20000] [--scale 60] [--quick]

Time is scaled by `--scale` (default 60: one real second stands for a minute): the retry
schedule 0 s, 30 s, 5 min, 30 min, 2 h becomes 0, 0.5 s, 5 s, 30 s, 2 min, and the endpoint's
"10 minutes" down become 10 s. Three figures:

1. end to end, no webhook: N jobs into a paused queue, resumed, completed deliveries per second;
2. the same with a webhook subscribed to `job.completed` whose endpoint refuses connections;
3. the endpoint comes back after the (scaled) 10 minutes: how long until every `job.completed`
   event since the webhook was created has arrived (unique `webhook-id`s), and how many arrived.

Runs 1 and 2 alternate `--rounds` times (machine noise hits both alike); medians are printed.

Starts its own server (temp data dir), the Node callback receiver and an aiohttp webhook
receiver on 127.0.0.1; stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from core import KEY, Api, free_port, start_receiver, wait_completed, wait_http  # noqa: E402


def start_server(data_dir: Path, scale: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    schedule = ",".join(f"{seconds / scale * 1000:.0f}ms" for seconds in (0, 30, 300, 1800, 7200))
    env = {**os.environ, "ROTOR_AUTH_BOOTSTRAP_API_KEY": KEY, "ROTOR_CALLBACKS_ALLOW_PRIVATE_NETWORKS": "true",
           "ROTOR_WEBHOOKS_RETRY_SCHEDULE": schedule, "ROTOR_WEBHOOKS_POLL_INTERVAL": "100ms"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotor_lite", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--log-level", "error"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz")
    return proc, url


class WebhookSink:
    """The endpoint that comes back: counts unique message ids."""

    def __init__(self, port: int) -> None:
        self.port, self.seen, self.requests = port, set[str](), 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests += 1
        self.seen.add(request.headers.get("webhook-id", ""))
        return web.Response(text="ok")


async def end_to_end(api: Api, receiver: str, queue: str, jobs: int) -> float:
    await api.call("POST", "/v1/queues", {"name": queue, "concurrency": 128, "callback_url": receiver + "/cb"})
    await api.call("POST", f"/v1/queues/{queue}/pause")
    body = ('{"jobs": [' + ",".join(f'{{"payload": {{"contactId": "cid_{i}"}}}}' for i in range(1000)) + "]}").encode()
    for _ in range(jobs // 1000):
        await api.call("POST", f"/v1/queues/{queue}/jobs/batch", body)
    started = time.perf_counter()
    await api.call("POST", f"/v1/queues/{queue}/resume")
    await wait_completed(api, queue, jobs)
    return jobs / (time.perf_counter() - started)


async def run(args: argparse.Namespace) -> None:
    jobs = 5000 if args.quick else args.jobs
    down_s = 600 / args.scale
    print(f"rotor-lite webhook benchmark — {jobs:,} jobs, time scale 1/{args.scale:g}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_server(Path(tmp) / "data", args.scale)
        receiver, rurl = start_receiver()
        sink = WebhookSink(free_port())
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                api = Api(session, url)
                baselines, downs = [], []
                down_since = 0.0
                for round_ in range(args.rounds):  # alternate, so machine noise hits both figures alike
                    baselines.append(await end_to_end(api, rurl, f"plain{round_}", jobs))
                    if round_ == 0:
                        await api.call("POST", "/v1/webhooks", {"url": f"http://127.0.0.1:{sink.port}/hook",
                                                                "eventTypes": ["job.completed"]})
                        down_since = time.perf_counter()
                    downs.append(await end_to_end(api, rurl, f"watched{round_}", jobs))
                baseline, with_hook = statistics.median(baselines), statistics.median(downs)
                print(f"end to end, no webhook (median of {args.rounds}):      {baseline:,.0f} deliveries/s "
                      f"({', '.join(f'{b:,.0f}' for b in baselines)})")
                print(f"end to end, webhook endpoint down (median):  {with_hook:,.0f} deliveries/s "
                      f"({with_hook / baseline:.0%} of the figure without it; {', '.join(f'{d:,.0f}' for d in downs)})")
                jobs *= 2 * args.rounds - 1  # every job completed after the webhook was created
                await asyncio.sleep(max(0.0, down_s - (time.perf_counter() - down_since)))
                await sink.start()
                back = time.perf_counter()
                deadline = back + 9000 / args.scale  # the whole schedule, scaled, plus margin
                while len(sink.seen) < jobs and time.perf_counter() < deadline:
                    await asyncio.sleep(0.1)
                arrived = time.perf_counter() - back
                print(f"endpoint back after {down_s:g} s (= 10 min):       {len(sink.seen):,}/{jobs:,} events arrived "
                      f"{arrived:.1f} s later (= {arrived * args.scale / 60:.0f} min), {sink.requests:,} requests")
        finally:
            await sink.stop()
            server.terminate()
            receiver.terminate()
            server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per end-to-end run")
    parser.add_argument("--scale", type=float, default=60, help="time compression (60: a second stands for a minute)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs with and without the webhook")
    parser.add_argument("--quick", action="store_true", help="5,000 jobs, for a smoke test")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
