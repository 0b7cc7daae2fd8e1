"""An idle server stays idle: after work of every kind is done, the process uses next to no CPU."""

from __future__ import annotations

import os
import time

from tests.helpers import Receiver, Reply, ServerProcess, wait_until


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_after_a_retried_job_completes(server: ServerProcess, receiver: Receiver) -> None:
    http = server.client()
    options = {"attempts": 3, "backoff": {"type": "fixed", "delay": 50}}
    assert http.post("/v1/queues", json={"name": "q", "callback_url": receiver.url(), "defaultJobOptions": options}).status_code == 201
    receiver.script("/cb", Reply(status=500))
    job = http.post("/v1/queues/q/jobs", json={"payload": {"n": 1}}).json()
    wait_until(lambda: http.get(f"/v1/queues/q/jobs/{job['id']}").json()["state"] == "completed")
    assert len(receiver.for_path("/cb")) == 2
    time.sleep(0.3)  # the writes that recorded the outcome finish
    assert server.process is not None
    helpers = [helper["pid"] for helper in http.get("/v1/status").json()["deliveryHelpers"]]
    pids = [server.process.pid, *helpers]  # the delivery helpers idle too
    before = sum(cpu_seconds(pid) for pid in pids)
    time.sleep(2)
    used = sum(cpu_seconds(pid) for pid in pids) - before
    assert used < 0.1, f"idle server ({len(helpers)} delivery helpers) used {used:.2f} s of CPU in 2 s"
