"""Schedules end to end: the REST contract, per-second ticks delivered to a real receiver, restarts, SDK and CLI."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from rotor_lite.cli import main
from rotor_lite.sdk import AsyncRotor, Rotor, RotorUnauthorized, RotorValidationError
from tests.helpers import Receiver, Reply, ServerProcess, offline, wait_until

SCHED_ID = re.compile(r"^sched_[0-9a-f]{32}$")
RUN_ID = re.compile(r"^sr_[0-9a-f]{32}$")


def parse(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    return body


# The REST contract -------------------------------------------------------------------------


def test_create_get_list_update_pause_resume_delete(server: ServerProcess) -> None:
    with server.client() as http:
        http.post("/v1/queues", json={"name": "enrichment"})
        created = http.post("/v1/schedules", json={
            "queue_name": "enrichment", "name": "weekday-morning-enrichment", "cron": "0 9 * * 1-5",
            "timezone": "America/New_York", "job_data": {"source": "clearbit"}, "enabled": True,
        })
        assert created.status_code == 201, created.text
        schedule = created.json()
        assert SCHED_ID.match(schedule["external_id"]) and schedule["id"] == schedule["external_id"]
        assert schedule["queue"] == "enrichment" and schedule["payload"] == {"source": "clearbit"}
        assert schedule["description"] == "At 09:00, Monday through Friday"
        next_fire = datetime.fromisoformat(schedule["next_fire_at"])
        assert schedule["next_fire_at"].endswith(":00.000Z") and next_fire.minute == 0
        assert next_fire.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York")).hour == 9
        assert schedule["last_fired_at"] is None and "runs" not in schedule

        by_id = http.get(f"/v1/schedules/{schedule['external_id']}").json()
        by_name = http.get("/v1/schedules/weekday-morning-enrichment").json()
        assert by_id == by_name and by_id["runs"] == []
        listed = http.get("/v1/schedules").json()
        assert [s["external_id"] for s in listed["data"]] == [schedule["id"]] and listed["nextCursor"] is None

        changed = http.patch(f"/v1/schedules/{schedule['id']}", json={
            "cron": "0 3 * * *", "timezone": "Europe/London", "payload": {"source": "apollo", "limit": 500},
            "name": "nightly",
        }).json()
        assert (changed["cron"], changed["timezone"], changed["name"]) == ("0 3 * * *", "Europe/London", "nightly")
        assert changed["payload"] == {"source": "apollo", "limit": 500} and changed["description"] == "At 03:00"
        assert changed["next_fire_at"] != schedule["next_fire_at"]

        paused = http.patch(f"/v1/schedules/{schedule['id']}/pause").json()
        assert (paused["enabled"], paused["next_fire_at"]) == (False, None)
        assert http.post("/v1/schedules/nightly/resume").json()["enabled"] is True
        assert http.post("/v1/schedules/nightly/pause").json()["enabled"] is False
        via_update = http.patch("/v1/schedules/nightly", json={"enabled": True}).json()
        assert via_update["enabled"] is True and via_update["next_fire_at"] is not None

        fired = http.post(f"/v1/schedules/{schedule['id']}/fire-now").json()
        assert http.delete(f"/v1/schedules/{schedule['id']}").status_code == 204
        assert error_of(http.get(f"/v1/schedules/{schedule['id']}"), 404)["code"] == "NOT_FOUND"
        assert http.get("/v1/schedules").json()["data"] == []
        kept = http.get(f"/v1/schedules/{schedule['id']}/runs").json()["runs"]  # runs are kept
        assert [r["job_id"] for r in kept] == [fired["jobId"]]
        assert error_of(http.get("/v1/schedules/nightly/runs"), 404)["code"] == "NOT_FOUND"


def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(server: ServerProcess) -> None:
    base = {"queue": "q", "cron": "0 9 * * 1-5", "timezone": "America/New_York"}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({**base, "timezone": None}, "timezone", "timezone is required"),
        ({k: v for k, v in base.items() if k != "timezone"}, "timezone", "timezone is required"),
        ({**base, "timezone": "+05:30"}, "timezone", "offset"),
        ({**base, "timezone": "Mars/Base"}, "timezone", "not a known IANA"),
        ({**base, "cron": "61 * * * *"}, "cron", "minute"),
        ({**base, "cron": "* * *"}, "cron", "5 fields"),
        ({**base, "cron": "0 0 30 2 *"}, "cron", "never fires"),
        ({**base, "cron": "0" * 250 + " * * * *"}, "cron", "the limit is 256"),
        ({**base, "cron": ",".join(["0"] * 61) + " * * * *"}, "cron", "the limit is 60"),
        ({k: v for k, v in base.items() if k != "cron"}, "cron", "cron is required"),
        ({k: v for k, v in base.items() if k != "queue"}, "queue", "queue is required"),
        ({**base, "name": "has space"}, "name", "name must match"),
        ({**base, "name": "sched_0123456789abcdef0123456789abcdef"}, "name", "schedule id"),
        ({**base, "queueId": 3}, "queue_id", "unknown field"),
        ({**base, "payload": {"a": 1}, "job_data": {"a": 2}}, "payload", "differ"),
    ]
    with server.client() as http:
        http.post("/v1/queues", json={"name": "q"})
        for body, field, words in cases:
            error = error_of(http.post("/v1/schedules", json=body), 422)
            assert error["code"] == "VALIDATION_ERROR" and error["details"]["field"] == field, (body, error)
            assert words in error["message"], (body, error)
        assert error_of(http.post("/v1/schedules", json={**base, "queue": "nope"}), 404)["code"] == "NOT_FOUND"
        too_big = {**base, "payload": {"blob": "x" * (512 * 1024)}}
        assert error_of(http.post("/v1/schedules", json=too_big), 413)["code"] == "PAYLOAD_TOO_LARGE"
        assert http.get("/v1/schedules").json()["data"] == []

        made = http.post("/v1/schedules", json={**base, "name": "daily"}).json()
        assert error_of(http.post("/v1/schedules", json={**base, "name": "daily"}), 409)["code"] == "CONFLICT"
        assert error_of(http.patch("/v1/schedules/daily", json={"timezone": "+01:00"}), 422)["details"]["field"] == "timezone"
        assert error_of(http.patch("/v1/schedules/daily", json={"cron": "bad"}), 422)["details"]["field"] == "cron"
        assert error_of(http.patch("/v1/schedules/daily", json={"cron": "0" * 250 + " * * * *"}), 422)["details"]["limit"] == 256
        assert error_of(http.patch("/v1/schedules/daily", json={"queue": "q"}), 422)["details"]["field"] == "queue"
        assert http.get("/v1/schedules/daily").json()["cron"] == made["cron"]
        assert error_of(http.get("/v1/schedules/daily/runs?limit=501"), 422)["details"]["field"] == "limit"
        assert error_of(http.get("/v1/schedules/daily/runs?cursor=zz"), 422)["details"]["field"] == "cursor"
        assert error_of(http.post("/v1/schedules/nope/fire-now"), 404)["code"] == "NOT_FOUND"


def test_preview_lists_fire_times_across_a_dst_change(server: ServerProcess) -> None:
    with server.client() as http:
        preview = http.post("/v1/schedules/preview", json={
            "cron": "30 2 * * *", "timezone": "America/New_York", "from": "2026-03-07T00:00:00Z", "count": 3,
        })
        assert preview.status_code == 200, preview.text
        assert preview.json() == {
            "next": ["2026-03-07T07:30:00.000Z", "2026-03-08T07:00:00.000Z", "2026-03-09T06:30:00.000Z"],
            "description": "At 02:30",
        }
        assert len(http.post("/v1/schedules/preview", json={"cron": "* * * * *", "timezone": "UTC"}).json()["next"]) == 5
        assert len(http.post("/v1/schedules/preview", json={"cron": "* * * * *", "timezone": "UTC", "count": 50}).json()["next"]) == 50
        for body, field in [({"cron": "* * * * *", "timezone": "UTC", "count": 51}, "count"),
                            ({"cron": "* * * * *", "timezone": "UTC", "count": 0}, "count"),
                            ({"cron": "* * * * *"}, "timezone"), ({"cron": "* * * * *", "timezone": "UTC", "from": "soon"}, "from")]:
            assert error_of(http.post("/v1/schedules/preview", json=body), 422)["details"]["field"] == field


class HealthWatch:
    """Polls `/healthz` from a thread while a test runs; `slowest` is the longest answer it waited for."""

    def __init__(self, server: ServerProcess) -> None:
        self.slowest = 0.0
        self._url = f"{server.url}/healthz"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _watch(self) -> None:
        with httpx.Client(timeout=60) as probe:
            while not self._stop.wait(0.02):
                started = time.monotonic()
                assert probe.get(self._url).status_code == 200
                self.slowest = max(self.slowest, time.monotonic() - started)


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_a_2_mb_cron_is_a_fast_422_and_the_server_stays_responsive(server: ServerProcess) -> None:
    huge = ",".join(["1-59/1"] * 300_000) + " * * * *"  # the field report's cron: it held the event loop 17-25 s
    with server.client() as http, HealthWatch(server) as health:
        http.post("/v1/queues", json={"name": "q"})
        daily = http.post("/v1/schedules", json={"queue": "q", "cron": "0 9 * * *", "timezone": "UTC"}).json()
        for call in (
            lambda: http.post("/v1/schedules/preview", json={"cron": huge, "timezone": "UTC"}),
            lambda: http.post("/v1/schedules", json={"queue": "q", "cron": huge, "timezone": "UTC"}),
            lambda: http.patch(f"/v1/schedules/{daily['id']}", json={"cron": huge}),
        ):
            response, seconds = timed(call)
            error = error_of(response, 422)
            assert error["code"] == "VALIDATION_ERROR" and error["details"] == {"field": "cron", "limit": 256}
            assert error["message"] == f"cron is {len(huge)} characters long; the limit is 256"
            assert seconds < 5, f"a refused cron took {seconds:.1f} s"
        [kept] = http.get("/v1/schedules").json()["data"]  # nothing was created or changed
        assert (kept["id"], kept["cron"]) == (daily["id"], "0 9 * * *")
    assert health.slowest < 5, f"/healthz waited {health.slowest:.1f} s"


def test_previews_of_crons_that_never_or_rarely_fire_answer_within_a_bound(server: ServerProcess) -> None:
    with server.client() as http, HealthWatch(server) as health:
        never, seconds = timed(lambda: http.post("/v1/schedules/preview", json={"cron": "0 0 30 2 *", "timezone": "UTC"}))
        assert "never fires" in error_of(never, 422)["message"] and seconds < 5
        # The Mondays of February (the 31st never comes): 50 of them.
        mondays, seconds = timed(lambda: http.post("/v1/schedules/preview", json={
            "cron": "0 0 31 2 1", "timezone": "UTC", "from": "2026-01-01T00:00:00Z", "count": 50}))
        assert mondays.status_code == 200 and len(mondays.json()["next"]) == 50 and seconds < 5
        # From inside São Paulo's repeated hour on 2019-02-17: 3,600 past candidates to walk.
        repeated, seconds = timed(lambda: http.post("/v1/schedules/preview", json={
            "cron": "* * 23 31 2 6", "timezone": "America/Sao_Paulo", "from": "2019-02-17T02:00:00Z", "count": 1}))
        assert repeated.json()["next"] == ["2019-02-24T02:00:00.000Z"] and seconds < 5
    assert health.slowest < 5, f"/healthz waited {health.slowest:.1f} s"


def test_sdk_and_cli_show_the_cron_limit(server: ServerProcess) -> None:
    long_cron = "0" * 291 + " * * * *"  # 299 characters
    with Rotor(api_key=server.api_key, base_url=server.url) as rotor, pytest.raises(RotorValidationError) as info:
        rotor.schedules.preview(long_cron, "UTC")
    assert (info.value.status, info.value.details) == (422, {"field": "cron", "limit": 256})
    assert str(info.value) == "[VALIDATION_ERROR] cron is 299 characters long; the limit is 256 (HTTP 422)"
    result = CliRunner().invoke(main, ["schedules", "preview", "--cron", long_cron, "--timezone", "UTC",
                                       "--api-url", server.url, "--api-key", server.api_key])
    assert result.exit_code == 1
    assert "Error [VALIDATION_ERROR]: cron is 299 characters long; the limit is 256" in result.output
    assert '"limit": 256' in result.output


def test_preview_needs_a_key_like_reading_schedules(server: ServerProcess) -> None:
    body = {"cron": "0 9 * * *", "timezone": "UTC"}
    with httpx.Client(base_url=server.url) as anonymous:
        for headers in ({}, {"Authorization": "Bearer rt_ws_not_a_key"}):
            assert error_of(anonymous.post("/v1/schedules/preview", json=body, headers=headers), 401)["code"] == "UNAUTHORIZED"
            assert error_of(anonymous.get("/v1/schedules", headers=headers), 401)["code"] == "UNAUTHORIZED"
    with Rotor(api_key="rt_ws_not_a_key", base_url=server.url) as rotor, pytest.raises(RotorUnauthorized):
        rotor.schedules.preview("0 9 * * *", "UTC")


def test_deleting_a_queue_deletes_its_schedules(server: ServerProcess) -> None:
    with server.client() as http:
        http.post("/v1/queues", json={"name": "doomed"})
        http.post("/v1/queues", json={"name": "kept"})
        gone = http.post("/v1/schedules", json={"queue": "doomed", "cron": "* * * * *", "timezone": "UTC"}).json()
        kept = http.post("/v1/schedules", json={"queue": "kept", "cron": "* * * * *", "timezone": "UTC"}).json()
        assert http.delete("/v1/queues/doomed").status_code == 204
        assert http.get(f"/v1/schedules/{gone['id']}").status_code == 404
        assert [s["id"] for s in http.get("/v1/schedules").json()["data"]] == [kept["id"]]


# Ticks delivered -------------------------------------------------------------------------------


def settled_runs(http: httpx.Client, schedule_id: str) -> list[dict[str, Any]] | None:
    """The schedule's runs once none waits for its delivery (None while one does)."""
    runs: list[dict[str, Any]] = http.get(f"/v1/schedules/{schedule_id}/runs?limit=500").json()["runs"]
    return runs if runs and all(r["callback_status"] not in (None, "pending") for r in runs) else None


def test_a_per_second_schedule_delivers_each_tick_once_with_its_run_status(server: ServerProcess, receiver: Receiver) -> None:
    receiver.script("/fail", *[Reply(status=500, body=b'{"error":"boom"}')] * 50)
    with server.client() as http:
        http.post("/v1/queues", json={"name": "ticks", "callback_url": receiver.url("/tick"), "retry_attempts": 1})
        http.post("/v1/queues", json={"name": "broken", "callback_url": receiver.url("/fail"), "retry_attempts": 1})
        ok = http.post("/v1/schedules", json={"queue": "ticks", "cron": "* * * * * *", "timezone": "UTC",
                                              "payload": {"report": "daily"}}).json()
        bad = http.post("/v1/schedules", json={"queue": "broken", "cron": "* * * * * *", "timezone": "UTC"}).json()
        wait_until(lambda: len(receiver.for_path("/tick")) >= 4 and len(receiver.for_path("/fail")) >= 2, timeout=60)
        http.post(f"/v1/schedules/{ok['id']}/pause")
        http.post(f"/v1/schedules/{bad['id']}/pause")
        # Paused, the schedules write no more runs; the jobs of those they wrote are delivered, however slowly.
        runs = wait_until(lambda: settled_runs(http, ok["id"]), timeout=60)
        bad_runs = wait_until(lambda: settled_runs(http, bad["id"]), timeout=60)
        job = http.get(f"/v1/queues/ticks/jobs/{runs[-1]['job_id']}").json()

    delivered = receiver.for_path("/tick")
    assert sorted(r.headers["x-rotor-job-id"] for r in delivered) == sorted(r["job_id"] for r in runs)
    assert all(r.json() == {"report": "daily"} for r in delivered)
    ticks = sorted(parse(r["scheduled_for"]) for r in runs)
    assert ticks == [ticks[0] + i for i in range(len(ticks))], "a second was skipped or fired twice"
    assert all(RUN_ID.match(r["id"]) and r["manual"] is False and r["schedule_id"] == ok["id"] for r in runs)
    assert {r["callback_status"] for r in runs} == {"2xx"} and all(r["error"] is None for r in runs)
    # Never early, and on time as a rule: a loaded machine may delay a tick, not all of them (bench/schedules.py
    # measures the lateness itself; the fake-clock tests in tests/unit/schedules fire each tick at its moment).
    lateness = sorted(parse(r["fired_at"]) - parse(r["scheduled_for"]) for r in runs)
    assert lateness[0] >= 0 and lateness[len(lateness) // 2] < 1, lateness
    assert job["scheduleId"] == ok["id"]
    assert {r["callback_status"] for r in bad_runs} == {"5xx"}
    assert all("500" in (r["error"] or "") for r in bad_runs)


def test_fire_now_and_get_show_runs_and_leave_the_next_fire_alone(server: ServerProcess, receiver: Receiver) -> None:
    with server.client() as http:
        http.post("/v1/queues", json={"name": "manual", "callback_url": receiver.url("/manual")})
        schedule = http.post("/v1/schedules", json={"queue": "manual", "cron": "0 0 1 1 *", "timezone": "UTC",
                                                    "payload": {"n": 1}}).json()
        fired = http.post(f"/v1/schedules/{schedule['id']}/fire-now")
        assert fired.status_code == 201, fired.text
        job_id, run_id = fired.json()["jobId"], fired.json()["runId"]
        wait_until(lambda: receiver.for_path("/manual"), timeout=60)
        wait_until(lambda: http.get(f"/v1/schedules/{schedule['id']}").json()["runs"][0]["callback_status"] == "2xx",
                   timeout=60)
        after = http.get(f"/v1/schedules/{schedule['id']}").json()
    assert receiver.for_path("/manual")[0].headers["x-rotor-job-id"] == job_id
    assert after["next_fire_at"] == schedule["next_fire_at"] and after["last_fired_at"] is not None
    [run] = after["runs"]
    assert (run["id"], run["job_id"], run["manual"]) == (run_id, job_id, True)


def test_missed_ticks_on_restart_fire_once_within_the_grace_and_are_skipped_outside_it(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    # Tick `old` comes 3-4 s after the schedules are made, `new` 12 s later: more than the 10 s grace apart,
    # so `old` is outside the grace however long the restart takes, and `new` inside it for a restart of up to 10 s.
    grace = {"ROTOR_SCHEDULES_MISFIRE_GRACE": "10s"}
    server = make_server(**grace)
    with server.client() as http:
        http.post("/v1/queues", json={"name": "late", "callback_url": receiver.url("/late")})
        old_tick = int(time.time()) + 4
        new_tick = old_tick + 12
        old = http.post("/v1/schedules", json={"queue": "late", "cron": f"{old_tick % 60} * * * * *",
                                               "timezone": "UTC"}).json()
        new = http.post("/v1/schedules", json={"queue": "late", "cron": f"{new_tick % 60} * * * * *",
                                               "timezone": "UTC"}).json()
        steady = http.post("/v1/schedules", json={"queue": "late", "cron": "0 0 1 1 *", "timezone": "UTC"}).json()
    server.kill()  # a crash: both ticks pass while the server is down
    assert time.time() < old_tick, "the server was not down before the first tick"
    time.sleep(max(0.0, new_tick + 0.5 - time.time()))
    restarting_at = time.time()
    restarted = make_server(data_dir=server.data_dir, **grace)
    with restarted.client() as http:
        schedules = {s["id"]: s for s in http.get("/v1/schedules").json()["data"]}
        assert set(schedules) == {old["id"], new["id"], steady["id"]}  # nothing lost
        assert schedules[steady["id"]]["next_fire_at"] == steady["next_fire_at"]
        wait_until(lambda: receiver.for_path("/late"), timeout=60)
        [skipped] = http.get(f"/v1/schedules/{old['id']}/runs").json()["runs"]
        [caught_up] = http.get(f"/v1/schedules/{new['id']}/runs").json()["runs"]
    assert parse(skipped["scheduled_for"]) == old_tick
    assert skipped["job_id"] is None and skipped["fired_at"] is None and "misfire grace (10s)" in skipped["error"]
    assert parse(caught_up["scheduled_for"]) == new_tick and caught_up["job_id"] is not None
    assert parse(caught_up["fired_at"]) >= restarting_at - 0.001  # fired by the restarted server (ms resolution)
    [delivery] = receiver.for_path("/late")
    assert delivery.headers["x-rotor-job-id"] == caught_up["job_id"]


# SDK and CLI against the real server -----------------------------------------------------


def test_sdk_schedules_resource(server: ServerProcess) -> None:
    with Rotor(api_key=server.api_key, base_url=server.url) as rotor:
        rotor.queues.create("enrichment")
        schedule = rotor.schedules.create({
            "queue_name": "enrichment", "name": "nightly-enrichment", "cron": "0 2 * * *",
            "timezone": "America/New_York", "job_data": {"source": "clearbit"}, "enabled": True,
        })
        sid = schedule["external_id"]
        assert rotor.schedules.get(sid)["name"] == "nightly-enrichment"
        assert rotor.schedules.update(sid, {"enabled": False})["enabled"] is False
        assert rotor.schedules.update(sid, enabled=True, cron="0 3 * * *")["cron"] == "0 3 * * *"
        assert rotor.schedules.pause(sid)["enabled"] is False and rotor.schedules.resume(sid)["enabled"] is True
        fired = rotor.schedules.fire_now(sid)
        assert fired["jobId"].startswith("job_")
        runs = rotor.schedules.runs(sid).list(limit=20)["runs"]
        assert [r["job_id"] for r in runs] == [fired["jobId"]]
        assert rotor.schedules.preview("0 9 * * 1-5", "America/New_York", count=2)["description"] == (
            "At 09:00, Monday through Friday"
        )
        assert [s["external_id"] for s in rotor.schedules.list()["data"]] == [sid]
        with pytest.raises(RotorValidationError):
            rotor.schedules.create(queue="enrichment", cron="0 9 * * *", timezone="+05:30")
        assert rotor.schedules.delete(sid) is None


async def test_async_sdk_schedules_resource(server: ServerProcess) -> None:
    async with AsyncRotor(api_key=server.api_key, base_url=server.url) as rotor:
        await rotor.queues.create("async-q")
        schedule = await rotor.schedules.create("async-q", cron="*/5 * * * *", timezone="UTC")
        page = await rotor.schedules.runs(schedule["id"]).list(limit=5)
        assert page == {"runs": [], "nextCursor": None}


def test_cli_schedules_commands(server: ServerProcess) -> None:
    runner = CliRunner()
    auth = ["--api-url", server.url, "--api-key", server.api_key]

    def rotor(*args: str) -> str:
        result = runner.invoke(main, [*args, *auth], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    with server.client() as http:
        http.post("/v1/queues", json={"name": "enrichment"})
    out = rotor("schedules", "create", "--queue", "enrichment", "--cron", "0 9 * * 1-5", "--timezone",
                "America/New_York", "--name", "weekday-morning-enrichment", "--payload", '{"source":"clearbit"}')
    assert "Created schedule weekday-morning-enrichment" in out and "Monday through Friday" in out
    listing = rotor("schedules", "list")
    assert re.search(r"weekday-morning-enrichment\s+0 9 \* \* 1-5\s+America/New_York\s+\S+T09:00:00-0[45]:00\s+yes", listing)
    assert "NAME" in listing and "NEXT FIRE" in listing and "ENABLED" in listing
    assert "paused" in rotor("schedules", "pause", "weekday-morning-enrichment")
    assert "next fire" in rotor("schedules", "resume", "weekday-morning-enrichment")
    fired = json.loads(rotor("schedules", "fire-now", "weekday-morning-enrichment", "--json"))
    runs = json.loads(rotor("schedules", "runs", "weekday-morning-enrichment", "--json"))
    assert runs["runs"][0]["job_id"] == fired["jobId"]
    got = rotor("schedules", "get", "weekday-morning-enrichment")
    assert fired["jobId"] in got and "Latest runs" in got
    assert "Updated" in rotor("schedules", "update", "weekday-morning-enrichment", "--cron", "0 10 * * 1-5")
    assert "At 09:00" in rotor("schedules", "preview", "--cron", "0 9 * * *", "--timezone", "UTC", "--count", "2")
    bad = runner.invoke(main, ["schedules", "create", "--queue", "enrichment", "--cron", "0 9 * * *",
                               "--timezone", "+05:30", *auth])
    assert bad.exit_code == 1 and "VALIDATION_ERROR" in bad.output
    assert "Deleted" in rotor("schedules", "delete", "weekday-morning-enrichment", "--force")


def test_vercel_import_prints_the_reference_lines_and_applies_them(server: ServerProcess, tmp_path: Path) -> None:
    vercel = tmp_path / "vercel.json"
    vercel.write_text(json.dumps({"crons": [
        {"path": "/api/cron/cleanup", "schedule": "0 */6 * * *"},
        {"path": "/api/cron/daily-digest", "schedule": "0 12 * * *"},
    ]}))
    runner = CliRunner()
    printed = runner.invoke(main, ["import", "vercel-cron", str(vercel)])
    assert printed.exit_code == 0, printed.output
    assert printed.output.splitlines() == [
        '{"type":"queue","config":{"name":"cron-cleanup","callback_url":"https://YOUR_DOMAIN/api/cron/cleanup"}}',
        '{"type":"schedule","config":{"queue":"cron-cleanup","cron":"0 */6 * * *","timezone":"UTC"}}',
        '{"type":"queue","config":{"name":"cron-daily-digest","callback_url":"https://YOUR_DOMAIN/api/cron/daily-digest"}}',
        '{"type":"schedule","config":{"queue":"cron-daily-digest","cron":"0 12 * * *","timezone":"UTC"}}',
    ]
    args = ["import", "vercel-cron", str(vercel), "--base-url", "https://my-app.example.com", "--apply",
            "--api-url", server.url, "--api-key", server.api_key]
    applied = runner.invoke(main, args)
    assert applied.exit_code == 0, applied.output
    assert "Created queue cron-cleanup" in applied.output and "Callback secret" in applied.output
    again = runner.invoke(main, args)  # applying twice creates nothing more
    assert again.exit_code == 0 and "already exists" in again.output
    with server.client() as http:
        queue = http.get("/v1/queues/cron-daily-digest").json()
        schedules = http.get("/v1/schedules").json()["data"]
    assert queue["callback_url"] == "https://my-app.example.com/api/cron/daily-digest"
    assert sorted((s["queue"], s["cron"], s["timezone"]) for s in schedules) == [
        ("cron-cleanup", "0 */6 * * *", "UTC"), ("cron-daily-digest", "0 12 * * *", "UTC"),
    ]


def test_roles_and_workspaces(server: ServerProcess) -> None:
    viewer = offline(server.data_dir, "keys", "create", "--workspace", "default", "--role", "viewer")["key"]
    other = offline(server.data_dir, "workspaces", "create", "other")["key"]
    with server.client() as http:
        http.post("/v1/queues", json={"name": "mine"})
        schedule = http.post("/v1/schedules", json={"queue": "mine", "cron": "0 9 * * *", "timezone": "UTC"}).json()
    with server.client(viewer) as http:
        assert http.get(f"/v1/schedules/{schedule['id']}").status_code == 200
        assert http.post("/v1/schedules/preview", json={"cron": "0 9 * * *", "timezone": "UTC"}).status_code == 200
        for response in (
            http.post("/v1/schedules", json={"queue": "mine", "cron": "0 9 * * *", "timezone": "UTC"}),
            http.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": False}),
            http.post(f"/v1/schedules/{schedule['id']}/pause"),
            http.post(f"/v1/schedules/{schedule['id']}/fire-now"),
            http.delete(f"/v1/schedules/{schedule['id']}"),
        ):
            assert error_of(response, 403)["code"] == "FORBIDDEN"
    with server.client(other) as http:
        assert http.get("/v1/schedules").json()["data"] == []
        for response in (http.get(f"/v1/schedules/{schedule['id']}"), http.get(f"/v1/schedules/{schedule['id']}/runs"),
                         http.post(f"/v1/schedules/{schedule['id']}/fire-now"), http.delete(f"/v1/schedules/{schedule['name']}")):
            assert error_of(response, 404)["code"] == "NOT_FOUND"
        assert error_of(http.post("/v1/schedules", json={"queue": "mine", "cron": "0 9 * * *", "timezone": "UTC"}), 404)
    with server.client() as http:
        assert http.get(f"/v1/schedules/{schedule['id']}").json()["enabled"] is True


def test_list_pages_with_a_cursor(server: ServerProcess) -> None:
    with server.client() as http:
        http.post("/v1/queues", json={"name": "paged"})
        ids = [http.post("/v1/schedules", json={"queue": "paged", "cron": "0 9 * * *", "timezone": "UTC"}).json()["id"]
               for _ in range(5)]
        first = http.get("/v1/schedules?limit=2").json()
        second = http.get(f"/v1/schedules?limit=2&cursor={first['nextCursor']}").json()
        third = http.get(f"/v1/schedules?limit=2&cursor={second['nextCursor']}").json()
        assert [s["id"] for s in first["data"] + second["data"] + third["data"]] == ids
        assert third["nextCursor"] is None
        for _ in range(3):
            http.post(f"/v1/schedules/{ids[0]}/fire-now")
        page = http.get(f"/v1/schedules/{ids[0]}/runs?limit=2").json()
        rest = http.get(f"/v1/schedules/{ids[0]}/runs?limit=2&cursor={page['nextCursor']}").json()
        assert len(page["runs"]) == 2 and len(rest["runs"]) == 1 and rest["nextCursor"] is None
        assert error_of(http.get("/v1/schedules?limit=0"), 422)["details"]["field"] == "limit"
