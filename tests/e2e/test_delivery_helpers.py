"""Delivery helpers (`[delivery] processes`): a helper killed under load costs no job, is started again, and
no helper outlives its server."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from rotor_lite.cli import main
from tests.helpers import Receiver, Received, ServerProcess, wait_until

JOBS = 400
CONCURRENCY = 16


def helpers_of(http: httpx.Client) -> list[dict[str, Any]]:
    return list(http.get("/v1/status").json()["deliveryHelpers"])


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its reaper counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_kill_9_of_a_helper_under_load_loses_no_job_and_it_is_started_again(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    server = make_server(ROTOR_DELIVERY_PROCESSES="2", ROTOR_METRICS_TOKEN="helpers-scrape-token")
    receiver.default_delay = 0.02
    killed: list[tuple[int, int]] = []  # the helper's pid, and how many deliveries it held

    def kill_a_helper_midway(got: Received, number: int) -> None:
        if number == JOBS // 3 and not killed:  # in the handler, so the helper holds this request at least
            with server.client() as http:
                victim = max(helpers_of(http), key=lambda h: h["inFlight"])
            os.kill(victim["pid"], signal.SIGKILL)
            killed.append((victim["pid"], victim["inFlight"]))

    receiver.on_request = kill_a_helper_midway
    with server.client() as http:
        [first, second] = helpers_of(http)
        assert first["alive"] and second["alive"] and first["pid"] != second["pid"]
        queue = {"name": "busy", "callback_url": receiver.url("/busy"), "concurrency": CONCURRENCY, "timeout_seconds": 1}
        assert http.post("/v1/queues", json=queue).status_code == 201
        for start in range(0, JOBS, 100):
            jobs = [{"payload": {"n": n}} for n in range(start, start + 100)]
            assert http.post("/v1/queues/busy/jobs/batch", json={"jobs": jobs}).status_code == 201

        wait_until(lambda: http.get("/v1/queues/busy/stats").json()["completed"] == JOBS, timeout=60)
        stats = http.get("/v1/queues/busy/stats").json()
        helpers = helpers_of(http)
        metrics = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer helpers-scrape-token"}).text

    [(pid, held)] = killed
    assert stats["failed"] == 0 and stats["waiting"] == stats["active"] == 0
    requests = receiver.for_path("/busy")
    counts = Counter(got.job_id for got in requests)
    assert len(counts) == JOBS and max(counts.values()) <= 2
    assert 0 < held <= CONCURRENCY and len(requests) - JOBS <= held  # only what the dead helper held came again
    assert all(helper["alive"] for helper in helpers) and pid not in {helper["pid"] for helper in helpers}
    assert sorted(helper["restarts"] for helper in helpers) == [0, 1]
    assert sum(helper["delivered"] for helper in helpers) <= len(requests)
    assert 'rotor_delivery_helper_restarts_total{helper="' in metrics and "rotor_delivery_helper_up" in metrics
    assert "delivery helper exited; starting it again" in server.log()


def test_no_helper_outlives_its_server(make_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    """Stopped with SIGTERM, the server stops its helpers; killed with SIGKILL, its helpers end on their own."""
    for stop in ("terminate", "kill"):
        server = make_server(tmp_path / stop, ROTOR_DELIVERY_PROCESSES="2")
        with server.client() as http:
            pids = [helper["pid"] for helper in wait_until(lambda: all(h["alive"] for h in helpers_of(http)) and helpers_of(http))]
        if stop == "terminate":
            assert server.terminate() == 0
        else:
            server.kill()
        wait_until(lambda: all(gone(pid) for pid in pids), timeout=10)


def test_rotor_status_shows_each_helper_and_none_with_processes_0(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    for processes, lines in (("2", 2), ("0", 0)):
        server = make_server(tmp_path / f"p{processes}", ROTOR_DELIVERY_PROCESSES=processes)
        with server.client() as http:
            wait_until(lambda: all(h["alive"] for h in helpers_of(http)))
            helpers = helpers_of(http)
        shown = CliRunner().invoke(main, ["status", "--api-url", server.url, "--api-key", server.api_key],
                                   env={"ROTOR_CONFIG_DIR": str(tmp_path / "config")})
        assert shown.exit_code == 0, shown.output
        printed = [line for line in shown.output.splitlines() if line.startswith("Delivery helper")]
        assert len(helpers) == len(printed) == lines
        assert all(f"pid {helper['pid']}, alive, 0 in flight" in line for helper, line in zip(helpers, printed))


def test_only_an_admin_is_shown_the_helpers(make_server: Callable[..., ServerProcess]) -> None:
    """The helpers serve every workspace: their pids and counts are the operator's, not a viewer's."""
    server = make_server(ROTOR_DELIVERY_PROCESSES="1")
    with server.client() as http:
        viewer = http.post("/v1/api-keys", json={"label": "looks", "role": "viewer"}).json()["key"]
        assert len(helpers_of(http)) == 1
    with server.client(api_key=viewer) as http:
        status = http.get("/v1/status").json()
    assert "deliveryHelpers" not in status and status["api"] == "ok"
