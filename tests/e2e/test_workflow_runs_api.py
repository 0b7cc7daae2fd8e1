"""Reading runs: the run and step objects of `GET /v1/runs/:id`, output previews, and `GET /v1/runs` filters and paging."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step
from tests.e2e.workflow_kit import WorkflowEnv, workflow_env
from tests.helpers import ServerProcess

RUN_FIELDS = {"id", "functionId", "status", "event", "attempt", "output", "error", "parentRunId", "createdAt", "startedAt",
              "endedAt"}
STEP_FIELDS = {"id", "name", "type", "status", "attempts", "startedAt", "endedAt", "wakeAt", "output", "error", "childRunId",
               "signal", "event"}


@create_function(id="reader", trigger={"event": "reader.start"})
async def reader(ctx: Context, step: Step) -> Any:
    big = await step.run("big", lambda: {"blob": "é" * 5000})
    await step.sleep("nap", "1ms")
    return {"size": len(big["blob"]), "n": ctx.event.data.get("n")}


@pytest.fixture(scope="module")
def env(shared_server: ServerProcess) -> Iterator[WorkflowEnv]:
    for wf_env in workflow_env(shared_server):
        wf_env.serve([reader])
        yield wf_env


def test_the_run_and_its_steps_as_get_shows_them(env: WorkflowEnv) -> None:
    sent = env.send("reader.start", {"n": 1})
    [run_id] = sent["runIds"]

    run = env.wait_status(run_id, "completed")

    assert set(run) == RUN_FIELDS | {"childRunIds", "steps", "hookErrors"}
    assert run["functionId"] == "reader" and run["output"] == {"size": 5000, "n": 1} and run["error"] is None
    assert run["event"]["id"] == sent["id"] and run["event"]["name"] == "reader.start" and run["event"]["data"] == {"n": 1}
    assert isinstance(run["event"]["ts"], int) and run["attempt"] == 1
    assert run["parentRunId"] is None and run["childRunIds"] == [] and run["hookErrors"] == []
    created, started, ended = (datetime.fromisoformat(run[k]) for k in ("createdAt", "startedAt", "endedAt"))
    assert created <= started <= ended <= datetime.now(UTC)
    big, nap = run["steps"]
    assert set(big) == STEP_FIELDS and set(nap) == STEP_FIELDS
    assert (big["id"], big["name"], big["type"], big["status"], big["attempts"]) == ("big:1", "big", "run", "completed", 1)
    preview = big["output"]
    assert isinstance(preview, str) and preview.endswith("…") and len(preview.encode()) <= 4096 + len("…".encode())
    assert preview.startswith('{"blob":"ééé')
    assert (nap["type"], nap["status"], nap["output"], nap["wakeAt"]) == ("sleep", "completed", None, None)


def test_the_list_filters_and_pages_newest_first(env: WorkflowEnv) -> None:
    since = datetime.now(UTC).isoformat()
    time.sleep(0.002)
    ids = [env.send("reader.start", {"n": n})["runIds"][0] for n in range(5)]
    for run_id in ids:
        env.wait_status(run_id, "completed")

    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"function": "reader", "from": since, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = env.http.get("/v1/runs", params=params).json()
        pages.append([run["id"] for run in page["data"]])
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert pages == [ids[:-3:-1], ids[-3:-5:-1], [ids[0]]]
    listed = env.http.get("/v1/runs", params={"function": "reader", "from": since}).json()["data"]
    assert all(set(run) == RUN_FIELDS for run in listed)  # no steps in a list
    assert env.http.get("/v1/runs", params={"function": "reader", "status": "failed"}).json()["data"] == []
    assert env.http.get("/v1/runs", params={"function": "reader", "to": since, "from": since}).json()["data"] == []
    assert env.http.get("/v1/runs", params={"function": "nobody"}).json() == {"data": [], "nextCursor": None}
