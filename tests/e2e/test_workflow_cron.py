"""Cron-triggered functions: ticks of the schedules engine start runs of `rotor/cron`; the schedule lives and dies
with its function and never shows in `/v1/schedules`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess, db_execute, wait_until

EVERY_SECOND = "*/1 * * * * *"


@create_function(id="cron-ticker", trigger={"cron": EVERY_SECOND, "timezone": "UTC"})
async def ticker(ctx: Context, step: Step) -> Any:
    return {"event": ctx.event.name, "data": ctx.event.data}


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        yield wf_env


def ticker_runs(env: WorkflowEnv) -> list[dict[str, Any]]:
    return list(env.http.get("/v1/runs", params={"function": "cron-ticker", "limit": 200}).json()["data"])


def schedule_rows(env: WorkflowEnv, function_id: str) -> list[tuple[str, str]]:
    rows = db_execute(env.server.data_dir, "SELECT cron, timezone FROM schedule WHERE function_id = ?", (function_id,))
    return [(row[0], row[1]) for row in rows]


def test_a_cron_function_runs_on_every_tick_until_it_is_deleted(env: WorkflowEnv) -> None:
    url = env.serve([ticker])
    env.register(ticker, url)  # registering again (as an app does on every start) keeps one schedule
    assert schedule_rows(env, "cron-ticker") == [(EVERY_SECOND, "UTC")]

    runs = wait_until(lambda: len(found := [r for r in ticker_runs(env) if r["status"] == "completed"]) >= 2 and found)

    for run in runs:
        assert run["event"]["name"] == "rotor/cron"
        assert run["output"]["event"] == "rotor/cron" and run["output"]["data"] == run["event"]["data"]
        data = run["event"]["data"]
        assert data["cron"] == EVERY_SECOND and data["timezone"] == "UTC"
        assert datetime.fromisoformat(data["scheduledFor"]).microsecond == 0
    ticks = sorted(run["event"]["data"]["scheduledFor"] for run in ticker_runs(env))
    assert len(ticks) == len(set(ticks))  # one run per tick, not one per registration
    listed = env.http.get("/v1/schedules", params={"limit": 200}).json()["data"]
    assert all(s["cron"] != EVERY_SECOND and "cron-ticker" not in s["name"] for s in listed)

    assert env.http.delete("/v1/functions/cron-ticker").status_code == 204
    assert schedule_rows(env, "cron-ticker") == []
    seen = len(ticker_runs(env))
    time.sleep(1.5)  # the ticks are a second apart: one and a half show none came
    assert len(ticker_runs(env)) == seen


def test_a_cron_function_turned_event_triggered_loses_its_schedule(env: WorkflowEnv) -> None:
    url = "http://127.0.0.1:9/"
    created = env.http.post("/v1/functions", json={"id": "cron-switch", "serve_url": url, "trigger_type": "cron",
                                                   "cron": "0 3 * * *", "timezone": "Europe/Paris"})
    assert created.status_code == 201 and schedule_rows(env, "cron-switch") == [("0 3 * * *", "Europe/Paris")]

    env.http.post("/v1/functions", json={"id": "cron-switch", "serve_url": url, "trigger_type": "cron",
                                         "cron": "0 4 * * *", "timezone": "UTC"})
    assert schedule_rows(env, "cron-switch") == [("0 4 * * *", "UTC")]
    switched = env.http.post("/v1/functions", json={"id": "cron-switch", "serve_url": url, "trigger_event": "x.y"})

    assert switched.status_code == 200 and switched.json()["cron"] is None and switched.json()["trigger_type"] == "event"
    assert schedule_rows(env, "cron-switch") == []
    env.http.delete("/v1/functions/cron-switch")
