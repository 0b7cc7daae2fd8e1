"""The queue engine: concurrency limits and keys, delays, priorities, pause/resume, drain, cancel, listing."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.helpers import Receiver, Reply, wait_until

pytestmark = pytest.mark.both_delivery_paths  # every test: in-process, and through two delivery helpers

QueueMaker = Callable[..., str]
STATS_KEYS = {"waiting", "active", "completed", "failed", "delayed", "pending_approval", "blocked", "cancelled"}
QUEUE_KEYS = {
    "name", "concurrency", "retry_attempts", "defaultJobOptions", "callback_url", "callback_headers",
    "approval_required", "timeout_seconds", "state", "created_at", "updated_at", "counts", "fairness", "rateLimit",
}
JOB_KEYS = {
    "id", "queue", "state", "payload", "tags", "concurrencyKey", "priority", "attempts", "maxAttempts", "runAt",
    "createdAt", "startedAt", "finishedAt", "failReason", "result", "blockedBy", "blockReason", "approvalId",
    "scheduleId",
}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture
def make_queue(http: httpx.Client) -> QueueMaker:
    """Create a uniquely named queue (optionally paused right away); returns its name."""

    def make(callback_url: str | None = None, *, paused: bool = False, **fields: Any) -> str:
        name = f"eq-{uuid.uuid4().hex[:10]}"
        body = {"name": name, **fields, **({"callback_url": callback_url} if callback_url else {})}
        created = http.post("/v1/queues", json=body)
        assert created.status_code == 201, created.text
        if paused:
            assert http.post(f"/v1/queues/{name}/pause").json()["state"] == "paused"
        return name

    return make


def enqueue(http: httpx.Client, queue: str, payload: Any = None, **fields: Any) -> dict[str, Any]:
    created = http.post(f"/v1/queues/{queue}/jobs", json={"payload": payload if payload is not None else {}, **fields})
    assert created.status_code == 201, created.text
    return dict(created.json())


def get_job(http: httpx.Client, queue: str, job_id: str) -> dict[str, Any]:
    return dict(http.get(f"/v1/queues/{queue}/jobs/{job_id}").json())


def stats(http: httpx.Client, queue: str) -> dict[str, int]:
    return dict(http.get(f"/v1/queues/{queue}/stats").json())


def all_done(http: httpx.Client, queue: str, count: int) -> bool:
    return stats(http, queue)["completed"] == count


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code
    return dict(body["error"])


# Concurrency ----------------------------------------------------------------------------------


def test_queue_concurrency_is_reached_and_never_exceeded(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    receiver.default_delay = 0.05
    name = make_queue(receiver.url("/conc"), concurrency=3)
    created = http.post(f"/v1/queues/{name}/jobs/batch", json={"jobs": [{"payload": {"i": i}} for i in range(30)]})
    assert created.status_code == 201, created.text

    wait_until(lambda: all_done(http, name, 30), timeout=20)
    assert len(receiver.for_path("/conc")) == 30
    assert receiver.max_in_flight["/conc"] == 3


def test_one_concurrency_key_never_overlaps_while_other_keys_run_in_parallel(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    receiver.default_delay = 0.08
    receiver.key_of = lambda got: str(got.json()["key"])
    first = make_queue(receiver.url("/keys"), concurrency=10)
    second = make_queue(receiver.url("/keys"), concurrency=10)  # keys are workspace-wide, across queues
    jobs = [{"payload": {"key": key, "i": i}, "concurrencyKey": f"contact:{key}"} for i in range(3) for key in "ABCD"]
    assert http.post(f"/v1/queues/{first}/jobs/batch", json={"jobs": jobs}).status_code == 201
    assert http.post(f"/v1/queues/{second}/jobs/batch", json={"jobs": jobs[:4]}).status_code == 201

    wait_until(lambda: all_done(http, first, 12) and all_done(http, second, 4), timeout=20)
    got = receiver.for_path("/keys")
    assert len(got) == 16
    assert receiver.key_overlaps == 0
    assert receiver.max_in_flight["/keys"] >= 2  # different keys did run side by side
    assert {r.headers["x-rotor-attempt"] for r in got} == {"1"}  # waiting for a key used no attempt


def test_a_job_waiting_for_its_key_does_not_use_an_attempt(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    receiver.script("/held", Reply(delay=1.0))
    name = make_queue(receiver.url("/held"), concurrency=5, retry_attempts=1)
    holder = enqueue(http, name, {"n": 1}, concurrencyKey="account:1")["id"]
    wait_until(lambda: receiver.for_path("/held"))
    waiter = enqueue(http, name, {"n": 2}, concurrencyKey="account:1")["id"]

    time.sleep(0.3)  # several key re-checks (100 ms) happen while the holder is still running
    meanwhile = get_job(http, name, waiter)
    assert meanwhile["state"] in {"waiting", "delayed"} and meanwhile["attempts"] == 0
    assert meanwhile["concurrencyKey"] == "account:1"

    wait_until(lambda: all_done(http, name, 2), timeout=10)
    done = get_job(http, name, waiter)
    assert done["attempts"] == 1 and [a["attempt"] for a in done["attemptLog"]] == [1]
    assert get_job(http, name, holder)["attempts"] == 1
    first, second = receiver.for_path("/held")
    assert second.headers["x-rotor-job-id"] == waiter and second.at >= first.at + 1.0


# Delays and priorities ------------------------------------------------------------------------


def test_a_delay_holds_the_job_until_it_is_due(http: httpx.Client, receiver: Receiver, make_queue: QueueMaker) -> None:
    name = make_queue(receiver.url("/later"))
    before = time.time()
    job = enqueue(http, name, {"when": "later"}, delay="500ms")
    held = enqueue(http, name, {"when": "much later"}, delay="1h")  # a machine is never that slow
    assert job["state"] == held["state"] == "delayed"
    assert _ms_between(job["createdAt"], job["runAt"]) == 500

    [got] = wait_until(lambda: receiver.for_path("/later"), timeout=5)
    assert got.json() == {"when": "later"} and got.at - before >= 0.499  # the server keeps whole milliseconds
    done = wait_until(lambda: _in_state(http, name, job["id"], "completed"))
    assert datetime.fromisoformat(done["startedAt"]) >= datetime.fromisoformat(job["runAt"])
    listed = http.get(f"/v1/queues/{name}/jobs", params={"state": "delayed"}).json()["data"]
    assert [j["id"] for j in listed] == [held["id"]] and len(receiver.for_path("/later")) == 1


def test_run_at_holds_the_job_until_that_moment(http: httpx.Client, receiver: Receiver, make_queue: QueueMaker) -> None:
    name = make_queue(receiver.url("/at"))
    due = datetime.now(UTC) + timedelta(milliseconds=800)
    job = enqueue(http, name, run_at=due.isoformat())
    held = enqueue(http, name, run_at=(due + timedelta(hours=1)).isoformat())
    assert job["state"] == held["state"] == "delayed"
    assert abs(datetime.fromisoformat(job["runAt"]) - due) < timedelta(milliseconds=2)

    [got] = wait_until(lambda: receiver.for_path("/at"), timeout=5)
    assert got.headers["x-rotor-job-id"] == job["id"] and got.at >= due.timestamp() - 0.002
    wait_until(lambda: _in_state(http, name, job["id"], "completed"))
    assert get_job(http, name, held["id"])["state"] == "delayed" and len(receiver.for_path("/at")) == 1


def _ms_between(earlier: str, later: str) -> int:
    return round((datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds() * 1000)


def _in_state(http: httpx.Client, queue: str, job_id: str, state: str) -> dict[str, Any] | None:
    job = get_job(http, queue, job_id)
    return job if job["state"] == state else None


def test_lower_priority_number_runs_first(http: httpx.Client, receiver: Receiver, make_queue: QueueMaker) -> None:
    name = make_queue(receiver.url("/prio"), concurrency=1, paused=True)
    for priority in (5, 1, 3):
        enqueue(http, name, {"priority": priority}, priority=priority)

    resumed = http.post(f"/v1/queues/{name}/resume")
    assert resumed.status_code == 200 and resumed.json()["state"] == "active"
    wait_until(lambda: all_done(http, name, 3))
    assert [r.json()["priority"] for r in receiver.for_path("/prio")] == [1, 3, 5]


# Pause, resume, drain, cancel, delete -----------------------------------------------------------


def test_a_paused_queue_accepts_jobs_but_delivers_none_until_resumed(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    name = make_queue(receiver.url("/paused"), concurrency=5, paused=True)
    ids = [enqueue(http, name, {"i": i})["id"] for i in range(3)]
    assert http.get(f"/v1/queues/{name}").json()["state"] == "paused"

    time.sleep(0.5)  # longer than the dispatcher's poll interval
    assert receiver.for_path("/paused") == []
    assert stats(http, name)["waiting"] == 3

    http.post(f"/v1/queues/{name}/resume")
    wait_until(lambda: all_done(http, name, 3))
    assert sorted(r.headers["x-rotor-job-id"] for r in receiver.for_path("/paused")) == sorted(ids)


def test_pause_and_resume_also_work_through_patch_state(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    name = make_queue(receiver.url("/patched"))
    assert http.patch(f"/v1/queues/{name}", json={"state": "paused"}).json()["state"] == "paused"
    enqueue(http, name)
    time.sleep(0.4)
    assert receiver.for_path("/patched") == []
    assert http.patch(f"/v1/queues/{name}", json={"state": "active"}).json()["state"] == "active"
    wait_until(lambda: all_done(http, name, 1))


def test_drain_needs_confirm_then_cancels_waiting_and_delayed_jobs(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    name = make_queue(receiver.url("/drain"), paused=True)
    waiting = [enqueue(http, name)["id"] for _ in range(2)]
    delayed = enqueue(http, name, delay="1h")["id"]

    assert_error(http.post(f"/v1/queues/{name}/drain"), 422, "VALIDATION_ERROR")
    assert_error(http.post(f"/v1/queues/{name}/drain", json={"confirm": False}), 422, "VALIDATION_ERROR")
    assert stats(http, name)["waiting"] == 2 and stats(http, name)["delayed"] == 1

    drained = http.post(f"/v1/queues/{name}/drain", json={"confirm": True})
    assert drained.status_code == 200, drained.text
    assert {get_job(http, name, job_id)["state"] for job_id in [*waiting, delayed]} == {"cancelled"}
    counts = stats(http, name)
    assert (counts["waiting"], counts["delayed"], counts["cancelled"]) == (0, 0, 3)
    http.post(f"/v1/queues/{name}/resume")
    time.sleep(0.3)
    assert receiver.for_path("/drain") == []


def test_cancel_waiting_is_200_but_active_and_completed_are_409(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    receiver.script("/cancel", Reply(delay=1.0))
    name = make_queue(receiver.url("/cancel"), concurrency=1)
    active = enqueue(http, name, {"n": "active"})["id"]
    wait_until(lambda: receiver.for_path("/cancel"))
    assert_error(http.delete(f"/v1/queues/{name}/jobs/{active}"), 409, "CONFLICT")
    assert get_job(http, name, active)["state"] == "active"
    waiting = enqueue(http, name, {"n": "waiting"})["id"]
    delayed = enqueue(http, name, {"n": "delayed"}, delay="1h")["id"]

    cancelled = http.delete(f"/v1/queues/{name}/jobs/{waiting}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["id"] == waiting
    assert http.delete(f"/v1/queues/{name}/jobs/{delayed}").json()["state"] == "cancelled"

    wait_until(lambda: get_job(http, name, active)["state"] == "completed")
    assert_error(http.delete(f"/v1/queues/{name}/jobs/{active}"), 409, "CONFLICT")
    assert_error(http.delete(f"/v1/queues/{name}/jobs/{waiting}"), 409, "CONFLICT")
    assert_error(http.delete(f"/v1/queues/{name}/jobs/job_{'0' * 32}"), 404, "NOT_FOUND")
    assert [r.json()["n"] for r in receiver.for_path("/cancel")] == ["active"]


def test_a_cancelled_job_can_be_retried(http: httpx.Client, receiver: Receiver, make_queue: QueueMaker) -> None:
    name = make_queue(receiver.url("/revive"), paused=True)
    job_id = enqueue(http, name)["id"]
    assert http.delete(f"/v1/queues/{name}/jobs/{job_id}").json()["state"] == "cancelled"
    assert http.post(f"/v1/queues/{name}/jobs/{job_id}/retry").json()["state"] == "waiting"
    http.post(f"/v1/queues/{name}/resume")
    wait_until(lambda: get_job(http, name, job_id)["state"] == "completed")


def test_delete_queue_is_204_then_404(http: httpx.Client, make_queue: QueueMaker) -> None:
    name = make_queue()
    job_id = enqueue(http, name)["id"]

    deleted = http.delete(f"/v1/queues/{name}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(http.get(f"/v1/queues/{name}"), 404, "NOT_FOUND")
    assert_error(http.get(f"/v1/queues/{name}/jobs/{job_id}"), 404, "NOT_FOUND")
    assert_error(http.post(f"/v1/queues/{name}/jobs", json={}), 404, "NOT_FOUND")
    assert_error(http.delete(f"/v1/queues/{name}"), 404, "NOT_FOUND")
    assert name not in [q["name"] for q in http.get("/v1/queues").json()["data"]]

    again = http.post("/v1/queues", json={"name": name})  # the name is free again, with no old jobs
    assert again.status_code == 201 and again.json()["counts"] == dict.fromkeys(STATS_KEYS, 0)


# Tags, listing, paging, stats -------------------------------------------------------------------


def test_tags_limits_and_the_tag_filter(http: httpx.Client, make_queue: QueueMaker) -> None:
    name = make_queue()
    max_tags = [f"{i}:" + "t" * 62 for i in range(10)]
    full = enqueue(http, name, tags=max_tags)
    assert full["tags"] == max_tags and get_job(http, name, full["id"])["tags"] == max_tags
    assert_error(http.post(f"/v1/queues/{name}/jobs", json={"tags": [*max_tags, "one-more"]}), 422, "VALIDATION_ERROR")
    assert_error(http.post(f"/v1/queues/{name}/jobs", json={"tags": ["x" * 65]}), 422, "VALIDATION_ERROR")

    campaign = [enqueue(http, name, {"i": i}, tags=["campaign:q2-outbound", f"contact:c{i}"])["id"] for i in range(3)]
    enqueue(http, name, tags=["campaign:other"])
    listed = http.get(f"/v1/queues/{name}/jobs", params={"tag": "campaign:q2-outbound"}).json()
    assert [j["id"] for j in listed["data"]] == campaign[::-1] and listed["nextCursor"] is None
    assert [j["id"] for j in http.get(f"/v1/queues/{name}/jobs", params={"tag": "contact:c1"}).json()["data"]] == [campaign[1]]
    assert http.get(f"/v1/queues/{name}/jobs", params={"tag": "nope"}).json() == {"data": [], "nextCursor": None}


def test_list_is_newest_first_and_pages_with_next_cursor(http: httpx.Client, make_queue: QueueMaker) -> None:
    name = make_queue()
    ids = [enqueue(http, name, {"i": i})["id"] for i in range(7)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = http.get(f"/v1/queues/{name}/jobs", params=params)
        assert page.status_code == 200, page.text
        assert set(page.json()) == {"data", "nextCursor"}
        seen += [j["id"] for j in page.json()["data"]]
        pages += 1
        cursor = page.json()["nextCursor"]
        if cursor is None:
            break
    assert seen == ids[::-1] and pages == 3
    assert [j["id"] for j in http.get(f"/v1/queues/{name}/jobs").json()["data"]] == ids[::-1]  # default limit 50
    assert_error(http.get(f"/v1/queues/{name}/jobs", params={"cursor": "not-a-cursor"}), 422, "VALIDATION_ERROR")


def test_state_filter_including_the_blocked_alias(http: httpx.Client, make_queue: QueueMaker) -> None:
    name = make_queue()
    waiting = enqueue(http, name)["id"]
    delayed = enqueue(http, name, delay="1h")["id"]
    cancelled = enqueue(http, name)["id"]
    http.delete(f"/v1/queues/{name}/jobs/{cancelled}")

    def ids(state: str) -> list[str]:
        listed = http.get(f"/v1/queues/{name}/jobs", params={"state": state})
        assert listed.status_code == 200, listed.text
        return [j["id"] for j in listed.json()["data"]]

    assert ids("waiting") == [waiting]
    assert ids("delayed") == [delayed]
    assert ids("cancelled") == [cancelled]
    assert ids("blocked") == [] and ids("guardrail.blocked") == [] and ids("failed") == []
    assert_error(http.get(f"/v1/queues/{name}/jobs", params={"state": "sleeping"}), 422, "VALIDATION_ERROR")


def test_stats_counts_and_object_shapes(http: httpx.Client, receiver: Receiver, make_queue: QueueMaker) -> None:
    receiver.script("/stats", Reply(500))
    name = make_queue(receiver.url("/stats"), retry_attempts=1)
    failed = enqueue(http, name, {"n": "fails"})["id"]
    wait_until(lambda: get_job(http, name, failed)["state"] == "failed")
    completed = enqueue(http, name, {"n": "ok"})["id"]
    wait_until(lambda: get_job(http, name, completed)["state"] == "completed")
    http.post(f"/v1/queues/{name}/pause")
    enqueue(http, name)
    enqueue(http, name, delay="1h")
    http.delete(f"/v1/queues/{name}/jobs/{enqueue(http, name)['id']}")

    expected = {"waiting": 1, "active": 0, "completed": 1, "failed": 1, "delayed": 1, "pending_approval": 0,
                "blocked": 0, "cancelled": 1}
    assert stats(http, name) == expected
    queue = http.get(f"/v1/queues/{name}").json()
    assert set(queue) == QUEUE_KEYS and queue["counts"] == expected
    assert queue["name"] == name and queue["state"] == "paused" and queue["retry_attempts"] == 1
    assert TIMESTAMP.match(queue["created_at"]) and TIMESTAMP.match(queue["updated_at"])
    listed = {q["name"]: q for q in http.get("/v1/queues").json()["data"]}
    assert listed[name]["counts"] == expected and "callback_secret" not in listed[name]

    job = get_job(http, name, completed)
    assert set(job) == JOB_KEYS | {"attemptLog"}
    assert re.fullmatch(r"job_[0-9a-f]{32}", job["id"]) and job["queue"] == name
    assert all(TIMESTAMP.match(job[key]) for key in ("runAt", "createdAt", "startedAt", "finishedAt"))
    assert set(job["attemptLog"][0]) == {"attempt", "at", "durationMs", "status", "outcome", "error"}
    listed_job = http.get(f"/v1/queues/{name}/jobs", params={"state": "completed"}).json()["data"][0]
    assert set(listed_job) == JOB_KEYS
