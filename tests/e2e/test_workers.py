"""Pull workers end to end: real `rotor-lite serve` processes and real `rotor worker` processes.

Jobs leased, heartbeated, completed with their results, failed with retries, backoff and the DLQ, exactly as
callback jobs (attempt log, webhooks, alerts); several workers in several processes within the queue's
concurrency and concurrency keys; SIGTERM drains a worker, kill -9 gives its jobs back after their lease;
long polls; lease tokens; keys and roles; fair queueing and per-key rate limits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Receiver, Reply, ServerProcess, offline, wait_until

ROOT = Path(__file__).parents[2]
APP = "tests.e2e.worker_app"
FAST = {"ROTOR_WEBHOOKS_POLL_INTERVAL": "50ms", "ROTOR_DISPATCH_POLL_INTERVAL": "100ms"}


@dataclass
class Worker:
    """A `rotor worker` process; what its processors did is in `log` (shared by the workers of a test)."""

    server: ServerProcess
    queue: str
    log: Path
    processor: str = "handle"
    concurrency: int = 5
    lease_seconds: float = 5.0
    drain_timeout: float = 10.0
    api_key: str | None = None
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> Worker:
        env = {**os.environ, "ROTOR_API_KEY": self.api_key or self.server.api_key, "ROTOR_API_URL": self.server.url,
               "WORKER_LOG": str(self.log), "OUTREACH_DB": str(self.log.with_suffix(".db"))}
        output = open(self.log.with_name(f"{self.log.stem}-worker-{time.monotonic_ns()}.out"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rotor_lite", "worker", f"{APP}:{self.processor}", "--queue", self.queue,
             "--concurrency", str(self.concurrency), "--lease-seconds", str(self.lease_seconds),
             "--drain-timeout", str(self.drain_timeout), "--log-level", "info"],
            stdout=output, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(server: ServerProcess, queue: str, **options: Any) -> Worker:
        worker = Worker(server=server, queue=queue, log=tmp_path / "events.jsonl", **options).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def events(log: Path, kind: str | None = None) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    found = [json.loads(line) for line in log.read_text().splitlines() if line]
    return [event for event in found if kind is None or event["event"] == kind]


def make_queue(http: httpx.Client, **fields: Any) -> str:
    name = f"pull-{uuid.uuid4().hex[:8]}"
    created = http.post("/v1/queues", json={"name": name, **fields})
    assert created.status_code == 201, created.text
    return name


def enqueue(http: httpx.Client, queue: str, payload: Any, **fields: Any) -> str:
    created = http.post(f"/v1/queues/{queue}/jobs", json={"payload": payload, **fields})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def batch(http: httpx.Client, queue: str, jobs: list[dict[str, Any]]) -> list[str]:
    ids = []
    for start in range(0, len(jobs), 1000):
        created = http.post(f"/v1/queues/{queue}/jobs/batch", json={"jobs": jobs[start:start + 1000]})
        assert created.status_code == 201, created.text
        ids += [job["id"] for job in created.json()["data"]]
    return ids


def job(http: httpx.Client, queue: str, job_id: str) -> dict[str, Any]:
    return dict(http.get(f"/v1/queues/{queue}/jobs/{job_id}").json())


def stats(http: httpx.Client, queue: str) -> dict[str, int]:
    return dict(http.get(f"/v1/queues/{queue}/stats").json())


def lease(http: httpx.Client, queue: str, **body: Any) -> list[dict[str, Any]]:
    answer = http.post(f"/v1/queues/{queue}/jobs/lease", json=body)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = running = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def spans(log: Path) -> dict[str, tuple[float, float]]:
    starts = {e["id"]: e["at"] for e in events(log, "start")}
    return {e["id"]: (starts[e["id"]], e["at"]) for e in events(log, "done")}


# Outcomes, exactly as callbacks ------------------------------------------------------------------------


def test_pulled_jobs_complete_retry_and_dead_letter_as_callback_jobs_do(
    make_server: Callable[..., ServerProcess], receiver: Receiver, workers: Callable[..., Worker], tmp_path: Path
) -> None:
    server = make_server(ROTOR_ALERTS_SLACK_URL_PREFIXES=f"http://127.0.0.1:{receiver.port}/", **FAST)
    receiver.script("/cb", Reply(status=500, body=b"nope"), Reply(status=200, body=b'{"ok":1}'))
    retry = {"retry_attempts": 2, "defaultJobOptions": {"backoff": {"type": "fixed", "delay": 200}}}
    with server.client() as http:
        for path, types in (("/hooks", ["job.completed", "job.failed"]),):
            assert http.post("/v1/webhooks", json={"url": receiver.url(path), "eventTypes": types}).status_code == 201
        assert http.put("/v1/alerts", json={"slackWebhookUrl": receiver.url("/slack")}).status_code == 200
        callback = make_queue(http, callback_url=receiver.url("/cb"), **retry)
        pull = make_queue(http, concurrency=5, **retry)
        by_callback = enqueue(http, callback, {"n": 0})
        done = enqueue(http, pull, {"n": 1}, tags=["campaign:q2"])
        retried = enqueue(http, pull, {"fail": "flaky", "until": 2})
        dead = enqueue(http, pull, {"fail": "broken"})
        fatal = enqueue(http, pull, {"fatal": True})
        log = workers(server, pull).log
        wait_until(lambda: stats(http, pull)["completed"] == 2 and stats(http, pull)["failed"] == 2, timeout=20)
        wait_until(lambda: job(http, callback, by_callback)["state"] == "completed")

        finished = job(http, pull, done)
        assert finished["result"] == {"echo": {"n": 1}, "attempt": 1, "tags": ["campaign:q2"]}
        assert [(a["attempt"], a["status"], a["outcome"], a["error"]) for a in finished["attemptLog"]] == [(1, None, "2xx", None)]
        second = job(http, pull, retried)
        assert (second["state"], second["attempts"]) == ("completed", 2)
        first_try, second_try = second["attemptLog"]
        assert (first_try["outcome"], first_try["error"]) == ("error", "RuntimeError: flaky")
        assert _ms(second_try["at"]) - _ms(first_try["at"]) - first_try["durationMs"] >= 200  # the queue's backoff
        failed = job(http, pull, dead)
        assert (failed["state"], failed["attempts"], failed["failReason"]) == ("failed", 2, "RuntimeError: broken")
        no_retry = job(http, pull, fatal)
        assert (no_retry["state"], no_retry["attempts"]) == ("failed", 1)  # NonRetriableError: the DLQ at once
        assert {j["id"] for j in http.get("/v1/dlq", params={"queue": pull}).json()["data"]} == {dead, fatal}
        callback_log = job(http, callback, by_callback)["attemptLog"]
        assert [set(entry) for entry in callback_log] == [set(entry) for entry in second["attemptLog"]]

        hooks = wait_until(lambda: len(receiver.for_path("/hooks")) >= 5 and receiver.for_path("/hooks"), timeout=10)
        slack = wait_until(lambda: len(receiver.for_path("/slack")) >= 2 and receiver.for_path("/slack"), timeout=10)
    events_by_job = {(h.json()["type"], h.json()["data"]["jobId"]): h.json()["data"] for h in hooks}
    assert set(events_by_job) == {("job.completed", by_callback), ("job.completed", done), ("job.completed", retried),
                                  ("job.failed", dead), ("job.failed", fatal)}
    assert set(events_by_job[("job.completed", done)]) == set(events_by_job[("job.completed", by_callback)])
    assert events_by_job[("job.completed", done)]["result"] == finished["result"]
    assert events_by_job[("job.failed", dead)]["failReason"] == "RuntimeError: broken"
    assert sorted(dead in s.body.decode() or fatal in s.body.decode() for s in slack) == [True, True]
    assert [e["id"] for e in events(log, "start")].count(dead) == 2


def test_a_plain_function_runs_in_a_thread(server: ServerProcess, workers: Callable[..., Worker]) -> None:
    with server.client() as http:
        queue = make_queue(http, concurrency=2)
        job_id = enqueue(http, queue, {"sleep": 0.01})
        workers(server, queue, processor="sync_handle")
        wait_until(lambda: job(http, queue, job_id)["state"] == "completed", timeout=15)
        assert job(http, queue, job_id)["result"] == {"sync": True}


# Several workers ---------------------------------------------------------------------------------------


def test_workers_in_several_processes_share_the_queue_within_its_concurrency_and_keys(
    server: ServerProcess, workers: Callable[..., Worker]
) -> None:
    with server.client() as http:
        queue = make_queue(http, concurrency=4)
        plain = batch(http, queue, [{"payload": {"sleep": 0.05, "i": i}} for i in range(30)])
        keyed = batch(http, queue, [{"payload": {"sleep": 0.05, "key": True}, "concurrencyKey": "account:1"}
                                    for _ in range(6)])
        log = workers(server, queue, concurrency=3).log
        workers(server, queue, concurrency=3)
        workers(server, queue, concurrency=3)
        wait_until(lambda: stats(http, queue)["completed"] == 36, timeout=30)
    done = spans(log)
    assert sorted(done) == sorted(plain + keyed)  # each job ran once, none lost
    assert overlap(list(done.values())) <= 4  # the queue's concurrency, across the three processes
    assert overlap([done[job_id] for job_id in keyed]) == 1  # one concurrency key: never two at once
    assert len({e["pid"] for e in events(log, "done")}) >= 2


# Stopping workers ----------------------------------------------------------------------------------------


def test_sigterm_stops_leasing_finishes_the_jobs_held_and_exits_0(
    server: ServerProcess, workers: Callable[..., Worker]
) -> None:
    with server.client() as http:
        queue = make_queue(http, concurrency=10)
        ids = batch(http, queue, [{"payload": {"sleep": 1.0, "i": i}} for i in range(8)])
        first = workers(server, queue, concurrency=3)
        wait_until(lambda: len(events(first.log, "start")) == 3, timeout=15)
        held = {e["id"] for e in events(first.log, "start")}
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(10) == 0
        assert {e["id"] for e in events(first.log, "done")} == held  # finished within the drain timeout
        assert {e["id"] for e in events(first.log, "start")} == held  # and leased nothing more
        assert stats(http, queue)["completed"] == 3 and stats(http, queue)["waiting"] == 5
        workers(server, queue, concurrency=5)
        wait_until(lambda: stats(http, queue)["completed"] == 8, timeout=15)
    assert sorted(e["id"] for e in events(first.log, "done")) == sorted(ids)  # nothing lost, nothing twice


def test_kill_9_gives_a_workers_jobs_back_after_their_lease_and_the_idempotent_handler_skips_the_resend(
    make_server: Callable[..., ServerProcess], receiver: Receiver, workers: Callable[..., Worker]
) -> None:
    server = make_server(ROTOR_METRICS_TOKEN=SCRAPE)
    with server.client() as http:
        assert http.post("/v1/webhooks", json={"url": receiver.url("/hooks"), "eventTypes": ["job.stalled"]}).status_code == 201
        queue = make_queue(http, concurrency=5)
        ids = [enqueue(http, queue, {"leadId": f"lead_{i}", "hang_first": True}) for i in range(3)]
        doomed = workers(server, queue, processor="idempotent_outreach", lease_seconds=1.0)
        wait_until(lambda: len(events(doomed.log, "hanging")) == 3, timeout=15)
        doomed.process.kill()
        doomed.process.wait(10)
        workers(server, queue, processor="idempotent_outreach", lease_seconds=1.0)
        wait_until(lambda: stats(http, queue)["completed"] == 3, timeout=20)
        results = [job(http, queue, job_id) for job_id in ids]
        stalled = wait_until(lambda: len(receiver.for_path("/hooks")) >= 3 and receiver.for_path("/hooks"), timeout=10)
    assert [r["result"] for r in results] == [{"skipped": True, "reason": "already-sent"}] * 3
    assert [r["attempts"] for r in results] == [1, 1, 1]  # a lease that ran out uses no attempt, as a stall never does
    assert sorted(e["id"] for e in events(doomed.log, "sent")) == sorted(ids)  # each email went out once
    assert sorted(e["id"] for e in events(doomed.log, "skipped")) == sorted(ids)
    assert sorted(h.json()["data"]["jobId"] for h in stalled) == sorted(ids)
    assert _scraped(server, "rotor_jobs_stalled_total") == 3  # the stalled count, as for callback jobs


def test_a_worker_rides_out_a_server_restart_and_its_completion_is_not_lost(
    make_server: Callable[..., ServerProcess], workers: Callable[..., Worker]
) -> None:
    server = make_server()
    with server.client() as http:
        queue = make_queue(http, concurrency=2)
        job_id = enqueue(http, queue, {"sleep": 1.0})
    worker = workers(server, queue, lease_seconds=30.0)
    wait_until(lambda: events(worker.log, "start"), timeout=15)
    assert server.terminate() == 0  # the job is still running: its heartbeat, lease and outcome meet a dead port
    wait_until(lambda: events(worker.log, "done"), timeout=10)
    time.sleep(0.5)  # the outcome is refused (connection refused) at least once
    again = ServerProcess(data_dir=server.data_dir, port=server.port)
    try:
        again.start()
        with again.client() as http:
            finished = wait_until(lambda: (j := job(http, queue, job_id))["state"] == "completed" and j, timeout=15)
        assert (finished["attempts"], finished["result"]["echo"]) == (1, {"sleep": 1.0})
        assert len(events(worker.log, "start")) == 1  # computed once, reported once the server was back
        assert "reporting outcomes failed, trying again" in _output(worker)
    finally:
        again.kill()


# Long polls ----------------------------------------------------------------------------------------------


def test_an_idle_worker_holds_one_request_and_gets_a_new_job_within_200_ms(
    make_server: Callable[..., ServerProcess], workers: Callable[..., Worker]
) -> None:
    server = make_server(ROTOR_METRICS_TOKEN=SCRAPE)
    with server.client() as http:
        queue = make_queue(http, concurrency=5)
        worker = workers(server, queue, concurrency=1)
        wait_until(lambda: _waiting(http, queue) == 1, timeout=15)
        requests_before = _requests(server)
        time.sleep(0.5)  # idle: a worker polling in a loop would ask again and again meanwhile
        assert _requests(server) - requests_before <= 1  # the one scrape in between
        for n in range(3):
            wait_until(lambda: _waiting(http, queue) == 1)
            sent = time.time()
            job_id = enqueue(http, queue, {"n": n})
            [started] = wait_until(lambda: [e for e in events(worker.log, "start") if e["id"] == job_id], timeout=5)
            assert started["at"] - sent < 0.2, started["at"] - sent


def test_a_lease_request_waits_for_the_first_job_and_no_longer_than_asked(server: ServerProcess) -> None:
    with server.client() as http:
        queue = make_queue(http)
        began = time.monotonic()
        assert lease(http, queue, waitSeconds="300ms") == []
        assert 0.3 <= time.monotonic() - began < 2
        answers: list[list[dict[str, Any]]] = []
        waiting = threading.Thread(target=lambda: answers.append(lease(http, queue, max=3, waitSeconds=10)))
        waiting.start()
        wait_until(lambda: _waiting(http, queue) == 1)
        job_id = enqueue(http, queue, {"x": 1}, tags=["t"])
        waiting.join(5)
        [[leased]] = answers
        assert (leased["id"], leased["payload"], leased["attempt"], leased["tags"]) == (job_id, {"x": 1}, 1, ["t"])
        assert leased["leaseToken"] and leased["leaseExpiresAt"].endswith("Z")


def test_the_server_stops_at_once_with_lease_requests_waiting(server: ServerProcess) -> None:
    with server.client() as http:
        queue = make_queue(http)
        threads = [threading.Thread(target=lambda: lease(http, queue, waitSeconds=30)) for _ in range(3)]
        for thread in threads:
            thread.start()
        wait_until(lambda: _waiting(http, queue) == 3)
        began = time.monotonic()
        assert server.terminate() == 0
        assert time.monotonic() - began < 5
        for thread in threads:
            thread.join(5)


def test_waiting_lease_requests_are_bounded(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server(ROTOR_DISPATCH_MAX_WAITING_LEASES="1")
    with server.client() as http:
        queue = make_queue(http)
        waiting = threading.Thread(target=lambda: lease(http, queue, waitSeconds=2))
        waiting.start()
        wait_until(lambda: _waiting(http, queue) == 1)
        refused = http.post(f"/v1/queues/{queue}/jobs/lease", json={"waitSeconds": 2})
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert lease(http, queue) == []  # one that does not wait is still served
        waiting.join(5)


# Leases and tokens -----------------------------------------------------------------------------------------


def test_a_wrong_or_expired_lease_token_is_a_409_and_changes_nothing(server: ServerProcess) -> None:
    with server.client() as http:
        queue = make_queue(http, concurrency=5)
        job_id = enqueue(http, queue, {"x": 1})
        [leased] = lease(http, queue, leaseSeconds="400ms")
        token = leased["leaseToken"]
        for route, body in (("complete", {"result": 1}), ("fail", {"error": "x"}), ("heartbeat", {})):
            wrong = http.post(f"/v1/queues/{queue}/jobs/{job_id}/{route}", json={"leaseToken": token + "x", **body})
            assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "CONFLICT"
        beat = http.post(f"/v1/queues/{queue}/jobs/{job_id}/heartbeat", json={"leaseToken": token, "leaseSeconds": "600ms"})
        assert beat.status_code == 200 and beat.json()["state"] == "active"
        assert _ms(beat.json()["leaseExpiresAt"]) > _ms(leased["leaseExpiresAt"])
        expires = _ms(beat.json()["leaseExpiresAt"]) / 1000
        wait_until(lambda: time.time() > expires + 0.05)
        late = http.post(f"/v1/queues/{queue}/jobs/{job_id}/complete", json={"leaseToken": token, "result": 1})
        assert late.status_code == 409  # expired, even before the sweeper put it back
        [again] = wait_until(lambda: lease(http, queue), timeout=5)  # put back by the sweeper, counted as stalled
        assert (again["id"], again["attempt"]) == (job_id, 1) and again["leaseToken"] != token
        stale = http.post(f"/v1/queues/{queue}/jobs/{job_id}/complete", json={"leaseToken": token, "result": 1})
        assert stale.status_code == 409
        current = job(http, queue, job_id)
        assert (current["state"], current["attempts"], current["result"], current["attemptLog"]) == ("active", 0, None, [])
        ok = http.post(f"/v1/queues/{queue}/jobs/{job_id}/complete", json={"leaseToken": again["leaseToken"], "result": [1]})
        assert ok.json() == {"id": job_id, "state": "completed"}
        assert http.post(f"/v1/queues/{queue}/jobs/{job_id}/complete",
                         json={"leaseToken": again["leaseToken"]}).status_code == 409  # settled: once only


def test_outcomes_of_several_jobs_apply_in_one_request_each_on_its_own(server: ServerProcess) -> None:
    with server.client() as http:
        queue = make_queue(http, concurrency=5, retry_attempts=2)
        ids = [enqueue(http, queue, {"n": n}) for n in range(3)]
        token = {job["id"]: job["leaseToken"] for job in lease(http, queue, max=3)}
        answered = http.post(f"/v1/queues/{queue}/jobs/outcomes", json={"outcomes": [
            {"id": ids[0], "leaseToken": token[ids[0]], "result": {"ok": 0}},
            {"id": ids[1], "leaseToken": token[ids[1]], "error": "flaky"},
            {"id": ids[2], "leaseToken": "not-held"},
            {"id": ids[0], "leaseToken": token[ids[0]], "result": "twice"},
        ]})
        assert answered.status_code == 200, answered.text
        assert [a.get("state") or a["error"]["code"] for a in answered.json()["data"]] == [
            "completed", "delayed", "CONFLICT", "CONFLICT"]  # one outcome per job: the repeat changed nothing
        assert job(http, queue, ids[0])["result"] == {"ok": 0}
        assert job(http, queue, ids[1])["failReason"] == "flaky"
        assert job(http, queue, ids[2])["state"] == "active"
        for outcomes in ([], [{"id": "x", "leaseToken": "t"}] * 101):
            refused = http.post(f"/v1/queues/{queue}/jobs/outcomes", json={"outcomes": outcomes})
            assert refused.status_code == 422 and refused.json()["error"]["details"]["field"] == "outcomes"


def test_leases_follow_the_queue_rules_and_refuse_bad_requests(server: ServerProcess, receiver: Receiver) -> None:
    with server.client() as http:
        queue = make_queue(http, concurrency=2)
        ids = [enqueue(http, queue, {"p": p}, priority=p) for p in (5, 1, 3)]
        later = enqueue(http, queue, {"later": True}, delay="1h")
        assert [j["id"] for j in lease(http, queue, max=10)] == [ids[1], ids[2]]  # concurrency 2, by priority
        assert lease(http, queue, max=10) == []
        assert http.post(f"/v1/queues/{queue}/pause").status_code == 200
        assert http.patch(f"/v1/queues/{queue}", json={"concurrency": 10}).status_code == 200
        assert lease(http, queue, max=10) == []  # paused
        assert http.post(f"/v1/queues/{queue}/resume").status_code == 200
        assert [j["id"] for j in lease(http, queue, max=10)] == [ids[0]]  # the delayed one is not due
        assert job(http, queue, later)["state"] == "delayed"
        held = make_queue(http, approval_required=True)
        enqueue(http, held, {"a": 1})
        assert lease(http, held) == []  # pending approval
        callback = make_queue(http, callback_url=receiver.url("/cb"))
        refused = http.post(f"/v1/queues/{callback}/jobs/lease", json={})
        assert refused.status_code == 409 and "callback_url" in refused.json()["error"]["message"]
        for body, field_name in (({"max": 101}, "max"), ({"max": 0}, "max"), ({"waitSeconds": 31}, "waitSeconds"),
                                 ({"leaseSeconds": "10ms"}, "leaseSeconds"), ({"leaseSeconds": "2h"}, "leaseSeconds")):
            bad = http.post(f"/v1/queues/{queue}/jobs/lease", json=body)
            assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == field_name, bad.text
        assert http.post(f"/v1/queues/{queue}/jobs/lease", json={"unknown": 1}).status_code == 422
        assert http.post(f"/v1/queues/{queue}/jobs/{ids[0]}/fail", json={"leaseToken": "x"}).status_code == 422
        assert http.post("/v1/queues/nope/jobs/lease", json={}).status_code == 404


def test_a_queue_key_processes_its_own_queue_and_roles_hold(server: ServerProcess) -> None:
    with server.client() as http:
        mine, other = make_queue(http), make_queue(http)
        job_id = enqueue(http, mine, {"x": 1})
    worker_key = offline(server.data_dir, "keys", "create", "--workspace", "default", "--queue", mine, "--role", "developer")["key"]
    viewer_key = offline(server.data_dir, "keys", "create", "--workspace", "default", "--role", "viewer")["key"]
    with server.client(worker_key) as http:
        [leased] = lease(http, mine)
        done = http.post(f"/v1/queues/{mine}/jobs/{job_id}/complete", json={"leaseToken": leased["leaseToken"]})
        assert done.status_code == 200
        assert http.post(f"/v1/queues/{other}/jobs/lease", json={}).status_code == 404
    with server.client(viewer_key) as http:
        refused = http.post(f"/v1/queues/{mine}/jobs/lease", json={})
        assert refused.status_code == 403 and refused.json()["error"]["details"]["required"] == "developer"


def test_a_server_restart_keeps_the_leases_of_pulled_jobs(make_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = make_server()
    with server.client() as http:
        queue = make_queue(http)
        job_id = enqueue(http, queue, {"x": 1})
        [leased] = lease(http, queue, leaseSeconds=60)
    assert server.terminate() == 0
    again = make_server(server.data_dir)
    with again.client() as http:
        done = http.post(f"/v1/queues/{queue}/jobs/{job_id}/complete", json={"leaseToken": leased["leaseToken"], "result": 2})
        assert done.status_code == 200, done.text
        assert job(http, queue, job_id)["result"] == 2


# Fair queueing and rate limits ------------------------------------------------------------------------------


BIG = 100_000


def test_fairness_serves_a_small_tenant_before_1_percent_of_a_big_tenants_burst(
    server: ServerProcess, receiver: Receiver, workers: Callable[..., Worker]
) -> None:
    with server.client() as http:
        fair = {"fairness": {"key": "payload.tenant"}, "concurrency": 10}
        pull = make_queue(http, **fair)
        callback = make_queue(http, callback_url=receiver.url("/fair"), **fair)
        for queue in (pull, callback):
            assert http.post(f"/v1/queues/{queue}/pause").status_code == 200
            batch(http, queue, [{"payload": {"tenant": "big", "i": i}} for i in range(BIG)])
            batch(http, queue, [{"payload": {"tenant": "small", "i": i}} for i in range(10)])
        assert http.get(f"/v1/queues/{pull}").json()["fairness"] == {"key": "payload.tenant"}

        assert http.post(f"/v1/queues/{callback}/resume").status_code == 200
        wait_until(lambda: sum(r.json()["tenant"] == "small" for r in receiver.for_path("/fair")) == 10, timeout=30)
        assert http.post(f"/v1/queues/{callback}/pause").status_code == 200
        delivered = [r.json()["tenant"] for r in receiver.for_path("/fair")]
        last_small = max(i for i, tenant in enumerate(delivered) if tenant == "small")
        assert delivered[:last_small].count("big") < BIG // 100, delivered[:last_small].count("big")

        log = workers(server, pull, concurrency=10).log
        assert http.post(f"/v1/queues/{pull}/resume").status_code == 200
        wait_until(lambda: len([e for e in events(log, "done") if e["data"]["tenant"] == "small"]) == 10, timeout=30)
        assert http.post(f"/v1/queues/{pull}/pause").status_code == 200
        started = [e["data"]["tenant"] for e in events(log, "start")]
        last_small = max(i for i, tenant in enumerate(started) if tenant == "small")
        assert started[:last_small].count("big") < BIG // 100
        for queue in (pull, callback):
            assert http.delete(f"/v1/queues/{queue}").status_code == 204


def test_a_rate_limit_holds_each_key_to_its_rate_while_a_small_key_still_runs(
    server: ServerProcess, receiver: Receiver, workers: Callable[..., Worker]
) -> None:
    limit, per = 5, 0.25  # 5 jobs per key per 250 ms: 50 per key in 10 windows (2.5 s), for callbacks and pulls
    rate = {"concurrency": 50, "rateLimit": {"key": "payload.tenant", "max": limit, "per": "250ms"}}
    with server.client() as http:
        pull, callback = make_queue(http, **rate), make_queue(http, callback_url=receiver.url("/rate"), **rate)
        assert http.get(f"/v1/queues/{pull}").json()["rateLimit"] == {"key": "payload.tenant", "max": 5, "per": "250ms"}
        for queue in (pull, callback):
            assert http.post(f"/v1/queues/{queue}/pause").status_code == 200
            for tenant in ("a", "b"):
                batch(http, queue, [{"payload": {"tenant": tenant}} for _ in range(1000)])
            batch(http, queue, [{"payload": {"tenant": "c"}} for _ in range(8)])
        log = workers(server, pull, concurrency=50).log
        for queue in (pull, callback):
            assert http.post(f"/v1/queues/{queue}/resume").status_code == 200
        wait_until(lambda: len(events(log, "start")) >= 120 and len(receiver.for_path("/rate")) >= 120, timeout=30)
        for queue in (pull, callback):
            assert http.post(f"/v1/queues/{queue}/pause").status_code == 200
    pulled = [(e["data"]["tenant"], e["at"]) for e in events(log, "start")]
    delivered = [(r.json()["tenant"], r.at) for r in receiver.for_path("/rate")]
    for starts in (pulled, delivered):
        by_tenant: dict[str, list[float]] = {}
        for tenant, at in starts:
            by_tenant.setdefault(tenant, []).append(at)
        for tenant in ("a", "b"):
            times = by_tenant[tenant]
            in_window = sum(1 for at in times if at < times[0] + 10 * per)
            assert abs(in_window - 10 * limit) <= limit, (tenant, in_window)  # within 10 % of 50
        assert len(by_tenant["c"]) == 8 and by_tenant["c"][-1] - by_tenant["c"][0] < 0.5  # not slowed by a and b


def test_fairness_and_rate_limits_are_validated_and_changed(server: ServerProcess) -> None:
    with server.client() as http:
        queue = make_queue(http)
        enqueue(http, queue, {"tenant": "t1"})
        for body, field_name in (
            ({"fairness": {"key": "tenant"}}, "fairness.key"),
            ({"rateLimit": {"key": "payload.t", "max": 0, "per": "1s"}}, "rateLimit.max"),
            ({"rateLimit": {"key": "payload.t", "max": 1, "per": "1ms"}}, "rateLimit.per"),
            ({"fairness": {"key": "payload.a"}, "rateLimit": {"key": "payload.b", "max": 1, "per": "1s"}}, "rateLimit.key"),
        ):
            bad = http.patch(f"/v1/queues/{queue}", json=body)
            assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == field_name, bad.text
        changed = http.patch(f"/v1/queues/{queue}", json={"fairness": {"key": "concurrencyKey"}})
        assert changed.json()["fairness"] == {"key": "concurrencyKey"}
        assert len(lease(http, queue)) == 1  # a job stored before fairness was turned on is grouped too
        assert http.patch(f"/v1/queues/{queue}", json={"fairness": None}).json()["fairness"] is None


def _ms(timestamp: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def _metrics(http: httpx.Client) -> str:
    return http.get("/metrics").text


def _waiting(http: httpx.Client, queue: str) -> float:
    for line in _metrics(http).splitlines():
        if line.startswith("rotor_waiting_leases{") and f'queue="{queue}"' in line:
            return float(line.split()[-1])
    return 0.0


SCRAPE = "scrape-token-for-the-process-wide-series"


def _scraped(server: ServerProcess, series: str) -> float:
    scraped = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {SCRAPE}"}).text
    return sum(float(line.split()[-1]) for line in scraped.splitlines() if line.startswith(series))


def _output(worker: Worker) -> str:
    return "".join(path.read_text(errors="replace") for path in worker.log.parent.glob(f"{worker.log.stem}-worker-*.out"))


def _requests(server: ServerProcess) -> float:
    """API requests the server answered so far (a process-wide series: scraped with the metrics token)."""
    return _scraped(server, "rotor_http_requests_total")
